"""The lab's own pure logic: per-cluster settings and the objects each Istio version gets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meshlab import cluster, manifests  # noqa: E402

NAMES = ["cluster1", "cluster2", "cluster3"]


@pytest.mark.parametrize("value,expected", [
    ("", {"cluster1": "ip", "cluster2": "ip", "cluster3": "ip"}),
    ("hostname", {"cluster1": "hostname", "cluster2": "hostname", "cluster3": "hostname"}),
    ("cluster2=none", {"cluster1": "ip", "cluster2": "none", "cluster3": "ip"}),
    ("hostname,cluster3=none", {"cluster1": "hostname", "cluster2": "hostname", "cluster3": "none"}),
    ("cluster3=none,hostname", {"cluster1": "hostname", "cluster2": "hostname", "cluster3": "none"}),
])
def test_per_cluster_settings(value, expected):
    assert cluster.parse_per_cluster(value, NAMES, "ip", "LAB_LB") == expected


def test_per_cluster_settings_reject_unknown_cluster():
    with pytest.raises(SystemExit, match="unknown cluster 'cluster9'"):
        cluster.parse_per_cluster("cluster9=ip", NAMES, "ip", "LAB_LB")


@pytest.mark.parametrize("version,served", [
    ("1.4.6", {"v1alpha3"}),
    ("1.7.8", {"v1alpha3", "v1beta1"}),
    ("1.22.0", {"v1alpha3", "v1beta1", "v1"}),
])
def test_served_networking_versions(version, served):
    assert manifests.served_networking_versions(version) == served


@pytest.mark.parametrize("version,legacy", [
    ("1.7.8", False), ("1.8.5", False), ("1.8.6", True), ("1.9.4", False), ("1.9.5", True),
    ("1.18.2", True),
])
def test_legacy_flag_versions(version, legacy):
    assert manifests.needs_legacy_flag(version) is legacy


def _by_kind(objs):
    return {(o["kind"], o["metadata"]["name"]) for o in objs}


def test_before_you_begin_has_every_piece_of_the_seed():
    objs = manifests.before_you_begin(2, "1.7.8", set())
    kinds = _by_kind(objs)
    for piece in [("Deployment", "istiod"), ("Service", "istio-ingressgateway"),
                  ("Service", "istio-egressgateway"), ("Gateway", "istio-multicluster-ingressgateway"),
                  ("DestinationRule", "istio-multicluster-destinationrule"), ("Service", "istiocoredns")]:
        assert piece in kinds
    ingress = next(o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == "istio-ingressgateway")
    assert {"name": "tls", "port": 15443, "targetPort": 15443} in ingress["spec"]["ports"]
    assert ingress["spec"]["type"] == "LoadBalancer"
    coredns = next(o for o in objs if o["metadata"]["name"] == "coredns")
    assert "global:53" in coredns["data"]["Corefile"] and "198.19.2.53" in coredns["data"]["Corefile"]
    istiod = next(o for o in objs if o["metadata"]["name"] == "istiod")
    assert istiod["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.7.8")


def test_dns_after_1_8_is_the_sidecar_dns_proxy():
    objs = manifests.before_you_begin(1, "1.9.5", set())
    mesh = next(o for o in objs if o["metadata"]["name"] == "istio")["data"]["mesh"]
    assert 'ISTIO_META_DNS_CAPTURE: "true"' in mesh
    assert "global:53" not in next(o for o in objs if o["metadata"]["name"] == "coredns")["data"]["Corefile"]
    istiod = next(o for o in objs if o["metadata"]["name"] == "istiod")
    env = istiod["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "PILOT_ENABLE_LEGACY_AUTO_PASSTHROUGH", "value": "true"} in env


@pytest.mark.parametrize("item,gone", [
    ("gateway", ("Gateway", "istio-multicluster-ingressgateway")),
    ("destinationrule", ("DestinationRule", "istio-multicluster-destinationrule")),
    ("ingressgateway", ("Service", "istio-ingressgateway")),
    ("egressgateway", ("Deployment", "istio-egressgateway")),
    ("dns", ("Service", "istiocoredns")),
])
def test_without_leaves_a_piece_out(item, gone):
    assert gone in _by_kind(manifests.before_you_begin(1, "1.7.8", set()))
    assert gone not in _by_kind(manifests.before_you_begin(1, "1.7.8", {item}))


def test_without_rejects_unknown_items():
    with pytest.raises(ValueError, match="unknown LAB_WITHOUT"):
        manifests.before_you_begin(1, "1.7.8", {"dnss"})


def test_crds_keep_storage_version_served():
    crd = {"kind": "CustomResourceDefinition", "metadata": {"name": "serviceentries.networking.istio.io"},
           "spec": {"group": "networking.istio.io", "versions": [
               {"name": "v1", "served": True, "storage": False},
               {"name": "v1alpha3", "served": True, "storage": False},
               {"name": "v1beta1", "served": True, "storage": True}]}}
    out = manifests.istio_crds_for_version([crd], "1.4.0")[0]
    assert {v["name"]: v["served"] for v in out["spec"]["versions"]} == {
        "v1": False, "v1alpha3": True, "v1beta1": True}
