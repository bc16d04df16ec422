"""The hop log: one JSON line per hop a request passes, in STATE/hops.jsonl.

Fields: `ts` (epoch seconds when the hop received the request; the path is ordered by it),
`time` (the same, ISO 8601 UTC), `request_id`, `cluster`, `hop` (sidecar | egress-gateway | lb |
nodeport | ingress-gateway | eastwest-gateway | pod), `pod` (name, for gateway and pod hops,
and for a sidecar that knows its pod) and `namespace`, `address` (where the hop listens),
`sni`, `target` (where it sent the request), `detail`, `status` (HTTP status seen, when
known), `ms`, `xds` (hops routed by istiod's xDS: `node`, `cluster`, `route`, `endpoint`,
`endpoints`, `versions`), and `error` only when the hop failed.

Every writer (the data plane and each httpbin process) appends whole lines with one write(2)
on an O_APPEND descriptor, so concurrent writers do not interleave. A hop writes its line
before it closes its downstream connection, so a failed request's path is complete by the
time the client sees the failure.

CLI: `python -m meshlab.dataplane.hops STATE REQUEST_ID [--json]` (REQUEST_ID `last`: the
newest request that entered a sidecar).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

FILE = "hops.jsonl"
ROTATE_BYTES = 20 * 1024 * 1024
HOPS = ("sidecar", "egress-gateway", "lb", "nodeport", "ingress-gateway", "eastwest-gateway", "pod")

_rotate_lock = threading.Lock()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record(state_dir: str | os.PathLike, hop: dict[str, Any]) -> None:
    """Append one hop (ts defaults to now); never raises (the log must not break traffic)."""
    try:
        hop = {k: v for k, v in hop.items() if v is not None and v != ""}
        hop.setdefault("ts", time.time())
        hop["time"] = iso(hop["ts"])
        line = (json.dumps(hop, sort_keys=True, default=str) + "\n").encode("utf-8")
        path = Path(state_dir) / FILE
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError:
        pass


def rotate(state_dir: str | os.PathLike, limit: int = ROTATE_BYTES) -> None:
    """Keep one previous generation (hops.jsonl.1) once the log passes `limit` bytes."""
    path = Path(state_dir) / FILE
    with _rotate_lock:
        try:
            if path.stat().st_size > limit:
                os.replace(path, path.with_name(FILE + ".1"))
        except OSError:
            pass


def _lines(state_dir: str | os.PathLike, tail_bytes: int | None):
    base = Path(state_dir) / FILE
    for path in (base.with_name(FILE + ".1"), base):
        try:
            with open(path, "rb") as f:
                if tail_bytes is not None:
                    if path != base:
                        continue
                    size = f.seek(0, os.SEEK_END)
                    f.seek(max(0, size - tail_bytes))
                    if size > tail_bytes:
                        f.readline()  # drop the partial first line
                for raw in f:
                    try:
                        yield json.loads(raw)
                    except ValueError:
                        continue
        except OSError:
            continue


def path(state_dir: str | os.PathLike, request_id: str, tail_bytes: int | None = None) -> list[dict]:
    """The hops of one request, in the order the request passed them."""
    if request_id == "last":
        request_id = last_request_id(state_dir) or ""
    hops = [h for h in _lines(state_dir, tail_bytes) if h.get("request_id") == request_id]
    rank = {h: i for i, h in enumerate(HOPS)}
    return sorted(hops, key=lambda h: (h.get("ts", 0), rank.get(h.get("hop"), 9)))


def last_request_id(state_dir: str | os.PathLike) -> str | None:
    last = None
    for h in _lines(state_dir, 4 * 1024 * 1024):
        if h.get("hop") == "sidecar" and h.get("request_id"):
            last = h
    return last["request_id"] if last else None


def label(hop: dict) -> str:
    """The short form used in the x-meshlink-path response header."""
    if hop.get("hop") == "sidecar":
        if hop.get("pod") and hop.get("namespace"):
            return f"sidecar[{hop.get('cluster')} {hop['namespace']}/{hop['pod']}]"
        return f"sidecar[{hop.get('cluster')}]"
    where = (f"{hop['namespace']}/{hop['pod']}" if hop.get("pod") and hop.get("namespace")
             else hop.get("pod") or hop.get("address") or "")
    return f"{hop.get('hop')}[{hop.get('cluster')}{' ' + where if where else ''}]"


def format_hop(hop: dict) -> str:
    where = (f"{hop['namespace']}/{hop['pod']}" if hop.get("pod") and hop.get("namespace")
             else hop.get("pod") or hop.get("address") or "-")
    parts = [hop.get("time", "?"), f"{hop.get('cluster', '?'):<9}", f"{hop.get('hop', '?'):<15}", where]
    if hop.get("target"):
        parts.append(f"-> {hop['target']}")
    if hop.get("sni"):
        parts.append(f"sni={hop['sni']}")
    if hop.get("status"):
        parts.append(f"status={hop['status']}")
    text = "  ".join(parts)
    if hop.get("detail"):
        text += f"\n    {hop['detail']}"
    if hop.get("error"):
        text += f"\n    ERROR: {hop['error']}"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meshlab.dataplane.hops",
                                     description="Print the recorded path of one request.")
    parser.add_argument("state_dir")
    parser.add_argument("request_id", help="x-request-id of the request, or `last`")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    rid = args.request_id
    if rid == "last":
        rid = last_request_id(args.state_dir) or ""
    hops = path(args.state_dir, rid)
    if not hops:
        print(f"no hops recorded for request {args.request_id!r} in {Path(args.state_dir) / FILE}",
              file=sys.stderr)
        return 1
    if args.json:
        for h in hops:
            print(json.dumps(h, sort_keys=True))
        return 0
    print(f"request {rid}: " + " > ".join(label(h) for h in hops))
    for h in hops:
        print(format_hop(h))
    return 0


if __name__ == "__main__":
    sys.exit(main())
