# -*- coding: utf-8 -*-
# Copyright: (c) 2026, Meshlink contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Clusters ready for the ``.global`` procedure, as FakeClusters, and the setup run over them.

Shared by the end-to-end unit tests of cluster_inspect, cluster_reconcile and cluster_teardown
(test_inspect.py, test_setup.py, test_teardown.py): ``istio_cluster`` holds what the lab's
manifests install (istiod 1.7.8, the ingress gateway with a load balancer address, the
``*.global`` Gateway and DestinationRule, CoreDNS forwarding ``global``), so every preflight
check passes; ``run_setup`` does what the role's setup entry point does, per cluster: inspect
every cluster, then reconcile each with the gateway addresses the inspections found.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.meshlink.multicluster.plugins.module_utils._inspect import inspect_cluster
from ansible_collections.meshlink.multicluster.plugins.module_utils._ownership import ownership_labels
from ansible_collections.meshlink.multicluster.plugins.module_utils._setup import reconcile_cluster
from ansible_collections.meshlink.multicluster.plugins.plugin_utils._cluster_action import source_gateways
from meshlink_fakes import FakeCluster

COREFILE = """.:53 {
    kubernetes cluster.local in-addr.arpa ip6.arpa
    forward . /etc/resolv.conf
}
global:53 {
    forward . 10.96.0.77:53
}
"""
GATEWAY_IPS = {'cluster1': '192.0.2.11', 'cluster2': '192.0.2.10', 'cluster3': '192.0.2.13'}
NO_WAIT = {'wait': False}


def istio_cluster(name: str, extra: Optional[List[Tuple[str, Dict[str, Any]]]] = None,
                  version: str = '1.7.8') -> FakeCluster:
    """A cluster every preflight check passes on, with its gateway at ``GATEWAY_IPS[name]``."""
    system = 'istio-system'
    objects = [
        ('namespaces', {'metadata': {'name': system}}),
        ('deployments', {'metadata': {'name': 'istiod', 'namespace': system, 'labels': {'app': 'istiod'}},
                         'spec': {'template': {'spec': {'containers': [
                             {'name': 'discovery', 'image': 'docker.io/istio/pilot:%s' % version}]}}}}),
        ('deployments', {'metadata': {'name': 'istio-ingressgateway', 'namespace': system,
                                      'labels': {'app': 'istio-ingressgateway'}},
                         'spec': {'template': {'spec': {'containers': [
                             {'name': 'istio-proxy', 'env': [{'name': 'ISTIO_META_ROUTER_MODE',
                                                              'value': 'sni-dnat'}]}]}}}}),
        ('services', {'metadata': {'name': 'istio-ingressgateway', 'namespace': system,
                                   'labels': {'app': 'istio-ingressgateway'}},
                      'spec': {'type': 'LoadBalancer', 'ports': [{'name': 'http2', 'port': 80},
                                                                 {'name': 'tls', 'port': 15443}]},
                      'status': {'loadBalancer': {'ingress': [{'ip': GATEWAY_IPS[name]}]}}}),
        ('gateways', {'metadata': {'name': 'istio-multicluster-ingressgateway', 'namespace': system},
                      'spec': {'servers': [{'hosts': ['*.global'], 'port': {'number': 15443, 'name': 'tls',
                                                                            'protocol': 'TLS'},
                                            'tls': {'mode': 'AUTO_PASSTHROUGH'}}]}}),
        ('destinationrules', {'metadata': {'name': 'istio-multicluster-destinationrule', 'namespace': system},
                              'spec': {'host': '*.global', 'trafficPolicy': {'tls': {'mode': 'ISTIO_MUTUAL'}}}}),
        ('configmaps', {'metadata': {'name': 'coredns', 'namespace': 'kube-system'}, 'data': {'Corefile': COREFILE}}),
    ]
    return FakeCluster(objects=objects + list(extra or []), context='ctx-%s' % name)


def user_object(plural: str, name: str, namespace: Optional[str], **spec: Any) -> Tuple[str, Dict[str, Any]]:
    """An object a user made (no meshlink labels)."""
    metadata: Dict[str, Any] = {'name': name, 'labels': {'team': 'payments'}}
    if namespace:
        metadata['namespace'] = namespace
    return plural, {'metadata': metadata, 'spec': dict(spec)}


def mesh_object(plural: str, name: str, namespace: Optional[str], mesh: str, part: Optional[str],
                **spec: Any) -> Tuple[str, Dict[str, Any]]:
    """An object made by meshlink for ``mesh``."""
    plural, obj = user_object(plural, name, namespace, **spec)
    obj['metadata']['labels'] = ownership_labels(mesh, part)
    return plural, obj


def run_setup(clusters: Dict[str, FakeCluster], plan: Dict[str, Any], sample_apps: Optional[Dict[str, Any]] = None,
              vip: Optional[Dict[str, Any]] = None, overrides: Optional[Dict[str, Any]] = None,
              **reconcile_options: Any) -> Tuple[Dict[str, Dict[str, Any]], Dict[str, Dict[str, Any]]]:
    """``(inspections, reconciles)`` of every cluster, as the setup entry point runs them.

    Stops with AssertionError when an inspection fails (the role stops there too).
    """
    inspections = {name: inspect_cluster(cluster, plan, name, vip=vip, sample_apps=sample_apps)
                   for name, cluster in clusters.items()}
    for result in inspections.values():
        assert not result.get('failed'), result.get('msg')
    results = {}
    for name, cluster in clusters.items():
        gateways = source_gateways(plan, name, inspections.get, overrides)
        results[name] = reconcile_cluster(cluster, plan, name, inspections[name]['state'], gateways=gateways,
                                          vip=vip, sample_apps=sample_apps, **reconcile_options)
    return inspections, results
