"""The lab's "current Istio" side, pure: settings, objects, CA files, istiod command and ports."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meshlab import ca, cluster, istiod, manifests  # noqa: E402

LAB_ENV = ("LAB_CLUSTERS", "LAB_LB", "LAB_ISTIO_VERSION", "LAB_WITHOUT", "LAB_INDEX_BASE", "LAB_ISTIO_ROLE",
           "LAB_NETWORK", "LAB_MESH_ID")


@pytest.fixture
def env(monkeypatch):
    for name in LAB_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _config(tmp_path, env, **settings):
    for key, value in settings.items():
        env.setenv(key, value)
    return cluster.desired_config(tmp_path)


# ---------------------------------------------------------------- settings

@pytest.mark.parametrize("text,expected", [
    ("primary", ("primary", "cluster2")),
    ("remote:cluster1", ("remote", "cluster1")),
])
def test_parse_role(text, expected):
    assert cluster.parse_role(text, "cluster2") == expected


@pytest.mark.parametrize("text", ["remote", "remote:", "secondary", ""])
def test_parse_role_rejects(text):
    with pytest.raises(SystemExit, match="LAB_ISTIO_ROLE"):
        cluster.parse_role(text, "cluster2")


def test_defaults_are_seed_primaries_with_own_networks(tmp_path, env):
    config = _config(tmp_path, env)
    assert config["mesh_id"] == "mesh1" and config["validator_cluster"] == "cluster1"
    for n, c in enumerate(config["clusters"], start=1):
        assert c["flavour"] == "seed" and c["istio_role"] == "primary" and c["control_plane"] == c["name"]
        assert c["network"] == f"network{n}" and c["mesh_id"] == "mesh1"
        assert c["validated_by"] == "validator" and c["istiod"] is None


def test_current_primary_remote_and_seed(tmp_path, env):
    config = _config(tmp_path, env, LAB_CLUSTERS="3", LAB_ISTIO_VERSION="1.26.0,cluster3=1.7.8",
                     LAB_ISTIO_ROLE="cluster2=remote:cluster1", LAB_NETWORK="cluster2=west",
                     LAB_MESH_ID="lab-mesh", LAB_INDEX_BASE="30")
    c1, c2, c3 = config["clusters"]
    assert (c1["flavour"], c1["istio_role"], c1["control_plane"], c1["network"]) == (
        "current", "primary", "cluster1", "network1")
    assert (c2["flavour"], c2["istio_role"], c2["control_plane"], c2["network"]) == (
        "current", "remote", "cluster1", "west")
    assert c3["flavour"] == "seed" and config["validator_cluster"] == "cluster3"
    assert {c["mesh_id"] for c in config["clusters"]} == {"lab-mesh"}
    assert c1["validated_by"] == c2["validated_by"] == "cluster1" and c3["validated_by"] == "validator"
    assert c1["istiod"] == c2["istiod"] == str(tmp_path / "istiod" / "cluster1.json")
    wanted = cluster.wanted_istiods(config)
    assert set(wanted) == {"cluster1", "validator"}
    assert wanted["cluster1"]["external"] is True and wanted["cluster1"]["index"] == 31
    assert wanted["validator"] == {"cluster": "cluster3", "index": 33, "validator": True, "external": False,
                                   "stands_for": "", "ca": "shared-root"}


def test_settings_are_remembered(tmp_path, env):
    first = _config(tmp_path, env, LAB_ISTIO_VERSION="1.26.0", LAB_ISTIO_ROLE="cluster2=remote:cluster1",
                    LAB_NETWORK="cluster1=east", LAB_MESH_ID="m2")
    (tmp_path / "clusters.json").write_text(json.dumps(first), encoding="utf-8")
    for name in LAB_ENV:
        env.delenv(name, raising=False)
    again = cluster.desired_config(tmp_path)
    keys = ("istio_version", "flavour", "istio_role", "control_plane", "network", "mesh_id")
    assert [{k: c[k] for k in keys} for c in again["clusters"]] == [{k: c[k] for k in keys} for c in first["clusters"]]


@pytest.mark.parametrize("settings,message", [
    ({"LAB_ISTIO_ROLE": "cluster2=remote:cluster1"}, "only current clusters"),
    ({"LAB_ISTIO_VERSION": "1.26.0", "LAB_ISTIO_ROLE": "cluster2=remote:cluster2"}, "names no other"),
    ({"LAB_ISTIO_VERSION": "1.26.0", "LAB_ISTIO_ROLE": "cluster2=remote:cluster9"}, "unknown cluster|names no other"),
    ({"LAB_ISTIO_VERSION": "1.26.0,cluster1=1.7.8", "LAB_ISTIO_ROLE": "cluster2=remote:cluster1"}, "current primary"),
    ({"LAB_CLUSTERS": "3", "LAB_ISTIO_VERSION": "1.26.0",
      "LAB_ISTIO_ROLE": "cluster2=remote:cluster1,cluster3=remote:cluster2"}, "current primary"),
    ({"LAB_NETWORK": "cluster1=bad net"}, "not a valid label value"),
    ({"LAB_MESH_ID": "-mesh"}, "not a valid label value"),
])
def test_bad_topologies_are_refused(tmp_path, env, settings, message):
    with pytest.raises(SystemExit, match=message):
        _config(tmp_path, env, **settings)


# ---------------------------------------------------------------- objects of a current cluster

def _cluster(**over):
    c = {"name": "cluster1", "index": 31, "istio_version": "1.26.0", "without": [], "flavour": "current",
         "istio_role": "primary", "control_plane": "cluster1", "network": "network1", "mesh_id": "mesh1"}
    c.update(over)
    return c


def _get(objs, kind, name):
    return next((o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name), None)


def _env(deployment):
    return {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_current_primary_has_what_istioctl_leaves():
    objs = manifests.current_istio(_cluster())
    ns = _get(objs, "Namespace", "istio-system")
    assert manifests.NETWORK_LABEL not in ns["metadata"]["labels"]  # the collection's setup writes it
    assert "annotations" not in ns["metadata"]
    istiod_dep = _get(objs, "Deployment", "istiod")
    container = istiod_dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "docker.io/istio/pilot:1.26.0"
    assert _env(istiod_dep)["CLUSTER_ID"] == "cluster1" and "EXTERNAL_ISTIOD" not in _env(istiod_dep)
    assert istiod_dep["metadata"]["labels"] == {**manifests.LAB_LABEL, "app": "istiod", "istio": "pilot",
                                                "istio.io/rev": "default"}
    pod_labels = istiod_dep["spec"]["template"]["metadata"]["labels"]
    assert pod_labels[manifests.NETWORK_LABEL] == "network1" and pod_labels["istio.io/rev"] == "default"
    svc = _get(objs, "Service", "istiod")
    assert {(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]} == {
        ("grpc-xds", 15010, 15010), ("https-dns", 15012, 15012), ("https-webhook", 443, 15017),
        ("http-monitoring", 15014, 15014)}
    # not created: what setup writes, and the seed's `.global` pieces
    for kind, name in [("Gateway", "cross-network-gateway"), ("Gateway", "istio-multicluster-ingressgateway"),
                       ("DestinationRule", "istio-multicluster-destinationrule"), ("Service", "istiocoredns"),
                       ("Deployment", "istio-egressgateway")]:
        assert _get(objs, kind, name) is None
    assert not [o for o in objs if o["kind"] in ("Secret", "ServiceAccount")]


def test_mesh_config():
    mesh = yaml.safe_load(_get(manifests.current_istio(_cluster(mesh_id="m9")), "ConfigMap", "istio")["data"]["mesh"])
    assert mesh["trustDomain"] == "cluster.local" and mesh["rootNamespace"] == "istio-system"
    assert mesh["defaultConfig"]["meshId"] == "m9"
    assert mesh["defaultConfig"]["proxyMetadata"] == {"ISTIO_META_DNS_CAPTURE": "true"}
    no_dns = manifests.current_istio(_cluster(without=["dns"]))
    assert yaml.safe_load(_get(no_dns, "ConfigMap", "istio")["data"]["mesh"])["defaultConfig"]["proxyMetadata"] == {}
    own = manifests.current_istio(_cluster(without=["shared-mesh-id"]))
    assert yaml.safe_load(_get(own, "ConfigMap", "istio")["data"]["mesh"])["defaultConfig"]["meshId"] == "mesh1-cluster1"


def test_eastwest_gateway():
    objs = manifests.current_istio(_cluster(network="net-a"))
    svc = _get(objs, "Service", "istio-eastwestgateway")
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["metadata"]["labels"] == {**manifests.LAB_LABEL, "istio": "eastwestgateway",
                                         "app": "istio-eastwestgateway", manifests.NETWORK_LABEL: "net-a"}
    assert {(p["name"], p["port"]) for p in svc["spec"]["ports"]} == {
        ("status-port", 15021), ("tls", 15443), ("tls-istiod", 15012), ("tls-webhook", 15017)}
    dep = _get(objs, "Deployment", "istio-eastwestgateway")
    assert _env(dep) == {"ISTIO_META_REQUESTED_NETWORK_VIEW": "net-a", "ISTIO_META_ROUTER_MODE": "sni-dnat"}
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "docker.io/istio/proxyv2:1.26.0"
    assert manifests.NETWORK_LABEL not in dep["spec"]["selector"]["matchLabels"]
    other = manifests.current_istio(_cluster(network="net-a", without=["gateway-network"]))
    assert _get(other, "Service", "istio-eastwestgateway")["metadata"]["labels"][manifests.NETWORK_LABEL] == "net-a-other"
    assert _env(_get(other, "Deployment", "istio-eastwestgateway"))["ISTIO_META_REQUESTED_NETWORK_VIEW"] == "net-a-other"
    gone = manifests.current_istio(_cluster(without=["eastwestgateway"]))
    assert _get(gone, "Service", "istio-eastwestgateway") is None
    assert _get(gone, "Deployment", "istio-eastwestgateway") is None


def test_remote_and_external_primary():
    remote = manifests.current_istio(_cluster(name="cluster2", istio_role="remote", control_plane="cluster1"))
    ns = _get(remote, "Namespace", "istio-system")
    assert ns["metadata"]["annotations"] == {manifests.CONTROL_PLANE_ANNOTATION: "cluster1"}
    assert _get(remote, "Deployment", "istiod") is None
    # the remote profile's selectorless istiod Service (its endpoints would be loopback: refused)
    svc = _get(remote, "Service", "istiod")
    assert "selector" not in svc["spec"] and "type" not in svc["spec"]
    assert {(p["name"], p["port"], p.get("targetPort", p["port"])) for p in svc["spec"]["ports"]} == {
        ("tcp-istiod", 15012, 15012), ("tcp-webhook", 443, 15017)}
    assert svc["metadata"]["labels"] == {**manifests.LAB_LABEL, "istio.io/rev": "default",
                                         "app.kubernetes.io/name": "istiod"}
    assert not [o for o in remote if o["kind"] in ("Endpoints", "EndpointSlice")]
    assert _get(remote, "Service", "istio-eastwestgateway") is not None
    primary = manifests.current_istio(_cluster(), remotes=["cluster2"])
    assert _env(_get(primary, "Deployment", "istiod"))["EXTERNAL_ISTIOD"] == "true"


def test_cluster_objects_dispatch_and_cacerts():
    files = {k: k.encode() for k in ca.CACERTS_KEYS}
    seed = manifests.cluster_objects(_cluster(istio_version="1.7.8", flavour="seed"), files)
    assert _get(seed, "Gateway", "istio-multicluster-ingressgateway") is not None
    secret = _get(seed, "Secret", "cacerts")
    assert secret["metadata"]["namespace"] == "istio-system"
    assert {k: base64.b64decode(v) for k, v in secret["data"].items()} == files
    current = manifests.cluster_objects(_cluster(), files)
    assert _get(current, "Service", "istio-eastwestgateway") is not None and _get(current, "Secret", "cacerts")
    assert _get(manifests.cluster_objects(_cluster(without=["cacerts"]), files), "Secret", "cacerts") is None


def test_possible_objects_cover_every_flavour_and_role():
    c = _cluster()
    possible = manifests.possible_objects(c)
    for variant in [_cluster(), _cluster(istio_role="remote", control_plane="x"),
                    _cluster(istio_version="1.7.8"), _cluster(istio_version="1.9.5")]:
        objs = manifests.cluster_objects(variant, {k: b"" for k in ca.CACERTS_KEYS}, ["r"])
        assert {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objs} <= possible


def test_validation_webhook_and_port_forward():
    hook = manifests.validation_webhook("istio-validator-istio-system", "rev.validation.istio.io",
                                        "https://127.0.0.1:16311/validate", "http://127.0.0.1:16310/ready",
                                        served_by="cluster1")
    assert hook["metadata"]["labels"]["istio.io/rev"] == "default"
    wh = hook["webhooks"][0]
    assert wh["failurePolicy"] == "Ignore" and "caBundle" not in wh["clientConfig"]
    assert wh["rules"][0]["apiGroups"] == manifests.VALIDATION_GROUPS and wh["rules"][0]["apiVersions"] == ["*"]
    other = manifests.validation_webhook("n", "w", "u", "r", ca_bundle="QUJD", failure_policy="Fail",
                                         revision_label=False)
    assert "istio.io/rev" not in other["metadata"]["labels"]
    assert other["webhooks"][0]["clientConfig"]["caBundle"] == "QUJD"
    pf = manifests.istiod_port_forward(istiod.ports(31))
    targets = {f["ports"][0]: f["target"] for f in pf["spec"]["forwards"]}
    assert targets[15014] == {"address": "127.0.0.1", "port": istiod.ports(31)["monitoring"]}
    assert targets[15010]["port"] == istiod.ports(31)["grpc"]
    assert pf["spec"]["selector"] == {"matchNamespaces": ["istio-system"]}


# ---------------------------------------------------------------- CA

def test_lab_ca_one_root_intermediates_per_cluster(tmp_path):
    one = ca.cluster_cacerts(tmp_path, "cluster1")
    two = ca.cluster_cacerts(tmp_path, "cluster2")
    assert set(one) == set(ca.CACERTS_KEYS)
    assert one["root-cert.pem"] == two["root-cert.pem"] == ca.lab_root(tmp_path)
    assert one["ca-cert.pem"] != two["ca-cert.pem"]
    root = x509.load_pem_x509_certificate(one["root-cert.pem"])
    inter = x509.load_pem_x509_certificate(one["ca-cert.pem"])
    inter.verify_directly_issued_by(root)
    assert inter.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert one["cert-chain.pem"] == one["ca-cert.pem"] + one["root-cert.pem"]
    assert ca.cluster_cacerts(tmp_path, "cluster1") == one  # generated once
    own = ca.cluster_cacerts(tmp_path, "cluster1", shared_root=False)
    assert own["root-cert.pem"] != one["root-cert.pem"]
    x509.load_pem_x509_certificate(own["ca-cert.pem"]).verify_directly_issued_by(
        x509.load_pem_x509_certificate(own["root-cert.pem"]))
    assert ca.cluster_cacerts(tmp_path, "cluster1")["root-cert.pem"] == one["root-cert.pem"]  # back to shared


# ---------------------------------------------------------------- istiod processes

def test_ports_never_collide():
    seen: dict[int, tuple[int, str]] = {}
    for index in range(1, 250):
        for slot, port in istiod.ports(index).items():
            assert port not in seen, (index, slot, seen.get(port))
            assert 1024 < port < 32000  # below kwokctl's ports (counting down from 32767)
            seen[port] = (index, slot)
    with pytest.raises(ValueError):
        istiod.ports(0)


def test_command_of_primary_and_validator(tmp_path):
    argv, env = istiod.command("cluster1", "cluster1", 31, tmp_path, external=True)
    p = istiod.ports(31)
    assert argv[1] == "discovery" and "--configDir" not in argv
    assert argv[argv.index("--grpcAddr") + 1] == f"127.0.0.1:{p['grpc']}"
    assert argv[argv.index("--ctrlz_port") + 1] == str(p["ctrlz"])
    assert argv[argv.index("--kubeconfig") + 1] == str(tmp_path / "kubeconfig")
    assert "--meshConfig" not in argv  # read live from ConfigMap istio-system/istio
    assert env["CLUSTER_ID"] == "cluster1" and env["EXTERNAL_ISTIOD"] == "true"
    assert env["USE_REMOTE_CERTS"] == "true" and env["ROOT_CA_DIR"] == str(tmp_path / "cacerts")
    vargv, venv = istiod.command("validator", "cluster3", 33, tmp_path, validator=True)
    assert vargv[vargv.index("--configDir") + 1] == str(tmp_path / "config")
    assert venv["PILOT_ENABLE_GATEWAY_API"] == "false" and "EXTERNAL_ISTIOD" not in venv
    every = [a for a in argv + vargv if a.startswith("127.")]
    assert every and all(a == "127.0.0.1" or a.startswith("127.0.0.1:") for a in every)


def test_inline_kubeconfig(tmp_path):
    for name, data in (("ca.crt", b"CA"), ("admin.crt", b"CERT"), ("admin.key", b"KEY")):
        (tmp_path / name).write_bytes(data)
    lab = {"clusters": [{"name": "cluster1", "cluster": {"server": "https://127.0.0.1:32764",
                                                        "certificate-authority": str(tmp_path / "ca.crt")}}],
           "users": [{"name": "cluster1-admin", "user": {"client-certificate": str(tmp_path / "admin.crt"),
                                                          "client-key": str(tmp_path / "admin.key")}}],
           "contexts": [{"name": "cluster1", "context": {"cluster": "cluster1", "user": "cluster1-admin"}}]}
    out = istiod.inline_kubeconfig(lab, "cluster1")
    assert out["clusters"][0]["cluster"] == {"server": "https://127.0.0.1:32764",
                                             "certificate-authority-data": base64.b64encode(b"CA").decode()}
    assert out["users"][0]["user"] == {"client-certificate-data": base64.b64encode(b"CERT").decode(),
                                       "client-key-data": base64.b64encode(b"KEY").decode()}
    assert "certificate-authority" in lab["clusters"][0]["cluster"]  # the lab's kubeconfig is not changed
