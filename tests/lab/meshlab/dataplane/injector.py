"""Istio's sidecar injector, emulated for the labels only (current-Istio clusters): pure decisions.

Real injection (istiod's mutating webhook, `pkg/kube/inject` and the chart's injection template)
adds a sidecar container to every pod created in a namespace labelled `istio-injection=enabled`
(or, without that label, `istio.io/rev=<revision>`), and with it the pod labels

    security.istio.io/tlsMode: istio                  (istiod sends another network's endpoints
                                                       only for pods carrying it)
    service.istio.io/canonical-name: <the first of the pod's service.istio.io/canonical-name,
        app.kubernetes.io/name, app labels, else the workload (Deployment) name>
    service.istio.io/canonical-revision: <the first of service.istio.io/canonical-revision,
        app.kubernetes.io/version, version, else "latest">

The lab cannot run a sidecar container and has no webhook: the data plane patches these labels
(JSON merge patch, field manager `meshlab-injector`) onto Running pods of such namespaces that
lack them, the way the template computes them (a label the pod already has is kept). Skipped as
the injector skips them: pods with `sidecar.istio.io/inject: "false"` (label, else annotation),
host-network pods and the namespaces Istio ignores. Pods of other namespaces are never touched,
and a pod whose namespace lost its label keeps what it has (injection happened at creation).
"""

from __future__ import annotations

import re

from .view import Obj, meta, spec

FIELD_MANAGER = "meshlab-injector"
TLS_MODE = "security.istio.io/tlsMode"
CANONICAL_NAME = "service.istio.io/canonical-name"
CANONICAL_REVISION = "service.istio.io/canonical-revision"
INJECTED_LABELS = (TLS_MODE, CANONICAL_NAME, CANONICAL_REVISION)
# pkg/kube/inject.IgnoredNamespaces
IGNORED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "local-path-storage"})
REVISION = "default"  # the lab's istiods run the default revision only


def namespace_injected(namespace: Obj | None) -> bool:
    """The webhook's namespace selectors for the default revision: `istio-injection=enabled`, or
    no `istio-injection` label and `istio.io/rev=default`."""
    if not namespace or meta(namespace).get("name") in IGNORED_NAMESPACES:
        return False
    labels = meta(namespace).get("labels") or {}
    if "istio-injection" in labels:
        return labels["istio-injection"] == "enabled"
    return labels.get("istio.io/rev") == REVISION


def pod_opted_out(pod: Obj) -> bool:
    """`sidecar.istio.io/inject: "false"` (the label wins over the annotation), or host network."""
    m = meta(pod)
    value = (m.get("labels") or {}).get("sidecar.istio.io/inject")
    if value is None:
        value = (m.get("annotations") or {}).get("sidecar.istio.io/inject")
    return value == "false" or bool(spec(pod).get("hostNetwork"))


def workload_name(pod: Obj) -> str:
    """kube.GetDeployMetaFromPod: the controller's name, a Deployment's for a ReplicaSet whose name
    ends with the pod-template-hash; the pod's own name without a controller."""
    m = meta(pod)
    if not m.get("generateName"):
        return m.get("name", "")
    ref = next((r for r in m.get("ownerReferences") or [] if r.get("controller")), None)
    if ref is None:
        return m.get("name", "")
    name = ref.get("name", "")
    template_hash = (m.get("labels") or {}).get("pod-template-hash", "")
    if ref.get("kind") == "ReplicaSet" and template_hash and name.endswith(template_hash):
        return name[: -len(template_hash)].removesuffix("-")
    return name


def _first(labels: dict[str, str], *keys: str) -> str | None:
    return next((labels[k] for k in keys if k in labels), None)


def injected_labels(pod: Obj) -> dict[str, str]:
    """The three labels as the injection template renders them for this pod."""
    labels = meta(pod).get("labels") or {}
    name = _first(labels, CANONICAL_NAME, "app.kubernetes.io/name", "app") or workload_name(pod)
    revision = _first(labels, CANONICAL_REVISION, "app.kubernetes.io/version", "version") or "latest"
    return {TLS_MODE: labels.get(TLS_MODE) or "istio",
            CANONICAL_NAME: re.sub(r"^[-_.]+|[-_.]+$", "", name[:63]),  # trunc 63 | trimAll "-_."
            CANONICAL_REVISION: revision}


def _running(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and not meta(pod).get("deletionTimestamp")


def label_patches(namespaces: list[Obj], pods: list[Obj]) -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, pod, labels to add) for every Running pod of an injection-enabled namespace
    that lacks one of the injected labels; only the missing labels."""
    enabled = {meta(n).get("name") for n in namespaces if namespace_injected(n)}
    out = []
    for pod in pods:
        m = meta(pod)
        if m.get("namespace") not in enabled or not _running(pod) or pod_opted_out(pod):
            continue
        have = m.get("labels") or {}
        missing = {k: v for k, v in injected_labels(pod).items() if k not in have}
        if missing:
            out.append((m["namespace"], m["name"], missing))
    return sorted(out, key=lambda p: (p[0], p[1]))
