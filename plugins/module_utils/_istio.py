# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# PRIVATE to the meshlink.multicluster collection: no compatibility promise, may change or
# disappear in any release. Do not import it from other collections.

"""What the Istio version of a cluster means for the ``.global`` procedure.

The version is read from the image tag of the istiod Deployment (``istio-system``; label
``app=istiod`` or name ``istiod``; before 1.5 the ``istio-pilot`` Deployment with its
``discovery`` container). The rules (DESIGN.md section 1):

- < 1.3: the loopback VIP pool 127.255.0.0/16 of the seed still works (and is the default);
- up to 1.8.5 and 1.9.0-1.9.4: the procedure works as the seed describes;
- 1.8.6+ / 1.9.5+ (CVE-2021-31921): only with ``PILOT_ENABLE_LEGACY_AUTO_PASSTHROUGH=true``
  on istiod (strongly discouraged) and ``ISTIO_META_ROUTER_MODE=sni-dnat`` on the gateways;
- >= 1.19: that flag is gone, the procedure cannot work.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.meshlink.multicluster.plugins.module_utils._names import ISTIO_NAMESPACE

Version = Tuple[int, int, int]

LEGACY_PASSTHROUGH_ENV = 'PILOT_ENABLE_LEGACY_AUTO_PASSTHROUGH'
ROUTER_MODE_ENV = 'ISTIO_META_ROUTER_MODE'
NETWORK_VIEW_ENV = 'ISTIO_META_REQUESTED_NETWORK_VIEW'

_VERSION_IN_TAG = re.compile(r'^v?(\d+)\.(\d+)(?:\.(\d+))?')


def parse_version(image_or_tag: Optional[str]) -> Optional[Version]:
    """``(major, minor, patch)`` from an image reference or a tag; None when it has no version.

    ``docker.io/istio/pilot:1.7.8`` -> (1, 7, 8); ``gcr.io/istio-release/pilot:1.20.3-distroless``
    -> (1, 20, 3); ``localhost:5000/istio/pilot:1.9.5@sha256:...`` -> (1, 9, 5); ``...:latest`` -> None.
    """
    if not image_or_tag:
        return None
    reference = image_or_tag.split('@', 1)[0]
    last_part = reference.rsplit('/', 1)[-1]
    tag = last_part.split(':', 1)[1] if ':' in last_part else (reference if '/' not in reference else '')
    match = _VERSION_IN_TAG.match(tag)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def format_version(version: Optional[Version]) -> Optional[str]:
    return '.'.join(str(part) for part in version) if version else None


def _containers(deployment: Dict[str, Any]) -> List[Dict[str, Any]]:
    return ((((deployment.get('spec') or {}).get('template') or {}).get('spec') or {}).get('containers')) or []


def _labels(deployment: Dict[str, Any]) -> Dict[str, str]:
    return (deployment.get('metadata') or {}).get('labels') or {}


def _name(deployment: Dict[str, Any]) -> str:
    return (deployment.get('metadata') or {}).get('name', '')


def container_env(container: Dict[str, Any]) -> Dict[str, str]:
    """Literal ``env`` values of a container (``valueFrom`` entries are not resolvable here)."""
    return {e['name']: e['value'] for e in container.get('env') or [] if 'name' in e and 'value' in e}


def is_istiod(deployment: Dict[str, Any]) -> bool:
    """istiod (>= 1.5, also revisioned ``istiod-1-7-8``) or the pilot of older installs."""
    labels = _labels(deployment)
    name = _name(deployment)
    return (labels.get('app') in ('istiod', 'pilot') or name == 'istiod' or name.startswith('istiod-')
            or name == 'istio-pilot')


def istiod_container(deployment: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The control plane container: ``discovery`` by name, else the one running a pilot image."""
    containers = _containers(deployment)
    for container in containers:
        if container.get('name') == 'discovery':
            return container
    for container in containers:
        if 'pilot' in (container.get('image') or ''):
            return container
    return containers[0] if len(containers) == 1 else None


def find_istiod(deployments: Sequence[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The control plane among the Deployments of istio-system, or None.

    With several revisions (canary upgrades) the highest version decides: the rules are
    about what the newest control plane will do to the gateways. Returns ``{name, image,
    version, env, revisions}`` where ``revisions`` lists every control plane found.
    """
    found = []
    for deployment in deployments:
        if not is_istiod(deployment):
            continue
        container = istiod_container(deployment)
        if container is None:
            continue
        image = container.get('image') or ''
        found.append({'name': _name(deployment), 'image': image, 'version': parse_version(image),
                      'env': container_env(container)})
    if not found:
        return None
    found.sort(key=lambda item: item['version'] or (0, 0, 0), reverse=True)
    best = dict(found[0])
    best['revisions'] = ['%s (%s)' % (item['name'], format_version(item['version']) or item['image'])
                         for item in found]
    return best


def gateway_deployments(deployments: Sequence[Dict[str, Any]], app: str) -> List[Dict[str, Any]]:
    """Deployments of a gateway (label ``app=<app>``, or the conventional name)."""
    return [d for d in deployments if _labels(d).get('app') == app or _name(d) == app]


def proxy_env(deployment: Dict[str, Any]) -> Dict[str, str]:
    """Environment of the gateway's ``istio-proxy`` container (or its only container)."""
    containers = _containers(deployment)
    for container in containers:
        if container.get('name') == 'istio-proxy':
            return container_env(container)
    return container_env(containers[0]) if len(containers) == 1 else {}


def needs_legacy_passthrough(version: Version) -> bool:
    """True for the releases with the CVE-2021-31921 fix and the legacy flag (1.8.6+, 1.9.5+, < 1.19)."""
    if version >= (1, 19, 0):
        return False
    if (1, 8, 6) <= version < (1, 9, 0):
        return True
    return version >= (1, 9, 5)


def procedure_impossible(version: Version) -> bool:
    """From 1.19 ``PILOT_ENABLE_LEGACY_AUTO_PASSTHROUGH`` is removed: ``.global`` routing cannot work."""
    return version >= (1, 19, 0)


def loopback_pool_ok(version: Optional[Version]) -> bool:
    """127.255.0.0/16 VIPs only work before 1.3 (istio/istio#17261)."""
    return version is not None and version < (1, 3, 0)


def version_findings(version: Optional[Version], istiod_env: Dict[str, str],
                     gateway_envs: Dict[str, Dict[str, str]]) -> List[Dict[str, str]]:
    """The version rule as check results: ``[{status, message, hint}]`` (pass/warn/fail).

    ``gateway_envs``: ingress gateway Deployment name -> proxy environment.
    """
    if version is None:
        return [{'status': 'warn', 'message': 'The istiod version could not be read from its image tag',
                 'hint': 'Check the image of the istiod Deployment in %s; the version rules (1.8.6+/1.9.5+ need '
                         'the legacy AUTO_PASSTHROUGH flag, 1.19+ cannot work) were not applied' % ISTIO_NAMESPACE}]
    text = format_version(version)
    if procedure_impossible(version):
        return [{'status': 'fail',
                 'message': 'istiod %s: the .global multicluster procedure does not work from Istio 1.19 '
                            '(%s was removed)' % (text, LEGACY_PASSTHROUGH_ENV),
                 'hint': "Use Istio's multi-primary / multi-network installation for this cluster, or an "
                         "Istio release below 1.19"}]
    if not needs_legacy_passthrough(version):
        note = ' (127.255.0.0/16 VIPs still work)' if loopback_pool_ok(version) else ''
        return [{'status': 'pass', 'message': 'istiod %s supports the .global procedure%s' % (text, note),
                 'hint': ''}]
    findings = []
    if (istiod_env.get(LEGACY_PASSTHROUGH_ENV) or '').lower() == 'true':
        findings.append({'status': 'warn',
                         'message': 'istiod %s runs with %s=true, which the .global procedure needs since 1.8.6/1.9.5'
                                    % (text, LEGACY_PASSTHROUGH_ENV),
                         'hint': 'The flag re-opens CVE-2021-31921 (Istio strongly discourages it); plan the move '
                                 'to a multi-network installation'})
    else:
        findings.append({'status': 'fail',
                         'message': 'istiod %s lacks %s=true: since 1.8.6/1.9.5 the gateways refuse .global '
                                    'AUTO_PASSTHROUGH routes without it' % (text, LEGACY_PASSTHROUGH_ENV),
                         'hint': 'Set %s=true in the istiod environment (values.pilot.env; discouraged, '
                                 'CVE-2021-31921) or use a multi-network installation' % LEGACY_PASSTHROUGH_ENV})
    if not gateway_envs:
        findings.append({'status': 'warn', 'message': 'No ingress gateway Deployment found to check %s'
                                                      % ROUTER_MODE_ENV,
                         'hint': 'The gateways need %s=sni-dnat with istiod %s' % (ROUTER_MODE_ENV, text)})
    for name, env in sorted(gateway_envs.items()):
        if env.get(ROUTER_MODE_ENV) != 'sni-dnat':
            findings.append({'status': 'fail',
                             'message': 'Gateway Deployment %s/%s has %s=%s, not sni-dnat'
                                        % (ISTIO_NAMESPACE, name, ROUTER_MODE_ENV, env.get(ROUTER_MODE_ENV, '(unset)')),
                             'hint': 'Set %s=sni-dnat in the gateway environment (values.gateways.'
                                     'istio-ingressgateway.env)' % ROUTER_MODE_ENV})
    return findings


def default_pool_for(version: Optional[Version]) -> str:
    """Default VIP pool: 127.255.0.0/16 before Istio 1.3, 240.0.0.0/16 otherwise (or when unknown)."""
    return '127.255.0.0/16' if loopback_pool_ok(version) else '240.0.0.0/16'
