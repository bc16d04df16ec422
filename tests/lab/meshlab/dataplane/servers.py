"""The I/O layer: loopback listeners and what each hop does with a connection.

One thread accepts per listener, one thread serves each connection; every socket has a
timeout, every upstream connection goes through `net.dial`. The routing decisions are the
pure `routing.plan_*` functions; this module only moves bytes and records hops.

Listener kinds (the spec tuple a listener is created with):
  ("sidecar", cluster)                          HTTP proxy on the cluster's sidecar_proxy address
  ("sidecar", cluster, ns, pod)                 one pod's own sidecar (current clusters): mapped pod IP:15001
  ("ingress-gateway"|"egress-gateway", cluster, ns, pod)   mapped pod IP:15443, emulated mTLS
  ("eastwest-gateway", cluster, ns, pod)        mapped pod IP:15443, routed by the pod's xDS
  ("lb"|"nodeport", cluster, ns, service, port)  kube-proxy: L4 to a ready endpoint

Seed-era clusters are routed from their objects (`routing.plan_*`); clusters whose flavour is
"current" by what a real istiod programmed for the calling proxy (`xds`, snapshots kept by
`xdsclients`).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from typing import Any, Callable, Protocol
from urllib.parse import urlsplit

from . import gates, hops, lbcontroller, net, routing, wire, xds
from .view import ClusterView, RouteError, Target, key, meta, spec as spec_of
from .xdsclients import XdsClients

log = logging.getLogger("meshlab.dataplane")

IO_TIMEOUT = 15.0  # idle seconds on any connection before the hop gives up
PEEK_TIMEOUT = 2.0  # how long an L4 hop waits for the first line to learn the request id


class DataPlaneState(Protocol):
    state_dir: str
    lab_hosts: dict[str, str]
    xds: XdsClients

    def view(self, cluster: str) -> ClusterView | None: ...

    def cluster_config(self, cluster: str) -> dict: ...


# ---------------------------------------------------------------- listeners

class Listener:
    """A loopback TCP listener; `handler(conn, spec)` runs in a thread per connection."""

    def __init__(self, address: str, port: int, spec: tuple, handler: Callable[[socket.socket, tuple], None]):
        self.address, self.port, self.spec, self.handler = address, port, spec, handler
        self.sock = net.listen(address, port)
        self.sock.settimeout(0.5)
        self._stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"listen-{address}:{port}", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        try:
            while not self._stopped.is_set():
                try:
                    conn, _peer = self.sock.accept()
                except socket.timeout:
                    continue
                except OSError:
                    if self._stopped.is_set():
                        break
                    time.sleep(0.1)
                    continue
                threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                 name=f"conn-{self.address}:{self.port}").start()
        finally:
            self.sock.close()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(IO_TIMEOUT)
            self.handler(conn, self.spec)
        except Exception:  # noqa: BLE001 - a connection must never take the data plane down
            log.exception("%s:%s %s: connection failed", self.address, self.port, self.spec[0])
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def stop(self) -> None:
        self._stopped.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes accept() at once on Linux
        except OSError:
            pass
        self.thread.join(timeout=2)


# ---------------------------------------------------------------- helpers

def _close_quietly(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:
        sock.close()
    except OSError:
        pass


def _pump(src, dst: socket.socket) -> None:
    """Copy bytes from a buffered reader to a socket until EOF; then half-close `dst`."""
    try:
        while True:
            chunk = src.read1(65536)
            if not chunk:
                break
            dst.sendall(chunk)
    except (OSError, ValueError):
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def relay(client: socket.socket, client_rfile, upstream: socket.socket, label: str,
          on_response: Callable[[int | None, str], None]) -> None:
    """L4 relay in both directions, adding `label` to the first HTTP response's x-meshlink-path.

    `on_response(status, note)` is called exactly once: when the response head arrives, before
    it is passed on (so the hop is recorded before the client can see the response), or when
    the upstream closes without one. Returns when the upstream closes.
    """
    reported = False

    def report(status: int | None, note: str) -> None:
        nonlocal reported
        if not reported:
            reported = True
            on_response(status, note)

    upstream.settimeout(IO_TIMEOUT)
    up = threading.Thread(target=_pump, args=(client_rfile, upstream), daemon=True)
    up.start()
    up_rfile = upstream.makefile("rb")
    try:
        first = up_rfile.readline(wire.MAX_HEAD + 1)
        if not first:
            report(None, "upstream closed the connection without a response")
            return
        if first.startswith(b"HTTP/"):
            head = wire.read_head(up_rfile, "response", first_line=first)
            assert head is not None
            wire.prepend_path(head, label)
            report(head.status, "")
            client.sendall(head.encode())
        else:
            report(None, "non-HTTP response relayed as is")
            client.sendall(first)
        while True:
            chunk = up_rfile.read1(65536)
            if not chunk:
                break
            client.sendall(chunk)
    except (OSError, wire.ProtocolError) as exc:
        report(None, f"relay failed: {exc}")
    finally:
        # The upstream is done: end the client connection too, which also wakes the pump
        # thread blocked reading from the client (it would otherwise hold the reader's lock).
        for sock in (client, upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        up.join(timeout=2)
        up_rfile.close()


def dial_first(targets: list[Target]) -> tuple[socket.socket, Target, list[str]]:
    """Connect to the first target that accepts (Envoy retries connect failures)."""
    errors = []
    for t in targets[:3]:
        try:
            return net.dial(t.address, t.port), t, errors
        except net.DialRefused as exc:
            errors.append(str(exc))
        except OSError as exc:
            errors.append(f"connect {t.address}:{t.port} ({net.map_address(t.address)}): {exc}")
    raise ConnectionError("; ".join(errors) or "no targets")


def _target_text(t: Target) -> str:
    mapped = net.map_address(t.address)
    return t.desc if mapped == t.address or mapped in t.desc else f"{t.desc} via {mapped}:{t.port}"


# ---------------------------------------------------------------- hops

ENVOY_BODIES = {
    "no-endpoints": "no healthy upstream",
    "no-subset": "no healthy upstream",
    "connect": "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
    "reset": "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
}


class Handlers:
    """What each kind of listener does; `dp` gives the current views and settings."""

    def __init__(self, dp: DataPlaneState):
        self.dp = dp

    def for_spec(self, spec: tuple) -> Callable[[socket.socket, tuple], None]:
        return {"sidecar": self.sidecar, "ingress-gateway": self.gateway, "egress-gateway": self.gateway,
                "eastwest-gateway": self.gateway, "lb": self.forward, "nodeport": self.forward,
                "status-port": self.status_port}[spec[0]]

    def _record(self, hop: dict[str, Any]) -> None:
        hops.record(self.dp.state_dir, hop)

    def _record_response(self, hop: dict[str, Any], status: int | None, note: str) -> None:
        hop["status"] = status
        if note:
            hop["detail"] = (hop.get("detail", "") + "; " + note).lstrip("; ")
        hop["ms"] = round((time.time() - hop["ts"]) * 1000, 1)
        self._record(hop)

    # ------------------------------------------------------------ sidecar

    def sidecar(self, conn: socket.socket, spec: tuple) -> None:
        cluster = spec[1]
        caller = (spec[2], spec[3]) if len(spec) == 4 else None  # a pod's own sidecar listener
        local = "%s:%s" % conn.getsockname()[:2]
        rfile = conn.makefile("rb")
        try:
            while self._sidecar_request(conn, rfile, cluster, local, caller):
                pass
        finally:
            rfile.close()

    def _sidecar_request(self, conn: socket.socket, rfile, cluster: str, local: str,
                         caller: tuple[str, str] | None = None) -> bool:
        """Serve one proxied request; True when the client may send another."""
        try:
            head = wire.read_head(rfile, "request")
        except (OSError, wire.ProtocolError):
            return False
        if head is None:
            return False
        started = time.time()
        rid = head.get("x-request-id") or ""
        if not wire.REQUEST_ID.match(rid):
            rid = str(uuid.uuid4())
        head.set("x-request-id", rid)
        hop: dict[str, Any] = {"ts": started, "request_id": rid, "cluster": cluster, "hop": "sidecar",
                               "address": local}
        if caller:
            hop["namespace"], hop["pod"] = caller
        label = hops.label(hop)

        if head.method == "CONNECT":
            hop["error"] = "CONNECT (HTTPS through the proxy) is not emulated: the lab's sidecar speaks HTTP"
            self._record(hop)
            conn.sendall(wire.simple_response(501, "Not Implemented", hop["error"] + "\n",
                                              [("x-meshlink-lab-error", hop["error"]),
                                               ("x-meshlink-path", label)]))
            return False
        if (head.get("expect") or "").lower() == "100-continue":
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            head.remove("expect")
        try:
            body = wire.read_body(rfile, head)
        except (OSError, wire.ProtocolError) as exc:
            hop["error"] = f"bad request from the client: {exc}"
            self._record(hop)
            return False

        target = head.target
        try:
            if target.startswith("http://") or target.startswith("https://"):
                parts = urlsplit(target)
                host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
                path = parts.path or "/"
                if parts.query:
                    path += "?" + parts.query
            else:
                hostport = head.get("host") or ""
                host, _, p = hostport.rpartition(":") if hostport.count(":") == 1 else (hostport, "", "")
                host = host or hostport
                port = int(p) if p.isdigit() else 80
                path = target
            if not host or not 0 < port < 65536:
                raise ValueError("no host or port")
        except ValueError as exc:
            hop["error"] = f"bad request target {target[:200]!r}: {exc}"
            self._record(hop)
            conn.sendall(wire.simple_response(400, "Bad Request", hop["error"] + "\n",
                                              [("x-meshlink-lab-error", "bad-request"), ("x-meshlink-path", label)]))
            return False
        hop["detail"] = f"{head.method} http://{host}:{port}{path}"
        request = {"method": head.method, "path": path, "port": port, "authority": host,
                   "headers": {k.lower(): v for k, v in head.headers}}

        view = self.dp.view(cluster)
        try:
            if view is None:
                raise RouteError(f"{cluster} has not been read from its API server yet", "no-view", None)
            if self.dp.cluster_config(cluster).get("flavour") == "current":
                served_by, why = gates.sidecar_control_plane(view)
                if served_by is None:
                    raise RouteError(why, "dns", None)
                plan = self._plan_xds_sidecar(view, caller, host, port, request, rid)
                hop["xds"] = plan.xds
            else:
                plan = routing.plan_sidecar(view, host, port, request, rid, self.dp.lab_hosts)
        except RouteError as exc:
            return self._sidecar_fail(conn, hop, label, exc.message, exc.kind, exc.status)
        hop["detail"] += "; " + "; ".join(plan.detail)
        hop["sni"] = plan.sni

        try:
            upstream, t, skipped = dial_first(plan.targets)
        except ConnectionError as exc:
            return self._sidecar_fail(conn, hop, label, str(exc), "connect", 503)
        hop["target"] = _target_text(t)
        sni = plan.sni if t.sni is None else (t.sni or None)
        hop["sni"] = sni
        if plan.xds:
            hop["xds"] = dict(plan.xds, endpoint=f"{t.address}:{t.port}")
        if skipped:
            hop["detail"] += "; connect failed first: " + "; ".join(skipped)

        out = wire.Head([head.method, path, "HTTP/1.1"], list(head.headers))
        out.remove(*wire.HOP_BY_HOP)  # one request per upstream connection; closing it ends the chain
        if body or head.get("content-length") is not None or head.get("transfer-encoding"):
            out.remove("transfer-encoding")
            out.set("content-length", str(len(body)))
        up_rfile = None
        try:
            upstream.settimeout(IO_TIMEOUT)
            if sni:
                upstream.sendall(wire.encode_preamble(sni, rid))
            upstream.sendall(out.encode() + body)
            up_rfile = upstream.makefile("rb")
            try:
                resp = wire.read_head(up_rfile, "response")
            except (OSError, wire.ProtocolError) as exc:
                resp = None
                hop["detail"] += f"; upstream: {exc}"
            if resp is None:
                return self._sidecar_fail(conn, hop, label, f"upstream {t.address}:{t.port} closed the "
                                          "connection without a response", "reset", 503)
            hop["status"] = resp.status
            wire.prepend_path(resp, label)
            resp.remove("connection", "keep-alive")
            resp.set("server", "envoy")
            resp.set("x-envoy-upstream-service-time", str(int((time.time() - started) * 1000)))
            keep = (head.get("connection") or head.get("proxy-connection") or "").lower() != "close" \
                and head.start[2] == "HTTP/1.1" and (
                    resp.get("content-length") is not None
                    or "chunked" in (resp.get("transfer-encoding") or "").lower()
                    or not wire.response_has_body(head.method, resp.status))
            resp.set("connection", "keep-alive" if keep else "close")
            hop["ms"] = round((time.time() - started) * 1000, 1)
            self._record(hop)  # before the client can see the response
            conn.sendall(resp.encode())
            wire.copy_response_body(up_rfile, conn, resp, head.method)
        except (OSError, wire.ProtocolError) as exc:
            hop["error"] = f"relaying the response failed: {exc}"
            hop["ms"] = round((time.time() - started) * 1000, 1)
            self._record(hop)
            keep = False
        finally:
            if up_rfile is not None:
                up_rfile.close()
            _close_quietly(upstream)
        return keep

    def _caller_snapshot(self, cluster: str, caller: tuple[str, str] | None,
                         detail: list[str]) -> tuple[xds.Snapshot, str]:
        """The calling pod's snapshot and namespace. On the cluster's shared sidecar address the
        caller is unknown: the xDS of one sidecar pod stands in (a curl/sleep pod first)."""
        if caller is None:
            specs = [s for s in self.dp.xds.specs(cluster) if not s.router]
            if not specs:
                raise RouteError(f"no sidecar pod with an xDS client in {cluster} (is istiod up, "
                                 "STATE/istiod/<control plane>.json written?)", "no-xds", 503)
            labels = [(s.metadata.get("LABELS") or {}).get("app", "") for s in specs]
            pick = next((s for s, a in zip(specs, labels) if a in ("sleep", "curl")), specs[0])
            caller = (pick.namespace, pick.pod)
            detail.append(f"caller unknown on the shared sidecar address: routed by the xDS of {pick.namespace}/"
                          f"{pick.pod}")
        snap = self.dp.xds.snapshot(cluster, *caller)
        if snap is None:
            raise RouteError(f"no xDS snapshot of {caller[0]}/{caller[1]} in {cluster} yet (its xDS client "
                             "has not heard from istiod)", "no-xds", 503)
        return snap, caller[0]

    def _plan_xds_sidecar(self, view: ClusterView, caller: tuple[str, str] | None, host: str, port: int,
                          request: dict, rid: str) -> routing.Plan:
        """A current cluster's sidecar: the name gate as before, then what istiod programmed."""
        detail: list[str] = []
        snap, ns = self._caller_snapshot(view.name, caller, detail)
        h = host.lower().rstrip(".")
        dest_ip = None
        if net.parse_ip(h):
            svc = view.service_by_cluster_ip(h)
            if svc is None:
                if net.is_external_lab_address(h):
                    detail.append("PassthroughCluster (a lab node or load balancer address)")
                    return routing.Plan([Target(h, int(port), f"{h}:{port} (passthrough)")], None, detail, h)
                raise RouteError(f"{h}:{port} is not a Service of {view.name}: passthrough is not dialed",
                                 "no-route", None)
            fqdn, dest_ip = f"{meta(svc)['name']}.{meta(svc)['namespace']}.{xds.CLUSTER_DOMAIN}", h
            detail.append(f"{h} is the ClusterIP of Service {key(svc)}")
        else:
            fqdn = xds.service_fqdn(h, ns)
            _, capture, _ = gates.dns_config(view)
            how = "Istio DNS proxy (ISTIO_META_DNS_CAPTURE)"
            svc = view.service(fqdn.split(".")[1], fqdn.split(".")[0]) if fqdn else None
            if svc is not None and spec_of(svc).get("clusterIP") not in (None, "", "None"):
                dest_ip = spec_of(svc)["clusterIP"]
                detail.append(f"dns {host} -> {dest_ip} (kube-dns: Service {key(svc)})")
            elif capture and fqdn and xds.known_host(snap, fqdn):
                detail.append(f"dns {host} -> {fqdn} ({how}: istiod knows {fqdn})")
            elif h in self.dp.lab_hosts:
                ip = self.dp.lab_hosts[h]
                detail.append(f"dns {host} -> {ip} (lab resolver); PassthroughCluster")
                return routing.Plan([Target(ip, int(port), f"{ip}:{port} (passthrough)")], None, detail, h)
            else:
                why = ("no Service of that name in this cluster, and " +
                       (f"istiod knows no {fqdn} (the {how} answers nothing)" if capture else
                        "no ISTIO_META_DNS_CAPTURE in istio-system/istio: create the Service here (a stub) or "
                        "turn on DNS proxying"))
                raise RouteError(f"Could not resolve host: {host} ({why})", "dns", None)
        cluster_name, how = xds.sidecar_cluster(snap, fqdn, port, request, rid, dest_ip)
        detail.append(how)
        local_pods = {p["status"]["podIP"]: key(p) for p in view.pods if (p.get("status") or {}).get("podIP")}
        targets = xds.endpoint_targets(snap, cluster_name, rid, self.dp.lab_hosts, local_pods)
        decision = xds.XdsDecision(snap.node, cluster_name, how.split(" -> ")[0], snap.versions,
                                   len(snap.cluster_endpoints(cluster_name)))
        return routing.Plan(targets, None, detail, fqdn, decision.record())

    def _sidecar_fail(self, conn: socket.socket, hop: dict, label: str, message: str, kind: str,
                      status: int | None) -> bool:
        """Record the failure; answer like Envoy (status) or close like a failed lookup (None)."""
        downstream = hops.path(self.dp.state_dir, hop["request_id"], tail_bytes=2 * 1024 * 1024)
        deeper = [h for h in downstream if h.get("hop") != "sidecar" and h.get("ts", 0) >= hop["ts"]]
        cause = next((h for h in reversed(deeper) if h.get("error")), None)
        hop["error"] = message if not cause else f"{message} (cause: {hops.label(cause)}: {cause['error']})"
        hop["ms"] = round((time.time() - hop["ts"]) * 1000, 1)
        self._record(hop)
        if status is None:
            return False  # the client sees the connection close: curl exits 52 "Empty reply from server"
        path = " > ".join([label] + [hops.label(h) for h in deeper])
        reason = {404: "Not Found", 503: "Service Unavailable"}.get(status, "Error")
        body = ENVOY_BODIES.get(kind, "") if status == 503 else ""
        err = hop["error"].replace("\r", " ").replace("\n", " ")[:900]
        hop_status = [("x-meshlink-lab-error", f"{kind}: {err}"), ("x-meshlink-path", path),
                      ("server", "envoy")]
        try:
            conn.sendall(wire.simple_response(status, reason, body, hop_status))
        except OSError:
            pass
        return False

    # ------------------------------------------------------------ gateways

    def gateway(self, conn: socket.socket, spec: tuple) -> None:
        kind, cluster, ns, pod_name = spec
        started = time.time()
        local = "%s:%s" % conn.getsockname()[:2]
        hop: dict[str, Any] = {"ts": started, "cluster": cluster, "hop": kind, "pod": pod_name,
                               "namespace": ns, "address": local}
        label = f"{kind}[{cluster} {ns}/{pod_name}]"
        rfile = conn.makefile("rb")
        upstream = None
        try:
            conn.settimeout(PEEK_TIMEOUT * 2)
            try:
                line = rfile.readline(1024)
            except OSError:
                line = b""
            if not line:
                return  # a probe that connected and left
            try:
                sni, rid = wire.parse_preamble(line)
            except wire.ProtocolError as exc:
                hop["request_id"] = _request_id_of_plaintext(line, rfile)
                hop["error"] = (f"TLS handshake failed: {exc}; the client sent plain text (is there a "
                                "DestinationRule with tls ISTIO_MUTUAL for the host?)")
                self._record(hop)
                return
            hop["request_id"], hop["sni"] = rid, sni
            conn.settimeout(IO_TIMEOUT)
            view = self.dp.view(cluster)
            pod = view.pod(ns, pod_name) if view else None
            try:
                if view is None or pod is None:
                    raise RouteError(f"gateway pod {ns}/{pod_name} is not in the {cluster} view", "no-view")
                if kind == "ingress-gateway":
                    plan = routing.plan_ingress(view, pod, conn.getsockname()[1], sni)
                elif kind == "eastwest-gateway":
                    plan = self._plan_xds_gateway(view, ns, pod_name, conn.getsockname()[1], sni, rid)
                    hop["xds"] = plan.xds
                else:
                    plan = routing.plan_egress(view, pod, sni, self.dp.lab_hosts, rid)
            except RouteError as exc:
                hop["error"] = f"connection reset: {exc.message}"
                self._record(hop)
                return
            hop["detail"] = "; ".join(plan.detail)
            try:
                upstream, t, skipped = dial_first(plan.targets)
            except ConnectionError as exc:
                hop["error"] = f"upstream connect failed: {exc}"
                self._record(hop)
                return
            hop["target"] = _target_text(t)
            if plan.xds:
                hop["xds"] = dict(plan.xds, endpoint=f"{t.address}:{t.port}")
            if plan.sni and plan.sni != sni:
                hop["detail"] += f"; SNI rewritten to {plan.sni}"
            if skipped:
                hop["detail"] += "; connect failed first: " + "; ".join(skipped)
            upstream.sendall(wire.encode_preamble(plan.sni or sni, rid))
            relay(conn, rfile, upstream, label, lambda status, note: self._record_response(hop, status, note))
        finally:
            _close_quietly(upstream)
            rfile.close()

    def _plan_xds_gateway(self, view: ClusterView, ns: str, pod_name: str, port: int, sni: str,
                          rid: str) -> routing.Plan:
        """An east-west gateway (AUTO_PASSTHROUGH, sni-dnat): the cluster its xDS has for the SNI,
        that cluster's endpoints; the TLS stream (here: the preamble) passes through unchanged."""
        snap = self.dp.xds.snapshot(view.name, ns, pod_name)
        if snap is None:
            raise RouteError(f"no xDS snapshot of the gateway {ns}/{pod_name} yet (its xDS client has not heard "
                             "from istiod)", "no-xds")
        cluster_name, how = xds.gateway_cluster(snap, port, sni)
        local_pods = {p["status"]["podIP"]: key(p) for p in view.pods if (p.get("status") or {}).get("podIP")}
        targets = xds.endpoint_targets(snap, cluster_name, rid, self.dp.lab_hosts, local_pods)
        for t in targets:
            t.sni = sni  # passthrough: the same TLS stream (SNI) goes on
        decision = xds.XdsDecision(snap.node, cluster_name, "", snap.versions,
                                   len(snap.cluster_endpoints(cluster_name)))
        return routing.Plan(targets, sni, [how], cluster_name, decision.record())

    # ------------------------------------------------------------ gateway status port

    def status_port(self, conn: socket.socket, spec: tuple) -> None:
        """The gateway's 15021: 200 on GET /healthz/ready (Envoy's readiness), else 404."""
        _, cluster, ns, pod_name, kind = spec
        started = time.time()
        rfile = conn.makefile("rb")
        try:
            head = wire.read_head(rfile, "request")
        except (OSError, wire.ProtocolError):
            head = None
        finally:
            rfile.close()
        if head is None:
            return
        path = head.target.split("?", 1)[0]
        if "://" in path:
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        status = 200 if path == "/healthz/ready" else 404
        label = f"{kind}[{cluster} {ns}/{pod_name}]"
        self._record({"ts": started, "request_id": head.get("x-request-id"), "cluster": cluster, "hop": kind,
                      "pod": pod_name, "namespace": ns, "address": "%s:%s" % conn.getsockname()[:2],
                      "status": status, "detail": f"status port: {head.method} {path}"})
        conn.sendall(wire.simple_response(status, "OK" if status == 200 else "Not Found", "",
                                          [("x-meshlink-path", label), ("server", "envoy")]))

    # ------------------------------------------------------------ kube-proxy (LB IPs, nodePorts)

    def forward(self, conn: socket.socket, spec: tuple) -> None:
        kind, cluster, ns, name, port = spec
        started = time.time()
        local = "%s:%s" % conn.getsockname()[:2]
        hop: dict[str, Any] = {"ts": started, "cluster": cluster, "hop": kind, "address": local}
        label = f"{kind}[{cluster} {local}]"
        rfile = conn.makefile("rb")
        upstream = None
        try:
            prefix, rid, sni = _peek_identity(conn, rfile)
            hop["request_id"], hop["sni"] = rid, sni
            conn.settimeout(IO_TIMEOUT)
            view = self.dp.view(cluster)
            try:
                if view is None:
                    raise RouteError(f"{cluster} has not been read from its API server yet", "no-view")
                targets = lbcontroller.plan_service_forward(view, ns, name, port, rid or str(uuid.uuid4()))
            except RouteError as exc:
                hop["error"] = f"connection refused: {exc.message}"
                self._record(hop)
                return
            try:
                upstream, t, skipped = dial_first(targets)
            except ConnectionError as exc:
                hop["error"] = f"Service {ns}/{name}:{port}: {exc}"
                self._record(hop)
                return
            hop["target"] = _target_text(t)
            hop["detail"] = f"Service {ns}/{name} port {port}" + (
                "; connect failed first: " + "; ".join(skipped) if skipped else "")
            if prefix:
                upstream.sendall(prefix)
            relay(conn, rfile, upstream, label, lambda status, note: self._record_response(hop, status, note))
        finally:
            _close_quietly(upstream)
            rfile.close()


def _peek_identity(conn: socket.socket, rfile) -> tuple[bytes, str, str]:
    """Read the first line (and, for plain HTTP, the head) to learn request id and SNI.

    Returns the bytes consumed (to be forwarded first), request id, SNI.
    """
    conn.settimeout(PEEK_TIMEOUT)
    consumed = b""
    try:
        line = rfile.readline(4096)
        consumed = line
        if line.startswith(wire.PREAMBLE_PREFIX):
            try:
                sni, rid = wire.parse_preamble(line)
                return consumed, rid, sni
            except wire.ProtocolError:
                return consumed, "", ""
        if b"HTTP/" in line:
            while len(consumed) < wire.MAX_HEAD:
                nxt = rfile.readline(wire.MAX_HEAD)
                consumed += nxt
                if nxt in (b"\r\n", b"\n", b""):
                    break
                k, _, v = nxt.decode("latin-1").partition(":")
                if k.strip().lower() == "x-request-id":
                    rid = v.strip()
                    if wire.REQUEST_ID.match(rid):
                        return consumed, rid, ""  # the rest of the head is forwarded by the relay
    except (OSError, ValueError):
        pass
    return consumed, "", ""


def _request_id_of_plaintext(first_line: bytes, rfile) -> str:
    """x-request-id of a plain-text HTTP request that reached a TLS port (for the hop log)."""
    if b"HTTP/" not in first_line:
        return ""
    try:
        for _ in range(100):
            line = rfile.readline(8192)
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            if k.strip().lower() == "x-request-id" and wire.REQUEST_ID.match(v.strip()):
                return v.strip()
    except (OSError, ValueError):
        pass
    return ""
