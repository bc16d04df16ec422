#!/usr/bin/env bash
# Contender (b): the seed's procedure as a shell script of kubectl commands, looped per service.
#
#   seed_procedure.sh setup|teardown PAIRS_FILE
#
# PAIRS_FILE has one line per (remote service, consumer cluster):
#   <name> <namespace> <source context> <consumer context> <consumer namespace> <port>
# Environment: KUBECTL (the kubectl binary), KUBECONFIG.
#
# setup, per line: seed step 3 (the ingress gateway address of the source cluster,
# `kubectl get svc -l app=istio-ingressgateway -o jsonpath=...`; looked up once per source
# cluster and remembered, as anyone writing this loop would), then seed step 4 (`kubectl apply`
# of the ServiceEntry <name>-<namespace> in the consumer namespace). The VIP comes from a
# counter (240.0.0.2, 240.0.0.3, ...): unique within each consumer cluster, and the same on a
# rerun, so that a rerun changes nothing. teardown, per line: `kubectl delete serviceentry`.
set -euo pipefail

mode=${1:?usage: seed_procedure.sh setup|teardown PAIRS_FILE}
pairs=${2:?usage: seed_procedure.sh setup|teardown PAIRS_FILE}
kubectl=${KUBECTL:-kubectl}
declare -A gateway

counter=2
while read -r name ns src dst dst_ns port; do
  [ -n "$name" ] || continue
  if [ "$mode" = teardown ]; then
    "$kubectl" --context "$dst" -n "$dst_ns" delete serviceentry "$name-$ns" --ignore-not-found
    continue
  fi
  if [ -z "${gateway[$src]:-}" ]; then
    gateway[$src]=$("$kubectl" --context "$src" get svc -n istio-system -l app=istio-ingressgateway \
      -o jsonpath='{.items[0].status.loadBalancer.ingress[0].ip}')
    if [ -z "${gateway[$src]}" ]; then
      echo "no load balancer address for the ingress gateway of $src" >&2
      exit 1
    fi
  fi
  vip="240.0.$((counter / 256)).$((counter % 256))"
  counter=$((counter + 1))
  "$kubectl" --context "$dst" apply -n "$dst_ns" -f - <<EOF
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: $name-$ns
spec:
  hosts:
  - $name.$ns.global
  location: MESH_INTERNAL
  ports:
  - name: http1
    number: $port
    protocol: http
  resolution: DNS
  addresses:
  - $vip
  endpoints:
  - address: ${gateway[$src]}
    ports:
      http1: 15443
EOF
done < "$pairs"
