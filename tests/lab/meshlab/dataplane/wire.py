"""What travels between hops: the emulated mTLS preamble and HTTP/1.1 framing.

Emulated mTLS. Where Istio opens an mTLS connection (sidecar -> gateway, gateway -> gateway,
gateway -> pod), the lab sends one plain-text line first and then the HTTP request as is:

    MESHLINK-SNI <sni> <request-id>\\r\\n

`<sni>` is what Envoy would put in the TLS ClientHello (`outbound_.8000_._.httpbin.bar.global`),
`<request-id>` is the request's x-request-id (so that L4 hops can record it). Gateways require
the line (a plain-text request to 15443 is a failed TLS handshake); pods accept it optionally
(permissive mTLS). Responses carry no preamble.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from typing import BinaryIO

PREAMBLE_PREFIX = b"MESHLINK-SNI "
MAX_HEAD = 64 * 1024
MAX_BODY = 32 * 1024 * 1024
_TOKEN = re.compile(r"^[A-Za-z0-9._:\-]{1,200}$")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class ProtocolError(Exception):
    """The peer did not speak what this hop expects."""


def encode_preamble(sni: str, request_id: str) -> bytes:
    if not _TOKEN.match(sni or ""):
        raise ValueError(f"bad SNI {sni!r}")
    if not REQUEST_ID.match(request_id or ""):
        raise ValueError(f"bad request id {request_id!r}")
    return PREAMBLE_PREFIX + f"{sni} {request_id}\r\n".encode("ascii")


def parse_preamble(line: bytes) -> tuple[str, str]:
    """(sni, request_id) of a preamble line; ProtocolError when it is not one."""
    if not line.startswith(PREAMBLE_PREFIX):
        raise ProtocolError("no MESHLINK-SNI preamble (a plain-text connection to a TLS port)")
    parts = line.decode("ascii", "replace").strip().split(" ")
    if len(parts) != 3 or not _TOKEN.match(parts[1]) or not REQUEST_ID.match(parts[2]):
        raise ProtocolError(f"malformed preamble {line[:200]!r}")
    return parts[1], parts[2]


# ---------------------------------------------------------------- HTTP heads

@dataclass
class Head:
    """An HTTP/1.x start line plus headers (order and case kept)."""

    start: list[str]
    headers: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str, default: str | None = None) -> str | None:
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return default

    def remove(self, *names: str) -> None:
        lnames = {n.lower() for n in names}
        self.headers = [(k, v) for k, v in self.headers if k.lower() not in lnames]

    def set(self, name: str, value: str) -> None:
        self.remove(name)
        self.headers.append((name, value))

    def encode(self) -> bytes:
        lines = [" ".join(self.start)] + [f"{k}: {v}" for k, v in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    # request accessors
    @property
    def method(self) -> str:
        return self.start[0]

    @property
    def target(self) -> str:
        return self.start[1]

    # response accessors
    @property
    def status(self) -> int:
        return int(self.start[1])


HOP_BY_HOP = ("connection", "keep-alive", "proxy-connection", "proxy-authorization",
              "proxy-authenticate", "te", "trailer", "upgrade")


def read_head(rfile: BinaryIO, kind: str, first_line: bytes | None = None) -> Head | None:
    """Read a request (`kind="request"`) or response head; None on a clean EOF before it.

    `first_line`: the head's first line when the caller already read it.
    """
    lines: list[str] = []
    total = 0
    while True:
        if first_line is not None:
            line, first_line = first_line, None
        else:
            line = rfile.readline(MAX_HEAD + 1)
        if not line:
            if not lines:
                return None
            raise ProtocolError("connection closed inside the HTTP head")
        total += len(line)
        if total > MAX_HEAD:
            raise ProtocolError("HTTP head too large")
        text = line.decode("latin-1").rstrip("\r\n")
        if not lines and not text:
            continue  # tolerate stray CRLF before a request line
        if not text:
            break
        lines.append(text)
    start = lines[0].split(" ", 2)
    if kind == "request":
        if len(start) != 3 or not start[2].startswith("HTTP/"):
            raise ProtocolError(f"not an HTTP request line: {lines[0][:200]!r}")
    else:
        if len(start) < 2 or not start[0].startswith("HTTP/") or not start[1].isdigit():
            raise ProtocolError(f"not an HTTP status line: {lines[0][:200]!r}")
        if len(start) == 2:
            start.append("")
    headers = []
    for text in lines[1:]:
        if ":" not in text:
            raise ProtocolError(f"bad header line {text[:200]!r}")
        k, v = text.split(":", 1)
        headers.append((k.strip(), v.strip()))
    return Head(start, headers)


def read_body(rfile: BinaryIO, head: Head) -> bytes:
    """The request body (de-chunked), bounded by MAX_BODY."""
    te = (head.get("transfer-encoding") or "").lower()
    if "chunked" in te:
        out = bytearray()
        while True:
            size_line = rfile.readline(1024)
            if not size_line:
                raise ProtocolError("connection closed inside a chunked body")
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size {size_line[:50]!r}") from None
            if size == 0:
                while rfile.readline(MAX_HEAD) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            if len(out) + size > MAX_BODY:
                raise ProtocolError("request body too large")
            out += _read_exact(rfile, size)
            rfile.readline(4)
    length = head.get("content-length")
    if length is None:
        return b""
    try:
        n = int(length)
    except ValueError:
        raise ProtocolError(f"bad Content-Length {length!r}") from None
    if n < 0 or n > MAX_BODY:
        raise ProtocolError("request body too large")
    return _read_exact(rfile, n)


def _read_exact(rfile: BinaryIO, n: int) -> bytes:
    data = rfile.read(n)
    if len(data) != n:
        raise ProtocolError("connection closed inside the body")
    return data


def response_has_body(request_method: str, status: int) -> bool:
    return not (request_method.upper() == "HEAD" or 100 <= status < 200 or status in (204, 304))


def copy_response_body(rfile: BinaryIO, out: socket.socket, head: Head, request_method: str) -> None:
    """Stream the response body from `rfile` to `out`, framing kept as the upstream sent it."""
    if not response_has_body(request_method, head.status):
        return
    te = (head.get("transfer-encoding") or "").lower()
    if "chunked" in te:
        while True:
            size_line = rfile.readline(1024)
            if not size_line:
                raise ProtocolError("upstream closed inside a chunked body")
            out.sendall(size_line)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:
                    trailer = rfile.readline(MAX_HEAD)
                    out.sendall(trailer)
                    if trailer in (b"\r\n", b"\n", b""):
                        return
            _copy_n(rfile, out, size + 2)
    length = head.get("content-length")
    if length is not None:
        _copy_n(rfile, out, int(length))
        return
    while True:  # delimited by the end of the connection
        chunk = rfile.read1(65536)
        if not chunk:
            return
        out.sendall(chunk)


def _copy_n(rfile: BinaryIO, out: socket.socket, n: int) -> None:
    while n > 0:
        chunk = rfile.read1(min(n, 65536))
        if not chunk:
            raise ProtocolError("upstream closed inside the body")
        out.sendall(chunk)
        n -= len(chunk)


def simple_response(status: int, reason: str, body: str, headers: list[tuple[str, str]]) -> bytes:
    data = body.encode("utf-8")
    head = Head(["HTTP/1.1", str(status), reason],
                [*headers, ("content-type", "text/plain"), ("content-length", str(len(data))),
                 ("connection", "close")])
    return head.encode() + data


def prepend_path(head: Head, label: str) -> None:
    """Prefix this hop's label to the response's x-meshlink-path."""
    rest = head.get("x-meshlink-path")
    head.set("x-meshlink-path", f"{label} > {rest}" if rest else label)
