# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""The one place that connects to a cluster.

- ``connection_argument_spec()``: the connection options of every module (documented by
  the ``meshlink.multicluster.connection`` doc fragment), with the ``K8S_AUTH_*``
  environment fallbacks declared in the spec, as kubernetes.core and AWX use them.
- ``build_api_client()``: a ``kubernetes.client.ApiClient`` in a fixed order: explicit host
  and credentials, else kubeconfig (file/context), else in-cluster service account.
- ``Cluster``: every API call of the collection goes through ``Cluster.request``: JSON in,
  JSON dicts out (the shape ``kubectl get -o json`` shows), the request timeout on every
  call, API ``Warning`` headers collected, and every failure turned into one message that
  names the verb, the object, the cluster context and the server's reason.

Importable without Ansible and without the kubernetes library (``KUBERNETES_IMPORT_ERROR``
tells the module to call ``missing_required_lib``).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple
from urllib.parse import quote

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import ApiError, ClientError
from ansible_collections.meshlink.multicluster.plugins.module_utils._names import (
    COLLECTION_VERSION,
    FIELD_MANAGER,
    NETWORKING_GROUP,
)

try:
    import kubernetes
    import kubernetes.client
    import kubernetes.config
    from kubernetes.client.exceptions import ApiException
    import urllib3
except ImportError as import_error:  # the module reports it through missing_required_lib
    KUBERNETES_IMPORT_ERROR: Optional[ImportError] = import_error
    ApiException = None  # type: ignore[assignment,misc]
    urllib3 = None  # type: ignore[assignment]
else:
    KUBERNETES_IMPORT_ERROR = None

DEFAULT_REQUEST_TIMEOUT = 30

# Option -> environment variables, in the order they are tried (kubernetes.core's names, which
# AWX's "OpenShift or Kubernetes API Bearer Token" credential injects).
CONNECTION_ENV = {
    'kubeconfig': ['K8S_AUTH_KUBECONFIG'],
    'context': ['K8S_AUTH_CONTEXT'],
    'host': ['K8S_AUTH_HOST'],
    'api_key': ['K8S_AUTH_API_KEY'],
    'validate_certs': ['K8S_AUTH_VERIFY_SSL'],
    'ca_cert': ['K8S_AUTH_SSL_CA_CERT'],
    'client_cert': ['K8S_AUTH_CERT_FILE'],
    'client_key': ['K8S_AUTH_KEY_FILE'],
    'proxy': ['K8S_AUTH_PROXY'],
}

CONNECTION_OPTIONS = tuple(CONNECTION_ENV) + ('request_timeout',)


def connection_argument_spec() -> Dict[str, Dict[str, Any]]:
    """The connection options, to merge into a module's argument spec.

    A function, not a constant, so that importing this file does not need Ansible.
    """
    from ansible.module_utils.common.parameters import env_fallback  # pylint: disable=import-outside-toplevel

    def env(option: str) -> Tuple[Any, List[str]]:
        return (env_fallback, list(CONNECTION_ENV[option]))

    return {
        'kubeconfig': {'type': 'path', 'fallback': env('kubeconfig')},
        'context': {'type': 'str', 'fallback': env('context')},
        'host': {'type': 'str', 'fallback': env('host')},
        'api_key': {'type': 'str', 'no_log': True, 'fallback': env('api_key')},
        'validate_certs': {'type': 'bool', 'default': True, 'aliases': ['verify_ssl'],
                           'fallback': env('validate_certs')},
        'ca_cert': {'type': 'path', 'fallback': env('ca_cert')},
        'client_cert': {'type': 'path', 'fallback': env('client_cert')},
        'client_key': {'type': 'path', 'fallback': env('client_key')},
        'proxy': {'type': 'str', 'fallback': env('proxy')},
        'request_timeout': {'type': 'int', 'default': DEFAULT_REQUEST_TIMEOUT},
    }


def _in_cluster() -> bool:
    return bool(os.environ.get('KUBERNETES_SERVICE_HOST')) and os.path.exists(
        '/var/run/secrets/kubernetes.io/serviceaccount/token')


def _default_kubeconfig_paths() -> List[str]:
    value = os.environ.get('KUBECONFIG') or '~/.kube/config'
    return [os.path.expanduser(p) for p in value.split(os.pathsep) if p]


def connection_source(params: Dict[str, Any], in_cluster: Optional[bool] = None,
                      default_kubeconfig_exists: Optional[bool] = None) -> str:
    """Which source the client is built from: ``explicit``, ``kubeconfig``, ``in_cluster``, ``host_only``.

    The order is fixed and documented: complete explicit credentials (``host`` with
    ``api_key`` or a client certificate and key) need nothing else; then a kubeconfig
    (the ``kubeconfig`` option, a ``context``, or the default file when it exists); then the
    in-cluster service account; then ``host`` alone (anonymous, or client certificate only).
    """
    if in_cluster is None:
        in_cluster = _in_cluster()
    if default_kubeconfig_exists is None:
        default_kubeconfig_exists = any(os.path.exists(p) for p in _default_kubeconfig_paths())
    if params.get('host') and (params.get('api_key') or (params.get('client_cert') and params.get('client_key'))):
        return 'explicit'
    if params.get('kubeconfig') or params.get('context') or default_kubeconfig_exists:
        return 'kubeconfig'
    if in_cluster:
        return 'in_cluster'
    if params.get('host'):
        return 'host_only'
    raise ClientError('Could not create API client: no kubeconfig (%s), not running inside a cluster, and no '
                      'host given. Set kubeconfig/context, or host and api_key (options or K8S_AUTH_* variables)'
                      % os.pathsep.join(_default_kubeconfig_paths()))


def build_api_client(params: Dict[str, Any]):
    """A ``kubernetes.client.ApiClient`` for the connection options, and the context's display name.

    Returns ``(api_client, context_name)``. Never touches the library's global default
    configuration: several clusters are used in one Python process in the tests.
    """
    if KUBERNETES_IMPORT_ERROR is not None:
        raise ClientError('Could not create API client: the kubernetes Python library is not installed (%s)'
                          % KUBERNETES_IMPORT_ERROR)
    source = connection_source(params)
    configuration = kubernetes.client.Configuration()
    context_name = params.get('context')
    try:
        if source == 'kubeconfig':
            kubeconfig = params.get('kubeconfig')
            if kubeconfig:
                missing = [p for p in kubeconfig.split(os.pathsep) if p and not os.path.exists(p)]
                if missing:
                    raise ClientError('Could not create API client: kubeconfig %s does not exist' % ', '.join(missing))
            kubernetes.config.load_kube_config(config_file=kubeconfig or None, context=context_name or None,
                                               client_configuration=configuration, persist_config=False)
            if not context_name:
                _contexts, active = kubernetes.config.list_kube_config_contexts(config_file=kubeconfig or None)
                context_name = (active or {}).get('name')
        elif source == 'in_cluster':
            kubernetes.config.load_incluster_config(client_configuration=configuration)
            context_name = context_name or 'in-cluster'
    except ClientError:
        raise
    except Exception as error:  # kubernetes.config raises ConfigException, ValueError, OSError, ...
        raise ClientError('Could not create API client: %s' % error) from error

    if params.get('host'):
        configuration.host = params['host'].rstrip('/')
    if params.get('api_key'):
        # An explicit token wins over whatever the kubeconfig user had (token, exec plugin).
        configuration.api_key = {'authorization': 'Bearer %s' % params['api_key']}
        configuration.api_key_prefix = {}
        configuration.refresh_api_key_hook = None
    if params.get('ca_cert'):
        configuration.ssl_ca_cert = params['ca_cert']
    if params.get('client_cert'):
        configuration.cert_file = params['client_cert']
    if params.get('client_key'):
        configuration.key_file = params['client_key']
    if params.get('proxy'):
        configuration.proxy = params['proxy']
    # validate_certs is authoritative (default true): a kubeconfig's insecure-skip-tls-verify
    # does not turn verification off unless the user also says validate_certs=false.
    validate = params.get('validate_certs')
    configuration.verify_ssl = True if validate is None else bool(validate)
    if not configuration.verify_ssl:
        # The user chose this explicitly; one module warning says so instead of a urllib3
        # warning per request on stderr. Filtered here, not at import time.
        warnings.filterwarnings('ignore', category=urllib3.exceptions.InsecureRequestWarning)
    for path_option in ('ca_cert', 'client_cert', 'client_key'):
        if params.get(path_option) and not os.path.exists(params[path_option]):
            raise ClientError('Could not create API client: %s %s does not exist' % (path_option, params[path_option]))

    # Connection failures are retried (cheap, and safe for every verb); a read timeout is not:
    # urllib3's default would repeat it three times and turn request_timeout into 4x its value.
    configuration.retries = urllib3.util.Retry(total=2, connect=2, read=0, status=0, redirect=0)
    api_client = kubernetes.client.ApiClient(configuration)
    api_client.user_agent = 'meshlink.multicluster/%s' % COLLECTION_VERSION
    return api_client, context_name or configuration.host


_VERSION_RE = re.compile(r'^v(\d+)(?:(alpha|beta)(\d+))?$')


def version_priority(version: str) -> Tuple[int, int, int, str]:
    """Sort key of a Kubernetes API version, highest priority first when sorted ascending.

    Kubernetes' rule: GA before beta before alpha, higher numbers first; anything that does
    not look like a Kubernetes version sorts last, alphabetically.
    """
    match = _VERSION_RE.match(version or '')
    if not match:
        return (3, 0, 0, version or '')
    major = int(match.group(1))
    stage = {None: 0, 'beta': 1, 'alpha': 2}[match.group(2)]
    minor = int(match.group(3) or 0)
    return (stage, -major, -minor, '')


def newest_version(versions: Sequence[str]) -> Optional[str]:
    """The version to use among served ones: ``v1`` > ``v1beta1`` > ``v1alpha3``; None if none."""
    ordered = sorted(set(versions), key=version_priority)
    return ordered[0] if ordered else None


def status_message(body: Any) -> Tuple[Optional[str], Optional[str]]:
    """``(message, reason)`` of an API ``Status`` body (text or dict); ``(None, None)`` if it is not one."""
    if isinstance(body, bytes):
        body = body.decode('utf-8', 'replace')
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return None, None
    if isinstance(body, dict) and body.get('kind') == 'Status':
        return body.get('message'), body.get('reason')
    return None, None


def warning_texts(header_values: Sequence[str]) -> List[str]:
    """The texts of HTTP ``Warning`` headers (``299 - "text"``), as kube-apiserver sends them."""
    texts = []
    for value in header_values:
        match = re.match(r'^\s*\d{3}\s+\S+\s+"((?:[^"\\]|\\.)*)"', value or '')
        texts.append(match.group(1).replace('\\"', '"') if match else value)
    return texts


class ObjectRef:
    """What a request is about, for messages: ``ServiceEntry foo/httpbin-bar``."""

    def __init__(self, kind: str, namespace: Optional[str] = None, name: Optional[str] = None) -> None:
        self.kind = kind
        self.namespace = namespace
        self.name = name

    def __str__(self) -> str:
        if self.name and self.namespace:
            return '%s %s/%s' % (self.kind, self.namespace, self.name)
        if self.name:
            return '%s %s' % (self.kind, self.name)
        if self.namespace:
            return '%s in namespace %s' % (self.kind, self.namespace)
        return self.kind


def core_path(plural: str, namespace: Optional[str] = None, name: Optional[str] = None) -> str:
    """Path of a core (``/api/v1``) resource or collection."""
    return _path('/api/v1', plural, namespace, name)


def group_path(group: str, version: str, plural: str, namespace: Optional[str] = None,
               name: Optional[str] = None) -> str:
    """Path of a resource or collection of an API group (``/apis/<group>/<version>``)."""
    return _path('/apis/%s/%s' % (group, version), plural, namespace, name)


def _path(prefix: str, plural: str, namespace: Optional[str], name: Optional[str]) -> str:
    path = prefix
    if namespace:
        path += '/namespaces/%s' % quote(namespace, safe='')
    path += '/%s' % plural
    if name:
        path += '/%s' % quote(name, safe='')
    return path


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


class Cluster:
    """One cluster (one API client) for the duration of one module call.

    ``dry_run``: every write is sent with ``dryRun=All`` (check mode): the server validates
    and answers as if it wrote, so check mode predicts what a real run does.
    """

    def __init__(self, api_client: Any, context: Optional[str], request_timeout: int = DEFAULT_REQUEST_TIMEOUT,
                 dry_run: bool = False) -> None:
        self.api_client = api_client
        self.context = context or '(default)'
        self.request_timeout = request_timeout
        self.dry_run = dry_run
        self.warnings: List[str] = []
        self._api_groups: Optional[Dict[str, List[str]]] = None
        self._networking_version: Optional[str] = None

    # -- transport -------------------------------------------------------------------------

    def _send(self, method: str, path: str, query: List[Tuple[str, str]], headers: Dict[str, str], body: Any):
        """One HTTP request; returns ``(status, data bytes, header items)``.

        kubernetes >= 35 (openapi-generator 7) has ``param_serialize``/``call_api``/``read``;
        older releases have the python-legacy ``call_api``. Only these generic entry points
        are used, never the generated per-resource methods, whose signatures differ.
        """
        client = self.api_client
        # (connect, read): the python-legacy client ignores a float total timeout.
        timeout = (self.request_timeout, self.request_timeout)
        if hasattr(client, 'param_serialize'):
            request = client.param_serialize(method, path, query_params=query, header_params=headers, body=body,
                                             auth_settings=['BearerToken'])
            response = client.call_api(*request, _request_timeout=timeout)
            response.read()
            if not 200 <= response.status <= 299:
                raise ApiException.from_response(http_resp=response, body=response.data.decode('utf-8', 'replace'),
                                                 data=None)
            return response.status, response.data, _header_items(response)
        response = client.call_api(path, method, path_params={}, query_params=query, header_params=headers,
                                   body=body, post_params=[], files={}, response_type=None,
                                   auth_settings=['BearerToken'], _return_http_data_only=True,
                                   _preload_content=False, _request_timeout=timeout)
        return response.status, response.data, _header_items(response)

    def request(self, method: str, path: str, what: ObjectRef, verb: str, query: Optional[Dict[str, Any]] = None,
                body: Any = None, content_type: str = 'application/json') -> Optional[Dict[str, Any]]:
        """Send a request and return the decoded JSON body (None when empty).

        Raises :class:`ApiError` with a message like ``Could not apply ServiceEntry
        foo/httpbin-bar in context cluster1: admission webhook ... denied ...``.
        """
        query_list = [(key, _query_value(value)) for key, value in (query or {}).items() if value is not None]
        headers = {'Accept': 'application/json', 'Content-Type': content_type}
        try:
            _status, data, header_items = self._send(method, path, query_list, headers, body)
        except Exception as error:  # pylint: disable=broad-except
            raise self._error(verb, what, error) from error
        self.warnings.extend(warning_texts([v for k, v in header_items if k.lower() == 'warning']))
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError as error:
            raise ApiError('Could not %s %s in context %s: the API server answered with something that is not '
                           'JSON (%s)' % (verb, what, self.context, data[:200])) from error

    def _error(self, verb: str, what: ObjectRef, error: Exception) -> ApiError:
        prefix = 'Could not %s %s in context %s' % (verb, what, self.context)
        if ApiException is not None and isinstance(error, ApiException):
            message, reason = status_message(error.body)
            status = error.status
            text = message or ('%s %s' % (status, error.reason or '')).strip()
            if status == 401:
                text += ' (check the credentials: api_key, client_cert/client_key or the kubeconfig user)'
            return ApiError('%s: %s' % (prefix, text), status=status, reason=reason or error.reason)
        if urllib3 is not None and isinstance(error, urllib3.exceptions.HTTPError):
            cause = getattr(error, 'reason', None) or error
            text = str(cause)
            if 'CERTIFICATE_VERIFY_FAILED' in text:
                text += (' (the server certificate is not trusted: set ca_cert, or validate_certs=false for a '
                         'throwaway cluster)')
            if isinstance(error, (urllib3.exceptions.TimeoutError, urllib3.exceptions.ReadTimeoutError)) or \
                    isinstance(cause, urllib3.exceptions.TimeoutError):
                text = 'no answer within request_timeout=%ss (%s)' % (self.request_timeout, text)
            host = getattr(getattr(self.api_client, 'configuration', None), 'host', '?')
            return ApiError('%s: cannot reach the API server %s: %s' % (prefix, host, text))
        return ApiError('%s: %s' % (prefix, error))

    # -- verbs -----------------------------------------------------------------------------

    def get(self, path: str, what: ObjectRef) -> Optional[Dict[str, Any]]:
        """The object at ``path``, or None when it does not exist (404)."""
        try:
            return self.request('GET', path, what, 'read')
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def list(self, path: str, what: ObjectRef, label_selector: Optional[str] = None) -> List[Dict[str, Any]]:
        """Items of a collection (one request; the collection sizes here are small)."""
        result = self.request('GET', path, what, 'list', query={'labelSelector': label_selector})
        return list((result or {}).get('items') or [])

    def create(self, path: str, body: Dict[str, Any], what: ObjectRef) -> Optional[Dict[str, Any]]:
        return self.request('POST', path, what, 'create', body=body,
                            query={'fieldManager': FIELD_MANAGER, 'dryRun': 'All' if self.dry_run else None})

    def replace(self, path: str, body: Dict[str, Any], what: ObjectRef) -> Optional[Dict[str, Any]]:
        return self.request('PUT', path, what, 'replace', body=body,
                            query={'fieldManager': FIELD_MANAGER, 'dryRun': 'All' if self.dry_run else None})

    def delete(self, path: str, what: ObjectRef, resource_version: Optional[str] = None) -> bool:
        """Delete; False when it was already gone. ``resource_version`` makes it conditional."""
        body: Dict[str, Any] = {'kind': 'DeleteOptions', 'apiVersion': 'v1', 'propagationPolicy': 'Background'}
        if resource_version:
            body['preconditions'] = {'resourceVersion': resource_version}
        if self.dry_run:
            # With a DeleteOptions body the API server reads dryRun from the body and ignores
            # the query string: a query-only dryRun would delete for real.
            body['dryRun'] = ['All']
        try:
            self.request('DELETE', path, what, 'delete', body=body)
        except ApiError as error:
            if error.status == 404:
                return False
            raise
        return True

    def apply(self, path: str, body: Dict[str, Any], what: ObjectRef, force: bool = True) -> Optional[Dict[str, Any]]:
        """Server-side apply with field manager ``meshlink`` (``dryRun=All`` in check mode).

        The body is a dict sent with the apply-patch+yaml content type: both generations of the
        kubernetes client encode it as JSON for that type, and JSON is YAML.
        """
        return self.request('PATCH', path, what, 'apply', body=body, content_type='application/apply-patch+yaml',
                            query={'fieldManager': FIELD_MANAGER, 'force': force,
                                   'dryRun': 'All' if self.dry_run else None})

    # -- discovery -------------------------------------------------------------------------

    def api_groups(self) -> Dict[str, List[str]]:
        """group -> served versions, from one ``GET /apis`` per Cluster (cached for the call only)."""
        if self._api_groups is None:
            result = self.request('GET', '/apis', ObjectRef('API groups'), 'discover') or {}
            groups: Dict[str, List[str]] = {}
            for group in result.get('groups') or []:
                groups[group.get('name')] = [v.get('version') for v in group.get('versions') or [] if v.get('version')]
            self._api_groups = groups
        return self._api_groups

    def served_versions(self, group: str) -> List[str]:
        return list(self.api_groups().get(group) or [])

    def networking_version(self) -> str:
        """The newest served ``networking.istio.io`` version; an error when Istio's API is absent."""
        if self._networking_version is None:
            served = self.served_versions(NETWORKING_GROUP)
            newest = newest_version(served)
            if newest is None:
                raise ApiError('Context %s does not serve the %s API: Istio (its CRDs) is not installed in this '
                               'cluster' % (self.context, NETWORKING_GROUP), status=404, reason='NotFound')
            self._networking_version = newest
        return self._networking_version

    def server_version(self) -> Dict[str, Any]:
        """``GET /version``: the cheapest call that proves the context works."""
        return self.request('GET', '/version', ObjectRef('server version'), 'read') or {}


def _header_items(response: Any) -> List[Tuple[str, str]]:
    headers = getattr(response, 'headers', None)
    if headers is None and hasattr(response, 'getheaders'):
        headers = response.getheaders()
    if headers is None:
        return []
    if hasattr(headers, 'getlist'):  # urllib3 HTTPHeaderDict: keep repeated Warning headers
        return [(key, value) for key in headers.keys() for value in headers.getlist(key)]
    return list(headers.items())


def cluster_from_params(params: Dict[str, Any], check_mode: bool = False) -> Cluster:
    """A :class:`Cluster` from module parameters (one client per module call)."""
    api_client, context = build_api_client(params)
    timeout = params.get('request_timeout') or DEFAULT_REQUEST_TIMEOUT
    return Cluster(api_client, context, request_timeout=timeout, dry_run=check_mode)
