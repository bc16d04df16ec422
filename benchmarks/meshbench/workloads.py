"""The workloads: remote services between 2 clusters (sidecar mode), a 4-cluster full mesh, and
the scale study: full meshes of 2, 4 and 8 clusters with 25 services exported by each, run
with (a) only (the kubectl loop and the per-object playbook at 1,400 objects would take most of
an hour and are not asked for)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

SOURCE_NAMESPACE = "bench"
CLIENT_NAMESPACE = "bench-client"
PORT = 8000
MAIN, SCALE = "main", "scale"
SCALE_PER_CLUSTER = 25
SCALE_CLUSTERS = (2, 4, 8)


class Workload:
    """``services``: meshlink_services for (a); ``pairs``: one (service, consumer) per object for (b)/(c)."""

    def __init__(self, key: str, title: str, clusters: List[str], services: List[Dict[str, Any]],
                 group: str = MAIN, contenders: Optional[Tuple[str, ...]] = None) -> None:
        self.key = key
        self.title = title
        self.clusters = clusters
        self.services = services
        self.group = group
        self.contenders = contenders  # None: every contender
        self.pairs = [
            {"name": s["name"], "namespace": s["namespace"], "cluster": s["cluster"], "consumer": c["cluster"],
             "consumer_namespace": c["namespace"], "port": PORT}
            for s in services for c in s["consumers"]
        ]

    @property
    def n_services(self) -> int:
        return len(self.services)

    @property
    def n_objects(self) -> int:
        """ServiceEntries the workload puts in the consumer clusters."""
        return len(self.pairs)

    def pairs_tsv(self) -> str:
        return "".join(f"{p['name']} {p['namespace']} {p['cluster']} {p['consumer']} {p['consumer_namespace']} "
                       f"{p['port']}\n" for p in self.pairs)


def _service(name: str, source: str, consumers: List[str]) -> Dict[str, Any]:
    return {"name": name, "namespace": SOURCE_NAMESPACE, "cluster": source,
            "consumers": [{"cluster": c, "namespace": CLIENT_NAMESPACE} for c in consumers],
            "ports": [{"name": "http1", "number": PORT, "protocol": "http"}], "mode": "sidecar"}


def two_clusters(count: int) -> Workload:
    services = [_service(f"s2-{i}", "cluster2", ["cluster1"]) for i in range(count)]
    return Workload(f"2c-{count}", f"{count} service{'s' if count > 1 else ''}, 2 clusters",
                    ["cluster1", "cluster2"], services)


def full_mesh(clusters: int, per_cluster: int, group: str = MAIN,
              contenders: Optional[Tuple[str, ...]] = None) -> Workload:
    names = [f"cluster{i}" for i in range(1, clusters + 1)]
    services = [_service(f"s{i}-{j}", src, [c for c in names if c != src])
                for i, src in enumerate(names, start=1) for j in range(per_cluster)]
    return Workload(f"{clusters}c-mesh-{per_cluster}",
                    f"{clusters}-cluster full mesh, {per_cluster} services exported by each", names, services,
                    group, contenders)


def all_workloads() -> Dict[str, Workload]:
    items = [two_clusters(1), two_clusters(10), two_clusters(100), full_mesh(4, 10)]
    items += [full_mesh(n, SCALE_PER_CLUSTER, SCALE, ("a",)) for n in SCALE_CLUSTERS]
    return {w.key: w for w in items}


def select(workloads: Dict[str, Workload], names: Optional[Sequence[str]], contenders: Sequence[str],
           quick: bool = False, scale: bool = True) -> List[Tuple[str, List[str]]]:
    """(workload key, contender keys) to run, in run order (the main group first, then the scale rows).

    ``names`` (``--workloads``) wins: exactly those workloads. Otherwise every main workload, and
    the scale rows unless ``scale`` is false; ``quick`` runs the 10-service workload with (a) only
    (its (a) time is the denominator of the 4-cluster mesh ratio). A workload restricted to some
    contenders (the scale rows: (a)) runs only those of ``contenders``; one left with none is dropped.
    """
    if names:
        unknown = sorted(set(names) - set(workloads))
        if unknown:
            raise ValueError(f"unknown workloads {unknown}; choose from {', '.join(workloads)}")
        chosen = [k for k in workloads if k in names]
    else:
        chosen = [k for k, w in workloads.items() if w.group == MAIN or (scale and w.group == SCALE)]
    out = []
    for group in (MAIN, SCALE):
        for key in chosen:
            w = workloads[key]
            if w.group != group:
                continue
            allowed = w.contenders
            if quick and not names and key == "2c-10":
                allowed = ("a",)
            keys = [c for c in contenders if allowed is None or c in allowed]
            if keys:
                out.append((key, keys))
    return out
