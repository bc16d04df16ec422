"""Unit tests of the data plane's object-based routing (`meshlab.dataplane.routing`): SNI,
ServiceEntry match, VirtualService/DestinationRule lookups, the sidecar and the gateways."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/lab: the `meshlab` package
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the shared objects in test_dataplane

from meshlab.dataplane import routing  # noqa: E402
from meshlab.dataplane.view import RouteError  # noqa: E402
from test_dataplane import REQ, _dr, _vs, consumer_objects, seed_se, source_objects, view  # noqa: E402


@pytest.mark.parametrize("port, subset, host, sni", [
    (8000, "", "httpbin.bar.global", "outbound_.8000_._.httpbin.bar.global"),
    (8000, None, "httpbin.bar.global", "outbound_.8000_._.httpbin.bar.global"),
    (8000, "v1", "httpbin.bar.global", "outbound_.8000_.v1_.httpbin.bar.global"),
    (80, "beta", "httpbin.bar.svc.cluster.local", "outbound_.80_.beta_.httpbin.bar.svc.cluster.local"),
])
def test_sni_build_and_parse(port, subset, host, sni):
    assert routing.build_sni(port, subset, host) == sni
    parsed = routing.parse_sni(sni)
    assert (parsed.direction, parsed.port, parsed.subset, parsed.host) == ("outbound", port, subset or "", host)


@pytest.mark.parametrize("sni", ["", "httpbin.bar.global", "outbound_.x_._.a.global", "outbound_.8000_.a"])
def test_sni_parse_rejects(sni):
    assert routing.parse_sni(sni) is None


def test_se_match_by_address_and_port():
    v = view(1, consumer_objects())
    se, port = routing.match_service_entry(v, "240.0.0.2", 8000)
    assert se["metadata"]["name"] == "httpbin-bar" and port["name"] == "http1"
    assert routing.match_service_entry(v, "240.0.0.2", 8001) is None
    assert routing.match_service_entry(v, "240.0.0.3", 8000) is None


def test_se_match_cidr_address():
    se = seed_se(vip="240.0.1.0/24")
    v = view(1, consumer_objects(se=se))
    assert routing.match_service_entry(v, "240.0.1.77", 8000) is not None


def test_choose_destination():
    objs = consumer_objects()
    v = view(1, objs)
    assert routing.choose_destination(v, "httpbin.bar.global", REQ, "r")[0] is None
    objs["virtualservices"] = [_vs("httpbin.bar.global", [
        {"match": [{"uri": {"prefix": "/headers"}}], "route": [{"destination": {"host": "httpbin.bar.global",
                                                                                "subset": "v2"}}]},
        {"route": [{"destination": {"host": "httpbin.bar.global", "subset": "v1"}}]}])]
    v = view(1, objs)
    assert routing.choose_destination(v, "httpbin.bar.global", REQ, "r")[0]["subset"] == "v1"
    assert routing.choose_destination(v, "httpbin.bar.global", dict(REQ, path="/headers"), "r")[0]["subset"] == "v2"


def test_choose_destination_weights_and_gateway_binding():
    objs = consumer_objects()
    objs["virtualservices"] = [_vs("httpbin.bar.global", [{"route": [
        {"destination": {"host": "httpbin.bar.global", "subset": "v1"}, "weight": 0},
        {"destination": {"host": "httpbin.bar.global", "subset": "v2"}, "weight": 100}]}])]
    assert routing.choose_destination(view(1, objs), "httpbin.bar.global", REQ, "any")[0]["subset"] == "v2"
    objs["virtualservices"][0]["spec"]["gateways"] = ["istio-system/some-gateway"]
    assert routing.choose_destination(view(1, objs), "httpbin.bar.global", REQ, "any")[0] is None


def test_no_matching_route_is_404():
    objs = consumer_objects()
    objs["virtualservices"] = [_vs("httpbin.bar.global", [
        {"match": [{"uri": {"exact": "/only"}}], "route": [{"destination": {"host": "httpbin.bar.global"}}]}])]
    with pytest.raises(RouteError) as e:
        routing.choose_destination(view(1, objs), "httpbin.bar.global", REQ, "r")
    assert e.value.status == 404


@pytest.mark.parametrize("labels, networks, expected", [
    (None, None, ["gw"]),
    (None, {"external"}, ["remote"]),
    ({"version": "beta"}, None, []),
    (None, {"external", "other"}, ["remote", "other"]),
])
def test_filter_endpoints_network_view_and_labels(labels, networks, expected):
    eps = [{"address": "remote", "network": "external", "labels": {"version": "beta"}},
           {"address": "gw"}, {"address": "other", "network": "other"}]
    assert [e["address"] for e in routing.filter_endpoints(eps, labels, networks)] == expected


def test_find_destination_rule_prefers_exact_host():
    objs = consumer_objects()
    objs["destinationrules"].append(_dr("httpbin.bar.global", [("v1", {"version": "v1"})]))
    v = view(1, objs)
    assert routing.find_destination_rule(v, "httpbin.bar.global")["metadata"]["name"] == "dr"
    assert routing.find_destination_rule(v, "other.baz.global")["metadata"]["name"] == \
        "istio-multicluster-destinationrule"
    objs["destinationrules"].append(_dr("httpbin", [("v1", {"version": "v1"})], ns="bar", name="local"))
    assert routing.find_destination_rule(view(1, objs), "httpbin.bar.svc.cluster.local")["metadata"]["name"] == "local"


@pytest.mark.parametrize("pattern, host, ok", [
    ("*.global", "httpbin.bar.global", True), ("*", "x.y", True), ("*.global", "global", False),
    ("httpbin.bar.global", "HTTPBIN.bar.global", True), ("*.bar.global", "httpbin.baz.global", False),
])
def test_host_matches(pattern, host, ok):
    assert routing.host_matches(pattern, host) is ok


def test_sidecar_seed_plan_goes_to_the_remote_gateway():
    plan = routing.plan_sidecar(view(1, consumer_objects()), "httpbin.bar.global", 8000, REQ, "rid-1", {})
    assert plan.sni == "outbound_.8000_._.httpbin.bar.global"
    assert [(t.address, t.port) for t in plan.targets] == [("127.100.2.1", 15443)]


def test_sidecar_without_istio_mutual_sends_plain_text():
    objs = consumer_objects()
    objs["destinationrules"] = []
    plan = routing.plan_sidecar(view(1, objs), "httpbin.bar.global", 8000, REQ, "r", {})
    assert plan.sni is None


def test_sidecar_node_port_endpoint():
    se = seed_se(address="127.50.2.1", port=31443)
    plan = routing.plan_sidecar(view(1, consumer_objects(se=se)), "httpbin.bar.global", 8000, REQ, "r", {})
    assert [(t.address, t.port) for t in plan.targets] == [("127.50.2.1", 31443)]


def test_sidecar_hostname_endpoint_via_lab_resolver():
    name = "istio-ingressgateway.istio-system.cluster2.lab.meshlink.test"
    se = seed_se(address=name)
    plan = routing.plan_sidecar(view(1, consumer_objects(se=se)), "httpbin.bar.global", 8000, REQ, "r",
                              {name: "127.100.2.1"})
    assert [(t.address, t.port) for t in plan.targets] == [("127.100.2.1", 15443)]
    with pytest.raises(RouteError) as e:
        routing.plan_sidecar(view(1, consumer_objects(se=se)), "httpbin.bar.global", 8000, REQ, "r", {})
    assert e.value.kind == "no-endpoints" and e.value.status == 503


def test_sidecar_egress_variant_goes_to_the_egress_gateway_pod():
    se = seed_se(endpoints=[
        {"address": "127.100.2.1", "network": "external", "ports": {"http1": 15443}},
        {"address": "istio-egressgateway.istio-system.svc.cluster.local", "ports": {"http1": 15443}}])
    plan = routing.plan_sidecar(view(1, consumer_objects(se=se)), "httpbin.bar.global", 8000, REQ, "r", {})
    assert [(t.address, t.port, t.pod) for t in plan.targets] == [
        ("198.18.1.11", 15443, "istio-system/istio-egressgateway-bbb")]
    assert plan.sni == "outbound_.8000_._.httpbin.bar.global"


def test_sidecar_egress_cluster_ip_endpoint_static():
    se = seed_se(endpoints=[
        {"address": "127.100.2.1", "network": "external", "ports": {"http1": 15443}},
        {"address": "198.19.1.11", "ports": {"http1": 15443}}])
    plan = routing.plan_sidecar(view(1, consumer_objects(se=se)), "httpbin.bar.global", 8000, REQ, "r", {})
    assert [(t.address, t.port) for t in plan.targets] == [("198.18.1.11", 15443)]


def test_sidecar_only_external_endpoint_is_invisible():
    se = seed_se(endpoints=[{"address": "127.100.2.1", "network": "external", "ports": {"http1": 15443}}])
    with pytest.raises(RouteError) as e:
        routing.plan_sidecar(view(1, consumer_objects(se=se)), "httpbin.bar.global", 8000, REQ, "r", {})
    assert e.value.kind == "no-endpoints"


@pytest.mark.parametrize("version, ok", [("1.2.10", True), ("1.3.0", False), ("1.7.8", False)])
def test_sidecar_loopback_vip(version, ok):
    v = view(1, consumer_objects(se=seed_se(vip="127.255.0.2"), version=version))
    if ok:
        assert routing.plan_sidecar(v, "httpbin.bar.global", 8000, REQ, "r", {}).targets
    else:
        with pytest.raises(RouteError) as e:
            routing.plan_sidecar(v, "httpbin.bar.global", 8000, REQ, "r", {})
        assert e.value.kind == "loopback-vip" and "17261" in e.value.message


def test_sidecar_wrong_port_is_not_routed():
    with pytest.raises(RouteError) as e:
        routing.plan_sidecar(view(1, consumer_objects()), "httpbin.bar.global", 8080, REQ, "r", {})
    assert e.value.kind == "no-route" and e.value.status is None


def test_sidecar_versioned_routing():
    se = seed_se(endpoints=[
        {"address": "127.100.2.1", "labels": {"version": "v1"}, "ports": {"http1": 15443}},
        {"address": "127.100.2.1", "labels": {"version": "v2"}, "ports": {"http1": 15443}}])
    objs = consumer_objects(se=se)
    objs["destinationrules"].append(_dr("httpbin.bar.global", [("v1", {"version": "v1"}), ("v2", {"version": "v2"})]))
    objs["virtualservices"] = [_vs("httpbin.bar.global", [
        {"route": [{"destination": {"host": "httpbin.bar.global", "subset": "v2"}}]}])]
    plan = routing.plan_sidecar(view(1, objs), "httpbin.bar.global", 8000, REQ, "r", {})
    assert plan.sni == "outbound_.8000_.v2_.httpbin.bar.global"
    # the subset's DestinationRule without tls: plain text (the *.global DR no longer applies)
    objs["destinationrules"][-1]["spec"].pop("trafficPolicy")
    assert routing.plan_sidecar(view(1, objs), "httpbin.bar.global", 8000, REQ, "r", {}).sni is None


def test_sidecar_subset_labels_select_endpoints():
    se = seed_se(endpoints=[{"address": "127.100.2.1", "labels": {"version": "beta"}, "ports": {"http1": 15443}}])
    objs = consumer_objects(se=se)
    objs["destinationrules"].append(_dr("httpbin.bar.global", [("v1", {"version": "v1"})]))
    objs["virtualservices"] = [_vs("httpbin.bar.global", [
        {"route": [{"destination": {"host": "httpbin.bar.global", "subset": "v1"}}]}])]
    with pytest.raises(RouteError) as e:
        routing.plan_sidecar(view(1, objs), "httpbin.bar.global", 8000, REQ, "r", {})
    assert e.value.kind == "no-endpoints"


def test_sidecar_undefined_subset_is_503():
    objs = consumer_objects()
    objs["virtualservices"] = [_vs("httpbin.bar.global", [
        {"route": [{"destination": {"host": "httpbin.bar.global", "subset": "v9"}}]}])]
    with pytest.raises(RouteError) as e:
        routing.plan_sidecar(view(1, objs), "httpbin.bar.global", 8000, REQ, "r", {})
    assert e.value.kind == "no-subset" and e.value.status == 503


def test_sidecar_needs_istiod():
    objs = consumer_objects()
    objs["deployments"] = []
    with pytest.raises(RouteError) as e:
        routing.plan_sidecar(view(1, objs), "httpbin.bar.global", 8000, REQ, "r", {})
    assert e.value.status is None


def test_sidecar_local_service():
    plan = routing.plan_sidecar(view(2, source_objects()), "httpbin.bar.svc.cluster.local", 8000, REQ, "r", {})
    assert sorted((t.address, t.port) for t in plan.targets) == [("198.18.2.20", 80), ("198.18.2.21", 80)]
    assert plan.sni == "outbound_.8000_._.httpbin.bar.svc.cluster.local"


def test_sidecar_passthrough_to_lab_external_address_only():
    v = view(1, consumer_objects())
    plan = routing.plan_sidecar(v, "127.100.2.1", 15021, REQ, "r", {})
    assert plan.sni is None and plan.targets[0].address == "127.100.2.1"
    with pytest.raises(RouteError):
        routing.plan_sidecar(v, "240.0.0.99", 8000, REQ, "r", {})


def _ingress_pod(v):
    return v.pod("istio-system", "istio-ingressgateway-aaa")


def test_ingress_routes_global_sni_to_the_service_pods():
    v = view(2, source_objects())
    plan = routing.plan_ingress(v, _ingress_pod(v), 15443, "outbound_.8000_._.httpbin.bar.global")
    assert sorted((t.address, t.port) for t in plan.targets) == [("198.18.2.20", 80), ("198.18.2.21", 80)]
    assert plan.sni == "outbound_.8000_._.httpbin.bar.svc.cluster.local"


def test_ingress_needs_the_auto_passthrough_gateway():
    objs = source_objects()
    objs["gateways"][0]["spec"]["servers"][0]["tls"]["mode"] = "PASSTHROUGH"
    v = view(2, objs)
    with pytest.raises(RouteError) as e:
        routing.plan_ingress(v, _ingress_pod(v), 15443, "outbound_.8000_._.httpbin.bar.global")
    assert e.value.kind == "no-gateway"
    objs = source_objects()
    objs["gateways"][0]["spec"]["selector"] = {"istio": "other"}
    v = view(2, objs)
    with pytest.raises(RouteError):
        routing.plan_ingress(v, _ingress_pod(v), 15443, "outbound_.8000_._.httpbin.bar.global")


@pytest.mark.parametrize("version, flag, ok", [
    ("1.7.8", False, True), ("1.8.6", False, False), ("1.8.6", True, True), ("1.19.0", True, False),
])
def test_ingress_version_gate(version, flag, ok):
    env = {"PILOT_ENABLE_LEGACY_AUTO_PASSTHROUGH": "true"} if flag else None
    v = view(2, source_objects(version=version, istiod_env=env))
    if ok:
        routing.plan_ingress(v, _ingress_pod(v), 15443, "outbound_.8000_._.httpbin.bar.global")
    else:
        with pytest.raises(RouteError) as e:
            routing.plan_ingress(v, _ingress_pod(v), 15443, "outbound_.8000_._.httpbin.bar.global")
        assert e.value.kind == "version"


def test_ingress_subset_uses_the_source_destination_rule():
    objs = source_objects()
    v = view(2, objs)
    plan = routing.plan_ingress(v, _ingress_pod(v), 15443, "outbound_.8000_.v1_.httpbin.bar.global")
    assert len(plan.targets) == 2 and "ignored" in " ".join(plan.detail)  # silently ignored
    objs["destinationrules"].append(_dr("httpbin.bar.svc.cluster.local", [("v1", {"version": "v1"})], ns="bar"))
    v = view(2, objs)
    plan = routing.plan_ingress(v, _ingress_pod(v), 15443, "outbound_.8000_.v1_.httpbin.bar.global")
    assert [t.pod for t in plan.targets] == ["bar/httpbin-v1"]
    assert plan.sni == "outbound_.8000_.v1_.httpbin.bar.svc.cluster.local"
    objs["destinationrules"][-1] = _dr("httpbin", [("v1", {"version": "v2"})], ns="bar")  # short name
    v = view(2, objs)
    plan = routing.plan_ingress(v, _ingress_pod(v), 15443, "outbound_.8000_.v1_.httpbin.bar.global")
    assert [t.pod for t in plan.targets] == ["bar/httpbin-v2"]


def test_ingress_unknown_service_or_port():
    v = view(2, source_objects())
    for sni in ("outbound_.8000_._.nope.bar.global", "outbound_.9000_._.httpbin.bar.global"):
        with pytest.raises(RouteError):
            routing.plan_ingress(v, _ingress_pod(v), 15443, sni)


def test_ingress_skips_unready_endpoints():
    objs = source_objects()
    for ep in objs["endpointslices"][-1]["endpoints"]:
        ep["conditions"]["ready"] = False
    v = view(2, objs)
    with pytest.raises(RouteError) as e:
        routing.plan_ingress(v, _ingress_pod(v), 15443, "outbound_.8000_._.httpbin.bar.global")
    assert e.value.kind == "no-endpoints"


def _egress_se():
    return seed_se(endpoints=[
        {"address": "127.100.2.1", "network": "external", "ports": {"http1": 15443}},
        {"address": "istio-egressgateway.istio-system.svc.cluster.local", "ports": {"http1": 15443}}])


def test_egress_uses_the_external_network_view():
    v = view(1, consumer_objects(se=_egress_se()))
    pod = v.pod("istio-system", "istio-egressgateway-bbb")
    plan = routing.plan_egress(v, pod, "outbound_.8000_._.httpbin.bar.global", {}, "r")
    assert [(t.address, t.port) for t in plan.targets] == [("127.100.2.1", 15443)]
    assert plan.sni == "outbound_.8000_._.httpbin.bar.global"


def test_egress_without_network_view_fails():
    v = view(1, consumer_objects(se=_egress_se(), egress_env={}))
    pod = v.pod("istio-system", "istio-egressgateway-bbb")
    with pytest.raises(RouteError) as e:
        routing.plan_egress(v, pod, "outbound_.8000_._.httpbin.bar.global", {}, "r")
    assert e.value.kind == "network-view"


def test_views_are_not_mutated_by_planning():
    objs = consumer_objects()
    before = copy.deepcopy(objs)
    routing.plan_sidecar(view(1, objs), "httpbin.bar.global", 8000, REQ, "r", {})
    assert objs == before
