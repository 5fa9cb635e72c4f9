"""YAML from users (llama-swap configs, profiles) read with bounds.

Aliases are allowed (a config may share settings with `<<: *common`), but what they expand to
is counted before anything is built: "billion laughs" (each level aliasing the one before ten
times) is refused, as is nesting deeper than any config needs (the composer recurses: 100,000
`[` are a RecursionError, or a crash in libyaml). One pass over the parser's events, linear in
the file."""
from __future__ import annotations

import yaml

MAX_NODES = 1_000_000  # scalars and collections after alias expansion
MAX_DEPTH = 100


class BoundedYAMLError(yaml.YAMLError):
    pass


def check(text: str, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> None:
    """Raise BoundedYAMLError if `text` expands past `max_nodes` or nests deeper than `max_depth`."""
    sizes: dict[str, int] = {}  # anchor -> the nodes it expands to
    stack: list[list] = []  # open collections: [anchor, nodes so far]
    total = 0
    for event in _events(text):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            stack.append([event.anchor, 1])
            if len(stack) > max_depth:
                raise BoundedYAMLError(f"nested deeper than {max_depth} levels{event.start_mark}")
            continue
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            anchor, n = stack.pop()
        elif isinstance(event, yaml.ScalarEvent):
            anchor, n = event.anchor, 1
        elif isinstance(event, yaml.AliasEvent):
            anchor, n = None, sizes.get(event.anchor, 1)
        else:
            continue
        if anchor:
            sizes[anchor] = n
        if stack:
            stack[-1][1] += n
        else:
            total += n
        if total + sum(f[1] for f in stack[-1:]) > max_nodes or n > max_nodes:
            raise BoundedYAMLError(f"expands to more than {max_nodes:,} values (aliases of aliases?)"
                                   f"{getattr(event, 'start_mark', '')}")


def _events(text: str):
    """The parser's events; PyYAML >= 6.0.4 refuses deep nesting itself: the same refusal, in our words."""
    try:
        yield from yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except BoundedYAMLError:
        raise
    except yaml.YAMLError as e:
        if "nesting depth" in str(e):
            raise BoundedYAMLError(f"nested deeper than {MAX_DEPTH} levels") from None
        raise


def safe_load(text: str):
    """yaml.safe_load, after `check`."""
    check(text)
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise BoundedYAMLError(f"nested deeper than {MAX_DEPTH} levels") from None
