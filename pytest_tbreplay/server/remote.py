"""A llama-server (or llama-swap) that is already running elsewhere: `--server-url` in live mode."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytest_tbreplay.core.props import LlamaServerError, check_props, read_props


# -- a server we did not start -----------------------------------------------------------------
@dataclass
class RemoteServer:
    """A server we did not start (--server-url): the desktop's, or llama-swap."""
    url: str
    props: dict

    @property
    def n_ctx(self) -> int:
        return int(self.props["default_generation_settings"]["n_ctx"])

    @property
    def model(self) -> str:
        return self.props.get("model_alias") or Path(self.props.get("model_path", "unknown")).name

    @property
    def metadata(self) -> dict:
        params = self.props["default_generation_settings"].get("params", {})
        return {"n_ctx": self.n_ctx, "model": self.model,
                "settings": {k: v for k, v in params.items() if k in ("temperature", "top_k", "top_p")
                             or k.startswith("dry_")}}


def remote_server(url: str, model: str | None) -> RemoteServer:
    url = url.rstrip("/")
    # llama-swap serves a model's own endpoints under /upstream/<model>/.
    candidates = [url] + ([f"{url}/upstream/{model}"] if model else [])
    for base in candidates:
        if (props := read_props(base)) is not None:
            return RemoteServer(url, check_props(props, f"{base}/props"))
    raise LlamaServerError(f"{url}: no /props answered ({', '.join(c + '/props' for c in candidates)}); "
                            "for llama-swap pass --model NAME")
