# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""The namespaces a cluster needs and the sample apps (Istio's sleep and httpbin), as objects.

Pure functions of the plan's share of one cluster:

- ``namespace_objects``: every namespace the cluster's objects go into. A namespace that does
  not exist is created as this mesh's (so teardown may delete it once nothing but the mesh's
  objects is left in it); one that exists and is not this mesh's is never claimed: with sample
  apps it only gets ``istio-injection=enabled`` added, and the run says so.
- ``sample_objects``: sleep (ServiceAccount, Service, Deployment) in every consumer namespace,
  and for every exported service a ServiceAccount, a Service with its ports and one httpbin
  Deployment (one per subset, ``<service>-<subset>``, with the subset's pod labels).

Every object carries the mesh's ownership labels (``_ownership``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.meshlink.multicluster.plugins.module_utils._errors import InputError
from ansible_collections.meshlink.multicluster.plugins.module_utils._names import dns1123_label_problem
from ansible_collections.meshlink.multicluster.plugins.module_utils._objects import Desired
from ansible_collections.meshlink.multicluster.plugins.module_utils._ownership import (
    NAMESPACE,
    SAMPLE_APPS,
    is_access_object,
    is_ours,
    ownership_labels,
)

INJECTION_LABEL = 'istio-injection'
PULL_POLICIES = ('Always', 'IfNotPresent', 'Never')
DEFAULT_EXCLUDED = ('kube-system', 'kube-public', 'kube-node-lease', 'istio-system')
SAMPLE_KINDS = ('ServiceAccount', 'Service', 'Deployment')

DEFAULTS = {
    'registry': 'docker.io',
    'sleep_image': 'curlimages/curl:8.8.0',
    'httpbin_image': 'kong/httpbin:0.1.0',
    'httpbin_port': 80,
    'pull_policy': 'IfNotPresent',
    'replicas': 1,
    'wait': True,
    'wait_timeout': 300,
    'excluded_namespaces': list(DEFAULT_EXCLUDED),
}


def _image_problem(value: Any) -> Optional[str]:
    if not isinstance(value, str) or not value:
        return 'must be a non-empty image reference'
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) > 126 for ch in value):
        return '%r contains whitespace, control or non-ASCII characters' % (value,)
    return None


def _int_in(value: Any, low: int, high: int) -> Optional[int]:
    """An int from an int or a string of ASCII digits (templating yields strings); nothing else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value and value.isascii() and value.isdigit():
        number = int(value)
    else:
        return None
    return number if low <= number <= high else None


def sample_settings(raw: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """Validated sample-app settings (``sample_apps`` option); errors name ``sample_apps.<key>``."""
    values = dict(DEFAULTS)
    values.update({k: v for k, v in (raw or {}).items() if v is not None})
    errors: List[str] = []
    for key in values:
        if key not in DEFAULTS:
            errors.append("sample_apps: unknown key '%s' (known: %s)" % (key, ', '.join(sorted(DEFAULTS))))
    registry = values['registry']
    if registry != '':
        problem = _image_problem(registry)
        if problem:
            errors.append('sample_apps.registry: %s (or "" to use the images as given)' % problem)
    for key in ('sleep_image', 'httpbin_image'):
        problem = _image_problem(values[key])
        if problem:
            errors.append('sample_apps.%s: %s' % (key, problem))
    port = _int_in(values['httpbin_port'], 1, 65535)
    if port is None:
        errors.append('sample_apps.httpbin_port: %r is not a port (1-65535)' % (values['httpbin_port'],))
    replicas = _int_in(values['replicas'], 0, 1000)
    if replicas is None:
        errors.append('sample_apps.replicas: %r is not a number of replicas (0-1000)' % (values['replicas'],))
    timeout = _int_in(values['wait_timeout'], 1, 86400)
    if timeout is None:
        errors.append('sample_apps.wait_timeout: %r is not a number of seconds (1-86400)' % (values['wait_timeout'],))
    if values['pull_policy'] not in PULL_POLICIES:
        errors.append('sample_apps.pull_policy: %r is not one of %s' % (values['pull_policy'], ', '.join(PULL_POLICIES)))
    if not isinstance(values['wait'], bool):
        errors.append('sample_apps.wait: %r is not true or false' % (values['wait'],))
    excluded = values['excluded_namespaces']
    if not isinstance(excluded, list):
        errors.append('sample_apps.excluded_namespaces: must be a list of namespaces')
        excluded = []
    for index, name in enumerate(excluded):
        problem = dns1123_label_problem(name)
        if problem:
            errors.append('sample_apps.excluded_namespaces[%d]: %s' % (index, problem))
    if errors:
        raise InputError(errors)
    values.update({'httpbin_port': port, 'replicas': replicas, 'wait_timeout': timeout,
                   'excluded_namespaces': list(excluded)})
    return values


def image_ref(settings: Dict[str, Any], image: str) -> str:
    return '%s/%s' % (settings['registry'], image) if settings['registry'] else image


def sample_namespaces(part: Dict[str, Any], settings: Dict[str, Any]) -> Tuple[List[str], List[str], List[str]]:
    """``(sleep namespaces, namespaces of exported services, skipped namespaces)`` of one cluster."""
    excluded = set(settings['excluded_namespaces'])
    sleep = [ns for ns in part['consumer_namespaces'] if ns not in excluded]
    exports = sorted({s['namespace'] for s in part['exports'] if s['namespace'] not in excluded})
    wanted = set(part['consumer_namespaces']) | {s['namespace'] for s in part['exports']}
    skipped = sorted(wanted & excluded)
    return sleep, exports, skipped


def _meta(name: str, namespace: Optional[str], labels: Dict[str, str]) -> Dict[str, Any]:
    meta: Dict[str, Any] = {'name': name, 'labels': labels}
    if namespace:
        meta['namespace'] = namespace
    return meta


def namespace_objects(namespaces: Sequence[str], existing: Dict[str, Optional[Dict[str, Any]]], mesh: str,
                      inject: Sequence[str] = ()) -> Tuple[List[Desired], List[str]]:
    """Namespaces to create or label, and messages about namespaces that are not ours.

    ``existing``: name -> the Namespace as read (None when absent). ``inject``: namespaces that get
    ``istio-injection=enabled`` (those with sample apps).
    """
    desired: List[Desired] = []
    messages: List[str] = []
    for name in sorted(set(namespaces)):
        current = existing.get(name)
        labels = {INJECTION_LABEL: 'enabled'} if name in inject else {}
        if is_access_object(current):
            # Provisioned by the access playbook: its labels stay the administrator's.
            if labels:
                desired.append(Desired({'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': _meta(name, None, labels)},
                                       compare='labels', owned=False))
            continue
        if current is None or is_ours(current, mesh):
            labels.update(ownership_labels(mesh, NAMESPACE))
            desired.append(Desired({'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': _meta(name, None, labels)},
                                   compare='labels'))
            continue
        if labels:
            have = ((current.get('metadata') or {}).get('labels') or {}).get(INJECTION_LABEL)
            if have != 'enabled':
                messages.append('namespace %s exists and is not this mesh\'s: label %s=enabled added for the sample '
                                'apps (it stays after teardown; the namespace is never deleted)'
                                % (name, INJECTION_LABEL))
            desired.append(Desired({'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': _meta(name, None, labels)},
                                   compare='labels', owned=False))
    return desired, messages


def _deployment(name: str, namespace: str, labels: Dict[str, str], pod_labels: Dict[str, str], replicas: int,
                pod_spec: Dict[str, Any]) -> Dict[str, Any]:
    return {
        'apiVersion': 'apps/v1', 'kind': 'Deployment',
        'metadata': _meta(name, namespace, labels),
        'spec': {'replicas': replicas, 'selector': {'matchLabels': dict(pod_labels)},
                 'template': {'metadata': {'labels': dict(pod_labels)}, 'spec': pod_spec}},
    }


def sleep_objects(namespace: str, settings: Dict[str, Any], mesh: str) -> List[Dict[str, Any]]:
    labels = dict(ownership_labels(mesh, SAMPLE_APPS), app='sleep')
    pod_spec = {
        'terminationGracePeriodSeconds': 0,
        'serviceAccountName': 'sleep',
        'containers': [{'name': 'sleep', 'image': image_ref(settings, settings['sleep_image']),
                        'command': ['/bin/sleep', 'infinity'], 'imagePullPolicy': settings['pull_policy'],
                        'volumeMounts': [{'mountPath': '/etc/sleep/tls', 'name': 'secret-volume'}]}],
        'volumes': [{'name': 'secret-volume', 'secret': {'secretName': 'sleep-secret', 'optional': True}}],
    }
    return [
        {'apiVersion': 'v1', 'kind': 'ServiceAccount', 'metadata': _meta('sleep', namespace, labels)},
        {'apiVersion': 'v1', 'kind': 'Service', 'metadata': _meta('sleep', namespace, dict(labels, service='sleep')),
         'spec': {'ports': [{'port': 80, 'name': 'http'}], 'selector': {'app': 'sleep'}}},
        _deployment('sleep', namespace, labels, {'app': 'sleep'}, settings['replicas'], pod_spec),
    ]


def service_port_name(port: Dict[str, Any], single: bool) -> str:
    """Istio's protocol selection by port name: ``http`` for one port, ``<protocol>-<name>`` for several."""
    protocol = str(port['protocol']).lower()
    return protocol if single else '%s-%s' % (protocol, port['name'])


def httpbin_objects(service: Dict[str, Any], settings: Dict[str, Any], mesh: str) -> List[Dict[str, Any]]:
    name, namespace = service['name'], service['namespace']
    labels = dict(ownership_labels(mesh, '%s.%s' % (name, namespace)), app=name)
    ports = [{'name': service_port_name(p, len(service['ports']) == 1), 'port': int(p['number']),
              'targetPort': settings['httpbin_port']} for p in service['ports']]
    objects: List[Dict[str, Any]] = [
        {'apiVersion': 'v1', 'kind': 'ServiceAccount', 'metadata': _meta(name, namespace, labels)},
        {'apiVersion': 'v1', 'kind': 'Service', 'metadata': _meta(name, namespace, dict(labels, service=name)),
         'spec': {'ports': ports, 'selector': {'app': name}}},
    ]
    versions = []
    for subset in service.get('subsets') or []:
        pod_labels = {'app': name, 'version': subset['name']}
        pod_labels.update(subset.get('pod_labels') or {})
        versions.append(('%s-%s' % (name, subset['name']), pod_labels))
    if not versions:
        versions.append((name, {'app': name, 'version': 'v1'}))
    for deployment_name, pod_labels in versions:
        pod_spec = {'serviceAccountName': name,
                    'containers': [{'name': 'httpbin', 'image': image_ref(settings, settings['httpbin_image']),
                                    'imagePullPolicy': settings['pull_policy'],
                                    'ports': [{'containerPort': settings['httpbin_port']}]}]}
        objects.append(_deployment(deployment_name, namespace, dict(labels, **pod_labels), pod_labels,
                                   settings['replicas'], pod_spec))
    return objects


def sample_objects(part: Dict[str, Any], settings: Dict[str, Any], mesh: str) -> List[Desired]:
    """Every sample object of one cluster (namespaces are ``namespace_objects``' business)."""
    sleep_namespaces, _export_namespaces, _skipped = sample_namespaces(part, settings)
    excluded = set(settings['excluded_namespaces'])
    objects: List[Dict[str, Any]] = []
    for namespace in sleep_namespaces:
        objects.extend(sleep_objects(namespace, settings, mesh))
    for service in part['exports']:
        if service['namespace'] not in excluded:
            objects.extend(httpbin_objects(service, settings, mesh))
    return [Desired(obj) for obj in objects]


def deployments_ready(deployments: Sequence[Dict[str, Any]], wanted: Sequence[Tuple[str, str]]) -> List[str]:
    """Names (``ns/name``) of the wanted Deployments that are not Available with every replica ready."""
    by_key = {((d.get('metadata') or {}).get('namespace'), (d.get('metadata') or {}).get('name')): d
              for d in deployments}
    waiting = []
    for namespace, name in wanted:
        deployment = by_key.get((namespace, name))
        if deployment is None:
            waiting.append('%s/%s (not found)' % (namespace, name))
            continue
        spec_replicas = (deployment.get('spec') or {}).get('replicas', 1)
        status = deployment.get('status') or {}
        observed = status.get('observedGeneration', 0) >= (deployment.get('metadata') or {}).get('generation', 0)
        if not observed or (status.get('readyReplicas') or 0) < spec_replicas or \
                (status.get('updatedReplicas') or 0) < spec_replicas:
            waiting.append('%s/%s (%s of %s ready)' % (namespace, name, status.get('readyReplicas') or 0, spec_replicas))
    return waiting
