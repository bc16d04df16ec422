"""A pod's workload: the real httpbin (PyPI `httpbin`, a Flask app) on the pod's loopback address.

Run by the data plane as a child process, one per Running httpbin pod:

    python -m meshlab.dataplane.podserver --ip 127.18.2.7 --port 80 --cluster cluster2 \\
        --namespace bar --pod httpbin-5c9b8 --state-dir STATE

werkzeug's threaded server serves httpbin unchanged. Two things stand in for the pod's own
sidecar (the inbound side): an optional `MESHLINK-SNI` preamble line before a request is
accepted (emulated mTLS, permissive), and every request is recorded as a `pod` hop and gets
the pod's label in the `x-meshlink-path` response header. The process exits on SIGTERM or
when its parent (the data plane) goes away.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time

from werkzeug.serving import WSGIRequestHandler, make_server

from . import hops
from .wire import PREAMBLE_PREFIX, ProtocolError, parse_preamble


class MeshHandler(WSGIRequestHandler):
    """werkzeug's handler, accepting the emulated mTLS preamble before each request."""

    timeout = 30  # seconds of idle before a keep-alive connection is dropped
    meshlink_sni = ""
    meshlink_request_id = ""

    def handle_one_request(self) -> None:  # noqa: D401 - BaseHTTPRequestHandler hook
        self.meshlink_sni = ""
        self.meshlink_request_id = ""
        try:
            head = self.rfile.peek(len(PREAMBLE_PREFIX))[: len(PREAMBLE_PREFIX)]
        except (OSError, ValueError):
            head = b""
        if head == PREAMBLE_PREFIX:
            line = self.rfile.readline(1024)
            try:
                self.meshlink_sni, self.meshlink_request_id = parse_preamble(line)
            except ProtocolError:
                self.close_connection = True
                return
        super().handle_one_request()

    def make_environ(self):  # type: ignore[no-untyped-def]
        environ = super().make_environ()
        environ["meshlink.sni"] = self.meshlink_sni
        environ["meshlink.request_id"] = self.meshlink_request_id
        return environ


def mesh_app(app, state_dir: str, cluster: str, namespace: str, pod: str, address: str):
    """WSGI middleware: record the `pod` hop and add the pod's label to x-meshlink-path."""
    label = f"pod[{cluster} {namespace}/{pod}]"

    def wrapped(environ, start_response):
        started = time.time()
        rid = environ.get("HTTP_X_REQUEST_ID") or environ.get("meshlink.request_id") or ""

        def sr(status, headers, exc_info=None):
            code = int(str(status).split(" ", 1)[0])
            hops.record(state_dir, {
                "ts": started, "request_id": rid, "cluster": cluster, "hop": "pod", "pod": pod,
                "namespace": namespace, "address": address, "sni": environ.get("meshlink.sni"),
                "status": code, "ms": round((time.time() - started) * 1000, 1),
                "detail": f"httpbin {environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}"
                          + (" (mTLS)" if environ.get("meshlink.sni") else " (plain text)"),
            })
            headers = [(k, v) for k, v in headers if k.lower() != "x-meshlink-path"]
            headers.append(("x-meshlink-path", label))
            return start_response(status, headers, exc_info)

        if environ.get("PATH_INFO") == "/hostname":
            # go-httpbin's endpoint (Istio's samples/httpbin serves mccutchen/go-httpbin since
            # 1.19): the pod's host name, which the PyPI httpbin the lab runs does not have.
            body = json.dumps({"hostname": pod}).encode()
            sr("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        return app(environ, sr)

    return wrapped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meshlab.dataplane.podserver")
    parser.add_argument("--ip", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--pod", required=True)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not args.ip.startswith("127."):
        print(f"refusing to listen on {args.ip}: not loopback", file=sys.stderr)
        return 2

    import httpbin  # noqa: PLC0415 - slow import, after argument checks

    app = mesh_app(httpbin.app, args.state_dir, args.cluster, args.namespace, args.pod,
                   f"{args.ip}:{args.port}")
    server = make_server(args.ip, args.port, app, threaded=True, request_handler=MeshHandler)
    server.daemon_threads = True
    parent = os.getppid()

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def orphan_watch():
        while os.getppid() == parent:
            time.sleep(1)
        stop()

    threading.Thread(target=orphan_watch, daemon=True).start()
    print(f"httpbin for {args.cluster} {args.namespace}/{args.pod} on {args.ip}:{args.port}", flush=True)
    server.serve_forever(poll_interval=0.5)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
