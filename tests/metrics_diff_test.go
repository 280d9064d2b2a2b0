package tests

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// metricPrefixes are the families compared: etcd's own, gRPC's, and
// Prometheus' process, Go runtime and handler collectors etcd exports.
var metricPrefixes = []string{"etcd_", "grpc_", "go_", "process_", "promhttp_"}

// metricsChildEnv marks the fresh test process TestMetricsDiff compares
// in.
const metricsChildEnv = "DETCD_METRICS_DIFF_CHILD"

// TestMetricsDiff: every metric family etcd exports on /metrics after a
// little work exists on detcd's with the same type and label names, so
// that etcd's dashboards and alerting rules work unchanged. etcd keeps its
// metrics in the process-wide registry, where the embedded etcds of other
// tests in this process would add families of their own work (peers,
// alarms): the comparison runs in a fresh process of this test binary.
func TestMetricsDiff(t *testing.T) {
	if os.Getenv(metricsChildEnv) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMetricsDiff$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), metricsChildEnv+"=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("the comparison failed (%v):\n%s", err, out)
		}
		return
	}
	etcdAddr, _ := startEmbeddedEtcd(t, true)
	detcdAddr, _ := startInProcDetcd(t, true)
	want, got := metricsAfterWork(t, etcdAddr), metricsAfterWork(t, detcdAddr)
	var missing, differ []string
	for name, w := range want {
		if !slices.ContainsFunc(metricPrefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
			continue
		}
		g, ok := got[name]
		switch {
		case !ok:
			missing = append(missing, fmt.Sprintf("%s %v %v", name, w.GetType(), labelNames(w)))
		case g.GetType() != w.GetType() || !slices.Equal(labelNames(g), labelNames(w)):
			differ = append(differ, fmt.Sprintf("%s: etcd %v %v, detcd %v %v", name, w.GetType(), labelNames(w), g.GetType(), labelNames(g)))
		}
	}
	sort.Strings(missing)
	sort.Strings(differ)
	if len(missing) > 0 || len(differ) > 0 {
		t.Errorf("%d of etcd's metric families missing on detcd:\n%s\n%d differing:\n%s",
			len(missing), strings.Join(missing, "\n"), len(differ), strings.Join(differ, "\n"))
	}
}

// labelNames are the label names a family's metrics use, sorted.
func labelNames(f *dto.MetricFamily) []string {
	var names []string
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if !slices.Contains(names, l.GetName()) {
				names = append(names, l.GetName())
			}
		}
	}
	sort.Strings(names)
	return names
}

// metricsAfterWork does a little of everything on the member at addr and
// scrapes its /metrics.
func metricsAfterWork(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := ctxT(t, 30*time.Second)
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	wch := cli.Watch(wctx, "k", clientv3.WithPrefix())
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	steps := []func() error{
		func() error { _, err := cli.Put(ctx, "k1", "v", clientv3.WithLease(lease.ID)); return err },
		func() error { _, err := cli.Put(ctx, "k2", "v"); return err },
		func() error { _, err := cli.Get(ctx, "k", clientv3.WithPrefix()); return err },
		func() error { _, err := cli.Get(ctx, "k", clientv3.WithSerializable()); return err },
		func() error {
			_, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Version("k2"), ">", 0)).Then(clientv3.OpPut("k3", "v")).Commit()
			return err
		},
		func() error { _, err := cli.Delete(ctx, "k2"); return err },
		func() error { _, err := cli.KeepAliveOnce(ctx, lease.ID); return err },
		func() error { _, err := cli.TimeToLive(ctx, lease.ID); return err },
		func() error { _, err := cli.Revoke(ctx, lease.ID); return err },
		func() error {
			r, err := cli.Get(ctx, "k3")
			if err != nil {
				return err
			}
			_, err = cli.Compact(ctx, r.Header.Revision, clientv3.WithCompactPhysical())
			return err
		},
		func() error { _, err := cli.Status(ctx, addr); return err },
		func() error { _, err := cli.HashKV(ctx, addr, 0); return err },
		func() error { _, err := cli.Defragment(ctx, addr); return err },
		func() error { _, err := cli.MemberList(ctx); return err },
		func() error { _, err := cli.AlarmList(ctx); return err },
	}
	for i, f := range steps {
		if err := f(); err != nil {
			t.Fatalf("%s: step %d: %v", addr, i, err)
		}
	}
	select {
	case <-wch:
	case <-ctx.Done():
		t.Fatalf("%s: no watch event", addr)
	}
	for _, path := range []string{"/health", "/readyz", "/livez"} {
		if resp, err := http.Get("http://" + addr + path); err == nil {
			resp.Body.Close()
		}
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s: /metrics: %v", addr, err)
	}
	return fams
}
