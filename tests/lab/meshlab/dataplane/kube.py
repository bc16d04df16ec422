"""Reading a lab cluster's objects (and writing load balancer status) through its API server.

Uses the `kubernetes` client's configuration loading (kubeconfig + context, certificates,
tokens) and its REST layer, but keeps objects as plain JSON dicts. Refuses API servers that
are not on loopback (lab network rule). All requests have a timeout.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

from . import net

REQUEST_TIMEOUT = (2.0, 5.0)  # connect, read
ISTIO_GROUP = "networking.istio.io"
ISTIO_KINDS = ("serviceentries", "virtualservices", "destinationrules", "gateways")


class ApiError(Exception):
    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


class ClusterClient:
    """A JSON client for one context of the lab kubeconfig."""

    def __init__(self, kubeconfig: str, context: str):
        self.kubeconfig, self.context = kubeconfig, context
        self._api = None
        self._istio_version: str | None = None
        self._istio_checked = 0.0

    def _client(self):
        if self._api is None:
            from kubernetes import client as kclient  # noqa: PLC0415 - slow import
            from kubernetes import config as kconfig  # noqa: PLC0415

            cfg = kclient.Configuration()
            kconfig.load_kube_config(config_file=self.kubeconfig, context=self.context,
                                     client_configuration=cfg, persist_config=False)
            host = urlsplit(cfg.host).hostname or ""
            ip = net.parse_ip("127.0.0.1" if host == "localhost" else host)
            if ip is None or ip not in net.LOOPBACK:
                raise ApiError(f"context {self.context}: API server {cfg.host} is not on "
                               "loopback; the lab data plane only talks to 127.0.0.0/8")
            cfg.retries = False  # a cluster that is down is retried by the poll loop, not by urllib3
            cfg.proxy = None
            self._api = kclient.ApiClient(configuration=cfg)
        return self._api

    def reset(self) -> None:
        if self._api is not None:
            try:
                self._api.close()
            except Exception:  # noqa: BLE001
                pass
        self._api = None
        self._istio_version = None

    def request(self, method: str, path: str, body: Any = None,
                content_type: str | None = None) -> tuple[int, Any]:
        api = self._client()
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            m, url, hdrs, b, _ = api.param_serialize(method, path, header_params=headers, body=body,
                                                     auth_settings=["BearerToken"])
            resp = api.call_api(m, url, header_params=hdrs, body=b, _request_timeout=REQUEST_TIMEOUT)
            data = resp.read()
        except Exception as exc:  # noqa: BLE001 - urllib3/ssl/ApiException all mean "API unreachable"
            raise ApiError(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        try:
            obj = json.loads(data) if data else None
        except ValueError:
            obj = None
        return resp.status, obj

    def get(self, path: str) -> Any:
        """The object at `path`, None on 404."""
        status, obj = self.request("GET", path)
        if status == 404:
            return None
        if status != 200:
            msg = (obj or {}).get("message") if isinstance(obj, dict) else ""
            raise ApiError(f"GET {path}: HTTP {status} {msg}", status)
        return obj

    def items(self, path: str) -> list[dict]:
        obj = self.get(path)
        return list((obj or {}).get("items") or [])

    def istio_version(self) -> str | None:
        """The preferred served version of networking.istio.io (re-checked every 30 s)."""
        if self._istio_version is None or time.monotonic() - self._istio_checked > 30:
            group = self.get(f"/apis/{ISTIO_GROUP}")
            self._istio_version = ((group or {}).get("preferredVersion") or {}).get("version")
            self._istio_checked = time.monotonic()
        return self._istio_version

    def fetch(self, namespaces: bool = False) -> dict[str, Any]:
        """Every object the data plane routes by, as plain dicts (`namespaces`: the Namespaces
        too, which the emulated sidecar injector of current clusters reads)."""
        objects: dict[str, Any] = {
            "pods": self.items("/api/v1/pods"),
            "services": self.items("/api/v1/services"),
            "endpointslices": self.items("/apis/discovery.k8s.io/v1/endpointslices"),
            "deployments": self.items("/apis/apps/v1/namespaces/istio-system/deployments"),
            "configmaps": {
                "kube-system/coredns": self.get("/api/v1/namespaces/kube-system/configmaps/coredns"),
                "istio-system/istio": self.get("/api/v1/namespaces/istio-system/configmaps/istio"),
            },
        }
        if namespaces:
            objects["namespaces"] = self.items("/api/v1/namespaces")
        version = self.istio_version()
        objects["istio_api_version"] = version
        for plural in ISTIO_KINDS:
            objects[plural] = self.items(f"/apis/{ISTIO_GROUP}/{version}/{plural}") if version else []
        return objects

    def patch_service_status(self, namespace: str, name: str, ingress: list[dict]) -> None:
        path = f"/api/v1/namespaces/{namespace}/services/{name}/status"
        status, obj = self.request("PATCH", path, body={"status": {"loadBalancer": {"ingress": ingress}}},
                                   content_type="application/merge-patch+json")
        if status != 200:
            msg = (obj or {}).get("message") if isinstance(obj, dict) else ""
            raise ApiError(f"PATCH {path}: HTTP {status} {msg}", status)

    def patch_pod_labels(self, namespace: str, name: str, labels: dict[str, str], field_manager: str) -> dict:
        """Add `labels` to a pod (JSON merge patch); the patched pod."""
        path = f"/api/v1/namespaces/{namespace}/pods/{name}?fieldManager={field_manager}"
        status, obj = self.request("PATCH", path, body={"metadata": {"labels": labels}},
                                   content_type="application/merge-patch+json")
        if status != 200:
            msg = (obj or {}).get("message") if isinstance(obj, dict) else ""
            raise ApiError(f"PATCH {path}: HTTP {status} {msg}", status)
        return obj or {}
