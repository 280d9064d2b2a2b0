package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/core/wal"
	"github.com/detcd/detcd/disk"
)

// DiscoveryConfig is etcd's v3 discovery (--discovery-endpoints,
// --discovery-token and the other --discovery-* flags): the members of a
// new cluster find one another through another etcd cluster (or detcd),
// under /_etcd/registry/<token>/. An operator puts the cluster's size at
// _config/size; each member puts "name=peerURL,..." at members/<its id in
// hex> and waits until size members are there; the first size by
// creation revision are the cluster.
type DiscoveryConfig struct {
	Endpoints        []string
	Token            string
	DialTimeout      time.Duration
	RequestTimeout   time.Duration
	KeepAliveTime    time.Duration
	KeepAliveTimeout time.Duration
	// InsecureTransport (on by default, as in etcd) talks plain gRPC;
	// off, or with any of the files below, TLS.
	InsecureTransport  bool
	InsecureSkipVerify bool
	CertFile           string
	KeyFile            string
	CAFile             string
	User               string
	Password           string
}

// discoveryPrefix is where etcd's v3 discovery keeps its keys.
const discoveryPrefix = "/_etcd/registry"

// discoveryRetriesMax and discoveryBackoffShiftMax are etcd's: a failed
// request to the discovery service is retried after 2^n seconds, n up to
// 8 (256 s), practically without end.
const (
	discoveryRetriesMax      = math.MaxUint32
	discoveryBackoffShiftMax = 8
)

// etcd's discovery errors, with its messages.
var (
	errDiscoverySizeNotFound = errors.New("discovery: size key not found")
	errDiscoveryBadSizeKey   = errors.New("discovery: size key is bad")
	errDiscoveryFullCluster  = errors.New("discovery: cluster is full")
	errDiscoveryTooManyTries = errors.New("discovery: too many retries")
	errDiscoveryInvalidURL   = errors.New("discovery: invalid peer URL")
)

func (d DiscoveryConfig) enabled() bool { return len(d.Endpoints) > 0 }

// validateDiscovery checks the flags with etcd's rules and makes the
// configuration a discovering member's: its cluster token is the
// discovery token, and until discovery answers it knows only itself.
func (c *Config) validateDiscovery() error {
	d := c.Discovery
	if (d.Token != "") != d.enabled() {
		return errors.New("both --discovery-token and --discovery-endpoints must be set")
	}
	for _, ep := range d.Endpoints {
		if strings.TrimSpace(ep) == "" {
			return errors.New("--discovery-endpoints must not contain empty endpoints")
		}
	}
	if !d.enabled() {
		return nil
	}
	if c.InitialClusterState == "existing" {
		return errors.New("discovery URL should not be set when joining existing initial cluster")
	}
	c.InitialClusterToken = d.Token
	c.InitialCluster = c.selfCluster()
	return nil
}

// selfCluster is an initial cluster of the member alone, its pairs
// sorted as etcd registers them.
func (c *Config) selfCluster() string {
	pairs := make([]string, len(c.InitialAdvertisePeerURLs))
	for i, u := range c.InitialAdvertisePeerURLs {
		pairs[i] = c.Name + "=" + u
	}
	slices.Sort(pairs)
	return strings.Join(pairs, ",")
}

// discoverIfNew bootstraps a new member through the discovery service:
// it registers itself, waits for the others and takes the cluster they
// make. A member with data restarts from it and ignores discovery, as
// etcd does.
func discoverIfNew(ctx context.Context, fsys wal.FS, cfg *Config, ccfg *core.Config, log *slog.Logger) error {
	if exists, err := disk.HasLog(fsys, "."); err != nil {
		return fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	} else if exists {
		log.Warn("discovery token is ignored since cluster already initialized; valid logs are found", "data-dir", cfg.DataDir)
		return nil
	}
	log.Info("Bootstrapping cluster using v3 discovery.")
	self := cfg.InitialCluster
	cluster, err := joinDiscovery(ctx, cfg.Discovery, ccfg.ID, self, log)
	if err != nil {
		log.Error("discovery failed to join cluster", "cluster", cluster, "error", err.Error())
		return fmt.Errorf("failed to join discovery cluster (%w)", err)
	}
	log.Info("discovery joined cluster successfully", "cluster", cluster)
	cfg.InitialCluster = cluster
	return cfg.setMembers(ccfg)
}

// setMembers makes cfg.InitialCluster, learnt at start, the member's
// initial cluster.
func (c *Config) setMembers(ccfg *core.Config) error {
	ms, err := c.members()
	if err != nil {
		return fmt.Errorf("initial cluster %s: %w", c.InitialCluster, err)
	}
	ids := make([]uint64, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
		if m.Name == c.Name {
			ccfg.ID = m.ID
		}
	}
	ccfg.Members, ccfg.ClusterID = ms, core.ClusterID(ids)
	return nil
}

// discoveredMember is one registration: its key, "name=url,..." and the
// revision that created it.
type discoveredMember struct {
	key, value string
	createRev  int64
}

// discovery is one member's conversation with the discovery service.
type discovery struct {
	cfg     DiscoveryConfig
	cli     *clientv3.Client
	log     *slog.Logger
	selfKey string
	retries uint
	members []discoveredMember // by creation revision
}

func (d *discovery) membersPrefix() string {
	return discoveryPrefix + "/" + d.cfg.Token + "/members"
}

// joinDiscovery registers self (the member's "name=url,...") under id and
// returns the cluster as --initial-cluster reads it.
func joinDiscovery(ctx context.Context, cfg DiscoveryConfig, id uint64, self string, log *slog.Logger) (string, error) {
	cli, err := discoveryClient(cfg)
	if err != nil {
		return "", err
	}
	defer cli.Close()
	d := &discovery{cfg: cfg, cli: cli, log: log.With("discovery-token", cfg.Token, "discovery-endpoints", strings.Join(cfg.Endpoints, ","))}
	d.selfKey = d.membersPrefix() + "/" + strconv.FormatUint(id, 16)
	if _, _, err := d.checkCluster(ctx); err != nil {
		return "", err
	}
	if err := d.registerSelf(ctx, self); err != nil {
		return "", err
	}
	size, rev, err := d.checkCluster(ctx)
	if err != nil {
		return "", err
	}
	for len(d.members) < size {
		if err := d.waitPeers(ctx, size, rev); err != nil {
			return "", err
		}
	}
	return d.initialCluster(size)
}

// discoveryClient is a client of the discovery service with the flags'
// timeouts, TLS and user.
func discoveryClient(cfg DiscoveryConfig) (*clientv3.Client, error) {
	spec := &clientv3.ConfigSpec{
		Endpoints:        cfg.Endpoints,
		DialTimeout:      cfg.DialTimeout,
		RequestTimeout:   cfg.RequestTimeout,
		KeepAliveTime:    cfg.KeepAliveTime,
		KeepAliveTimeout: cfg.KeepAliveTimeout,
		Secure: &clientv3.SecureConfig{
			Cert: cfg.CertFile, Key: cfg.KeyFile, Cacert: cfg.CAFile,
			InsecureTransport: cfg.InsecureTransport, InsecureSkipVerify: cfg.InsecureSkipVerify,
		},
		Auth: &clientv3.AuthConfig{Username: cfg.User, Password: cfg.Password},
	}
	cc, err := clientv3.NewClientConfig(spec, zap.NewNop())
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	cc.Logger = zap.NewNop()
	return clientv3.New(*cc)
}

// checkCluster reads the cluster's size and registrations, retrying
// while the service fails; it refuses a cluster full without this
// member.
func (d *discovery) checkCluster(ctx context.Context) (size int, rev int64, err error) {
	for {
		size, err = d.size(ctx)
		if err == nil {
			rev, err = d.readMembers(ctx)
		}
		if err == nil {
			break
		}
		if errors.Is(err, errDiscoverySizeNotFound) || errors.Is(err, errDiscoveryBadSizeKey) {
			return 0, 0, err
		}
		if err := d.backoff(ctx, "cluster status check"); err != nil {
			return 0, 0, err
		}
	}
	d.retries = 0
	for i, m := range d.members {
		if m.key == d.selfKey {
			break
		}
		if i >= size-1 {
			return size, rev, errDiscoveryFullCluster
		}
	}
	return size, rev, nil
}

func (d *discovery) size(ctx context.Context) (int, error) {
	key := discoveryPrefix + "/" + d.cfg.Token + "/_config/size"
	rctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	resp, err := d.cli.Get(rctx, key)
	if err != nil {
		d.log.Warn("failed to get cluster size from discovery service", "clusterSizeKey", key, "error", err.Error())
		return 0, err
	}
	if len(resp.Kvs) == 0 {
		return 0, errDiscoverySizeNotFound
	}
	n, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 0)
	if err != nil || n <= 0 {
		return 0, errDiscoveryBadSizeKey
	}
	return int(n), nil
}

// readMembers reads every registration afresh and returns the revision
// read at.
func (d *discovery) readMembers(ctx context.Context) (int64, error) {
	rctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	resp, err := d.cli.Get(rctx, d.membersPrefix(), clientv3.WithPrefix())
	if err != nil {
		d.log.Warn("failed to get cluster members from discovery service", "membersKeyPrefix", d.membersPrefix(), "error", err.Error())
		return 0, err
	}
	d.members = nil
	for _, kv := range resp.Kvs {
		d.add(string(kv.Key), string(kv.Value), kv.CreateRevision)
	}
	return resp.Header.Revision, nil
}

// add records a registration, skipping malformed and duplicate ones as
// etcd does, and keeps the list in creation order.
func (d *discovery) add(key, value string, createRev int64) {
	key, value = strings.TrimSpace(key), strings.TrimSpace(value)
	var problem string
	switch {
	case !strings.HasPrefix(key, d.membersPrefix()):
		problem = "invalid peer registry key"
	case !strings.ContainsRune(value, '='):
		problem = "invalid peer info returned from discovery service"
	case slices.ContainsFunc(d.members, func(m discoveredMember) bool { return m.key == key }):
		problem = "found duplicate peer from discovery service"
	}
	if problem != "" {
		d.log.Warn(problem, "memberKey", key, "memberInfo", value)
		return
	}
	d.log.Info("found peer from discovery service", "memberKey", key, "memberInfo", value)
	d.members = append(d.members, discoveredMember{key: key, value: value, createRev: createRev})
	slices.SortStableFunc(d.members, func(a, b discoveredMember) int { return cmp.Compare(a.createRev, b.createRev) })
}

func (d *discovery) registerSelf(ctx context.Context, self string) error {
	for {
		rctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
		_, err := d.cli.Put(rctx, d.selfKey, self)
		cancel()
		if err == nil {
			d.retries = 0
			d.log.Info("register member itself successfully", "memberKey", d.selfKey, "memberInfo", self)
			return nil
		}
		d.log.Warn("failed to register members itself to the discovery service", "memberKey", d.selfKey, "error", err.Error())
		if err := d.backoff(ctx, "register member itself"); err != nil {
			return err
		}
	}
}

// waitPeers watches registrations after rev until size are known, or the
// watch ends (the caller watches again).
func (d *discovery) waitPeers(ctx context.Context, size int, rev int64) error {
	d.log.Info("waiting for peers from discovery service", "clusterSize", size, "found-peers", len(d.members))
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wresp := range d.cli.Watch(wctx, d.membersPrefix(), clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		for _, ev := range wresp.Events {
			d.add(string(ev.Kv.Key), string(ev.Kv.Value), ev.Kv.CreateRevision)
		}
		if len(d.members) >= size {
			d.log.Info("found all needed peers from discovery service", "clusterSize", size, "found-peers", len(d.members))
			return nil
		}
	}
	return ctx.Err()
}

// backoff waits before a retry: 2^n seconds after the nth failure in a
// row, n up to discoveryBackoffShiftMax.
func (d *discovery) backoff(ctx context.Context, step string) error {
	if d.retries >= discoveryRetriesMax {
		return errDiscoveryTooManyTries
	}
	d.retries++
	wait := time.Duration(1<<min(d.retries, discoveryBackoffShiftMax)) * time.Second
	d.log.Warn("retry connecting to discovery service", "reason", step, "backoff", wait.String())
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
		return nil
	}
}

// initialCluster is the first size registrations, as --initial-cluster.
func (d *discovery) initialCluster(size int) (string, error) {
	var parts []string
	for _, m := range d.members[:min(size, len(d.members))] {
		parts = append(parts, m.value)
	}
	s := strings.Join(parts, ",")
	for _, kv := range strings.Split(s, ",") {
		name, u, ok := strings.Cut(kv, "=")
		if !ok || name == "" || checkURLs([]string{u}) != nil {
			return s, errDiscoveryInvalidURL
		}
	}
	return s, nil
}
