package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// cluster is the servers of one load run: a single member, or the members
// of one multi-member cluster, each on its own data dir and 127.0.0.1
// ports. The load tool gets every member's endpoint and pid.
type cluster struct {
	members []*instance
	// leader is the index of the member that led when the cluster became
	// ready (-1 if no member said so); reported with the run, and the only
	// endpoint of a put run with --cluster-writes leader.
	leader int
}

// newCluster prepares n members of server name. One member is exactly the
// single-member instance of the other runs; n > 1 members are m1..mN on
// base-m1..base-mN, bootstrapped together with their own cluster token.
func newCluster(name, bin, base string, n int) (*cluster, error) {
	if n <= 1 {
		in, err := newInstance(name, bin, base)
		if err != nil {
			return nil, err
		}
		return &cluster{members: []*instance{in}, leader: 0}, nil
	}
	c := &cluster{leader: -1}
	used := map[int]bool{}
	var initial []string
	for i := 1; i <= n; i++ {
		in, err := newInstance(name, bin, fmt.Sprintf("%s-m%d", base, i))
		// freePort closes its listener at once, so the same port can come
		// back for another member: draw again until all differ.
		for err == nil && (used[in.clientPort] || used[in.peerPort]) {
			in, err = newInstance(name, bin, in.dir)
		}
		if err != nil {
			return nil, err
		}
		used[in.clientPort], used[in.peerPort] = true, true
		in.member = fmt.Sprintf("m%d", i)
		initial = append(initial, in.member+"="+in.peerURL())
		c.members = append(c.members, in)
	}
	token := "detcd-bench-" + filepath.Base(base)
	for _, in := range c.members {
		in.initialCluster, in.token = strings.Join(initial, ","), token
	}
	return c, nil
}

func (c *cluster) size() int { return len(c.members) }

func (c *cluster) endpoints() []string {
	var eps []string
	for _, in := range c.members {
		eps = append(eps, in.endpoint())
	}
	return eps
}

func (c *cluster) pids() pidList {
	var ps pidList
	for _, in := range c.members {
		ps = append(ps, in.pid())
	}
	return ps
}

func (c *cluster) leaderName() string {
	if c.size() == 1 || c.leader < 0 {
		return ""
	}
	return c.members[c.leader].member
}

// start launches every member; if one fails to start, the others are
// stopped.
func (c *cluster) start() error {
	for i, in := range c.members {
		if err := in.start(); err != nil {
			for _, o := range c.members[:i] {
				o.stop()
			}
			return err
		}
	}
	return nil
}

// ready waits until every member serves a linearizable get (so there is a
// leader and each member knows it), then asks the members which one leads.
func (c *cluster) ready(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, in := range c.members {
		if err := in.ready(time.Until(deadline)); err != nil {
			if c.size() > 1 {
				return fmt.Errorf("%s: %w", in.member, err)
			}
			return err
		}
	}
	if c.size() > 1 {
		c.leader = findLeader(c.endpoints())
	}
	return nil
}

// findLeader is the index of the endpoint whose member says it leads, or
// -1.
func findLeader(eps []string) int {
	for i, ep := range eps {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := cli.Status(ctx, ep)
		cancel()
		cli.Close()
		if err == nil && st.Header != nil && st.Leader != 0 && st.Header.MemberId == st.Leader {
			return i
		}
	}
	return -1
}

// dead reports a member that has exited.
func (c *cluster) dead() error {
	for _, in := range c.members {
		if !in.alive() {
			if c.size() > 1 {
				return fmt.Errorf("member %s exited during the run: %v", in.member, in.waitErr)
			}
			return fmt.Errorf("server exited during the run: %v", in.waitErr)
		}
	}
	return nil
}

// stop stops the members together (a cluster that loses its quorum one
// member at a time would otherwise keep the last ones campaigning) and
// returns the first failure that is not the SIGTERM exit.
func (c *cluster) stop() error {
	errs := make([]error, c.size())
	var wg sync.WaitGroup
	for i, in := range c.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := in.stop(); err != nil && !isTermExit(err) {
				errs[i] = err
				if c.size() > 1 {
					errs[i] = fmt.Errorf("%s: %w", in.member, err)
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *cluster) logTail(n int) string {
	if c.size() == 1 {
		return c.members[0].logTail(n)
	}
	var b strings.Builder
	for i, in := range c.members {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "-- %s (%s.log):\n%s", in.member, in.dir, in.logTail(n))
	}
	return b.String()
}

func (c *cluster) removeData() {
	for _, in := range c.members {
		os.RemoveAll(in.dir)
	}
}
