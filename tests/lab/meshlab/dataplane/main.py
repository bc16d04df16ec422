"""The data plane process: read every lab cluster, keep listeners and httpbin processes in step.

    python -m meshlab.dataplane --state-dir STATE

One thread per cluster polls its API server (every POLL_SECONDS) into a `ClusterView`, keeps
LoadBalancer statuses and, in current-Istio clusters, adds the labels sidecar injection would
(`injector`); the main thread reconciles listeners and workloads from the
views, writes STATE/dataplane.ready after the first reconcile of every cluster, and stops
everything on SIGTERM/SIGINT. A cluster whose API server is down keeps its last view (like
Envoy keeps its last config) and is retried.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from . import gates, hops, injector, kube, lbcontroller, net, xds
from .view import ClusterView, httpbin_workloads, key, meta
from .xdsclients import XdsClients, read_istiod
from .servers import Handlers, Listener
from .workloads import Workloads

log = logging.getLogger("meshlab.dataplane")

POLL_SECONDS = 1.0
READY_GRACE = 20.0  # write the ready file after this long even if a cluster never answered
LB_ALLOCATIONS = "lb-allocations.json"
LB_HOSTS = "lb-hosts.json"
STATUS = "dataplane-status.json"


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def _lb_view(ingress: list[dict] | None) -> list[dict]:
    return [{k: i[k] for k in ("ip", "hostname", "ipMode") if i.get(k)} for i in ingress or []]


class DataPlane:
    def __init__(self, state_dir: str | os.PathLike):
        self.state = Path(state_dir).resolve()
        self.state_dir = str(self.state)
        cfg = _read_json(self.state / "clusters.json", None)
        if not cfg or not cfg.get("clusters"):
            raise SystemExit(f"{self.state / 'clusters.json'}: missing or without clusters")
        self.clusters: list[dict] = cfg["clusters"]
        self._cluster_by_name = {c["name"]: c for c in self.clusters}
        self.kubeconfig = cfg.get("kubeconfig") or str(self.state / "kubeconfig")
        self.views: dict[str, ClusterView] = {}
        self.health: dict[str, dict] = {c["name"]: {"ok": False, "error": "not read yet", "attempts": 0}
                                        for c in self.clusters}
        self.slots: dict[str, dict[str, int]] = _read_json(self.state / LB_ALLOCATIONS, {})
        self.lab_hosts: dict[str, str] = {}
        self.listeners: dict[tuple[str, int], Listener] = {}
        self.bind_errors: dict[tuple[str, int], float] = {}
        self.workloads = Workloads(self.state)
        self.xds = XdsClients(self.state)
        self.handlers = Handlers(self)
        self.stopping = threading.Event()
        self.changed = threading.Event()
        self.lock = threading.Lock()
        self._status_written = ""
        self._inject_errors: dict[tuple[str, str, str], str] = {}

    def view(self, cluster: str) -> ClusterView | None:
        return self.views.get(cluster)

    def cluster_config(self, cluster: str) -> dict:
        return self._cluster_by_name.get(cluster) or {}

    # ------------------------------------------------------------ per-cluster readers

    def _reader(self, c: dict) -> None:
        name = c["name"]
        client = kube.ClusterClient(self.kubeconfig, c["context"])
        last_error, last_logged = "", 0.0
        while not self.stopping.is_set():
            t0 = time.monotonic()
            h = self.health[name]
            h["attempts"] += 1
            try:
                objects = client.fetch(namespaces=c.get("flavour") == "current")
                if c.get("flavour") == "current":
                    self._inject(client, c, objects)
                view = ClusterView(c, objects)
                self._sync_load_balancers(client, c, view)
                self.views[name] = view
                if not h["ok"]:
                    log.info("%s: read %d pods, %d services, %d ServiceEntries (networking.istio.io/%s)", name,
                             len(view.pods), len(view.services), len(view.serviceentries),
                             client.istio_version())
                h.update(ok=True, error="", read_at=time.time())
                last_error = ""
            except Exception as exc:  # noqa: BLE001 - a cluster going away must not stop the others
                msg = str(exc) or type(exc).__name__
                h.update(ok=False, error=msg)
                if msg != last_error or time.monotonic() - last_logged > 30:
                    log.warning("%s: cannot read the cluster (keeping the last view, retrying): %s", name, msg)
                    last_error, last_logged = msg, time.monotonic()
                client.reset()
            self.changed.set()
            self.stopping.wait(max(0.1, POLL_SECONDS - (time.monotonic() - t0)))

    def _inject(self, client: kube.ClusterClient, c: dict, objects: dict[str, Any]) -> None:
        """The emulated sidecar injector (current clusters): the labels injection adds, patched onto
        Running pods of injection-enabled namespaces that lack them; the view gets the patched pods."""
        patches = injector.label_patches(objects.get("namespaces") or [], objects.get("pods") or [])
        if not patches:
            return
        by_key = {key(p): i for i, p in enumerate(objects["pods"])}
        for ns, name, labels in patches:
            try:
                pod = client.patch_pod_labels(ns, name, labels, injector.FIELD_MANAGER)
            except kube.ApiError as exc:  # e.g. the pod is gone: the next poll decides again
                if self._inject_errors.get((c["name"], ns, name)) != str(exc):
                    self._inject_errors[(c["name"], ns, name)] = str(exc)
                    log.warning("%s: injector: cannot label pod %s/%s: %s", c["name"], ns, name, exc)
                continue
            self._inject_errors.pop((c["name"], ns, name), None)
            log.info("%s: injector: labelled pod %s/%s %s", c["name"], ns, name,
                     ",".join(f"{k}={v}" for k, v in sorted(labels.items())))
            if pod.get("metadata") and f"{ns}/{name}" in by_key:
                objects["pods"][by_key[f"{ns}/{name}"]] = pod

    def _sync_load_balancers(self, client: kube.ClusterClient, c: dict, view: ClusterView) -> None:
        """The lab's MetalLB: stable addresses per LoadBalancer Service, written to its status."""
        services = lbcontroller.lb_services(view)
        keys = [key(s) for s in services]
        with self.lock:
            old = self.slots.get(c["name"], {})
            new = lbcontroller.assign_lb_slots(old, keys)
            if new != old:
                self.slots[c["name"]] = new
                _write_json(self.state / LB_ALLOCATIONS, self.slots)
        for svc in services:
            want = lbcontroller.desired_lb_ingress(c, svc, new.get(key(svc)))
            if want is None:
                continue
            have = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress")
            if _lb_view(have) != _lb_view(want):
                client.patch_service_status(meta(svc)["namespace"], meta(svc)["name"], want)
                log.info("%s: Service %s load balancer -> %s", c["name"], key(svc), want)

    # ------------------------------------------------------------ reconcile

    def _xds_proxies(self) -> list[xds.ProxySpec]:
        """The proxies of current clusters, each to the istiod of its cluster's control plane
        (a remote's: its primary's)."""
        out: list[xds.ProxySpec] = []
        for c in self.clusters:
            view = self.views.get(c["name"])
            if c.get("flavour") != "current" or view is None:
                continue
            plane, _ = gates.sidecar_control_plane(view)
            istiod = read_istiod(self.state, plane) if plane else None
            out += xds.desired_proxies(c, view.pods, istiod)
        return out

    def reconcile(self) -> None:
        proxies = self._xds_proxies()
        self.xds.apply(proxies)
        desired: dict[tuple[str, int], tuple] = dict(xds.sidecar_listeners(proxies))
        for c in self.clusters:
            host, port = c["sidecar_proxy"].rsplit(":", 1)
            desired[(host, int(port))] = ("sidecar", c["name"])
            view = self.views.get(c["name"])
            if view is not None:
                for k, spec in lbcontroller.desired_listeners(view, self.slots.get(c["name"], {})).items():
                    desired.setdefault(k, spec)
        for k in list(self.listeners):
            if k not in desired or self.listeners[k].spec != desired[k]:
                lst = self.listeners.pop(k)
                lst.stop()
                log.info("stopped listener %s:%s %s", k[0], k[1], lst.spec)
        for k, spec in desired.items():
            if k in self.listeners:
                continue
            try:
                self.listeners[k] = Listener(k[0], k[1], spec, self.handlers.for_spec(spec))
                self.bind_errors.pop(k, None)
                log.info("listening on %s:%s %s", k[0], k[1], " ".join(map(str, spec)))
            except OSError as exc:
                if time.monotonic() - self.bind_errors.get(k, -1e9) > 60:
                    log.error("cannot listen on %s:%s for %s: %s (retrying)", k[0], k[1], spec, exc)
                    self.bind_errors[k] = time.monotonic()

        workloads = [w for v in self.views.values() for w in httpbin_workloads(v)]
        self.workloads.apply(workloads)

        lab_hosts: dict[str, str] = {}
        for c in self.clusters:
            lab_hosts.update(lbcontroller.lab_hosts_for(c, self.slots.get(c["name"], {})))
        if lab_hosts != self.lab_hosts or not (self.state / LB_HOSTS).exists():
            self.lab_hosts = lab_hosts
            _write_json(self.state / LB_HOSTS, lab_hosts)
        self._write_status()

    def _write_status(self) -> None:
        status = {
            "pid": os.getpid(),
            "clusters": self.health,
            "listeners": sorted(f"{k[0]}:{k[1]} {' '.join(map(str, l.spec))}" for k, l in self.listeners.items()),
            "workloads": self.workloads.describe(),
            "xds_clients": self.xds.describe(),
            "lb_slots": self.slots,
            "dial_refusals": list(net.refusals[-20:]),
        }
        text = json.dumps({**status, "clusters": {n: {k: v for k, v in h.items() if k != "read_at" and k != "attempts"}
                                                  for n, h in self.health.items()}}, sort_keys=True)
        if text != self._status_written:
            self._status_written = text
            _write_json(self.state / STATUS, status)

    # ------------------------------------------------------------ lifecycle

    def run(self) -> int:
        log.info("data plane for %s (state %s, pid %s)", ", ".join(c["name"] for c in self.clusters),
                 self.state, os.getpid())
        for c in self.clusters:
            threading.Thread(target=self._reader, args=(c,), name=f"read-{c['name']}", daemon=True).start()
        started = time.monotonic()
        ready = False
        last_rotate = time.monotonic()
        try:
            while not self.stopping.is_set():
                self.changed.wait(0.5)
                self.changed.clear()
                if self.stopping.is_set():
                    break
                # judged before reconciling, so that the reconcile covers what was judged
                all_ok = all(h["ok"] for h in self.health.values())
                tried = all(h["attempts"] > 0 and (h["ok"] or h["error"] != "not read yet")
                            for h in self.health.values())
                try:
                    self.reconcile()
                except Exception:  # noqa: BLE001
                    log.exception("reconcile failed (retrying)")
                    continue
                if not ready:
                    if all_ok or (tried and time.monotonic() - started > READY_GRACE):
                        slow = self.workloads.wait_listening(10)
                        if slow:
                            log.warning("httpbin not listening yet: %s", ", ".join(slow))
                        _write_json(self.state / "dataplane.ready", {
                            "pid": os.getpid(), "time": hops.iso(time.time()),
                            "clusters": {n: ("ok" if h["ok"] else f"not read: {h['error']}")
                                         for n, h in self.health.items()},
                            "listeners": len(self.listeners), "workloads": len(self.workloads.children),
                        })
                        ready = True
                        log.info("ready: %d listeners, %d httpbin processes", len(self.listeners),
                                 len(self.workloads.children))
                if time.monotonic() - last_rotate > 30:
                    hops.rotate(self.state)
                    last_rotate = time.monotonic()
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        log.info("stopping: %d listeners, %d httpbin processes", len(self.listeners), len(self.workloads.children))
        self.stopping.set()
        for lst in list(self.listeners.values()):
            lst.stop()
        self.listeners.clear()
        self.workloads.stop_all()
        self.xds.stop_all()
        try:
            (self.state / "dataplane.ready").unlink()
        except OSError:
            pass
        log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meshlab.dataplane",
                                     description="The lab's emulated Istio data plane.")
    parser.add_argument("--state-dir", default=str(Path(__file__).resolve().parents[2] / "state"))
    parser.add_argument("--log-level", default=os.environ.get("MESHLAB_DATAPLANE_LOG", "INFO"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    dp = DataPlane(args.state_dir)

    def on_signal(signum, _frame):
        log.info("signal %s", signal.Signals(signum).name)
        dp.stopping.set()
        dp.changed.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return dp.run()
