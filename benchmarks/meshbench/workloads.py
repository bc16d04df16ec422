"""The workloads: remote services between 2 clusters (sidecar mode), and a 4-cluster full mesh."""

from __future__ import annotations

from typing import Any, Dict, List

SOURCE_NAMESPACE = "bench"
CLIENT_NAMESPACE = "bench-client"
PORT = 8000


class Workload:
    """``services``: meshlink_services for (a); ``pairs``: one (service, consumer) per object for (b)/(c)."""

    def __init__(self, key: str, title: str, clusters: List[str], services: List[Dict[str, Any]]) -> None:
        self.key = key
        self.title = title
        self.clusters = clusters
        self.services = services
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


def full_mesh(clusters: int, per_cluster: int) -> Workload:
    names = [f"cluster{i}" for i in range(1, clusters + 1)]
    services = [_service(f"s{i}-{j}", src, [c for c in names if c != src])
                for i, src in enumerate(names, start=1) for j in range(per_cluster)]
    return Workload(f"{clusters}c-mesh-{per_cluster}",
                    f"{clusters}-cluster full mesh, {per_cluster} services exported by each", names, services)


def all_workloads() -> Dict[str, Workload]:
    items = [two_clusters(1), two_clusters(10), two_clusters(100), full_mesh(4, 10)]
    return {w.key: w for w in items}
