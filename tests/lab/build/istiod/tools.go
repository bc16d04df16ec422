//go:build tools

// Package tools pins the Istio control plane the lab runs (pilot-discovery, i.e. istiod),
// so that `go mod tidy` keeps its dependencies in go.sum.
package tools

import (
	_ "istio.io/istio/pilot/cmd/pilot-discovery"
)
