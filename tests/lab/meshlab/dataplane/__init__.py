"""The lab's emulated Istio data plane (sidecars, gateways, load balancers, httpbin pods).

Run as `python -m meshlab.dataplane --state-dir STATE`; see tests/lab/README-dataplane.md.
Modules: `view` (a cluster's objects, indexes, Services to endpoints), `gates` (Istio version
and DNS gates), `routing` (pure routing decisions), `lbcontroller` (the lab's load balancer
controller and listeners), `net` (the one `dial`), `wire` (emulated mTLS
preamble, HTTP framing), `servers` (listeners and hops), `kube` (API reads), `workloads`
(httpbin processes), `podserver` (one httpbin), `hops` (the hop log), `main` (the process).
"""
