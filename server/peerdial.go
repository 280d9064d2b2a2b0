package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/detcd/detcd/etcddb"
)

// peerDialer owns how this member reaches others on their peer URLs: the
// peer client TLS and the local address. It holds no connection; every
// caller makes a client, uses it and closes its connections. A member
// about to join uses one before it has a transport.
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

// peerClient is an HTTP/1.1 client of one peer URL, and the URL requests
// to it start with.
type peerClient struct {
	*http.Client
	base string
}

// client makes a client of a peer URL; its owner closes its idle
// connections when done.
func (d peerDialer) client(peerURL string) (peerClient, error) {
	return d.clientWith(peerURL, nil)
}

// clientWith makes a client of a peer URL whose connections tell onEnd
// when they fail or close (nil: nobody).
func (d peerDialer) clientWith(peerURL string, onEnd func(error)) (peerClient, error) {
	u, err := url.Parse(peerURL)
	if err != nil {
		return peerClient{}, err
	}
	nd := &net.Dialer{Timeout: peerDialTimeout}
	if d.localAddr != nil {
		nd.LocalAddr = d.localAddr
	}
	dial := nd.DialContext
	if u.Scheme == "unix" || u.Scheme == "unixs" {
		// The socket file a unix:// peer URL names, as listen opens it.
		socket := u.Host + u.Path
		dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: peerDialTimeout}).DialContext(ctx, "unix", socket)
		}
	}
	tr := &http.Transport{Protocols: http1Only(), DialContext: dial, TLSHandshakeTimeout: peerDialTimeout, DisableCompression: true}
	if onEnd != nil {
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return watchedConn{Conn: c, end: onEnd}, nil
		}
	}
	scheme := "http"
	if secureURL(peerURL) {
		scheme = "https"
		c := &tls.Config{}
		if d.tls != nil {
			c = d.tls.Clone()
		}
		c.NextProtos = []string{"http/1.1"}
		tr.TLSClientConfig = c
	}
	host := u.Host
	if host == "" {
		host = "localhost" // a unix socket's absolute path: requests still name a host
	}
	return peerClient{Client: &http.Client{Transport: tr}, base: scheme + "://" + host}, nil
}

// get asks a peer for path, with an optional body, within ctx; the
// answer's body, or a *peerStatusError for an answer other than 200.
func (c peerClient) get(ctx context.Context, path string, body []byte, h http.Header) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, statusError(resp)
	}
	b, err := io.ReadAll(resp.Body)
	return b, resp.Header, err
}

// fetchCluster asks the members in --initial-cluster for the cluster a
// joining member joins (etcd's GET /members), as etcd does for
// --initial-cluster-state existing.
func (d peerDialer) fetchCluster(ctx context.Context, urls []string) (clusterInfo, error) {
	var last error
	for _, u := range urls {
		ci, err := d.fetchClusterFrom(ctx, u)
		if err == nil {
			return ci, nil
		}
		last = err
	}
	return clusterInfo{}, fmt.Errorf("could not get the cluster's members from any peer: %w", last)
}

func (d peerDialer) fetchClusterFrom(ctx context.Context, peerURL string) (clusterInfo, error) {
	c, err := d.client(peerURL)
	if err != nil {
		return clusterInfo{}, err
	}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, peerDialTimeout)
	defer cancel()
	b, h, err := c.get(ctx, pathMembers, nil, nil)
	if err != nil {
		return clusterInfo{}, err
	}
	id, err := peerIDHeader(h, headerClusterID)
	if err != nil {
		return clusterInfo{}, err
	}
	var ms []etcddb.Member
	if err := json.Unmarshal(b, &ms); err != nil {
		return clusterInfo{}, fmt.Errorf("bad members answer: %w", err)
	}
	ci := clusterInfo{ClusterID: id}
	for _, m := range ms {
		ci.Members = append(ci.Members, m.Core())
	}
	return ci, nil
}

// peerCall is a stream this member opened to a peer: frames out in the
// request's body, in from the answer's.
type peerCall struct {
	peerStream
	client peerClient
	body   *io.PipeWriter
	resp   *http.Response
	cancel context.CancelFunc
}

// errStreamClosed ends a stream's body when its sender closes it.
var errStreamClosed = errors.New("peer stream closed")

// openStream opens a stream on path to member to at a peer URL, as this
// member of clusterID; it fails unless the peer takes it within
// peerDialTimeout.
func (d peerDialer) openStream(ctx context.Context, peerURL, path string, clusterID, from, to uint64) (*peerCall, error) {
	pr, pw := io.Pipe()
	// The transport reads the body until it ends, even once the
	// connection failed: the body ends with the connection.
	c, err := d.clientWith(peerURL, func(err error) { pw.CloseWithError(err) })
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	req, err := newPeerRequest(ctx, c.base+path, clusterID, from, to, pr)
	if err != nil {
		cancel()
		return nil, err
	}
	late := time.AfterFunc(peerDialTimeout, cancel)
	resp, err := c.Do(req)
	inTime := late.Stop()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = statusError(resp)
		resp.Body.Close()
	} else if err == nil && !inTime {
		err = fmt.Errorf("peer did not take the stream within %v", peerDialTimeout)
		resp.Body.Close()
	}
	if err != nil {
		pw.CloseWithError(errStreamClosed)
		cancel()
		c.CloseIdleConnections()
		return nil, err
	}
	return &peerCall{peerStream: peerStream{in: bufio.NewReader(resp.Body), out: pw, flush: func() error { return nil }},
		client: c, body: pw, resp: resp, cancel: cancel}, nil
}

// watchedConn is a connection that tells end when a read fails or it
// closes.
type watchedConn struct {
	net.Conn
	end func(error)
}

func (c watchedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil {
		c.end(err)
	}
	return n, err
}

func (c watchedConn) Close() error {
	c.end(errStreamClosed)
	return c.Conn.Close()
}

// closeSend ends the stream's body: the peer reads its end.
func (c *peerCall) closeSend() error { return c.body.Close() }

// result reads the receiver's verdict on a snapshot stream.
func (s *peerStream) result() error {
	b, err := s.recv()
	if err != nil {
		return fmt.Errorf("snapshot stream broke before the receiver's answer: %w", noEOF(err))
	}
	return verdict(b)
}

// verdict reads a frameStatus.
func verdict(b []byte) error {
	switch {
	case len(b) == 0 || b[0] != frameStatus:
		return errors.New("snapshot stream: the receiver did not answer with its verdict")
	case len(b) > 1:
		return errors.New(string(b[1:]))
	}
	return nil
}

// close ends the stream, whatever its state.
func (c *peerCall) close() {
	c.body.CloseWithError(errStreamClosed)
	c.resp.Body.Close()
	c.cancel()
	c.client.CloseIdleConnections()
}
