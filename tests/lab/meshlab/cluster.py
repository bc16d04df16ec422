"""Lab lifecycle: N real Kubernetes control planes (kwokctl, binary runtime) on loopback.

Everything lives in the state directory (default tests/lab/state): kwokctl's work dir
(KWOK_WORKDIR), the merged kubeconfig with contexts cluster1..N, clusters.json (the
address plan the data plane reads), logs and pid files. ~/.kube/config is never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from . import build, ca, istiod, manifests, procs, versions

DEFAULT_CLUSTERS = 2
LB_MODES = ("ip", "hostname", "none")
DEFAULT_MESH_ID = "mesh1"


def _say(msg: str) -> None:
    print(f"[lab] {msg}", flush=True)


# ---------------------------------------------------------------- configuration

def parse_per_cluster(value: str, names: list[str], default: str, what: str) -> dict[str, str]:
    """Parse `X` or `X,clusterN=Y,...`: a bare value applies to every cluster not named."""
    base, overrides = default, {}
    for item in filter(None, (p.strip() for p in value.split(","))):
        if "=" in item:
            name, val = item.split("=", 1)
            if name not in names:
                raise SystemExit(f"{what}: unknown cluster {name!r} (lab clusters: {', '.join(names)})")
            overrides[name] = val
        else:
            base = item
    return {name: overrides.get(name, base) for name in names}


def parse_role(text: str, name: str) -> tuple[str, str]:
    """`primary` or `remote:<control-plane cluster>` -> (role, control plane cluster)."""
    if text == "primary":
        return "primary", name
    if text.startswith("remote:") and text.split(":", 1)[1]:
        return "remote", text.split(":", 1)[1]
    raise SystemExit(f"LAB_ISTIO_ROLE: {name}={text} is neither `primary` nor `remote:<cluster>`")


def _label_value(text: str, what: str) -> str:
    ok = 0 < len(text) <= 63 and text[0].isalnum() and text[-1].isalnum() and all(
        ch.isalnum() or ch in "-_." for ch in text)
    if not ok:
        raise SystemExit(f"{what}: {text!r} is not a valid label value")
    return text


def check_topology(clusters: list[dict[str, Any]]) -> None:
    """A remote names a current primary of the lab; seed-era clusters are primaries."""
    by_name = {c["name"]: c for c in clusters}
    for c in clusters:
        if c["istio_role"] != "remote":
            continue
        cp = by_name.get(c["control_plane"])
        if c["flavour"] != "current":
            raise SystemExit(f"LAB_ISTIO_ROLE: {c['name']} is a seed-era cluster (Istio {c['istio_version']}); "
                             "only current clusters (Istio >= 1.22) can be remotes")
        if cp is None or cp["name"] == c["name"]:
            raise SystemExit(f"LAB_ISTIO_ROLE: {c['name']}=remote:{c['control_plane']} names no other lab cluster")
        if cp["istio_role"] != "primary" or cp["flavour"] != "current":
            raise SystemExit(f"LAB_ISTIO_ROLE: the control plane of {c['name']} ({cp['name']}) must be a current primary")


def desired_config(state: Path) -> dict[str, Any]:
    count = int(os.environ.get("LAB_CLUSTERS", DEFAULT_CLUSTERS))
    if count < 1 or count > 9:
        raise SystemExit("LAB_CLUSTERS must be between 1 and 9")
    previous = load_config(state)
    names = [f"cluster{i}" for i in range(1, max(count, len(previous.get("clusters", []))) + 1)]
    prev = {c["name"]: c for c in previous.get("clusters", [])}
    lb = parse_per_cluster(os.environ.get("LAB_LB", ""), names, "ip", "LAB_LB")
    istio = parse_per_cluster(os.environ.get("LAB_ISTIO_VERSION", ""), names,
                              versions.DEFAULT_ISTIO_VERSION, "LAB_ISTIO_VERSION")
    without = parse_per_cluster(os.environ.get("LAB_WITHOUT", ""), names, "", "LAB_WITHOUT")
    roles = parse_per_cluster(os.environ.get("LAB_ISTIO_ROLE", ""), names, "primary", "LAB_ISTIO_ROLE")
    networks = parse_per_cluster(os.environ.get("LAB_NETWORK", ""), names, "", "LAB_NETWORK")
    mesh_id = _label_value(os.environ.get("LAB_MESH_ID") or previous.get("mesh_id") or DEFAULT_MESH_ID, "LAB_MESH_ID")
    # A second lab on the same machine (benchmarks beside the e2e suite) takes other
    # addresses: cluster N uses address index base+N in every range of the address plan.
    base = int(os.environ.get("LAB_INDEX_BASE", previous.get("index_base", 0)))
    if not 0 <= base <= 240:
        raise SystemExit("LAB_INDEX_BASE must be between 0 and 240")
    clusters = []
    for n, name in enumerate(names, start=1):
        i = base + n
        old = prev.get(name, {})
        mode = lb[name] if "LAB_LB" in os.environ or not old else old.get("lb", "ip")
        if mode not in LB_MODES:
            raise SystemExit(f"LAB_LB: {name}={mode} is not one of {', '.join(LB_MODES)}")
        version = istio[name] if "LAB_ISTIO_VERSION" in os.environ or not old else old["istio_version"]
        manifests.parse_version(version)
        omit = (without[name] if "LAB_WITHOUT" in os.environ or not old
                else "+".join(old.get("without", [])))
        omit_set = {w for w in omit.split("+") if w}
        bad = omit_set - manifests.WITHOUT_CHOICES
        if bad:
            raise SystemExit(f"LAB_WITHOUT: {name}: unknown item(s) {sorted(bad)}; "
                             f"choose from {sorted(manifests.WITHOUT_CHOICES)}")
        if "LAB_ISTIO_ROLE" in os.environ or not old:
            role, control_plane = parse_role(roles[name], name)
        else:
            role, control_plane = old.get("istio_role", "primary"), old.get("control_plane", name)
        network = (networks[name] or f"network{n}") if "LAB_NETWORK" in os.environ or not old \
            else old.get("network", f"network{n}")
        clusters.append({
            "name": name, "index": i, "context": name, "lb": mode, "istio_version": version,
            "without": sorted(omit_set),
            "flavour": "current" if manifests.is_current(version) else "seed",
            "istio_role": role, "control_plane": control_plane,
            "network": _label_value(network, f"LAB_NETWORK ({name})"), "mesh_id": mesh_id,
            "pod_cidr": f"198.18.{i}.0/24", "service_cidr": f"198.19.{i}.0/24",
            "node_ip": f"127.50.{i}.1", "sidecar_proxy": f"127.60.{i}.1:15001",
        })
    check_topology(clusters)
    seeds = [c["name"] for c in clusters if c["flavour"] == "seed"]
    for c in clusters:
        # which real istiod answers this cluster's validating webhook, and where its file is
        c["validated_by"] = c["control_plane"] if c["flavour"] == "current" else istiod.VALIDATOR
        c["istiod"] = str(istiod.info_path(state, c["control_plane"])) if c["flavour"] == "current" else None
    return {"kubeconfig": str(state / "kubeconfig"), "index_base": base, "mesh_id": mesh_id,
            "validator_cluster": seeds[0] if seeds else None, "clusters": clusters}


def load_config(state: Path) -> dict[str, Any]:
    path = state / "clusters.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


# ---------------------------------------------------------------- processes

def _env(state: Path) -> dict[str, str]:
    return {**os.environ, "KWOK_WORKDIR": str(state / "kwok")}


def kwokctl(state: Path, *args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess:
    cmd = [str(versions.kwok_bin("kwokctl")), *args]
    proc = subprocess.run(cmd, env=_env(state), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    if not quiet and proc.returncode == 0 and proc.stderr.strip():
        pass
    return proc


def kubectl(state: Path, context: str, *args: str, stdin: str | None = None,
            check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [str(versions.kube_bin("kubectl")), "--kubeconfig", str(state / "kubeconfig"),
           "--context", context, *args]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False, timeout=timeout)
    if check and proc.returncode != 0:
        raise SystemExit(f"kubectl --context {context} {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc


def existing_clusters(state: Path) -> set[str]:
    if not (state / "kwok").exists():
        return set()
    proc = kwokctl(state, "get", "clusters", check=False)
    return {line.strip() for line in proc.stdout.splitlines() if line.strip()}


def _kwokctl_config(state: Path, c: dict[str, Any]) -> Path:
    docs = [
        {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1", "kind": "KwokctlConfiguration",
            "options": {
                "runtime": "binary",
                "bindAddress": "127.0.0.1",
                "kubeApiserverBinary": str(versions.kube_bin("kube-apiserver")),
                "kubeControllerManagerBinary": str(versions.kube_bin("kube-controller-manager")),
                "kubeSchedulerBinary": str(versions.kube_bin("kube-scheduler")),
                "kubectlBinary": str(versions.kube_bin("kubectl")),
                "kwokControllerBinary": str(versions.kwok_bin("kwok")),
                "etcdBinary": str(versions.etcd_bin()),
                "kubeVersion": versions.KUBERNETES,
                "etcdVersion": versions.ETCD.lstrip("v"),
                "quietPull": True,
                # `kubectl port-forward` to a pod reaches what a ClusterPortForward object says
                # (the lab writes one per cluster that has a real istiod)
                "enableCRDs": ["ClusterPortForward"],
            },
            "componentsPatches": [
                {"name": "kube-apiserver",
                 "extraArgs": [{"key": "service-cluster-ip-range", "value": c["service_cidr"]}]},
                {"name": "kube-controller-manager",
                 "extraArgs": [{"key": "service-cluster-ip-range", "value": c["service_cidr"]}]},
            ],
        },
        {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1", "kind": "KwokConfiguration",
            # kwokctl does not default a KwokConfiguration it is given: say every option.
            "options": {
                "cidr": c["pod_cidr"], "nodeIP": c["node_ip"],
                "podPlayStageParallelism": 4, "nodePlayStageParallelism": 4,
                "nodeLeaseParallelism": 4, "podsOnNodeSyncParallelism": 1,
                "enablePodsOnNodeSyncListPager": True,
                "enableDebuggingHandlers": True,  # exec goes through these
            },
        },
        {
            # Every exec in this cluster runs on the host with the cluster's emulated sidecar
            # as HTTP proxy: that is how curl "in the sleep pod" enters the mesh.
            "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterExec",
            "metadata": {"name": "meshlink-lab-sidecar"},
            "spec": {"execs": [{"local": {"envs": [
                {"name": "http_proxy", "value": f"http://{c['sidecar_proxy']}"},
                {"name": "HTTP_PROXY", "value": f"http://{c['sidecar_proxy']}"},
                {"name": "no_proxy", "value": ""},
                {"name": "MESHLINK_LAB_CLUSTER", "value": c["name"]},
            ]}}]},
        },
    ]
    path = state / f"kwokctl-{c['name']}.yaml"
    path.write_text("\n---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs), encoding="utf-8")
    return path


def _merge_kubeconfig(state: Path, names: list[str]) -> None:
    """Rename kwokctl's `kwok-<name>` contexts to `<name>` in the lab's one kubeconfig."""
    raw = yaml.safe_load((state / "kwok.kubeconfig").read_text(encoding="utf-8"))
    out = {"apiVersion": "v1", "kind": "Config", "preferences": {}, "clusters": [], "users": [],
           "contexts": [], "current-context": names[0]}
    for name in names:
        kname = f"kwok-{name}"
        cluster = next(x for x in raw["clusters"] if x["name"] == kname)
        ctx = next(x for x in raw["contexts"] if x["name"] == kname)
        user = next(x for x in raw["users"] if x["name"] == ctx["context"]["user"])
        out["clusters"].append({"name": name, "cluster": cluster["cluster"]})
        out["users"].append({"name": f"{name}-admin", "user": user["user"]})
        out["contexts"].append({"name": name, "context": {"cluster": name, "user": f"{name}-admin"}})
    path = state / "kubeconfig"
    path.write_text(yaml.safe_dump(out, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)


def _apply(state: Path, context: str, objs: list[dict]) -> None:
    doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": objs})
    kubectl(state, context, "apply", "--server-side", "--force-conflicts", "--field-manager=meshlink-lab",
            "-f", "-", stdin=doc)


def _delete_omitted(state: Path, c: dict[str, Any], objs: list[dict]) -> None:
    """Delete lab objects that the cluster's `without`, flavour or role now leaves out (so `up` converges)."""
    want = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objs}
    by_namespace: dict[str, list[str]] = {}
    for kind, ns, name in sorted(manifests.possible_objects(c) - want):
        if kind in ("ConfigMap", "Namespace"):
            continue  # rewritten with the reduced content instead
        resource = {"Gateway": "gateways.networking.istio.io",
                    "DestinationRule": "destinationrules.networking.istio.io"}.get(kind, kind.lower())
        by_namespace.setdefault(ns, []).append(f"{resource}/{name}")
    for ns, refs in by_namespace.items():  # one call per namespace
        kubectl(state, c["context"], "delete", *refs, "-n", ns, "--ignore-not-found", "--wait=false")


def _wait_ready(state: Path, c: dict[str, Any], timeout: int = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        proc = kubectl(state, c["context"], "get", "--raw", "/readyz", check=False, timeout=10)
        if proc.returncode == 0 and "ok" in proc.stdout:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"{c['name']}: kube-apiserver not ready after {timeout}s: {proc.stderr}")
        time.sleep(1)
    # The CRDs must be Established before Gateways/DestinationRules can be applied.
    while kubectl(state, c["context"], "get", "serviceaccount", "default", "-n", "default",
                  check=False, timeout=10).returncode != 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"{c['name']}: controller-manager never created the default ServiceAccount")
        time.sleep(1)


CRD_HASH_ANNOTATION = "lab.meshlink.io/spec-hash"


def _apply_crds(state: Path, ctx: str, crds: list[dict]) -> None:
    """Apply the CRDs whose content changed since the last `up` (a hash in an annotation):
    server-side apply of all of Istio's CRDs costs seconds per cluster."""
    for crd in crds:
        digest = hashlib.sha256(json.dumps(crd, sort_keys=True).encode()).hexdigest()[:16]
        crd["metadata"].setdefault("annotations", {})[CRD_HASH_ANNOTATION] = digest
    proc = kubectl(state, ctx, "get", "crd", "-l", "lab.meshlink.io/part-of=lab", "-o",
                   "jsonpath={range .items[*]}{.metadata.name} {.metadata.annotations.lab\\.meshlink\\.io/spec-hash}"
                   "{\"\\n\"}{end}", check=False, timeout=30)
    have = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    changed = [crd for crd in crds
               if have.get(crd["metadata"]["name"]) != crd["metadata"]["annotations"][CRD_HASH_ANNOTATION]]
    if changed:
        _apply(state, ctx, changed)
    kubectl(state, ctx, "wait", "--for=condition=Established", "--timeout=60s", "crd", "-l",
            "lab.meshlink.io/part-of=lab")


def _setup_cluster(state: Path, c: dict[str, Any], crds: list[dict], remotes: list[str]) -> None:
    ctx = c["context"]
    _wait_ready(state, c)
    # a validating webhook whose istiod is down would refuse every Istio write (failurePolicy Fail)
    _repair_webhooks(state, c)
    _apply_crds(state, ctx, manifests.istio_crds_for_version(json.loads(json.dumps(crds)), c["istio_version"]))
    _apply(state, ctx, [manifests.node("kwok-node-0", c["node_ip"])])
    cacerts = ca.cluster_cacerts(state, c["name"], shared_root="shared-root" not in c["without"])
    objs = manifests.cluster_objects(c, cacerts, remotes)
    _apply(state, ctx, objs)
    _delete_omitted(state, c, objs)


# ---------------------------------------------------------------- real istiods and their webhooks

WEBHOOK_SELECTOR = "lab.meshlink.io/part-of=lab"
READY_ANNOTATION = "lab.meshlink.io/istiod-ready-url"
SERVED_BY_ANNOTATION = "lab.meshlink.io/served-by"


def _webhooks(state: Path, c: dict[str, Any]) -> list[dict]:
    proc = kubectl(state, c["context"], "get", "validatingwebhookconfigurations", "-l", WEBHOOK_SELECTOR,
                   "-o", "json", check=False, timeout=20)
    if proc.returncode != 0:
        return []
    return json.loads(proc.stdout).get("items", [])


def _delete_webhook(state: Path, c: dict[str, Any], name: str) -> None:
    kubectl(state, c["context"], "delete", "validatingwebhookconfiguration", name, "--ignore-not-found",
            check=False, timeout=20)


def _repair_webhooks(state: Path, c: dict[str, Any]) -> None:
    """Delete the lab's validating webhooks of `c` whose istiod does not answer /ready."""
    for wh in _webhooks(state, c):
        url = (wh["metadata"].get("annotations") or {}).get(READY_ANNOTATION, "")
        if not istiod.http_ok(url):
            _say(f"{c['name']}: istiod behind webhook {wh['metadata']['name']} is down: webhook removed")
            _delete_webhook(state, c, wh["metadata"]["name"])


def _delete_webhooks_served_by(state: Path, config: dict[str, Any], served_by: str | None) -> None:
    for c in config["clusters"]:
        for wh in _webhooks(state, c):
            if served_by is None or (wh["metadata"].get("annotations") or {}).get(SERVED_BY_ANNOTATION) == served_by:
                _delete_webhook(state, c, wh["metadata"]["name"])


def _ca_mode(c: dict[str, Any]) -> str:
    without = c.get("without", [])
    return "none" if "cacerts" in without else "own-root" if "shared-root" in without else "shared-root"


def wanted_istiods(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> how to run it: one istiod per current primary, one validator for the seed clusters."""
    out: dict[str, dict[str, Any]] = {}
    for c in config["clusters"]:
        if c.get("flavour") == "current" and c.get("istio_role") == "primary":
            remotes = [r["name"] for r in config["clusters"] if r.get("istio_role") == "remote"
                       and r.get("control_plane") == c["name"]]
            out[c["name"]] = {"cluster": c["name"], "index": c["index"], "validator": False,
                              "external": bool(remotes), "stands_for": c["istio_version"], "ca": _ca_mode(c)}
    seed = next((c for c in config["clusters"] if c.get("flavour", "seed") == "seed"), None)
    if seed:
        out[istiod.VALIDATOR] = {"cluster": seed["name"], "index": seed["index"], "validator": True,
                                 "external": False, "stands_for": "", "ca": _ca_mode(seed)}
    return out


def _ca_digest(state: Path, cluster: str, mode: str) -> str:
    if mode == "none":
        return "none"
    files = ca.cluster_cacerts(state, cluster, shared_root=(mode == "shared-root"))
    return hashlib.sha256(b"".join(files[k] for k in ca.CACERTS_KEYS)).hexdigest()[:16]


def start_istiods(state: Path, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Start (or keep) every istiod the lab wants, stop the others, wait until all are ready."""
    wanted = wanted_istiods(config)
    for name in istiod.names(state):
        if name not in wanted:
            _delete_webhooks_served_by(state, config, name)
            istiod.stop(state, name)
    lab_kc = yaml.safe_load((state / "kubeconfig").read_text(encoding="utf-8"))
    infos = {}
    for name, how in wanted.items():
        infos[name] = istiod.ensure(state, name, how["cluster"], how["index"], lab_kc, validator=how["validator"],
                                    external=how["external"], stands_for=how["stands_for"],
                                    ca_digest=_ca_digest(state, how["cluster"], how["ca"]),
                                    on_restart=lambda n=name: _delete_webhooks_served_by(state, config, n))
    for name in wanted:
        secs = istiod.wait_ready(state, name)
        info = istiod.read_info(state, name) or {}
        if not info.get("ready_after"):
            info["ready_after"] = round(secs, 1)
            istiod.info_path(state, name).write_text(json.dumps(info, indent=2), encoding="utf-8")
            _say(f"istiod {name} ({wanted[name]['cluster']}): ready {secs:.1f}s after start, pid {info['pid']}, "
                 f"grpc {info['grpc']}, https {info['https']}")
    return {n: istiod.read_info(state, n) or {} for n in wanted}


def _probe_invalid(state: Path, c: dict[str, Any]) -> subprocess.CompletedProcess:
    """A server-side dry-run create of an invalid ServiceEntry (`addresses: [not-an-ip]`, which the
    CRD schema lets through and only istiod's validation refuses)."""
    version = "v1" if c["flavour"] == "current" else "v1alpha3"
    probe = {"apiVersion": f"networking.istio.io/{version}", "kind": "ServiceEntry",
             "metadata": {"name": "lab-validation-probe", "namespace": "istio-system"},
             "spec": {"hosts": ["probe.lab.invalid"], "addresses": ["not-an-ip"], "location": "MESH_INTERNAL",
                      "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}], "resolution": "STATIC"}}
    return kubectl(state, c["context"], "create", "--dry-run=server", "-f", "-", stdin=json.dumps(probe),
                   check=False, timeout=30)


def _wait_patched(state: Path, c: dict[str, Any], name: str, timeout: float = 60) -> str:
    """Wait until istiod patched webhook `name` of its own cluster (caBundle, Fail); its caBundle."""
    deadline = time.monotonic() + timeout
    while True:
        proc = kubectl(state, c["context"], "get", "validatingwebhookconfiguration", name, "-o", "json",
                       check=False, timeout=20)
        if proc.returncode == 0:
            hooks = json.loads(proc.stdout)["webhooks"]
            if all(h["clientConfig"].get("caBundle") and h.get("failurePolicy") == "Fail" for h in hooks):
                return hooks[0]["clientConfig"]["caBundle"]
        if time.monotonic() > deadline:
            raise SystemExit(f"{c['name']}: istiod did not patch webhook {name} (caBundle, failurePolicy Fail) "
                             f"in {timeout:.0f}s")
        time.sleep(0.5)


def register_webhooks(state: Path, config: dict[str, Any], infos: dict[str, dict[str, Any]]) -> None:
    """Every cluster's Istio objects are validated by a real istiod's /validate.

    The istiod's own cluster gets the webhook the istiod chart installs (label istio.io/rev,
    failurePolicy Ignore, no caBundle): istiod patches the caBundle and, after its dry-run
    check, sets Fail. Every other cluster it serves (the remotes of a primary; the other seed
    clusters for the validator) gets the same URL with the caBundle istiod published and,
    once a dry-run invalid ServiceEntry is refused there, failurePolicy Fail."""
    by_name = {c["name"]: c for c in config["clusters"]}
    for name, info in infos.items():
        home = by_name[info["cluster"]]
        seed = home["flavour"] == "seed"
        # the names Istio used: istiod-istio-system (1.6-1.8), istio-validator-istio-system (current)
        cfg_name, hook_name = (("istiod-istio-system", "validation.istio.io") if seed
                               else ("istio-validator-istio-system", "rev.validation.istio.io"))
        existing = {w["metadata"]["name"]: w for w in _webhooks(state, home)}
        have = existing.get(cfg_name)
        if not have or have["webhooks"][0]["clientConfig"].get("url") != info["validate_url"]:
            _apply(state, home["context"], [manifests.validation_webhook(
                cfg_name, hook_name, info["validate_url"], info["ready_url"], served_by=name)])
        bundle = _wait_patched(state, home, cfg_name)
        served = [c for c in config["clusters"] if c["validated_by"] == name and c["name"] != home["name"]]
        for c in served:
            have = {w["metadata"]["name"]: w for w in _webhooks(state, c)}.get(cfg_name)
            hook = (have or {}).get("webhooks", [{}])[0]
            if (hook.get("clientConfig", {}).get("url") == info["validate_url"]
                    and hook["clientConfig"].get("caBundle") == bundle and hook.get("failurePolicy") == "Fail"):
                continue
            obj = manifests.validation_webhook(cfg_name, hook_name, info["validate_url"], info["ready_url"],
                                               ca_bundle=bundle, revision_label=False, served_by=name)
            _apply(state, c["context"], [obj])
            probe = _probe_invalid(state, c)
            if "denied the request" not in probe.stderr:
                raise SystemExit(f"{c['name']}: the webhook of istiod {name} did not refuse an invalid ServiceEntry: "
                                 f"{probe.stdout}{probe.stderr}")
            obj["webhooks"][0]["failurePolicy"] = "Fail"
            _apply(state, c["context"], [obj])
    for c in config["clusters"]:
        probe = _probe_invalid(state, c)
        if "denied the request" not in probe.stderr:
            raise SystemExit(f"{c['name']}: an invalid ServiceEntry was not refused by istiod's webhook: "
                             f"{probe.stdout}{probe.stderr}")


def _port_forwards(state: Path, config: dict[str, Any]) -> None:
    """kwok ClusterPortForward to the real istiod of each current primary (none elsewhere)."""
    for c in config["clusters"]:
        has_crd = kubectl(state, c["context"], "get", "crd", "clusterportforwards.kwok.x-k8s.io",
                          check=False, timeout=20).returncode == 0
        if not has_crd:
            if c["flavour"] == "current" and c["istio_role"] == "primary":
                _say(f"{c['name']}: created before the lab served ClusterPortForward: port-forward to the istiod pod "
                     "needs the cluster re-created (lab down; lab up)")
            continue
        if c["flavour"] == "current" and c["istio_role"] == "primary":
            _apply(state, c["context"], [manifests.istiod_port_forward(istiod.ports(c["index"]))])
        else:
            kubectl(state, c["context"], "delete", "clusterportforwards.kwok.x-k8s.io", manifests.PORT_FORWARD_NAME,
                    "--ignore-not-found", check=False, timeout=20)


def _wait_deployments(state: Path, c: dict[str, Any]) -> None:
    kubectl(state, c["context"], "wait", "--for=condition=Available", "--timeout=120s",
            "deployment", "--all", "-n", "istio-system", timeout=150)


# ---------------------------------------------------------------- data plane

def _signal(pid: int, sig: int) -> None:
    """Signal the process group the data plane leads (its httpbin children too), else the pid."""
    for send in (lambda: os.killpg(pid, sig), lambda: os.kill(pid, sig)):
        try:
            send()
            return
        except ProcessLookupError:
            continue
        except PermissionError:
            return


def start_dataplane(state: Path) -> None:
    pid_file = state / "dataplane.pid"
    pid = procs.recorded(pid_file)
    if pid:
        # the address plan may have changed: the data plane reads clusters.json at start
        stop_dataplane(state)
    (state / "dataplane.ready").unlink(missing_ok=True)
    log = open(state / "dataplane.log", "a", encoding="utf-8")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "meshlab.dataplane", "--state-dir", str(state)],
        cwd=versions.LAB_DIR, env={**os.environ, "PYTHONPATH": str(versions.LAB_DIR)},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    pid_file.write_text(str(proc.pid))
    deadline = time.monotonic() + 90
    while not (state / "dataplane.ready").exists():
        if proc.poll() is not None:
            raise SystemExit(f"the lab data plane exited (rc={proc.returncode}); see {state / 'dataplane.log'}")
        if time.monotonic() > deadline:
            raise SystemExit(f"the lab data plane did not become ready in 90s; see {state / 'dataplane.log'}")
        time.sleep(0.5)


def stop_dataplane(state: Path) -> None:
    pid_file = state / "dataplane.pid"
    pid = procs.recorded(pid_file)
    if pid:
        _signal(pid, signal.SIGTERM)
        for _ in range(100):
            if procs.recorded(pid_file) is None:
                break
            time.sleep(0.1)
        else:
            _signal(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    (state / "dataplane.ready").unlink(missing_ok=True)


# ---------------------------------------------------------------- commands

@contextlib.contextmanager
def _exclusive(state: Path):
    """One `up`/`down` at a time per lab: two would race over processes and the data plane."""
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "lab.lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def up() -> Path:
    state = versions.state_dir()
    with _exclusive(state):
        return _up(state)


def _up(state: Path) -> Path:
    started = time.monotonic()
    build.ensure_all()
    config = desired_config(state)
    names = [c["name"] for c in config["clusters"]]
    have = existing_clusters(state)
    for c in config["clusters"]:
        if c["name"] in have:
            kwokctl(state, "start", "cluster", "--name", c["name"], check=False)
            continue
        _say(f"creating {c['name']} (Istio {c['istio_version']}, load balancer {c['lb']})")
        kwokctl(state, "create", "cluster", "--name", c["name"], "--runtime", "binary",
                "--kubeconfig", str(state / "kwok.kubeconfig"), "--config", str(_kwokctl_config(state, c)),
                "--wait", "120s")
    _merge_kubeconfig(state, names)
    (state / "clusters.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    # libyaml's loader when PyYAML has it: the pure-Python one takes 5-15 s for this file
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crds = [d for d in yaml.load_all(versions.istio_crds().read_text(encoding="utf-8"), Loader=loader) if d]
    for c in config["clusters"]:
        remotes = [r["name"] for r in config["clusters"] if r["istio_role"] == "remote"
                   and r["control_plane"] == c["name"]]
        what = ("the seed's 'before you begin' objects" if c["flavour"] == "seed" else
                f"current Istio ({c['istio_role']}, network {c['network']}, mesh {c['mesh_id']})")
        _say(f"{c['name']}: Istio CRDs and {what}")
        _setup_cluster(state, c, crds, remotes)
    infos = start_istiods(state, config)
    register_webhooks(state, config, infos)
    _port_forwards(state, config)
    if os.environ.get("LAB_DATAPLANE", "on") != "off":
        start_dataplane(state)
    for c in config["clusters"]:
        _wait_deployments(state, c)
    _say(f"up: {len(names)} clusters in {time.monotonic() - started:.0f}s; "
         f"kubeconfig {state / 'kubeconfig'} (contexts {', '.join(names)})")
    return state


def down() -> None:
    state = versions.state_dir()
    if not state.exists():
        _say("down: nothing to do")
        return
    with _exclusive(state):
        _down(state)


def _down(state: Path) -> None:
    config = load_config(state)
    if config and istiod.names(state):
        # first the webhooks (failurePolicy Fail), then the istiods behind them
        _delete_webhooks_served_by(state, config, None)
    for name in istiod.names(state):
        istiod.stop(state, name)
    stop_dataplane(state)
    if versions.kwok_bin("kwokctl").exists():
        for name in sorted(existing_clusters(state)):
            _say(f"deleting {name}")
            kwokctl(state, "delete", "cluster", "--name", name, "--kubeconfig",
                    str(state / "kwok.kubeconfig"), check=False)
    shutil.rmtree(state, ignore_errors=True)
    _say("down: lab removed")


def status() -> int:
    state = versions.state_dir()
    config = load_config(state)
    if not config:
        print("lab: down")
        return 1
    rc = 0
    for c in config["clusters"]:
        proc = kubectl(state, c["context"], "get", "--raw", "/readyz", check=False, timeout=10)
        ok = proc.returncode == 0
        rc |= 0 if ok else 1
        flavour = c.get("flavour", "seed")
        topo = (f"; {c.get('istio_role', 'primary')}"
                + (f" of {c['control_plane']}" if c.get("istio_role") == "remote" else "")
                + f", network {c.get('network')}, mesh {c.get('mesh_id')}") if flavour == "current" else ""
        print(f"{c['name']}: apiserver {'ready' if ok else 'DOWN'}; istio {c['istio_version']} ({flavour}{topo}); "
              f"lb {c['lb']}; without {','.join(c['without']) or '-'}; "
              f"validated by istiod {c.get('validated_by', '-')}")
    for name, how in wanted_istiods(config).items():
        info = istiod.read_info(state, name) or {}
        pid = istiod.running_pid(state, name)
        ready = bool(pid) and istiod.http_ok(f"http://{info.get('http')}/ready")
        rc |= 0 if ready else 1
        detail = (f"pid {pid}, rss {istiod.rss_mb(pid)} MB, grpc {info.get('grpc')}, secure_grpc "
                  f"{info.get('secure_grpc')}, http {info.get('http')}, https {info.get('https')}, monitoring "
                  f"{info.get('monitoring')}" if pid else f"log {info.get('log', '-')}")
        kind = "validator for the seed clusters, " if how["validator"] else ""
        print(f"istiod {name} ({kind}watches {how['cluster']}, {versions.ISTIOD_VERSION}): "
              f"{'ready' if ready else 'NOT READY' if pid else 'STOPPED'}; {detail}")
    dp = procs.recorded(state / "dataplane.pid")
    print(f"dataplane: {'running pid ' + str(dp) if dp else 'STOPPED'}")
    print(f"kubeconfig: {state / 'kubeconfig'}")
    return rc if dp else 1
