# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""The one place that connects to a cluster.

- ``connection_argument_spec()``: the connection options of every module (documented by
  the ``meshlink.multicluster.connection`` doc fragment). No environment fallbacks in the
  spec: :func:`resolve_connection` applies the ``K8S_AUTH_*`` variables as one bundle.
- ``resolve_connection()``: the bundle rule. A task that names its cluster (``kubeconfig``,
  ``context`` or ``host``) takes every connection value from its own options and ignores
  every ``K8S_AUTH_*`` variable (one warning names them); only a task that names no cluster
  takes the variables, with kubernetes.core's names, precedence and boolean parsing.
- ``build_api_client()``: a ``kubernetes.client.ApiClient`` in a fixed order: explicit host
  and credentials, else kubeconfig (file/context, the current context by default), else
  in-cluster service account; impersonation headers on every request.
- ``Cluster``: every API call of the collection goes through ``Cluster.request``: JSON in,
  JSON dicts out (the shape ``kubectl get -o json`` shows), the request timeout on every
  call, API ``Warning`` headers collected, and every failure turned into one message that
  names the verb, the object, the cluster context and the server's reason. Server-side
  apply does not force: a field another manager owns is an :class:`ApplyConflict`.

Importable without Ansible and without the kubernetes library (``KUBERNETES_IMPORT_ERROR``
tells the module to call ``missing_required_lib``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import quote

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import ApiError, ApplyConflict, ClientError
from ansible_collections.meshlink.multicluster.plugins.module_utils._names import (
    COLLECTION_VERSION,
    FIELD_MANAGER,
    NETWORKING_GROUP,
)
from ansible_collections.meshlink.multicluster.plugins.module_utils._validate import check_url_problem

try:
    import kubernetes
    import kubernetes.client
    import kubernetes.config
    from kubernetes.client.exceptions import ApiException
    import urllib3
    from urllib3._collections import HTTPHeaderDict
except ImportError as import_error:  # the module reports it through missing_required_lib
    KUBERNETES_IMPORT_ERROR: Optional[ImportError] = import_error
    ApiException = None  # type: ignore[assignment,misc]
    urllib3 = None  # type: ignore[assignment]
    HTTPHeaderDict = None  # type: ignore[assignment,misc]
else:
    KUBERNETES_IMPORT_ERROR = None

DEFAULT_REQUEST_TIMEOUT = 30

# Option -> the K8S_AUTH_* variables kubernetes.core reads for it (module_utils/k8s/client.py),
# in its order: K8S_AUTH_<option name>, then K8S_AUTH_<kubernetes client name>; the first one
# that is set and not empty wins. AWX's "OpenShift or Kubernetes API Bearer Token" credential
# injects K8S_AUTH_HOST, K8S_AUTH_API_KEY, K8S_AUTH_VERIFY_SSL and K8S_AUTH_SSL_CA_CERT.
CONNECTION_ENV: Dict[str, Tuple[str, ...]] = {
    'kubeconfig': ('K8S_AUTH_KUBECONFIG',),
    'context': ('K8S_AUTH_CONTEXT',),
    'host': ('K8S_AUTH_HOST',),
    'api_key': ('K8S_AUTH_API_KEY',),
    'username': ('K8S_AUTH_USERNAME',),
    'password': ('K8S_AUTH_PASSWORD',),
    'validate_certs': ('K8S_AUTH_VALIDATE_CERTS', 'K8S_AUTH_VERIFY_SSL'),
    'ca_cert': ('K8S_AUTH_CA_CERT', 'K8S_AUTH_SSL_CA_CERT'),
    'client_cert': ('K8S_AUTH_CLIENT_CERT', 'K8S_AUTH_CERT_FILE'),
    'client_key': ('K8S_AUTH_CLIENT_KEY', 'K8S_AUTH_KEY_FILE'),
    'proxy': ('K8S_AUTH_PROXY',),
    'no_proxy': ('K8S_AUTH_NO_PROXY',),
    'persist_config': ('K8S_AUTH_PERSIST_CONFIG',),
    'impersonate_user': ('K8S_AUTH_IMPERSONATE_USER',),
    'impersonate_groups': ('K8S_AUTH_IMPERSONATE_GROUPS',),
}
# proxy_headers suboption -> variable (kubernetes.core: K8S_AUTH_PROXY_HEADERS_<SUBOPTION>).
PROXY_HEADERS_ENV: Dict[str, str] = {
    'proxy_basic_auth': 'K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH',
    'basic_auth': 'K8S_AUTH_PROXY_HEADERS_BASIC_AUTH',
    'user_agent': 'K8S_AUTH_PROXY_HEADERS_USER_AGENT',
}
ENV_VARIABLES: Tuple[str, ...] = tuple(name for names in CONNECTION_ENV.values() for name in names) + \
    tuple(PROXY_HEADERS_ENV.values())
# The options that say which cluster: when the task gives one, the environment is not read.
NAMING_OPTIONS = ('kubeconfig', 'context', 'host')
_BOOL_OPTIONS = ('validate_certs', 'persist_config')
_LIST_OPTIONS = ('impersonate_groups',)
# kubernetes.core's reading of a boolean variable: false only for these (any case).
_ENV_FALSE = ('0', 'false', 'no')
_ENV_TRUE = ('1', 'true', 'yes')

CONNECTION_OPTIONS = tuple(CONNECTION_ENV) + ('proxy_headers', 'request_timeout')
# Sources of a connection (resolve_connection): the task's options, the K8S_AUTH_* variables,
# or neither (the default kubeconfig's current context, else the in-cluster service account).
SOURCE_TASK = 'task'
SOURCE_ENVIRONMENT = 'environment'
SOURCE_DEFAULT = 'default'


def connection_argument_spec() -> Dict[str, Dict[str, Any]]:
    """The connection options, to merge into a module's argument spec.

    No defaults for what the environment may supply (``validate_certs`` None means true) and
    no ``fallback``: :func:`resolve_connection` decides between the task and the environment.
    """
    return {
        'kubeconfig': {'type': 'path'},
        'context': {'type': 'str'},
        'host': {'type': 'str'},
        'api_key': {'type': 'str', 'no_log': True},
        'username': {'type': 'str'},
        'password': {'type': 'str', 'no_log': True},
        'validate_certs': {'type': 'bool', 'aliases': ['verify_ssl']},
        'ca_cert': {'type': 'path', 'aliases': ['ssl_ca_cert']},
        'client_cert': {'type': 'path', 'aliases': ['cert_file']},
        'client_key': {'type': 'path', 'aliases': ['key_file'], 'no_log': False},
        'proxy': {'type': 'str'},
        'no_proxy': {'type': 'str'},
        'proxy_headers': {'type': 'dict', 'options': {
            'proxy_basic_auth': {'type': 'str', 'no_log': True},
            'basic_auth': {'type': 'str', 'no_log': True},
            'user_agent': {'type': 'str'},
        }},
        'persist_config': {'type': 'bool'},
        'impersonate_user': {'type': 'str'},
        'impersonate_groups': {'type': 'list', 'elements': 'str'},
        'request_timeout': {'type': 'int', 'default': DEFAULT_REQUEST_TIMEOUT},
    }


def force_conflicts_argument_spec() -> Dict[str, Dict[str, Any]]:
    """``force_conflicts`` for modules that apply (doc fragment ``meshlink.multicluster.force_conflicts``).

    Pass its value as ``Cluster.apply(..., force=params['force_conflicts'])``.
    """
    return {'force_conflicts': {'type': 'bool', 'default': False}}


def _given(value: Any) -> bool:
    """An option counts as given unless it is None or empty (``''``, ``[]``, ``{}``); ``false`` is given."""
    return value is not None and not (isinstance(value, (str, list, dict)) and len(value) == 0)


def _env_text(environ: Mapping[str, str], names: Sequence[str]) -> Tuple[Optional[str], Optional[str]]:
    """``(value, variable)`` of the first variable of ``names`` that is set and not empty."""
    for name in names:
        value = environ.get(name)
        if value:
            return value, name
    return None, None


def environment_connection(environ: Mapping[str, str]) -> Tuple[Dict[str, Any], List[str]]:
    """The connection options the ``K8S_AUTH_*`` variables give, read as kubernetes.core reads them.

    Returns ``(options, warnings)``: only options some variable sets; booleans are false for
    ``0``/``false``/``no`` (any case) and true for anything else (a warning when that is not
    an obvious true), ``K8S_AUTH_IMPERSONATE_GROUPS`` is split at commas (empty parts
    dropped), ``proxy_headers`` is a dict of the ``K8S_AUTH_PROXY_HEADERS_*`` set. Values
    never appear in warnings.
    """
    options: Dict[str, Any] = {}
    notes: List[str] = []
    for option, names in CONNECTION_ENV.items():
        value, name = _env_text(environ, names)
        if value is None:
            continue
        if option in _BOOL_OPTIONS:
            if value.lower() not in _ENV_FALSE + _ENV_TRUE:
                notes.append('%s is neither true nor false as written; like kubernetes.core, meshlink reads it as '
                             'true (only 0, false and no mean false)' % name)
            options[option] = value.lower() not in _ENV_FALSE
        elif option in _LIST_OPTIONS:
            items = [item for item in value.split(',') if item != '']
            if items:
                options[option] = items
        else:
            options[option] = value
    headers = {key: environ[name] for key, name in PROXY_HEADERS_ENV.items() if environ.get(name)}
    if headers:
        options['proxy_headers'] = headers
    return options, notes


def resolve_connection(params: Mapping[str, Any],
                       environ: Optional[Mapping[str, str]] = None) -> Tuple[Dict[str, Any], str, List[str]]:
    """The connection of a task as one bundle: ``(options, source, warnings)``.

    - The task names its cluster (``kubeconfig``, ``context`` or ``host`` given): every value
      comes from the task's options; every ``K8S_AUTH_*`` variable is ignored and one warning
      names the ignored variables (never their values). ``source`` is ``task``. One exception:
      a task that gives only a ``context`` looks it up in ``K8S_AUTH_KUBECONFIG`` when that is
      set (the kubeconfig credential of AWX: a file of contexts, no cluster of its own).
    - Otherwise each option the task leaves unset is taken from its ``K8S_AUTH_*`` variable
      (:func:`environment_connection`); ``source`` is ``environment`` when a variable was
      used, ``default`` when none was (then the default kubeconfig's current context or the
      in-cluster service account is used).

    ``options`` has every key of ``CONNECTION_OPTIONS`` (None when unset). Pure: ``environ``
    is a mapping (``os.environ`` when None).
    """
    environ = os.environ if environ is None else environ
    options: Dict[str, Any] = {option: params.get(option) for option in CONNECTION_OPTIONS}
    present = [name for name in ENV_VARIABLES if environ.get(name)]
    named = [option for option in NAMING_OPTIONS if _given(options.get(option))]
    if named:
        notes = []
        if named == ['context'] and environ.get('K8S_AUTH_KUBECONFIG'):
            # A context alone names an entry of a kubeconfig, not a cluster of its own: the
            # kubeconfig an AWX credential injects is where that context is looked up (a
            # file of contexts, so it cannot send the host to another cluster's credentials).
            options['kubeconfig'] = environ['K8S_AUTH_KUBECONFIG']
            present = [name for name in present if name != 'K8S_AUTH_KUBECONFIG']
        if present:
            notes.append('The task names its cluster (%s), so every connection value comes from the task and these '
                         'environment variables are ignored: %s. Unset them, or name no cluster in the task to use '
                         'them.' % (', '.join(named), ', '.join(present)))
        return options, SOURCE_TASK, notes
    from_env, notes = environment_connection(environ)
    used = False
    for option, value in from_env.items():
        if not _given(options.get(option)):
            options[option] = value
            used = True
    return options, SOURCE_ENVIRONMENT if used else SOURCE_DEFAULT, notes


def connection_problems(options: Mapping[str, Any]) -> List[str]:
    """Combinations that cannot work, each naming the options and the fix (checked before any request)."""
    problems = []
    if _given(options.get('username')) != _given(options.get('password')):
        problems.append('username and password go together: set both (or neither, and use api_key or a kubeconfig)')
    if _given(options.get('impersonate_groups')) and not _given(options.get('impersonate_user')):
        problems.append('impersonate_groups needs impersonate_user: Kubernetes impersonates groups only together '
                        'with a user')
    host = options.get('host')
    if _given(host):
        problem = check_url_problem(host)
        if problem:
            problems.append('host: %s' % problem.replace('an http(s) URL', 'the URL of an API server'))
    return problems


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
    ``api_key``, ``username`` and ``password``, or a client certificate and key) need nothing
    else; then a kubeconfig (the ``kubeconfig`` option, a ``context``, or the default file
    when it exists, with its current context); then the in-cluster service account; then
    ``host`` alone (anonymous, or client certificate only).
    """
    if in_cluster is None:
        in_cluster = _in_cluster()
    if default_kubeconfig_exists is None:
        default_kubeconfig_exists = any(os.path.exists(p) for p in _default_kubeconfig_paths())
    if params.get('host') and (params.get('api_key') or (params.get('client_cert') and params.get('client_key'))
                               or (params.get('username') and params.get('password'))):
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


class _ExtraHeaders:
    """Wraps the client's urllib3 pool manager so every request also carries ``headers``.

    A list of pairs, so one header may repeat (``Impersonate-Group`` once per group, which
    the API server requires: it does not split a comma-joined value). Both generations of
    the kubernetes client send every REST request through ``rest_client.pool_manager``.
    """

    def __init__(self, pool_manager: Any, headers: Sequence[Tuple[str, str]]) -> None:
        self._pool_manager = pool_manager
        self._headers = list(headers)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        merged = HTTPHeaderDict(kwargs.pop('headers', None) or {})
        for name, value in self._headers:
            merged.add(name, value)
        return self._pool_manager.request(method, url, *args, headers=merged, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool_manager, name)


def impersonation_headers(options: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """``Impersonate-User`` and one ``Impersonate-Group`` per group, as kubectl ``--as``/``--as-group`` send."""
    headers = []
    if _given(options.get('impersonate_user')):
        headers.append(('Impersonate-User', options['impersonate_user']))
    for group in options.get('impersonate_groups') or []:
        headers.append(('Impersonate-Group', group))
    return headers


def build_api_client(params: Dict[str, Any]):
    """A ``kubernetes.client.ApiClient`` for resolved connection options, and the context's display name.

    ``params`` are the options :func:`resolve_connection` returns (the environment is not
    read here). Returns ``(api_client, context_name)``. Never touches the library's global
    default configuration: several clusters are used in one Python process in the tests.
    """
    if KUBERNETES_IMPORT_ERROR is not None:
        raise ClientError('Could not create API client: the kubernetes Python library is not installed (%s)'
                          % KUBERNETES_IMPORT_ERROR)
    problems = connection_problems(params)
    if problems:
        raise ClientError('Could not create API client: %s' % '; '.join(problems))
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
            # The default file(s) as connection_source saw them (E(KUBECONFIG) now, not when the
            # library was imported), with their current context when no context is given.
            config_file = kubeconfig or os.pathsep.join(_default_kubeconfig_paths())
            kubernetes.config.load_kube_config(config_file=config_file, context=context_name or None,
                                               client_configuration=configuration,
                                               persist_config=bool(params.get('persist_config')))
            if not context_name:
                _contexts, active = kubernetes.config.list_kube_config_contexts(config_file=config_file)
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
        # An explicit token wins over whatever the kubeconfig user had (token, exec plugin),
        # and over username/password.
        configuration.api_key = {'authorization': 'Bearer %s' % params['api_key']}
        configuration.api_key_prefix = {}
        configuration.refresh_api_key_hook = None
    elif params.get('username') and params.get('password'):
        # HTTP basic authentication (the client library has no setting that sends it).
        token = base64.b64encode(('%s:%s' % (params['username'], params['password'])).encode('utf-8')).decode('ascii')
        configuration.api_key = {'authorization': 'Basic %s' % token}
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
    if params.get('no_proxy'):
        configuration.no_proxy = params['no_proxy']
    proxy_headers = {key: value for key, value in (params.get('proxy_headers') or {}).items() if value}
    if proxy_headers:
        configuration.proxy_headers = urllib3.util.make_headers(**proxy_headers)
    # validate_certs is authoritative (None means true): a kubeconfig's insecure-skip-tls-verify
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
    extra = impersonation_headers(params)
    if extra:
        api_client.rest_client.pool_manager = _ExtraHeaders(api_client.rest_client.pool_manager, extra)
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


def status_body(body: Any) -> Optional[Dict[str, Any]]:
    """The API ``Status`` of an error body (text, bytes or dict), or None when it is not one."""
    if isinstance(body, bytes):
        body = body.decode('utf-8', 'replace')
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    if isinstance(body, dict) and body.get('kind') == 'Status':
        return body
    return None


def status_message(body: Any) -> Tuple[Optional[str], Optional[str]]:
    """``(message, reason)`` of an API ``Status`` body (text or dict); ``(None, None)`` if it is not one."""
    status = status_body(body)
    if status is None:
        return None, None
    return status.get('message'), status.get('reason')


_CONFLICT_WITH = re.compile(r'conflicts? with "((?:[^"\\]|\\.)*)"(?: with subresource "(?:[^"\\]|\\.)*")?'
                            r'(?: using ([^\s:]+))?(?::[ \t]*([^\s][^\n]*))?')


def _unquote(text: str) -> str:
    return re.sub(r'\\(.)', r'\1', text)


def apply_conflicts(status: Optional[Dict[str, Any]]) -> List[Dict[str, Optional[str]]]:
    """The field manager conflicts of a server-side apply ``Status`` (409), in order.

    Each is ``{manager, api_version, field}``. Read from ``details.causes`` of type
    ``FieldManagerConflict`` (message ``conflict with "<manager>" using <apiVersion>``,
    ``field`` the path such as ``.spec.hosts``); when the server sent no causes, from the
    message (``Apply failed with 1 conflict: conflict with "kubectl" using v1: .spec.hosts``
    or one ``- <field>`` line per field). Empty when the Status is no apply conflict.
    """
    if not status:
        return []
    conflicts: List[Dict[str, Optional[str]]] = []
    for cause in (status.get('details') or {}).get('causes') or []:
        if not isinstance(cause, dict) or (cause.get('reason') or cause.get('type')) != 'FieldManagerConflict':
            continue
        match = _CONFLICT_WITH.search(str(cause.get('message') or ''))
        conflicts.append({
            'manager': _unquote(match.group(1)) if match else None,
            'api_version': match.group(2) if match else None,
            'field': cause.get('field') or (match.group(3).strip() if match and match.group(3) else None),
        })
    if conflicts:
        return conflicts
    message = str(status.get('message') or '')
    if not message.startswith('Apply failed with'):
        return []
    matches = list(_CONFLICT_WITH.finditer(message))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(message)
        fields = [line[2:].strip() for line in message[match.end():end].splitlines() if line.startswith('- ')]
        if not fields:
            fields = [match.group(3).strip()] if match.group(3) else [None]
        for field in fields:
            conflicts.append({'manager': _unquote(match.group(1)), 'api_version': match.group(2), 'field': field})
    return conflicts


def apply_conflict_message(prefix: str, conflicts: Sequence[Dict[str, Optional[str]]]) -> str:
    """The user's message for an apply conflict: who owns which field, and how to take it over."""
    owners: Dict[str, List[str]] = {}
    for conflict in conflicts:
        owner = '"%s"' % conflict['manager'] if conflict.get('manager') else 'another field manager'
        if conflict.get('api_version'):
            owner += ' (through %s)' % conflict['api_version']
        owners.setdefault(owner, []).append(conflict.get('field') or '(a field the server did not name)')
    parts = []
    for owner, fields in owners.items():
        if len(fields) == 1:
            parts.append('field %s is owned by field manager %s' % (fields[0], owner))
        else:
            parts.append('fields %s are owned by field manager %s' % (', '.join(fields), owner))
    return ('%s: %s. Nothing was changed: meshlink does not take fields over from other managers by default. Set '
            'force_conflicts: true to take them over (meshlink then owns them and the other manager\'s next apply '
            'conflicts instead), or remove them from the other manager\'s configuration'
            % (prefix, '; '.join(parts)))


def warning_texts(header_values: Sequence[str]) -> List[str]:
    """The texts of HTTP ``Warning`` headers (``299 - "text"``), as kube-apiserver sends them."""
    texts = []
    for value in header_values:
        match = re.match(r'^\s*\d{3}\s+\S+\s+"((?:[^"\\]|\\.)*)"', value or '')
        texts.append(match.group(1).replace('\\"', '"') if match else value)
    return texts


def json_copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars), as the API returns it: several
    times faster than copy.deepcopy, which the inspection of a large cluster spent most of its
    CPU in."""
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_copy(item) for item in value]
    return value


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
                 dry_run: bool = False, source: Optional[str] = None,
                 connection_warnings: Optional[List[str]] = None) -> None:
        self.api_client = api_client
        self.context = context or '(default)'
        self.request_timeout = request_timeout
        self.dry_run = dry_run
        configuration = getattr(api_client, 'configuration', None)
        self.server: Optional[str] = getattr(configuration, 'host', None)
        self.verify_ssl: bool = bool(getattr(configuration, 'verify_ssl', True))
        # SOURCE_TASK, SOURCE_ENVIRONMENT or SOURCE_DEFAULT (resolve_connection); None when built by hand.
        self.source = source
        # Notes about the connection (ignored K8S_AUTH_* variables, ...), for module warnings.
        self.connection_warnings: List[str] = list(connection_warnings or [])
        pool_manager = getattr(getattr(api_client, 'rest_client', None), 'pool_manager', None)
        # True when requests carry Impersonate-* headers (the exec websocket cannot: see _check.py).
        self.impersonating = isinstance(pool_manager, _ExtraHeaders)
        self.warnings: List[str] = []
        self._api_groups: Optional[Dict[str, List[str]]] = None
        self._networking_version: Optional[str] = None
        self._identity: Optional[Dict[str, Any]] = None

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
                body: Any = None, content_type: str = 'application/json',
                accept: str = 'application/json') -> Optional[Dict[str, Any]]:
        """Send a request and return the decoded JSON body (None when empty).

        Raises :class:`ApiError` with a message like ``Could not apply ServiceEntry
        foo/httpbin-bar in context cluster1: admission webhook ... denied ...``. A 429 (the API
        server's priority and fairness shedding load) is retried after its Retry-After, a few
        times, before it becomes an error.
        """
        query_list = [(key, _query_value(value)) for key, value in (query or {}).items() if value is not None]
        headers = {'Accept': accept, 'Content-Type': content_type}
        attempt = 0
        while True:
            attempt += 1
            try:
                _status, data, header_items = self._send(method, path, query_list, headers, body)
                break
            except Exception as error:  # pylint: disable=broad-except
                wait = retry_after(error) if attempt <= TOO_MANY_REQUESTS_RETRIES else None
                if wait is None:
                    raise self._error(verb, what, error) from error
                time.sleep(wait)
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
            status_object = status_body(error.body)
            message, reason = status_message(status_object)
            status = error.status
            text = message or ('%s %s' % (status, error.reason or '')).strip()
            if status == 401:
                text += (' (check the credentials: api_key, username/password, client_cert/client_key or the '
                         'kubeconfig user)')
            return ApiError('%s: %s' % (prefix, text), status=status, reason=reason or error.reason,
                            details=(status_object or {}).get('details'), status_object=status_object)
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

    def delete(self, path: str, what: ObjectRef, resource_version: Optional[str] = None,
               uid: Optional[str] = None) -> bool:
        """Delete; False when it was already gone. ``resource_version``/``uid`` make it conditional
        (409 when the object was changed or replaced since it was read)."""
        body: Dict[str, Any] = {'kind': 'DeleteOptions', 'apiVersion': 'v1', 'propagationPolicy': 'Background'}
        preconditions = {k: v for k, v in (('resourceVersion', resource_version), ('uid', uid)) if v}
        if preconditions:
            body['preconditions'] = preconditions
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

    def apply(self, path: str, body: Dict[str, Any], what: ObjectRef, force: bool = False) -> Optional[Dict[str, Any]]:
        """Server-side apply with field manager ``meshlink`` (``dryRun=All`` in check mode).

        Without ``force`` a field another manager owns is not taken over: the server answers
        409 and this raises :class:`ApplyConflict` naming the managers and fields (in check
        mode too, so check mode predicts it). ``force=True`` (the modules' ``force_conflicts``)
        takes them over.

        The body is a dict sent with the apply-patch+yaml content type: both generations of the
        kubernetes client encode it as JSON for that type, and JSON is YAML.
        """
        try:
            return self.request('PATCH', path, what, 'apply', body=body,
                                content_type='application/apply-patch+yaml',
                                query={'fieldManager': FIELD_MANAGER, 'force': bool(force),
                                       'dryRun': 'All' if self.dry_run else None})
        except ApiError as error:
            conflicts = apply_conflicts(error.status_object) if error.status == 409 else []
            if not conflicts:
                raise
            prefix = 'Could not apply %s in context %s' % (what, self.context)
            raise ApplyConflict(apply_conflict_message(prefix, conflicts), conflicts=conflicts,
                                details=error.details, status_object=error.status_object) from error

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

    def identity(self) -> Dict[str, Any]:
        """``{server, kube_system_uid}``: which cluster this is, whatever the context is called.

        ``server`` is the API server URL used; ``kube_system_uid`` the uid of namespace
        ``kube-system`` (one GET per Cluster, cached), which stays the same for the life of the
        cluster and differs between clusters. None when the credential may not read it (403)
        or it does not exist (404); other errors are raised.
        """
        if self._identity is None:
            uid = None
            try:
                namespace = self.request('GET', core_path('namespaces', name='kube-system'),
                                         ObjectRef('Namespace', name='kube-system'), 'read')
                uid = ((namespace or {}).get('metadata') or {}).get('uid')
            except ApiError as error:
                if error.status not in (403, 404):
                    raise
            self._identity = {'server': self.server, 'kube_system_uid': uid}
        return dict(self._identity)

    def known_identity(self) -> Dict[str, Any]:
        """:meth:`identity` when it was read already, else ``{server, kube_system_uid: None}``; never a request."""
        return dict(self._identity) if self._identity is not None else {'server': self.server, 'kube_system_uid': None}

    def connection_facts(self) -> Dict[str, Any]:
        """``{context, server, source}``: what the module connected to and why (for its result)."""
        return {'context': self.context, 'server': self.server, 'source': self.source}


TOO_MANY_REQUESTS_RETRIES = 5


def retry_after(error: Exception) -> Optional[float]:
    """Seconds to wait before repeating a request the server answered 429 (its Retry-After,
    1-10 s), None for any other failure."""
    if ApiException is None or not isinstance(error, ApiException) or error.status != 429:
        return None
    headers = getattr(error, 'headers', None) or {}
    value = headers.get('Retry-After') if hasattr(headers, 'get') else None
    try:
        seconds = float(value) if value is not None else 1.0
    except (TypeError, ValueError):
        seconds = 1.0
    return min(10.0, max(1.0, seconds))


def _header_items(response: Any) -> List[Tuple[str, str]]:
    headers = getattr(response, 'headers', None)
    if headers is None and hasattr(response, 'getheaders'):
        headers = response.getheaders()
    if headers is None:
        return []
    if hasattr(headers, 'getlist'):  # urllib3 HTTPHeaderDict: keep repeated Warning headers
        return [(key, value) for key in headers.keys() for value in headers.getlist(key)]
    return list(headers.items())


def cluster_from_params(params: Mapping[str, Any], check_mode: bool = False,
                        environ: Optional[Mapping[str, str]] = None) -> Cluster:
    """A :class:`Cluster` from module parameters (one client per module call).

    The connection is resolved as one bundle first (:func:`resolve_connection`, reading
    ``environ``, default ``os.environ``); its warnings are on ``cluster.connection_warnings``.
    """
    environ = os.environ if environ is None else environ
    options, source, notes = resolve_connection(params, environ)
    api_client, context = build_api_client(options)
    timeout = params.get('request_timeout') or DEFAULT_REQUEST_TIMEOUT
    return Cluster(api_client, context, request_timeout=timeout, dry_run=check_mode, source=source,
                   connection_warnings=notes)
