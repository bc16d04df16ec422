"""Unit tests of the lab's load balancer controller and listeners (`meshlab.dataplane.lbcontroller`)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/lab: the `meshlab` package
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared objects in test_dataplane

from meshlab.dataplane import lbcontroller  # noqa: E402
from meshlab.dataplane.view import ClusterView  # noqa: E402
from test_dataplane import GW_PORTS, cluster_cfg, service, source_objects, view  # noqa: E402


def test_assign_lb_slots_stable_ingress_first():
    slots = lbcontroller.assign_lb_slots(
        {}, ["bar/web", "istio-system/istio-ingressgateway", "istio-system/istio-egressgateway"])
    assert slots["istio-system/istio-ingressgateway"] == 1
    assert sorted(slots.values()) == [1, 2, 3]
    again = lbcontroller.assign_lb_slots(slots, ["istio-system/istio-egressgateway"])
    assert again == slots
    later = lbcontroller.assign_lb_slots({"bar/web": 2}, ["istio-system/istio-ingressgateway", "x/y"])
    assert later == {"bar/web": 2, "istio-system/istio-ingressgateway": 1, "x/y": 3}
    assert lbcontroller.assign_lb_slots({}, ["a/b"]) == {"a/b": 2}  # 1 stays the ingress gateway's


def test_desired_lb_ingress_modes():
    svc = service("istio-system", "istio-ingressgateway", GW_PORTS, "198.19.2.10", "LoadBalancer")
    assert lbcontroller.desired_lb_ingress(cluster_cfg(2), svc, 1) == [{"ip": "127.100.2.1", "ipMode": "VIP"}]
    assert lbcontroller.desired_lb_ingress(cluster_cfg(2, "hostname"), svc, 1) == [
        {"hostname": "istio-ingressgateway.istio-system.cluster2.lab.meshlink.test"}]
    assert lbcontroller.desired_lb_ingress(cluster_cfg(2, "none"), svc, 1) is None
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "127.100.2.1", "ipMode": "VIP"}]}}
    assert lbcontroller.desired_lb_ingress(cluster_cfg(2, "none"), svc, 1) == []  # taken back: pending again
    svc["status"] = {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}}
    assert lbcontroller.desired_lb_ingress(cluster_cfg(2, "none"), svc, 1) is None  # not the lab's: left alone
    assert lbcontroller.lab_hosts_for(cluster_cfg(2, "hostname"), {"istio-system/istio-ingressgateway": 1}) == {
        "istio-ingressgateway.istio-system.cluster2.lab.meshlink.test": "127.100.2.1",
        "gateway.cluster2.lab.meshlink.test": "127.100.2.1"}
    assert lbcontroller.lab_hosts_for(cluster_cfg(2, "ip"), {"istio-system/istio-ingressgateway": 1}) == {}


def test_desired_listeners():
    v = view(2, source_objects())
    slots = {"istio-system/istio-ingressgateway": 1, "istio-system/istio-egressgateway": 2}
    lst = lbcontroller.desired_listeners(v, slots)
    assert lst[("127.60.2.1", 15001)] == ("sidecar", "cluster2")
    assert lst[("127.100.2.1", 15443)] == ("lb", "cluster2", "istio-system", "istio-ingressgateway", 15443)
    assert lst[("127.50.2.1", 31443)] == ("nodeport", "cluster2", "istio-system", "istio-ingressgateway", 15443)
    assert lst[("127.18.2.10", 15443)] == ("ingress-gateway", "cluster2", "istio-system", "istio-ingressgateway-aaa")
    assert lst[("127.18.2.11", 15443)][0] == "egress-gateway"
    assert lst[("127.18.2.10", 15021)] == ("status-port", "cluster2", "istio-system", "istio-ingressgateway-aaa",
                                           "ingress-gateway")
    none = lbcontroller.desired_listeners(ClusterView(cluster_cfg(2, "none"), source_objects()), slots)
    assert not [k for k in none if k[0].startswith("127.100.")]
    assert ("127.50.2.1", 31443) in none


def test_external_ips_are_served_when_loopback():
    objs = source_objects()
    objs["services"][-1]["spec"]["externalIPs"] = ["127.101.2.9", "10.0.0.9", "127.255.0.1"]
    lst = lbcontroller.desired_listeners(view(2, objs), {})
    assert lst[("127.101.2.9", 8000)] == ("lb", "cluster2", "bar", "httpbin", 8000)
    assert not [k for k in lst if k[0] in ("10.0.0.9", "127.255.0.1")]
