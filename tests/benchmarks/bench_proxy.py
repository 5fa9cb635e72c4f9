"""What the recording proxy costs: time to first byte and decode rate, direct vs through the proxy,
against the embedded llama-server (SmolLM2-135M, -c 2048). A plain script, not a test:

    python tests/benchmarks/bench_proxy.py [--runs 20] [--tokens 200]

Requests alternate direct / proxy so drift in the server (cache, CPU clock) hits both alike. The
prompt never changes, so the server answers from its prompt cache and TTFB is mostly transport.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import httpx

from pytest_tbreplay.server.llama import LlamaServer
from pytest_tbreplay.record.proxy import RecordingProxy
from pytest_tbreplay.core.sse import DONE, iter_events

CHAT = "/v1/chat/completions"


def body(max_tokens: int) -> dict:
    return {"messages": [{"role": "user", "content": "Tell me a long story about a lighthouse."}],
            "stream": True, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True,
            "stream_options": {"include_usage": True}}


def ttfb(client: httpx.Client, base: str) -> float:
    start = time.perf_counter()
    with client.stream("POST", base + CHAT, json=body(1)) as r:
        chunks = r.iter_raw()
        next(chunks)
        first = time.perf_counter() - start
        for _ in chunks:  # drain, so the connection is reused for the next request
            pass
    return first


def decode(client: httpx.Client, base: str, tokens: int) -> tuple[float, dict]:
    """Client-measured tokens/s, counted like llama-server's predicted_per_second: (n - 1)
    intervals between the first and the last token; plus the server's own timings."""
    stamps, timings = [], {}
    with client.stream("POST", base + CHAT, json=body(tokens)) as r:
        for data in iter_events(r.iter_raw()):
            if data == DONE:
                break
            event = json.loads(data)
            timings = event.get("timings") or timings
            delta = (event.get("choices") or [{}])[0].get("delta") or {}
            if delta.get("content"):
                stamps.append(time.perf_counter())
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]), timings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--decode-runs", type=int, default=5)
    args = ap.parse_args()

    with LlamaServer(ctx_size=2048) as server, RecordingProxy(server.url) as proxy, httpx.Client(timeout=120) as client:
        targets = {"direct": server.url, "proxy": proxy.url}
        for base in targets.values():  # warm up: load the prompt cache, open keep-alive connections
            ttfb(client, base)

        first = {name: [] for name in targets}
        for _ in range(args.runs):
            for name, base in targets.items():
                first[name].append(ttfb(client, base))
        rates = {name: [] for name in targets}
        last_timings = {}
        for _ in range(args.decode_runs):
            for name, base in targets.items():
                rate, last_timings[name] = decode(client, base, args.tokens)
                rates[name].append(rate)

        print(f"llama-server {server.model}  n_ctx {server.n_ctx}  ({server.url})")
        ttfb_ms = {n: statistics.median(v) * 1000 for n, v in first.items()}
        print(f"\ntime to first byte, median of {args.runs} (stream, max_tokens 1):")
        for n, v in first.items():
            print(f"  {n:7} {ttfb_ms[n]:7.2f} ms   (min {min(v) * 1000:.2f}, max {max(v) * 1000:.2f})")
        overhead = ttfb_ms["proxy"] - ttfb_ms["direct"]
        print(f"  proxy overhead {overhead:+.2f} ms  ({'within' if overhead <= 20 else 'OVER'} the 20 ms budget)")

        tps = {n: statistics.median(v) for n, v in rates.items()}
        print(f"\ndecode rate, client-measured, median of {args.decode_runs} {args.tokens}-token streams:")
        for n, v in rates.items():
            print(f"  {n:7} {tps[n]:7.1f} tok/s   (runs: {', '.join(f'{x:.1f}' for x in v)})")
        print(f"  proxy vs direct {100 * (tps['proxy'] / tps['direct'] - 1):+.1f} %")

        print("\nserver-reported vs client-measured, last stream of each:")
        for n in targets:
            t = last_timings[n]
            print(f"  {n:7} timings.predicted_per_second {t.get('predicted_per_second', float('nan')):7.1f} "
                  f"(predicted_n {t.get('predicted_n')})   client {rates[n][-1]:7.1f} tok/s")


if __name__ == "__main__":
    main()
