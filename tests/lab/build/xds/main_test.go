package main

// Tests: the conversion of xDS resources to the snapshot, and the ADS protocol against an
// in-process fake istiod on loopback (subscriptions, ACKs, EDS/RDS following CDS/LDS,
// reconnecting after the stream fails).

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func sockAddr(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

func tlsModeMeta(t *testing.T) *corev3.Metadata {
	s, err := structpb.NewStruct(map[string]any{"tlsMode": "istio"})
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.transport_socket_match": s}}
}

func edsCluster(t *testing.T, name string) *clusterv3.Cluster {
	match, _ := structpb.NewStruct(map[string]any{"tlsMode": "istio"})
	sni := "outbound_.80_._.a.ns.svc.cluster.local"
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{ServiceName: name},
		TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{
			{Name: "tlsMode-istio", Match: match, TransportSocket: &corev3.TransportSocket{Name: "tls",
				ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, &tlsv3.UpstreamTlsContext{Sni: sni})}}},
			{Name: "tlsMode-disabled", TransportSocket: &corev3.TransportSocket{Name: "raw_buffer"}},
		},
	}
}

func staticCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
				Endpoint: &endpointv3.Endpoint{Address: sockAddr("127.100.2.1", 15443)}}}}}}},
	}
}

func cla(t *testing.T, name string) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{
		{Locality: &corev3.Locality{Region: "r1", Zone: "z1"}, LbEndpoints: []*endpointv3.LbEndpoint{
			{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr("198.18.1.5", 80)}},
				HealthStatus: corev3.HealthStatus_HEALTHY, Metadata: tlsModeMeta(t)},
			{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr("127.100.2.3", 15443)}},
				LoadBalancingWeight: wrapperspb.UInt32(2), Metadata: tlsModeMeta(t)},
		}},
		{Priority: 1, LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
			Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/x"}}}}}}}},
	}}
}

func httpListener(t *testing.T) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: "x", StripPortMode: &hcmv3.HttpConnectionManager_StripAnyHostPort{StripAnyHostPort: true},
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "80"}}}
	tcp := &tcpv3.TcpProxy{StatPrefix: "p", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "PassthroughCluster"}}
	return &listenerv3.Listener{Name: "0.0.0.0_80", Address: sockAddr("0.0.0.0", 80),
		FilterChains: []*listenerv3.FilterChain{{
			FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer", ApplicationProtocols: []string{"http/1.1"},
				PrefixRanges: []*corev3.CidrRange{{AddressPrefix: "198.19.1.5", PrefixLen: wrapperspb.UInt32(32)}}},
			Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, hcm)}}}}},
		DefaultFilterChain: &listenerv3.FilterChain{Name: "PassthroughFilterChain", Filters: []*listenerv3.Filter{{
			Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, tcp)}}}}}
}

func sniListener(t *testing.T) *listenerv3.Listener {
	tcp := &tcpv3.TcpProxy{StatPrefix: "p", ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: "outbound_.80_._.a.ns.svc.cluster.local"}}
	return &listenerv3.Listener{Name: "0.0.0.0_15443", Address: sockAddr("0.0.0.0", 15443),
		FilterChains: []*listenerv3.FilterChain{{
			FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{"outbound_.80_._.a.ns.svc.cluster.local"}},
			Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.tcp_proxy",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, tcp)}}}}}}
}

func routeConfig() *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: "80", IgnorePortInHostMatching: true, VirtualHosts: []*routev3.VirtualHost{{
		Name: "a.ns.svc.cluster.local:80", Domains: []string{"a.ns.svc.cluster.local", "a.ns"},
		Routes: []*routev3.Route{
			{Name: "v2", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/headers"},
				CaseSensitive: wrapperspb.Bool(false),
				Headers: []*routev3.HeaderMatcher{{Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
					StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: ""}}}},
					{Name: "x-absent", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "outbound|80|v2|a.ns.svc.cluster.local"}}}},
			{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
					WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
						{Name: "outbound|80|v1|a.ns.svc.cluster.local", Weight: wrapperspb.UInt32(90)},
						{Name: "outbound|80|v2|a.ns.svc.cluster.local", Weight: wrapperspb.UInt32(10)}}}}}}},
			{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/teapot"}},
				Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 418}}},
		}}}}
}

func resp(t *testing.T, typ, version string, msgs ...proto.Message) *discoveryv3.DiscoveryResponse {
	out := &discoveryv3.DiscoveryResponse{TypeUrl: typ, VersionInfo: version, Nonce: version + "-" + shortType[typ]}
	for _, m := range msgs {
		out.Resources = append(out.Resources, mustAny(t, m))
	}
	return out
}

func TestConversion(t *testing.T) {
	s := newSnapshot("n", "127.0.0.1:1", nil)
	if err := s.apply(typeCluster, resp(t, typeCluster, "1", edsCluster(t, "outbound|80||a.ns.svc.cluster.local"),
		staticCluster("outbound|80||b.global"))); err != nil {
		t.Fatal(err)
	}
	if err := s.apply(typeEndpoint, resp(t, typeEndpoint, "1", cla(t, "outbound|80||a.ns.svc.cluster.local"))); err != nil {
		t.Fatal(err)
	}
	if err := s.apply(typeListener, resp(t, typeListener, "1", httpListener(t), sniListener(t))); err != nil {
		t.Fatal(err)
	}
	if err := s.apply(typeRoute, resp(t, typeRoute, "1", routeConfig())); err != nil {
		t.Fatal(err)
	}
	c := s.Clusters["outbound|80||a.ns.svc.cluster.local"]
	if c.Type != "EDS" || c.EDSName != "outbound|80||a.ns.svc.cluster.local" || len(c.Transports) != 2 ||
		!c.Transports[0].TLS || c.Transports[0].SNI != "outbound_.80_._.a.ns.svc.cluster.local" ||
		c.Transports[0].Match["tlsMode"] != "istio" || c.Transports[1].TLS {
		t.Fatalf("eds cluster: %+v", c)
	}
	if b := s.Clusters["outbound|80||b.global"]; b.Type != "STRICT_DNS" || len(b.Endpoints) != 1 || b.Endpoints[0].Address != "127.100.2.1" ||
		b.Endpoints[0].Port != 15443 || b.Endpoints[0].Weight != 1 {
		t.Fatalf("static cluster: %+v", b)
	}
	eps := s.Endpoints["outbound|80||a.ns.svc.cluster.local"]
	if len(eps) != 2 || eps[0].Address != "198.18.1.5" || eps[0].Health != "HEALTHY" || eps[0].Locality != "r1/z1" ||
		eps[1].Weight != 2 || eps[1].Health != "UNKNOWN" {
		t.Fatalf("endpoints (the pipe address is left out): %+v", eps)
	}
	if md := eps[0].Metadata["envoy.transport_socket_match"].(map[string]any); md["tlsMode"] != "istio" {
		t.Fatalf("metadata: %+v", eps[0].Metadata)
	}
	l := s.Listeners["0.0.0.0_80"]
	if l.Port != 80 || len(l.FilterChains) != 2 || l.FilterChains[0].Filters[0].RDS != "80" || !l.FilterChains[0].Filters[0].StripPort ||
		l.FilterChains[0].PrefixRanges[0] != "198.19.1.5/32" || !l.FilterChains[1].Default ||
		l.FilterChains[1].Filters[0].Cluster != "PassthroughCluster" {
		t.Fatalf("listener: %+v", l)
	}
	if g := s.Listeners["0.0.0.0_15443"]; g.FilterChains[0].ServerNames[0] != "outbound_.80_._.a.ns.svc.cluster.local" {
		t.Fatalf("sni listener: %+v", g)
	}
	rc := s.Routes["80"]
	if !rc.IgnorePort || len(rc.VirtualHosts) != 1 {
		t.Fatalf("routes: %+v", rc)
	}
	r := rc.VirtualHosts[0].Routes
	if r[0].Cluster != "outbound|80|v2|a.ns.svc.cluster.local" || r[0].Match.Prefix != "/headers" || !r[0].Match.CaseInsensitive ||
		r[0].Match.Headers[0].Exact == nil || *r[0].Match.Headers[0].Exact != "" || !r[0].Match.Headers[1].Invert ||
		r[0].Match.Headers[1].Present == nil || !*r[0].Match.Headers[1].Present {
		t.Fatalf("route 0: %+v", r[0])
	}
	if len(r[1].Weighted) != 2 || r[1].Weighted[0].Weight != 90 || r[2].DirectResponse != 418 || r[2].Match.Path != "/teapot" {
		t.Fatalf("routes 1, 2: %+v %+v", r[1], r[2])
	}
	if got := s.edsNames(); len(got) != 1 || got[0] != "outbound|80||a.ns.svc.cluster.local" {
		t.Fatalf("eds names %v", got)
	}
	// CDS is state of the world: a cluster that goes away takes its endpoints along
	if err := s.apply(typeCluster, resp(t, typeCluster, "2", staticCluster("outbound|80||b.global"))); err != nil {
		t.Fatal(err)
	}
	if len(s.Endpoints) != 0 || len(s.Clusters) != 1 {
		t.Fatalf("after CDS v2: %d clusters, %d endpoint sets", len(s.Clusters), len(s.Endpoints))
	}
	// a resource that does not unmarshal is an error (NACKed by the stream)
	bad := &discoveryv3.DiscoveryResponse{TypeUrl: typeCluster, Resources: []*anypb.Any{{TypeUrl: typeCluster, Value: []byte{0xff}}}}
	if err := s.apply(typeCluster, bad); err == nil {
		t.Fatal("a broken cluster was accepted")
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:15010", "127.1.2.3:1"} {
		if err := checkLoopback(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"10.0.0.1:15010", "istiod:15010", "[::1]:15010", "127.0.0.1", "0.0.0.0:1"} {
		if checkLoopback(bad) == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// fakeIstiod answers the subscriptions of one client like istiod does, and records requests.
type fakeIstiod struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	t        *testing.T
	mu       sync.Mutex
	requests []*discoveryv3.DiscoveryRequest
	streams  int
	failOnce bool // the first stream fails right after the first request
}

func (f *fakeIstiod) StreamAggregatedResources(s discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	f.mu.Lock()
	f.streams++
	first := f.failOnce && f.streams == 1
	f.mu.Unlock()
	for {
		req, err := s.Recv()
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.requests = append(f.requests, req)
		f.mu.Unlock()
		if first {
			return errors.New("istiod restarting")
		}
		if req.GetResponseNonce() != "" {
			continue // an ACK
		}
		var out *discoveryv3.DiscoveryResponse
		switch req.GetTypeUrl() {
		case typeCluster:
			out = resp(f.t, typeCluster, "v1", edsCluster(f.t, "outbound|80||a.ns.svc.cluster.local"))
		case typeListener:
			out = resp(f.t, typeListener, "v1", httpListener(f.t))
		case typeEndpoint:
			out = resp(f.t, typeEndpoint, "v1", cla(f.t, "outbound|80||a.ns.svc.cluster.local"))
		case typeRoute:
			out = resp(f.t, typeRoute, "v1", routeConfig())
		}
		if err := s.Send(out); err != nil {
			return err
		}
	}
}

func startFake(t *testing.T, f *fakeIstiod) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func TestStreamOnceAgainstAFakeIstiod(t *testing.T) {
	f := &fakeIstiod{t: t, failOnce: true}
	addr := startFake(t, f)
	out := filepath.Join(t.TempDir(), "snap.json")
	opt := options{server: addr, node: "sidecar~198.18.1.6~sleep-1.foo~foo.svc.cluster.local",
		metadata: `{"CLUSTER_ID":"cluster1","NETWORK":"net1","LABELS":{"app":"sleep"}}`, out: out, once: true,
		timeout: 15 * time.Second, userAgent: "test"}
	if err := run(opt); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var snap Snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		t.Fatal(err)
	}
	if !snap.Complete || !snap.Connected || snap.Versions["cds"] != "v1" || snap.Versions["rds"] != "v1" ||
		len(snap.Endpoints["outbound|80||a.ns.svc.cluster.local"]) != 2 || snap.Routes["80"] == nil {
		t.Fatalf("snapshot: %s", data)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.streams != 2 {
		t.Fatalf("%d streams: the client did not reconnect after the first one failed", f.streams)
	}
	// the first request of each stream carries the node and its metadata
	if n := f.requests[0].GetNode(); n.GetId() != opt.node || n.GetMetadata().GetFields()["CLUSTER_ID"].GetStringValue() != "cluster1" ||
		n.GetUserAgentName() != "envoy" {
		t.Fatalf("node: %+v", n)
	}
	var eds, rds, acks int
	for _, r := range f.requests[1:] {
		switch {
		case r.GetTypeUrl() == typeEndpoint && r.GetResponseNonce() == "":
			eds++
			if len(r.GetResourceNames()) != 1 || r.GetResourceNames()[0] != "outbound|80||a.ns.svc.cluster.local" {
				t.Errorf("EDS subscription %v", r.GetResourceNames())
			}
		case r.GetTypeUrl() == typeRoute && r.GetResponseNonce() == "":
			rds++
			if len(r.GetResourceNames()) != 1 || r.GetResourceNames()[0] != "80" {
				t.Errorf("RDS subscription %v", r.GetResourceNames())
			}
		case r.GetResponseNonce() != "":
			acks++
			if r.GetVersionInfo() != "v1" || r.GetErrorDetail() != nil {
				t.Errorf("ACK %+v", r)
			}
		}
	}
	if eds != 1 || rds != 1 || acks < 3 {
		t.Fatalf("eds %d rds %d acks %d", eds, rds, acks)
	}
}

func TestOnceTimesOutWithoutIstiod(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	start := time.Now()
	err = run(options{server: addr, node: "sidecar~1~p.ns~ns.svc.cluster.local", metadata: "{}",
		out: filepath.Join(t.TempDir(), "s.json"), once: true, timeout: 1500 * time.Millisecond})
	if err == nil || time.Since(start) > 12*time.Second { // generous: a loaded 2-core machine
		t.Fatalf("err %v after %s", err, time.Since(start))
	}
}
