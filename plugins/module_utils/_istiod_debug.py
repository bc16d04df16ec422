# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""istiod's debug endpoints, read through the Kubernetes API as ``istioctl`` reads them.

``istioctl remote-clusters`` and ``istioctl x internal-debug`` port-forward to an istiod pod's
monitoring port (15014) and GET ``/debug/<what>``. ``IstiodDebug`` does the same through the
API server's ``pods/portforward`` (the kubernetes client's websocket port-forward): no kubectl,
no network path to the pod besides the API server's.

``parse_http_response`` (pure) reads one HTTP/1.1 response, by Content-Length or chunked:
the forwarded socket does not always signal the server's close, so the body is read to its
declared end. The ``*_status`` functions read the JSON of the endpoints the checks use.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.meshlink.multicluster.plugins.module_utils._client import ObjectRef, core_path
from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import MeshlinkError

try:
    from kubernetes import client as kubernetes_client
    from kubernetes.stream import portforward as kubernetes_portforward
except ImportError:  # reported by the module through missing_required_lib
    kubernetes_client = None
    kubernetes_portforward = None

DEBUG_PORT = 15014


class DebugError(MeshlinkError):
    """istiod's debug endpoint could not be read."""


def parse_http_response(data: bytes) -> Tuple[Optional[int], Optional[bytes]]:
    """``(status, body)`` of one complete HTTP/1.1 response in ``data``; ``(None, None)`` while
    incomplete. Understands Content-Length and chunked transfer encoding."""
    head, sep, rest = data.partition(b'\r\n\r\n')
    if not sep:
        return None, None
    lines = head.decode('iso-8859-1').split('\r\n')
    try:
        status = int(lines[0].split(' ', 2)[1])
    except (IndexError, ValueError):
        raise DebugError('not an HTTP response: %r' % lines[0][:80]) from None
    headers = {}
    for line in lines[1:]:
        key, _colon, value = line.partition(':')
        headers[key.strip().lower()] = value.strip()
    if 'chunked' in headers.get('transfer-encoding', '').lower():
        body = b''
        while True:
            size_line, crlf, rest = rest.partition(b'\r\n')
            if not crlf:
                return None, None
            size = int(size_line.split(b';')[0] or b'0', 16)
            if size == 0:
                return status, body
            if len(rest) < size + 2:
                return None, None
            body += rest[:size]
            rest = rest[size + 2:]
    length = headers.get('content-length')
    if length is None:
        return None, None  # read to the close
    if len(rest) < int(length):
        return None, None
    return status, rest[:int(length)]


def pick_istiod(pods: Sequence[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """A Running istiod pod (by name, for a stable choice)."""
    running = sorted((p for p in pods if (p.get('status') or {}).get('phase') == 'Running'
                      and not (p.get('metadata') or {}).get('deletionTimestamp')),
                     key=lambda p: (p.get('metadata') or {}).get('name', ''))
    return running[0] if running else None


class IstiodDebug:
    """GET istiod's ``/debug/...`` through ``pods/portforward`` (one istiod pod of a cluster)."""

    def __init__(self, cluster: Any, namespace: str = 'istio-system', selector: str = 'app=istiod',
                 port: int = DEBUG_PORT, timeout: float = 20) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.selector = selector
        self.port = port
        self.timeout = timeout
        self.pod: Optional[str] = None

    def _pod(self) -> str:
        if self.pod is None:
            pods = self.cluster.list(core_path('pods', self.namespace), ObjectRef('Pod', self.namespace),
                                     label_selector=self.selector)
            pod = pick_istiod(pods)
            if pod is None:
                raise DebugError('No Running istiod pod in %s (selector %s) in context %s'
                                 % (self.namespace, self.selector, self.cluster.context))
            self.pod = pod['metadata']['name']
        return self.pod

    def get(self, path: str) -> Any:
        """The decoded JSON of ``GET <path>`` on istiod's debug port."""
        pod = self._pod()
        core = kubernetes_client.CoreV1Api(self.cluster.api_client)
        try:
            forward = kubernetes_portforward(core.connect_get_namespaced_pod_portforward, pod, self.namespace,
                                             ports=str(self.port))
            sock = forward.socket(self.port)
            sock.settimeout(1.0)
            sock.sendall(('GET %s HTTP/1.1\r\nHost: localhost:%d\r\nConnection: close\r\n\r\n'
                          % (path, self.port)).encode('ascii'))
            data = b''
            deadline = time.monotonic() + self.timeout
            status = body = None
            while time.monotonic() < deadline:
                try:
                    chunk = sock.recv(65536)
                except OSError:  # timeout: look again
                    chunk = None
                if chunk:
                    data += chunk
                    status, body = parse_http_response(data)
                    if status is not None:
                        break
                elif chunk == b'':
                    break
            sock.close()
            forward.close()
        except DebugError:
            raise
        except Exception as error:  # pylint: disable=broad-except
            text = str(getattr(error, 'reason', None) or error)
            hint = ' (needs the pods/portforward permission in %s)' % self.namespace if '403' in text else ''
            raise DebugError('Could not port-forward to istiod pod %s/%s:%d in context %s: %s%s'
                             % (self.namespace, pod, self.port, self.cluster.context, text[:300], hint)) from error
        if status is None:
            status, body = parse_http_response(data + b'\r\n') if data else (None, None)
        if status is None:
            raise DebugError('istiod pod %s/%s answered nothing complete to GET %s within %ds'
                             % (self.namespace, pod, path, self.timeout))
        if status != 200:
            raise DebugError('istiod pod %s/%s answered %d to GET %s: %s' % (self.namespace, pod, status, path,
                                                                             (body or b'')[:200]))
        try:
            return json.loads(body or b'null')
        except ValueError as error:
            raise DebugError('istiod pod %s/%s answered GET %s with something that is not JSON' % (
                self.namespace, pod, path)) from error


# ---------------------------------------------------------------- reading the answers (pure)

def cluster_status(clusterz: Any) -> Dict[str, Dict[str, str]]:
    """``/debug/clusterz``: cluster ID -> ``{secret, status}`` (what ``istioctl remote-clusters`` shows)."""
    out = {}
    for item in clusterz or []:
        if isinstance(item, dict) and item.get('id'):
            out[item['id']] = {'secret': item.get('secretName') or '', 'status': item.get('syncStatus') or ''}
    return out


def network_gateways(networkz: Any) -> Dict[str, List[Tuple[str, int]]]:
    """``/debug/networkz``: network -> [(gateway address, port)]."""
    out: Dict[str, List[Tuple[str, int]]] = {}
    for item in networkz or []:
        if isinstance(item, dict) and item.get('Network'):
            out.setdefault(item['Network'], []).append((str(item.get('Addr')), int(item.get('Port') or 0)))
    return out


def connected_proxies(syncz: Any) -> List[Dict[str, str]]:
    """``/debug/syncz``: ``[{proxy, cluster, type}]`` of the proxies connected to this istiod."""
    out = []
    for item in syncz or []:
        if isinstance(item, dict) and (item.get('proxy') or item.get('proxyId')):
            out.append({'proxy': item.get('proxy') or item.get('proxyId'),
                        'cluster': item.get('cluster_id') or item.get('clusterId') or '',
                        'type': item.get('proxy_type') or item.get('proxyType') or ''})
    return out


def cluster_endpoints(edsz: Any, cluster_name: str) -> List[Tuple[str, int]]:
    """``/debug/edsz?proxyID=``: the endpoints (address, port) of one Envoy cluster."""
    found: List[Tuple[str, int]] = []
    if isinstance(edsz, list):
        items = edsz
    else:
        items = (edsz or {}).get('configs') or (edsz or {}).get('resources') or []
    for item in items:
        assignment = item.get('clusterLoadAssignment') if isinstance(item, dict) and 'clusterLoadAssignment' in item \
            else item
        if not isinstance(assignment, dict) or assignment.get('clusterName') != cluster_name:
            continue
        for locality in assignment.get('endpoints') or []:
            for endpoint in locality.get('lbEndpoints') or []:
                socket_address = (((endpoint.get('endpoint') or {}).get('address') or {}).get('socketAddress') or {})
                if socket_address.get('address'):
                    found.append((socket_address['address'], int(socket_address.get('portValue') or 0)))
    return found


def wait_for(check: Callable[[], Optional[str]], timeout: float, delay: float = 2,
             clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Optional[str]:
    """Repeat ``check`` (None: passed, else why not) until it passes or the deadline; the last why."""
    deadline = clock() + timeout
    while True:
        why = check()
        if why is None or clock() >= deadline:
            return why
        sleep(delay)
