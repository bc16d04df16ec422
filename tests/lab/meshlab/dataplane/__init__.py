"""The lab's emulated Istio data plane (sidecars, gateways, load balancers, httpbin pods).

Run as `python -m meshlab.dataplane --state-dir STATE`; see tests/lab/README-dataplane.md.
Modules: `rules` (pure routing decisions), `net` (the one `dial`), `wire` (emulated mTLS
preamble, HTTP framing), `servers` (listeners and hops), `kube` (API reads), `workloads`
(httpbin processes), `podserver` (one httpbin), `hops` (the hop log), `main` (the process).
"""
