package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/disk"
)

// DNS bootstrap (--discovery-srv DOMAIN): a new member takes its initial
// cluster from the domain's SRV records, as etcd's does:
// _etcd-server-ssl._tcp.DOMAIN for https peers, then _etcd-server._tcp.DOMAIN
// for http ones ("-NAME" after the service with --discovery-srv-name).
// The record whose address resolves to one of the member's advertised
// peer URLs is the member itself; the others are named 0, 1, ... until
// they publish their names. Every member derives the same ids from the
// same records, so they agree on the cluster. A member with data
// restarts from it and reads no records.

// Resolver is the DNS a member asks for --discovery-srv; net.DefaultResolver
// when Config.Resolver is nil.
type Resolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// ErrConflictBootstrap is etcd's refusal of two ways to bootstrap.
var ErrConflictBootstrap = errors.New(`multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", "discovery-endpoints" or "discovery-srv"`)

func (c *Config) srvEnabled() bool { return c.DiscoverySRV != "" }

// validateSRV checks --discovery-srv against the other ways to bootstrap;
// until the records are read the member knows only itself.
func (c *Config) validateSRV() error {
	if !c.srvEnabled() {
		if c.DiscoverySRVName != "" {
			return errors.New("--discovery-srv-name needs --discovery-srv")
		}
		return nil
	}
	if c.Discovery.enabled() {
		return ErrConflictBootstrap
	}
	c.InitialCluster = c.selfCluster()
	return nil
}

// srvClusterIfNew sets a new member's initial cluster from the records.
func srvClusterIfNew(ctx context.Context, fsys wal.FS, cfg *Config, ccfg *core.Config, log *slog.Logger) error {
	if exists, err := disk.HasLog(fsys, "."); err != nil {
		return fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	} else if exists {
		return nil
	}
	cluster, err := cfg.srvCluster(ctx, log)
	if err != nil {
		return fmt.Errorf("error setting up initial cluster: %w", err)
	}
	for _, s := range cluster {
		log.Info("got bootstrap from DNS for etcd-server", "node", s)
	}
	cfg.InitialCluster = strings.Join(cluster, ",")
	return cfg.setMembers(ccfg)
}

// srvCluster reads the records of both services; an error of one is
// logged and only fails the lookup if the other found nothing either.
func (c *Config) srvCluster(ctx context.Context, log *slog.Logger) ([]string, error) {
	suffix := ""
	if c.DiscoverySRVName != "" {
		suffix = "-" + c.DiscoverySRVName
	}
	var all []string
	var errs []error
	for _, svc := range []struct{ scheme, service string }{{"https", "etcd-server-ssl" + suffix}, {"http", "etcd-server" + suffix}} {
		found, err := c.srvService(ctx, svc.scheme, svc.service)
		log.Info("get cluster for "+strings.TrimSuffix(svc.service, suffix)+" SRV", "service-scheme", svc.scheme, "service-name", svc.service,
			"server-name", c.Name, "discovery-srv", c.DiscoverySRV, "found-cluster", found, "error", errString(err))
		all = append(all, found...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(all) == 0 {
		return nil, errors.Join(errs...)
	}
	if !slices.ContainsFunc(all, func(s string) bool { return strings.HasPrefix(s, c.Name+"=") }) {
		return nil, fmt.Errorf("cannot find local etcd member %q in SRV records", c.Name)
	}
	return all, nil
}

// srvService turns one service's records into name=URL pairs.
func (c *Config) srvService(ctx context.Context, scheme, service string) ([]string, error) {
	r := c.resolver()
	self, err := c.advertisedAddrs(ctx)
	if err != nil {
		return nil, err
	}
	_, srvs, err := r.LookupSRV(ctx, service, "tcp", c.DiscoverySRV)
	if err != nil {
		return nil, fmt.Errorf("error querying DNS SRV records for _%s %w", service, err)
	}
	var pairs []string
	var lastErr error
	other := 0 // etcd numbers the others per service
	for _, rec := range srvs {
		host, port := strings.TrimSuffix(rec.Target, "."), strconv.Itoa(int(rec.Port))
		u, mine, err := c.matchSelf(ctx, self, host, port)
		if err != nil {
			lastErr = err
			continue
		}
		addr := scheme + "://" + net.JoinHostPort(host, port)
		if mine && u.Scheme != scheme {
			lastErr = fmt.Errorf("bootstrap at %s from DNS for %s has scheme mismatch with expected peer %s", addr, service, u)
			continue
		}
		name := c.Name
		if !mine {
			name = strconv.Itoa(other)
			other++
		}
		pairs = append(pairs, name+"="+addr)
	}
	if len(pairs) == 0 {
		return nil, lastErr
	}
	return pairs, nil
}

// matchSelf reports whether host:port resolves to one of the member's
// advertised peer URLs, and which.
func (c *Config) matchSelf(ctx context.Context, self map[string]*url.URL, host, port string) (*url.URL, bool, error) {
	addrs, err := c.resolver().LookupHost(ctx, host)
	if err != nil {
		return nil, false, err
	}
	for _, a := range addrs {
		if u, ok := self[net.JoinHostPort(a, port)]; ok {
			return u, true, nil
		}
	}
	return nil, false, nil
}

// advertisedAddrs are the member's advertised peer URLs by the address
// (ip:port) each resolves to.
func (c *Config) advertisedAddrs(ctx context.Context) (map[string]*url.URL, error) {
	out := map[string]*url.URL{}
	for _, s := range c.InitialAdvertisePeerURLs {
		u, err := url.Parse(s)
		if err != nil {
			return nil, err
		}
		addrs, err := c.resolver().LookupHost(ctx, u.Hostname())
		if err != nil {
			return nil, err
		}
		for _, a := range addrs {
			out[net.JoinHostPort(a, u.Port())] = u
		}
	}
	return out, nil
}

func (c *Config) resolver() Resolver {
	if c.Resolver != nil {
		return c.Resolver
	}
	return net.DefaultResolver
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
