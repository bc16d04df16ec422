// meshlab-xds: the lab's xDS client. It stands in for the Envoy of one pod: it holds an ADS
// stream to a real istiod as that pod's proxy (node id, metadata), subscribes to clusters,
// endpoints, listeners and routes, ACKs every response, and after every update writes what
// istiod programmed as one JSON snapshot (atomically: a temporary file renamed over the
// old one). The lab's data plane routes that pod's traffic by the snapshot.
//
//	meshlab-xds --server 127.0.0.1:15010 --node sidecar~198.18.1.5~sleep-x.foo~foo.svc.cluster.local \
//	    --metadata '{"CLUSTER_ID":"cluster1","NETWORK":"network1",...}' --out snap.json
//	meshlab-xds ... --once --out -        # dump one complete snapshot and exit
//
// Only loopback is ever dialed (the lab's network rule): --server must be 127.0.0.0/8.
// Plaintext ADS, as istiod serves it on its grpc port without authentication.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	typeCluster  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	typeEndpoint = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	typeListener = "type.googleapis.com/envoy.config.listener.v3.Listener"
	typeRoute    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"

	maxBackoff = 10 * time.Second
)

var shortType = map[string]string{typeCluster: "cds", typeEndpoint: "eds", typeListener: "lds", typeRoute: "rds"}

type options struct {
	server    string
	node      string
	metadata  string
	out       string
	once      bool
	timeout   time.Duration
	parentPID int
	userAgent string
}

// typeState is the protocol state of one resource type on the stream.
type typeState struct {
	version   string
	nonce     string
	names     []string // what was last requested (nil: wildcard)
	requested bool     // a request was sent on this stream
	seen      bool     // a response arrived on this stream
}

// wants: must the subscription (EDS or RDS names) be sent again?
func (st *typeState) wants(names []string) bool {
	if !st.requested {
		return len(names) > 0
	}
	return !equal(names, st.names)
}

type client struct {
	opt   options
	snap  *Snapshot
	types map[string]*typeState
}

func main() {
	var opt options
	flag.StringVar(&opt.server, "server", "", "istiod's plaintext gRPC (ADS) address, host:port on 127.0.0.0/8")
	flag.StringVar(&opt.node, "node", "", "node id, e.g. sidecar~<podIP>~<pod>.<ns>~<ns>.svc.cluster.local")
	flag.StringVar(&opt.metadata, "metadata", "{}", "node metadata as a JSON object (CLUSTER_ID, NETWORK, LABELS, ...)")
	flag.StringVar(&opt.out, "out", "-", "snapshot file, written atomically on every update (- = stdout, only with --once)")
	flag.BoolVar(&opt.once, "once", false, "write one complete snapshot and exit")
	flag.DurationVar(&opt.timeout, "timeout", 20*time.Second, "with --once: give up after this long (exit 1)")
	flag.IntVar(&opt.parentPID, "parent-pid", 0, "exit when this process is gone")
	flag.StringVar(&opt.userAgent, "user-agent-version", "meshlab-xds", "node user_agent_version")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix("meshlab-xds ")
	if err := run(opt); err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

func checkLoopback(server string) error {
	host, port, err := net.SplitHostPort(server)
	if err != nil {
		return fmt.Errorf("--server %q: %v", server, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() || port == "" {
		return fmt.Errorf("--server %q: only an IPv4 loopback address is dialed (lab network rule)", server)
	}
	return nil
}

func run(opt options) error {
	if opt.node == "" {
		return errors.New("--node is required")
	}
	if err := checkLoopback(opt.server); err != nil {
		return err
	}
	var md map[string]any
	if err := json.Unmarshal([]byte(opt.metadata), &md); err != nil {
		return fmt.Errorf("--metadata: %v", err)
	}
	meta, err := structpb.NewStruct(md)
	if err != nil {
		return fmt.Errorf("--metadata: %v", err)
	}
	if !opt.once && opt.out == "-" {
		return errors.New("--out FILE is required unless --once")
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	if opt.parentPID > 0 {
		go func() {
			for ctx.Err() == nil {
				if syscall.Kill(opt.parentPID, 0) != nil || os.Getppid() != opt.parentPID {
					log.Printf("parent %d is gone: exiting", opt.parentPID)
					cancel()
					return
				}
				time.Sleep(time.Second)
			}
		}()
	}
	if opt.once {
		var tcancel context.CancelFunc
		ctx, tcancel = context.WithTimeout(ctx, opt.timeout)
		defer tcancel()
	}
	node := &corev3.Node{
		Id:                   opt.node,
		Cluster:              clusterOfNode(opt.node, md),
		Metadata:             meta,
		UserAgentName:        "envoy",
		UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: opt.userAgent},
	}
	c := &client{opt: opt, snap: newSnapshot(opt.node, opt.server, md)}
	backoff := 500 * time.Millisecond
	for {
		err := c.stream(ctx, node)
		if c.opt.once && c.snap.Complete {
			return c.write()
		}
		if ctx.Err() != nil {
			if c.opt.once {
				_ = c.write()
				return fmt.Errorf("no complete snapshot within %s (last error: %v)", opt.timeout, err)
			}
			return nil
		}
		if c.snap.Updates > 0 && c.snap.Connected {
			backoff = 500 * time.Millisecond // the stream had worked: start the backoff again
		}
		c.snap.Connected = false
		c.snap.Error = fmt.Sprint(err)
		log.Printf("stream to %s ended: %v; reconnecting in %s", opt.server, err, backoff)
		if !c.opt.once {
			_ = c.write() // keep the last configuration, as Envoy does, and say it is disconnected
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff *= 2
		if backoff > maxBackoff {
			backoff = maxBackoff
		}
	}
}

// clusterOfNode is Envoy's --service-cluster as istio-agent sets it: <app>.<namespace>.
func clusterOfNode(id string, md map[string]any) string {
	parts := strings.Split(id, "~")
	if len(parts) == 4 {
		if i := strings.Index(parts[2], "."); i > 0 {
			return parts[2][:i] + "." + parts[2][i+1:]
		}
	}
	return "meshlab"
}

func (c *client) stream(ctx context.Context, node *corev3.Node) error {
	conn, err := grpc.NewClient(c.opt.server,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithNoProxy(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		return err
	}
	defer conn.Close()
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	ads, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
	if err != nil {
		return err
	}
	// A new stream starts from scratch on istiod's side: request everything again, with the
	// versions we hold (as Envoy does on reconnect), so istiod pushes the full state.
	prev := c.types
	c.types = map[string]*typeState{}
	for _, t := range []string{typeCluster, typeEndpoint, typeListener, typeRoute} {
		c.types[t] = &typeState{}
		if prev != nil && prev[t] != nil {
			c.types[t].version = prev[t].version
		}
	}
	first := true
	send := func(t string, names []string) error {
		st := c.types[t]
		req := &discoveryv3.DiscoveryRequest{VersionInfo: st.version, ResourceNames: names, TypeUrl: t,
			ResponseNonce: st.nonce}
		if first {
			req.Node = node
			first = false
		}
		st.names = names
		st.requested = true
		return ads.Send(req)
	}
	if err := send(typeCluster, nil); err != nil {
		return err
	}
	if err := send(typeListener, nil); err != nil {
		return err
	}
	for {
		resp, err := ads.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("istiod closed the stream")
			}
			return err
		}
		t := resp.GetTypeUrl()
		st, ok := c.types[t]
		if !ok {
			// not subscribed: ACK so istiod does not wait, and ignore it
			if err := ads.Send(&discoveryv3.DiscoveryRequest{TypeUrl: t, VersionInfo: resp.GetVersionInfo(),
				ResponseNonce: resp.GetNonce()}); err != nil {
				return err
			}
			continue
		}
		perr := c.snap.apply(t, resp)
		st.nonce = resp.GetNonce()
		st.seen = true
		ack := &discoveryv3.DiscoveryRequest{TypeUrl: t, ResponseNonce: st.nonce, ResourceNames: st.names}
		if perr != nil {
			// NACK: keep the previous version, say why (Envoy does the same)
			ack.VersionInfo = st.version
			ack.ErrorDetail = statusOf(perr)
			log.Printf("NACK %s %s: %v", shortType[t], resp.GetVersionInfo(), perr)
		} else {
			st.version = resp.GetVersionInfo()
			ack.VersionInfo = st.version
		}
		// New EDS/RDS names follow a CDS/LDS update; request them before ACKing the parent
		// type, as Envoy does, so the endpoints and routes of the new clusters come next.
		switch t {
		case typeCluster:
			if names := c.snap.edsNames(); c.types[typeEndpoint].wants(names) {
				if err := send(typeEndpoint, names); err != nil {
					return err
				}
			}
		case typeListener:
			if names := c.snap.rdsNames(); c.types[typeRoute].wants(names) {
				if err := send(typeRoute, names); err != nil {
					return err
				}
			}
		}
		if err := ads.Send(ack); err != nil {
			return err
		}
		c.snap.Connected = true
		c.snap.Error = ""
		c.snap.Versions[shortType[t]] = st.version
		c.snap.Nonces[shortType[t]] = st.nonce
		c.snap.Received[shortType[t]] = now()
		c.snap.Updates++
		c.snap.Complete = c.complete()
		c.snap.UpdatedAt = now()
		if c.opt.once {
			if c.snap.Complete {
				return nil
			}
			continue
		}
		if err := c.write(); err != nil {
			log.Printf("writing %s: %v", c.opt.out, err)
		}
	}
}

// complete: clusters and listeners arrived, and the endpoints and routes they name.
func (c *client) complete() bool {
	if !c.types[typeCluster].seen || !c.types[typeListener].seen {
		return false
	}
	for _, n := range c.snap.edsNames() {
		if _, ok := c.snap.Endpoints[n]; !ok {
			return false
		}
	}
	for _, n := range c.snap.rdsNames() {
		if _, ok := c.snap.Routes[n]; !ok {
			return false
		}
	}
	return true
}

func (c *client) write() error {
	data, err := json.MarshalIndent(c.snap, "", " ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if c.opt.out == "-" {
		_, err = os.Stdout.Write(data)
		return err
	}
	tmp := filepath.Join(filepath.Dir(c.opt.out), "."+filepath.Base(c.opt.out)+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, c.opt.out)
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func now() float64 { return float64(time.Now().UnixNano()) / 1e9 }
