"""`tests/lab/lab` commands: up, down, status, kubeconfig, kubectl, hops, build, stop-apiserver, start-apiserver."""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import build, cluster, versions


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["kubectl"]:
        # passed through untouched (argparse would eat kubectl's own options)
        os.execv(str(versions.kube_bin("kubectl")), ["kubectl", "--kubeconfig",
                 str(versions.state_dir() / "kubeconfig"), *argv[1:]])
    parser = argparse.ArgumentParser(prog="lab", description=(
        "Real Kubernetes control planes on loopback with kwok nodes and an emulated Istio "
        "data plane. Environment: LAB_CLUSTERS=N, LAB_LB=[mode,]clusterN=ip|hostname|none,..., "
        "LAB_ISTIO_VERSION=[ver,]clusterN=ver,... (>= 1.22: current Istio with a real istiod), "
        "LAB_ISTIO_ROLE=clusterN=primary|remote:clusterM,..., LAB_NETWORK=clusterN=net,..., LAB_MESH_ID, "
        "LAB_WITHOUT=clusterN=dns+gateway,..., LAB_STATE_DIR, LAB_INDEX_BASE, MESHLINK_LAB_CACHE."))
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="create or converge the lab (idempotent)")
    sub.add_parser("down", help="stop everything and remove the state directory")
    sub.add_parser("status", help="health of each cluster, of each istiod and of the data plane")
    sub.add_parser("kubeconfig", help="print the path of the lab kubeconfig")
    sub.add_parser("build", help="build the binaries into the cache (up does this too)")
    sub.add_parser("kubectl", help="the lab's kubectl with the lab kubeconfig (arguments passed through)")
    hops = sub.add_parser("hops", help="print the recorded path of one request")
    hops.add_argument("request_id")
    stop_api = sub.add_parser("stop-apiserver", help="kill one cluster's kube-apiserver (failure drills)")
    stop_api.add_argument("name", help="lab cluster, e.g. cluster2")
    start_api = sub.add_parser("start-apiserver", help="restart one cluster's kube-apiserver, wait for /readyz")
    start_api.add_argument("name", help="lab cluster, e.g. cluster2")
    args = parser.parse_args(argv)

    if args.command == "up":
        cluster.up()
    elif args.command == "down":
        cluster.down()
    elif args.command == "status":
        return cluster.status()
    elif args.command == "kubeconfig":
        print(versions.state_dir() / "kubeconfig")
    elif args.command == "build":
        build.ensure_all()
    elif args.command == "hops":
        from .dataplane import hops as hops_mod  # the data plane owns the hop log format
        for hop in hops_mod.path(str(versions.state_dir()), args.request_id):
            print(json.dumps(hop, sort_keys=True))
    elif args.command == "stop-apiserver":
        from . import faults
        faults.stop_apiserver(args.name)
    elif args.command == "start-apiserver":
        from . import faults
        faults.start_apiserver(args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
