"""Read the local stack's spans (``TELEMETRY_FILE``, JSON lines) and print one trace as a tree.

``python -m shared.obs.traces [--file F] [TRACE_ID | --slowest [--name NAME]]``: the given trace,
or the slowest recent one (optionally of root spans called NAME), with each span's service,
duration and the attributes a person filters on. The file is what ``shared.obs.telemetry``'s
``file`` exporter writes; metric lines in the same file are skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass(slots=True)
class SpanLine:
    """One exported span, as the tree needs it; times in seconds since the epoch."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    start: float
    end: float
    status: str
    attributes: dict[str, Any]
    children: list[SpanLine] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return (self.end - self.start) * 1000


def read_spans(lines: Iterable[str]) -> Iterator[SpanLine]:
    """Parse the span lines of an exporter file; other or broken lines are skipped."""
    for line in lines:
        try:
            raw = json.loads(line)
        except ValueError:
            continue
        if not isinstance(raw, dict) or "context" not in raw:
            continue
        context = raw["context"]
        resource = (raw.get("resource") or {}).get("attributes") or {}
        yield SpanLine(
            trace_id=_hex(context["trace_id"]),
            span_id=_hex(context["span_id"]),
            parent_id=_hex(raw["parent_id"]) if raw.get("parent_id") else None,
            name=str(raw.get("name", "")),
            service=str(resource.get("service.name", "?")),
            start=_seconds(raw["start_time"]),
            end=_seconds(raw["end_time"]),
            status=str((raw.get("status") or {}).get("status_code", "UNSET")),
            attributes=dict(raw.get("attributes") or {}),
        )


def build_trees(spans: Iterable[SpanLine]) -> dict[str, list[SpanLine]]:
    """Roots of each trace (a span whose parent is absent from the file is a root)."""
    by_trace: dict[str, dict[str, SpanLine]] = defaultdict(dict)
    for span in spans:
        by_trace[span.trace_id][span.span_id] = span
    roots: dict[str, list[SpanLine]] = {}
    for trace_id, members in by_trace.items():
        tops: list[SpanLine] = []
        for span in members.values():
            parent = members.get(span.parent_id) if span.parent_id else None
            (parent.children if parent else tops).append(span)
        for span in members.values():
            span.children.sort(key=lambda s: s.start)
        roots[trace_id] = sorted(tops, key=lambda s: s.start)
    return roots


def render(roots: Sequence[SpanLine]) -> list[str]:
    """Indented lines: ``service  name  duration  status  key=value ...``."""
    out: list[str] = []

    def walk(span: SpanLine, depth: int) -> None:
        attrs = " ".join(f"{k}={v}" for k, v in sorted(span.attributes.items()))
        status = "" if span.status == "UNSET" else f" [{span.status}]"
        out.append(
            f"{'  ' * depth}{span.service:<14} {span.name}  {span.duration_ms:.1f} ms{status}"
            + (f"  {attrs}" if attrs else "")
        )
        for child in span.children:
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    return out


def slowest(trees: dict[str, list[SpanLine]], name: str | None = None) -> str | None:
    """The trace id whose root span took longest (of roots called ``name`` if given)."""
    best: tuple[float, str] | None = None
    for trace_id, roots in trees.items():
        for root in roots:
            if name is not None and root.name != name:
                continue
            if best is None or root.duration_ms > best[0]:
                best = (root.duration_ms, trace_id)
    return best[1] if best else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.obs.traces", description=__doc__)
    parser.add_argument("trace_id", nargs="?", help="32 hex digits; default: --slowest")
    parser.add_argument("--file", default=".local/telemetry.jsonl", help="the exporter's file")
    parser.add_argument("--slowest", action="store_true", help="the slowest trace in the file")
    parser.add_argument("--name", help="with --slowest: only roots with this span name")
    args = parser.parse_args(argv)
    path = Path(args.file)
    if not path.exists():
        print(f"no span file at {path} (set TELEMETRY_FILE and run the stack)", file=sys.stderr)
        return 2
    with path.open(encoding="utf-8") as handle:
        trees = build_trees(read_spans(handle))
    trace_id = args.trace_id.lower() if args.trace_id else slowest(trees, args.name)
    if trace_id is None or trace_id not in trees:
        print(f"trace {trace_id or '(none)'} not found in {path}", file=sys.stderr)
        return 1
    services = {s.service for s in flatten(trees[trace_id])}
    print(f"trace {trace_id} across {len(services)} process(es): {', '.join(sorted(services))}")
    print("\n".join(render(trees[trace_id])))
    return 0


def flatten(roots: Iterable[SpanLine]) -> Iterator[SpanLine]:
    """Every span of the trees, parents before children."""
    for root in roots:
        yield root
        yield from flatten(root.children)


def _hex(value: str) -> str:
    return value[2:] if value.startswith("0x") else value


def _seconds(stamp: str) -> float:
    # The SDK writes ISO 8601 with a trailing Z and microseconds.
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


if __name__ == "__main__":
    raise SystemExit(main())
