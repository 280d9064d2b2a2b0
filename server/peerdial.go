package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// peerDialer owns how this member reaches others on their peer URLs: the
// peer client TLS and the local address. It holds no connection; every
// caller dials, uses and closes its own. A member about to join uses one
// before it has a transport.
type peerDialer struct {
	tls *tls.Config // nil: peer URLs are plain
	// localAddr is the source address of peer connections, with the
	// SetMemberLocalAddr feature gate; nil otherwise.
	localAddr *net.TCPAddr
}

// newPeerDialer sets etcd's SetMemberLocalAddr: with the gate, peers see
// this member's connections come from the address it advertises (when
// that is an IP address).
func newPeerDialer(cfg *Config, tlsc tlsConfigs) peerDialer {
	d := peerDialer{tls: tlsc.peerClient}
	if gates, _ := cfg.gates(); gates["SetMemberLocalAddr"] && len(cfg.InitialAdvertisePeerURLs) > 0 {
		if u, err := url.Parse(cfg.InitialAdvertisePeerURLs[0]); err == nil {
			if ip := net.ParseIP(u.Hostname()); ip != nil && !ip.IsUnspecified() {
				d.localAddr = &net.TCPAddr{IP: ip}
			}
		}
	}
	return d
}

// dial connects to the first of a member's peer URLs.
func (d peerDialer) dial(urls []string) (*grpc.ClientConn, error) {
	u, err := url.Parse(urls[0])
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if secureURL(urls[0]) {
		creds = credentials.NewTLS(d.tls)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{}), grpc.MaxCallRecvMsgSize(peerMsgBytesMax), grpc.MaxCallSendMsgSize(peerMsgBytesMax)),
	}
	if u.Scheme == "unix" || u.Scheme == "unixs" {
		// The socket file a unix:// peer URL names, as listen opens it.
		return grpc.NewClient("unix:"+u.Host+u.Path, opts...)
	}
	if d.localAddr != nil {
		nd := net.Dialer{LocalAddr: d.localAddr, Timeout: peerDialTimeout}
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return nd.DialContext(ctx, "tcp", addr)
		}))
	}
	return grpc.NewClient(u.Host, opts...)
}

// fetchCluster asks the members in --initial-cluster for the cluster a
// joining member joins, as etcd does for --initial-cluster-state existing.
func (d peerDialer) fetchCluster(ctx context.Context, urls []string) (clusterInfo, error) {
	var last error
	for _, u := range urls {
		conn, err := d.dial([]string{u})
		if err != nil {
			last = err
			continue
		}
		var out []byte
		cctx, cancel := context.WithTimeout(ctx, peerDialTimeout)
		err = conn.Invoke(cctx, "/"+peerService+"/Cluster", new([]byte), &out)
		cancel()
		conn.Close()
		if err != nil {
			last = err
			continue
		}
		var ci clusterInfo
		if err := json.Unmarshal(out, &ci); err != nil {
			last = err
			continue
		}
		return ci, nil
	}
	return clusterInfo{}, fmt.Errorf("could not get the cluster's members from any peer: %w", last)
}

// askHashKV asks the member at a peer URL for its hash at rev, waiting
// at most timeout.
func (d peerDialer) askHashKV(peerURL string, req hashKVRequest, timeout time.Duration) (hashKVReply, error) {
	conn, err := d.dial([]string{peerURL})
	if err != nil {
		return hashKVReply{}, err
	}
	defer conn.Close()
	in, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []byte
	if err := conn.Invoke(ctx, "/"+peerService+"/HashKV", &in, &out); err != nil {
		return hashKVReply{}, err
	}
	var r hashKVReply
	if err := json.Unmarshal(out, &r); err != nil {
		return hashKVReply{}, fmt.Errorf("bad hash reply: %w", err)
	}
	if r.Err != "" {
		if e, ok := hashErrs[r.Err]; ok {
			return hashKVReply{}, e
		}
		return hashKVReply{}, fmt.Errorf("unknown error: %s", r.Err)
	}
	return r, nil
}
