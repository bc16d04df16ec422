package main

// The snapshot: what istiod programmed for one proxy, reduced to what routing needs, as JSON.

import (
	"fmt"
	"sort"
	"strings"

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
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

type Snapshot struct {
	Node      string             `json:"node"`
	Server    string             `json:"server"`
	Metadata  map[string]any     `json:"metadata"`
	Connected bool               `json:"connected"`
	Error     string             `json:"error,omitempty"`
	Complete  bool               `json:"complete"`
	Started   float64            `json:"started"`
	UpdatedAt float64            `json:"updated_at"`
	Updates   int                `json:"updates"`
	Versions  map[string]string  `json:"versions"` // cds, eds, lds, rds: istiod's version_info last ACKed
	Nonces    map[string]string  `json:"nonces"`
	Received  map[string]float64 `json:"received"` // when the last response of each type arrived

	Clusters  map[string]*Cluster     `json:"clusters"`
	Endpoints map[string][]Endpoint   `json:"endpoints"` // EDS: ClusterLoadAssignment name -> endpoints
	Listeners map[string]*Listener    `json:"listeners"`
	Routes    map[string]*RouteConfig `json:"routes"`
}

type Cluster struct {
	Type       string         `json:"type"` // EDS, STATIC, STRICT_DNS, LOGICAL_DNS, ORIGINAL_DST, or a custom type's name
	EDSName    string         `json:"eds_name,omitempty"`
	Endpoints  []Endpoint     `json:"endpoints,omitempty"` // the inline load_assignment
	Transports []Transport    `json:"transports,omitempty"`
	Metadata   map[string]any `json:"metadata,omitempty"`
}

// Transport is a transport socket of a cluster: `match` (transport_socket_matches) against the
// endpoint's envoy.transport_socket_match metadata; tls with the SNI istiod set.
type Transport struct {
	Name  string         `json:"name"`
	Match map[string]any `json:"match,omitempty"`
	TLS   bool           `json:"tls"`
	SNI   string         `json:"sni,omitempty"`
}

type Endpoint struct {
	Address  string         `json:"address"`
	Port     uint32         `json:"port"`
	Weight   uint32         `json:"weight"`
	Priority uint32         `json:"priority"`
	Health   string         `json:"health,omitempty"`
	Locality string         `json:"locality,omitempty"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

type Listener struct {
	Address      string        `json:"address"`
	Port         uint32        `json:"port"`
	FilterChains []FilterChain `json:"filter_chains"`
}

type FilterChain struct {
	Name                 string   `json:"name,omitempty"`
	Default              bool     `json:"default,omitempty"`
	ServerNames          []string `json:"server_names,omitempty"`
	DestinationPort      uint32   `json:"destination_port,omitempty"`
	PrefixRanges         []string `json:"prefix_ranges,omitempty"`
	TransportProtocol    string   `json:"transport_protocol,omitempty"`
	ApplicationProtocols []string `json:"application_protocols,omitempty"`
	Filters              []Filter `json:"filters"`
}

type Filter struct {
	Name        string            `json:"name"`
	RDS         string            `json:"rds,omitempty"`                 // http_connection_manager: the route config name
	StripPort   bool              `json:"strip_any_host_port,omitempty"` // http_connection_manager: hosts matched without the port
	InlineRoute *RouteConfig      `json:"inline_route,omitempty"`        // http_connection_manager: an inline route config
	Cluster     string            `json:"cluster,omitempty"`             // tcp_proxy
	Weighted    []WeightedCluster `json:"weighted_clusters,omitempty"`
}

type RouteConfig struct {
	IgnorePort   bool          `json:"ignore_port_in_host_matching,omitempty"`
	VirtualHosts []VirtualHost `json:"virtual_hosts"`
}

type VirtualHost struct {
	Name    string   `json:"name"`
	Domains []string `json:"domains"`
	Routes  []Route  `json:"routes"`
}

type Route struct {
	Name           string            `json:"name,omitempty"`
	Match          RouteMatch        `json:"match"`
	Cluster        string            `json:"cluster,omitempty"`
	ClusterHeader  string            `json:"cluster_header,omitempty"`
	Weighted       []WeightedCluster `json:"weighted_clusters,omitempty"`
	DirectResponse uint32            `json:"direct_response,omitempty"`
	Redirect       bool              `json:"redirect,omitempty"`
	NonForwarding  bool              `json:"non_forwarding,omitempty"`
}

type RouteMatch struct {
	Prefix              string        `json:"prefix,omitempty"`
	Path                string        `json:"path,omitempty"`
	Regex               string        `json:"regex,omitempty"`
	PathSeparatedPrefix string        `json:"path_separated_prefix,omitempty"`
	CaseInsensitive     bool          `json:"case_insensitive,omitempty"`
	Headers             []StringMatch `json:"headers,omitempty"`
	QueryParameters     []StringMatch `json:"query_parameters,omitempty"`
	Unsupported         string        `json:"unsupported,omitempty"` // a matcher this client does not translate
}

// StringMatch is one header or query parameter matcher; exactly one of the value fields, or
// present, is set.
type StringMatch struct {
	Name       string  `json:"name"`
	Exact      *string `json:"exact,omitempty"`
	Prefix     string  `json:"prefix,omitempty"`
	Suffix     string  `json:"suffix,omitempty"`
	Contains   string  `json:"contains,omitempty"`
	Regex      string  `json:"regex,omitempty"`
	Present    *bool   `json:"present,omitempty"`
	IgnoreCase bool    `json:"ignore_case,omitempty"`
	Invert     bool    `json:"invert,omitempty"`
}

type WeightedCluster struct {
	Name   string `json:"name"`
	Weight uint32 `json:"weight"`
}

func newSnapshot(node, server string, md map[string]any) *Snapshot {
	return &Snapshot{Node: node, Server: server, Metadata: md, Started: now(),
		Versions: map[string]string{}, Nonces: map[string]string{}, Received: map[string]float64{},
		Clusters: map[string]*Cluster{}, Endpoints: map[string][]Endpoint{},
		Listeners: map[string]*Listener{}, Routes: map[string]*RouteConfig{}}
}

func statusOf(err error) *rpcstatus.Status {
	return &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
}

// apply folds one response into the snapshot. CDS and LDS are state of the world (the
// response replaces all); EDS and RDS responses replace the resources they carry, and
// resources no longer subscribed are dropped when the subscription changes.
func (s *Snapshot) apply(t string, resp *discoveryv3.DiscoveryResponse) error {
	switch t {
	case typeCluster:
		out := map[string]*Cluster{}
		for _, r := range resp.GetResources() {
			var c clusterv3.Cluster
			if err := r.UnmarshalTo(&c); err != nil {
				return fmt.Errorf("cluster: %v", err)
			}
			out[c.GetName()] = convertCluster(&c)
		}
		s.Clusters = out
		keep := map[string]bool{}
		for _, n := range s.edsNames() {
			keep[n] = true
		}
		for n := range s.Endpoints {
			if !keep[n] {
				delete(s.Endpoints, n)
			}
		}
	case typeEndpoint:
		for _, r := range resp.GetResources() {
			var cla endpointv3.ClusterLoadAssignment
			if err := r.UnmarshalTo(&cla); err != nil {
				return fmt.Errorf("endpoints: %v", err)
			}
			s.Endpoints[cla.GetClusterName()] = convertEndpoints(&cla)
		}
	case typeListener:
		out := map[string]*Listener{}
		for _, r := range resp.GetResources() {
			var l listenerv3.Listener
			if err := r.UnmarshalTo(&l); err != nil {
				return fmt.Errorf("listener: %v", err)
			}
			out[l.GetName()] = convertListener(&l)
		}
		s.Listeners = out
		keep := map[string]bool{}
		for _, n := range s.rdsNames() {
			keep[n] = true
		}
		for n := range s.Routes {
			if !keep[n] {
				delete(s.Routes, n)
			}
		}
	case typeRoute:
		for _, r := range resp.GetResources() {
			var rc routev3.RouteConfiguration
			if err := r.UnmarshalTo(&rc); err != nil {
				return fmt.Errorf("route: %v", err)
			}
			s.Routes[rc.GetName()] = convertRouteConfig(&rc)
		}
	}
	return nil
}

// edsNames: the ClusterLoadAssignment names the EDS clusters want, sorted.
func (s *Snapshot) edsNames() []string {
	var out []string
	for _, name := range sortedKeys(s.Clusters) {
		if c := s.Clusters[name]; c.Type == "EDS" {
			out = append(out, c.EDSName)
		}
	}
	sort.Strings(out)
	return dedupe(out)
}

// rdsNames: the route configuration names the listeners' HTTP connection managers use.
func (s *Snapshot) rdsNames() []string {
	var out []string
	for _, l := range s.Listeners {
		for _, fc := range l.FilterChains {
			for _, f := range fc.Filters {
				if f.RDS != "" {
					out = append(out, f.RDS)
				}
			}
		}
	}
	sort.Strings(out)
	return dedupe(out)
}

func dedupe(in []string) []string {
	var out []string
	for i, v := range in {
		if i == 0 || in[i-1] != v {
			out = append(out, v)
		}
	}
	return out
}

func structMap(s *structpb.Struct) map[string]any {
	if s == nil || len(s.GetFields()) == 0 {
		return nil
	}
	return s.AsMap()
}

func metadataMap(m *corev3.Metadata) map[string]any {
	if m == nil || len(m.GetFilterMetadata()) == 0 {
		return nil
	}
	out := map[string]any{}
	for k, v := range m.GetFilterMetadata() {
		out[k] = v.AsMap()
	}
	return out
}

func convertCluster(c *clusterv3.Cluster) *Cluster {
	out := &Cluster{Type: c.GetType().String(), Metadata: metadataMap(c.GetMetadata())}
	if ct := c.GetClusterType(); ct != nil {
		out.Type = ct.GetName()
	}
	if out.Type == "EDS" {
		out.EDSName = c.GetEdsClusterConfig().GetServiceName()
		if out.EDSName == "" {
			out.EDSName = c.GetName()
		}
	}
	if la := c.GetLoadAssignment(); la != nil {
		out.Endpoints = convertEndpoints(la)
	}
	for _, m := range c.GetTransportSocketMatches() {
		tr := transport(m.GetName(), m.GetTransportSocket())
		tr.Match = structMap(m.GetMatch())
		out.Transports = append(out.Transports, tr)
	}
	if ts := c.GetTransportSocket(); ts != nil {
		out.Transports = append(out.Transports, transport("default", ts))
	}
	return out
}

func transport(name string, ts *corev3.TransportSocket) Transport {
	tr := Transport{Name: name}
	if ts == nil {
		return tr
	}
	if any := ts.GetTypedConfig(); any != nil && strings.HasSuffix(any.GetTypeUrl(), ".UpstreamTlsContext") {
		var tlsCtx tlsv3.UpstreamTlsContext
		if err := any.UnmarshalTo(&tlsCtx); err == nil {
			tr.TLS = true
			tr.SNI = tlsCtx.GetSni()
		}
	}
	return tr
}

func convertEndpoints(cla *endpointv3.ClusterLoadAssignment) []Endpoint {
	out := []Endpoint{}
	for _, lle := range cla.GetEndpoints() {
		loc := lle.GetLocality()
		locality := strings.Trim(strings.Join([]string{loc.GetRegion(), loc.GetZone(), loc.GetSubZone()}, "/"), "/")
		for _, lb := range lle.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				continue // internal addresses and pipes: not routable by the lab
			}
			w := lb.GetLoadBalancingWeight().GetValue()
			if w == 0 {
				w = 1
			}
			out = append(out, Endpoint{
				Address: sa.GetAddress(), Port: sa.GetPortValue(), Weight: w, Priority: lle.GetPriority(),
				Health: lb.GetHealthStatus().String(), Locality: locality, Metadata: metadataMap(lb.GetMetadata()),
			})
		}
	}
	return out
}

func convertListener(l *listenerv3.Listener) *Listener {
	sa := l.GetAddress().GetSocketAddress()
	out := &Listener{Address: sa.GetAddress(), Port: sa.GetPortValue(), FilterChains: []FilterChain{}}
	for _, fc := range l.GetFilterChains() {
		out.FilterChains = append(out.FilterChains, convertFilterChain(fc, false))
	}
	if d := l.GetDefaultFilterChain(); d != nil {
		out.FilterChains = append(out.FilterChains, convertFilterChain(d, true))
	}
	return out
}

func convertFilterChain(fc *listenerv3.FilterChain, isDefault bool) FilterChain {
	m := fc.GetFilterChainMatch()
	out := FilterChain{Name: fc.GetName(), Default: isDefault, ServerNames: m.GetServerNames(),
		DestinationPort: m.GetDestinationPort().GetValue(), TransportProtocol: m.GetTransportProtocol(),
		ApplicationProtocols: m.GetApplicationProtocols(), Filters: []Filter{}}
	for _, p := range m.GetPrefixRanges() {
		out.PrefixRanges = append(out.PrefixRanges, fmt.Sprintf("%s/%d", p.GetAddressPrefix(), p.GetPrefixLen().GetValue()))
	}
	for _, f := range fc.GetFilters() {
		out.Filters = append(out.Filters, convertFilter(f.GetName(), f.GetTypedConfig()))
	}
	return out
}

func convertFilter(name string, cfg *anypb.Any) Filter {
	out := Filter{Name: name}
	if cfg == nil {
		return out
	}
	switch {
	case strings.HasSuffix(cfg.GetTypeUrl(), ".HttpConnectionManager"):
		var hcm hcmv3.HttpConnectionManager
		if cfg.UnmarshalTo(&hcm) == nil {
			out.RDS = hcm.GetRds().GetRouteConfigName()
			out.StripPort = hcm.GetStripAnyHostPort()
			if rc := hcm.GetRouteConfig(); rc != nil {
				out.InlineRoute = convertRouteConfig(rc)
			}
		}
	case strings.HasSuffix(cfg.GetTypeUrl(), ".TcpProxy"):
		var tp tcpv3.TcpProxy
		if cfg.UnmarshalTo(&tp) == nil {
			out.Cluster = tp.GetCluster()
			for _, w := range tp.GetWeightedClusters().GetClusters() {
				out.Weighted = append(out.Weighted, WeightedCluster{Name: w.GetName(), Weight: w.GetWeight()})
			}
		}
	}
	return out
}

func convertRouteConfig(rc *routev3.RouteConfiguration) *RouteConfig {
	out := &RouteConfig{IgnorePort: rc.GetIgnorePortInHostMatching(), VirtualHosts: []VirtualHost{}}
	for _, vh := range rc.GetVirtualHosts() {
		v := VirtualHost{Name: vh.GetName(), Domains: vh.GetDomains(), Routes: []Route{}}
		for _, r := range vh.GetRoutes() {
			v.Routes = append(v.Routes, convertRoute(r))
		}
		out.VirtualHosts = append(out.VirtualHosts, v)
	}
	return out
}

func convertRoute(r *routev3.Route) Route {
	out := Route{Name: r.GetName(), Match: convertMatch(r.GetMatch())}
	switch {
	case r.GetRoute() != nil:
		a := r.GetRoute()
		out.Cluster = a.GetCluster()
		out.ClusterHeader = a.GetClusterHeader()
		for _, w := range a.GetWeightedClusters().GetClusters() {
			out.Weighted = append(out.Weighted, WeightedCluster{Name: w.GetName(), Weight: w.GetWeight().GetValue()})
		}
	case r.GetDirectResponse() != nil:
		out.DirectResponse = r.GetDirectResponse().GetStatus()
	case r.GetRedirect() != nil:
		out.Redirect = true
	default:
		out.NonForwarding = true
	}
	return out
}

func convertMatch(m *routev3.RouteMatch) RouteMatch {
	out := RouteMatch{Prefix: m.GetPrefix(), Path: m.GetPath(), Regex: m.GetSafeRegex().GetRegex(),
		PathSeparatedPrefix: m.GetPathSeparatedPrefix()}
	if cs := m.GetCaseSensitive(); cs != nil && !cs.GetValue() {
		out.CaseInsensitive = true
	}
	if m.GetPathMatchPolicy() != nil || m.GetConnectMatcher() != nil {
		out.Unsupported = "path_match_policy/connect_matcher"
	}
	for _, h := range m.GetHeaders() {
		sm := StringMatch{Name: h.GetName(), Invert: h.GetInvertMatch()}
		switch {
		case h.GetStringMatch() != nil:
			fillString(&sm, h.GetStringMatch())
		case h.GetExactMatch() != "":
			v := h.GetExactMatch()
			sm.Exact = &v
		case h.GetPrefixMatch() != "":
			sm.Prefix = h.GetPrefixMatch()
		case h.GetSuffixMatch() != "":
			sm.Suffix = h.GetSuffixMatch()
		case h.GetContainsMatch() != "":
			sm.Contains = h.GetContainsMatch()
		case h.GetSafeRegexMatch() != nil:
			sm.Regex = h.GetSafeRegexMatch().GetRegex()
		default:
			present := true
			if pm, ok := h.GetHeaderMatchSpecifier().(*routev3.HeaderMatcher_PresentMatch); ok {
				present = pm.PresentMatch
			}
			sm.Present = &present
		}
		out.Headers = append(out.Headers, sm)
	}
	for _, q := range m.GetQueryParameters() {
		sm := StringMatch{Name: q.GetName()}
		if q.GetStringMatch() != nil {
			fillString(&sm, q.GetStringMatch())
		} else {
			present := q.GetPresentMatch()
			sm.Present = &present
		}
		out.QueryParameters = append(out.QueryParameters, sm)
	}
	return out
}

func fillString(sm *StringMatch, m *matcherv3.StringMatcher) {
	sm.IgnoreCase = m.GetIgnoreCase()
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		v := p.Exact
		sm.Exact = &v
	case *matcherv3.StringMatcher_Prefix:
		sm.Prefix = p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		sm.Suffix = p.Suffix
	case *matcherv3.StringMatcher_Contains:
		sm.Contains = p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		sm.Regex = p.SafeRegex.GetRegex()
	}
}
