package tcpproxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// srvValidateTimeout bounds the TLS handshake that checks a discovered
// https endpoint (etcd's transport timeout for it).
const srvValidateTimeout = 5 * time.Second

// ErrNoEndpoints is the gateway's refusal to start without endpoints.
var ErrNoEndpoints = errors.New("no endpoints found")

// Resolver is the DNS the gateway asks; net.DefaultResolver outside tests.
type Resolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// ParseEndpoints turns --endpoints (host:port, or URLs whose scheme is
// dropped: the gateway proxies TCP) into endpoints, with etcd's message
// for one that is not host:port.
func ParseEndpoints(eps []string) ([]Endpoint, error) {
	out := make([]Endpoint, 0, len(eps))
	for _, ep := range eps {
		if u, err := url.Parse(ep); err == nil && u.Host != "" {
			ep = u.Host
		}
		if _, _, err := net.SplitHostPort(ep); err != nil {
			return nil, fmt.Errorf("error parsing endpoint %q", ep)
		}
		out = append(out, Endpoint{Addr: ep})
	}
	return out, nil
}

// SRVConfig is the gateway's DNS discovery: --discovery-srv,
// --discovery-srv-name, --insecure-discovery and --trusted-ca-file.
type SRVConfig struct {
	Domain        string
	ServiceName   string
	Insecure      bool
	TrustedCAFile string
}

// Discover reads the client endpoints of c.Domain's SRV records
// (_etcd-client-ssl._tcp and _etcd-client._tcp, with "-name" appended
// for a service name), as etcd's gateway does. Unless Insecure, only
// https endpoints that complete a TLS handshake verified against
// TrustedCAFile (for the domain's name) are kept; the others are reported
// in skipped. With no domain it finds nothing.
func Discover(ctx context.Context, r Resolver, c SRVConfig) (eps []Endpoint, skipped error, err error) {
	if c.Domain == "" {
		return nil, nil, nil
	}
	type found struct {
		ep     Endpoint
		secure bool
	}
	var all []found
	var lookupErrs []error
	for _, secure := range []bool{true, false} {
		service := "etcd-client"
		if secure {
			service += "-ssl"
		}
		if c.ServiceName != "" {
			service += "-" + c.ServiceName
		}
		_, srvs, err := r.LookupSRV(ctx, service, "tcp", c.Domain)
		if err != nil {
			lookupErrs = append(lookupErrs, err)
			continue
		}
		for _, s := range srvs {
			addr := net.JoinHostPort(s.Target, strconv.Itoa(int(s.Port)))
			all = append(all, found{Endpoint{Addr: addr, Priority: s.Priority, Weight: s.Weight}, secure})
		}
	}
	if len(lookupErrs) == 2 {
		return nil, nil, fmt.Errorf("dns lookup errors: %w and %w", lookupErrs[0], lookupErrs[1])
	}
	var tlsCfg *tls.Config
	if !c.Insecure {
		if tlsCfg, err = validationTLS(c); err != nil {
			return nil, nil, err
		}
	}
	var problems []string
	for _, f := range all {
		if tlsCfg != nil {
			if !f.secure {
				problems = append(problems, fmt.Sprintf("%q is insecure", "http://"+f.ep.Addr))
				continue
			}
			if err := handshake(ctx, tlsCfg, f.ep.Addr); err != nil {
				problems = append(problems, fmt.Sprintf("%q failed to dial (%v)", "https://"+f.ep.Addr, err))
				continue
			}
		}
		eps = append(eps, f.ep)
	}
	if len(problems) > 0 {
		skipped = errors.New(strings.Join(problems, ","))
	}
	return eps, skipped, nil
}

// validationTLS verifies discovered endpoints' certificates for the
// domain's name, against the CA file when one is given.
func validationTLS(c SRVConfig) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: c.Domain, MinVersion: tls.VersionTLS12}
	if c.TrustedCAFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(c.TrustedCAFile)
	if err != nil {
		return nil, fmt.Errorf("--trusted-ca-file: %w", err)
	}
	cfg.RootCAs = x509.NewCertPool()
	if !cfg.RootCAs.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--trusted-ca-file %s: no certificates", c.TrustedCAFile)
	}
	return cfg, nil
}

func handshake(ctx context.Context, cfg *tls.Config, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, srvValidateTimeout)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// CheckNoLoop refuses endpoints that resolve to the gateway's own listen
// address and port, which would make it proxy to itself.
func CheckNoLoop(ctx context.Context, r Resolver, eps []Endpoint, listenAddr string) error {
	lhost, lport, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return fmt.Errorf("failed to validate listen address: %s", listenAddr)
	}
	laddrs, err := r.LookupHost(ctx, lhost)
	if err != nil {
		return fmt.Errorf("failed to resolve listen host: %s", lhost)
	}
	mine := map[string]bool{}
	for _, a := range laddrs {
		mine[a] = true
	}
	for _, e := range eps {
		host, port, err := net.SplitHostPort(e.Addr)
		if err != nil {
			return fmt.Errorf("error parsing endpoint %q", e.Addr)
		}
		addrs, err := r.LookupHost(ctx, host)
		if err != nil {
			return fmt.Errorf("failed to resolve endpoint host: %s", host)
		}
		if port != lport {
			continue
		}
		for _, a := range addrs {
			if mine[a] {
				return fmt.Errorf("SRV or endpoint (%s:%s->%s:%s) should not resolve to the gateway listen addr (%s)", host, port, a, port, listenAddr)
			}
		}
	}
	return nil
}
