package server

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// requestMetrics are etcd's metrics of what clients ask for, counted as
// requests pass the gRPC interceptors: detcd's key space, leases and
// watches are those requests' effects.
type requestMetrics struct {
	clientRequests             *prometheus.CounterVec
	grpcReceived, grpcSent     prometheus.Counter
	puts, deletes, ranges, txn prometheus.Counter
	putBytes                   prometheus.Gauge
	requestSeconds             *prometheus.HistogramVec
	applySeconds               *prometheus.HistogramVec
	rangeSeconds               *prometheus.HistogramVec
	proposalsPending           prometheus.Gauge
	proposalsFailed            prometheus.Counter
	readIndexFailed, slowRead  prometheus.Counter
	slowApply                  prometheus.Counter
	learnerPromotions          prometheus.Counter
	learnerPromoteFailed       *prometheus.CounterVec
	compactionLast             prometheus.Gauge
	compactionKeys             prometheus.Counter
	compactionTotalMs          prometheus.Histogram
	compactionPauseMs          prometheus.Histogram
	indexCompactionPauseMs     prometheus.Histogram
	defragSeconds              prometheus.Histogram
	defragInflight             prometheus.Gauge
	snapshotSeconds            prometheus.Histogram
	hashSeconds, hashRevSecond prometheus.Histogram
	leaseGranted, leaseRenewed prometheus.Counter
	leaseRevoked, leaseExpired prometheus.Counter
	leaseTTL                   prometheus.Histogram
	watchStreams, watchers     prometheus.Gauge
	events                     prometheus.Counter
	watchSendControl           prometheus.Histogram
	watchSendProgress          prometheus.Histogram
	watchSendEvents            prometheus.Histogram
	watchSendPerEvent          prometheus.Histogram

	// timed are the latency histograms of each method timed (writes and
	// Range) by success, each looked up once, on its first use (as
	// WithLabelValues makes a series appear): WithLabelValues hashes its
	// labels and takes a lock on every call.
	timed map[string]*[2]atomic.Pointer[methodTimers]
	// callers are clientRequests' counters of unary and stream calls by
	// client API version, filled in as versions come.
	callers *[2]sync.Map // string -> prometheus.Counter
}

// methodTimers are the histograms a method's calls of one outcome go to.
type methodTimers struct {
	apply, request, rng prometheus.Observer // rng: Range's alone
}

// timers are the histograms of method's calls with outcome ok; method
// is one of writeMethods or Range.
func (r *requestMetrics) timers(method string, ok bool) *methodTimers {
	t := r.timed[method]
	i := 0
	if ok {
		i = 1
	}
	if o := t[i].Load(); o != nil {
		return o
	}
	success := strconv.FormatBool(ok)
	o := &methodTimers{apply: r.applySeconds.WithLabelValues("v3", method, success), request: r.requestSeconds.WithLabelValues(method, success)}
	if method == "Range" {
		o.rng = r.rangeSeconds.WithLabelValues(success)
	}
	t[i].Store(o)
	return o
}

// calls is clientRequests' counter of unary calls (or streams) from
// clients of API version v.
func (r *requestMetrics) calls(stream bool, v string) prometheus.Counter {
	kind, m := "unary", &r.callers[0]
	if stream {
		kind, m = "stream", &r.callers[1]
	}
	if c, ok := m.Load(v); ok {
		return c.(prometheus.Counter)
	}
	c, _ := m.LoadOrStore(v, r.clientRequests.WithLabelValues(kind, v))
	return c.(prometheus.Counter)
}

func newRequestMetrics() requestMetrics {
	vec := func(name, help string, labels ...string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: secondsBuckets}, labels)
	}
	timed := make(map[string]*[2]atomic.Pointer[methodTimers])
	for method := range writeMethods {
		timed[method] = new([2]atomic.Pointer[methodTimers])
	}
	timed["Range"] = new([2]atomic.Pointer[methodTimers])
	return requestMetrics{
		timed:             timed,
		callers:           new([2]sync.Map),
		clientRequests:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "etcd_server_client_requests_total", Help: "The total number of client requests per client version."}, []string{"type", "client_api_version"}),
		grpcReceived:      counter("etcd_network_client_grpc_received_bytes_total", "The total number of bytes received from grpc clients."),
		grpcSent:          counter("etcd_network_client_grpc_sent_bytes_total", "The total number of bytes sent to grpc clients."),
		puts:              counter("etcd_mvcc_put_total", "Total number of puts seen by this member."),
		deletes:           counter("etcd_mvcc_delete_total", "Total number of deletes seen by this member."),
		ranges:            counter("etcd_mvcc_range_total", "Total number of ranges seen by this member."),
		txn:               counter("etcd_mvcc_txn_total", "Total number of txns seen by this member."),
		putBytes:          gauge("etcd_debugging_mvcc_total_put_size_in_bytes", "The total size of put kv pairs seen by this member."),
		requestSeconds:    vec("etcd_server_request_duration_seconds", "The latency distribution of requests.", "type", "success"),
		applySeconds:      vec("etcd_server_apply_duration_seconds", "The latency distributions of v2 apply called by backend.", "version", "op", "success"),
		rangeSeconds:      vec("etcd_server_range_duration_seconds", "The latency distributions of txn.Range", "success"),
		proposalsPending:  gauge("etcd_server_proposals_pending", "The current number of pending proposals to commit."),
		proposalsFailed:   counter("etcd_server_proposals_failed_total", "The total number of failed proposals seen."),
		readIndexFailed:   counter("etcd_server_read_indexes_failed_total", "The total number of failed read indexes seen."),
		slowRead:          counter("etcd_server_slow_read_indexes_total", "The total number of pending read indexes not in sync with leader's or timed out read index requests."),
		slowApply:         counter("etcd_server_slow_apply_total", "The total number of slow apply requests (likely overloaded from slow disk)."),
		learnerPromotions: counter("etcd_server_learner_promote_successes", "The total number of successful learner promotions while this member is leader."),
		learnerPromoteFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "etcd_server_learner_promote_failures", Help: "The total number of failed learner promotions (likely learner not ready) while this member is leader."},
			[]string{"Reason"}),
		compactionLast:         gauge("etcd_debugging_mvcc_db_compaction_last", "The unix time of the last db compaction. Resets to 0 on start."),
		compactionKeys:         counter("etcd_debugging_mvcc_db_compaction_keys_total", "Total number of db keys compacted."),
		compactionTotalMs:      histogram("etcd_debugging_mvcc_db_compaction_total_duration_milliseconds", "Bucketed histogram of db compaction total duration.", millisecondsBuckets),
		compactionPauseMs:      histogram("etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds", "Bucketed histogram of db compaction pause duration.", millisecondsBuckets),
		indexCompactionPauseMs: histogram("etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds", "Bucketed histogram of index compaction pause duration.", millisecondsBuckets),
		defragSeconds:          histogram("etcd_disk_backend_defrag_duration_seconds", "The latency distribution of backend defragmentation.", secondsBuckets),
		defragInflight:         gauge("etcd_disk_defrag_inflight", "Whether or not defrag is active on the member. 1 means active, 0 means not."),
		snapshotSeconds:        histogram("etcd_disk_backend_snapshot_duration_seconds", "The latency distribution of backend snapshots.", secondsBuckets),
		hashSeconds:            histogram("etcd_mvcc_hash_duration_seconds", "The latency distribution of storage hash operation.", secondsBuckets),
		hashRevSecond:          histogram("etcd_mvcc_hash_rev_duration_seconds", "The latency distribution of storage hash by revision operation.", secondsBuckets),
		leaseGranted:           counter("etcd_debugging_lease_granted_total", "The total number of granted leases."),
		leaseRenewed:           counter("etcd_debugging_lease_renewed_total", "The number of renewed leases seen by the leader."),
		leaseRevoked:           counter("etcd_debugging_lease_revoked_total", "The total number of revoked leases."),
		// Leases expire inside core, on the leader's logical clock; the
		// driver does not see them go, so this stays at zero.
		leaseExpired:      counter("etcd_debugging_server_lease_expired_total", "The total number of expired leases."),
		leaseTTL:          histogram("etcd_debugging_lease_ttl_total", "Bucketed histogram of lease TTLs.", prometheus.ExponentialBuckets(1, 2, 14)),
		watchStreams:      gauge("etcd_debugging_mvcc_watch_stream_total", "Total number of watch streams."),
		watchers:          gauge("etcd_debugging_mvcc_watcher_total", "Total number of watchers."),
		events:            counter("etcd_debugging_mvcc_events_total", "Total number of events sent by this member."),
		watchSendControl:  histogram("etcd_debugging_server_watch_send_loop_control_stream_duration_seconds", "The total duration in seconds of running through the control stream of the send loop.", secondsBuckets),
		watchSendProgress: histogram("etcd_debugging_server_watch_send_loop_progress_duration_seconds", "The total duration in seconds of running through the progress loop of the send loop.", secondsBuckets),
		watchSendEvents:   histogram("etcd_debugging_server_watch_send_loop_watch_stream_duration_seconds", "The total duration in seconds of running through the watch stream of the send loop.", secondsBuckets),
		watchSendPerEvent: histogram("etcd_debugging_server_watch_send_loop_watch_stream_duration_per_event_seconds", "The total duration in seconds of running through the watch stream of the send loop per event.", secondsBuckets),
	}
}

func (r *requestMetrics) register(reg *prometheus.Registry) {
	reg.MustRegister(r.clientRequests, r.grpcReceived, r.grpcSent, r.puts, r.deletes, r.ranges, r.txn, r.putBytes,
		r.requestSeconds, r.applySeconds, r.rangeSeconds, r.proposalsPending, r.proposalsFailed, r.readIndexFailed,
		r.slowRead, r.slowApply, r.learnerPromotions, r.learnerPromoteFailed, r.compactionLast, r.compactionKeys, r.compactionTotalMs,
		r.compactionPauseMs, r.indexCompactionPauseMs, r.defragSeconds, r.defragInflight, r.snapshotSeconds,
		r.hashSeconds, r.hashRevSecond, r.leaseGranted, r.leaseRenewed, r.leaseRevoked, r.leaseExpired, r.leaseTTL,
		r.watchStreams, r.watchers, r.events, r.watchSendControl, r.watchSendProgress, r.watchSendEvents, r.watchSendPerEvent)
}

// apiVersion is the client API version clientv3 sends, as etcd labels it.
// It reads the one key rather than copying all of the request's metadata,
// which cost ~440 bytes of garbage per request.
func apiVersion(ctx context.Context) string {
	if vs := metadata.ValueFromIncomingContext(ctx, rpctypes.MetadataClientAPIVersionKey); len(vs) > 0 {
		return vs[0]
	}
	return "unknown"
}

// byteCounter is the client port's gRPC codec, gRPC's own proto codec
// that counts the bytes of every message it decodes and encodes, as
// etcd's codec counts them: gRPC hands it the bytes, where measuring a
// message with proto.Size walked the whole message again.
type byteCounter struct {
	encoding.CodecV2
	received, sent prometheus.Counter
}

func (c byteCounter) Marshal(v any) (mem.BufferSlice, error) {
	b, err := c.CodecV2.Marshal(v)
	if err == nil {
		c.sent.Add(float64(b.Len()))
	}
	return b, err
}

func (c byteCounter) Unmarshal(data mem.BufferSlice, v any) error {
	c.received.Add(float64(data.Len()))
	return c.CodecV2.Unmarshal(data, v)
}

// codec is the gRPC codec that counts the client port's bytes.
func (r *requestMetrics) codec() encoding.CodecV2 {
	return byteCounter{CodecV2: encoding.GetCodecV2(grpcproto.Name), received: r.grpcReceived, sent: r.grpcSent}
}

// writeMethods are the unary calls that go through raft as proposals.
var writeMethods = map[string]bool{
	"Put": true, "DeleteRange": true, "Txn": true, "Compact": true, "LeaseGrant": true, "LeaseRevoke": true,
	"Alarm": true, "MemberAdd": true, "MemberRemove": true, "MemberUpdate": true, "MemberPromote": true,
}

// unary counts a finished unary call.
func (m *metrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	r := &m.req
	r.calls(false, apiVersion(ctx)).Inc()
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	write := writeMethods[method] && strings.HasPrefix(info.FullMethod, "/etcdserverpb.")
	if write {
		r.proposalsPending.Inc()
	}
	if method == "Defragment" {
		r.defragInflight.Set(1)
	}
	start := time.Now()
	resp, err := handler(ctx, req)
	took := time.Since(start)
	if write {
		r.proposalsPending.Dec()
	}
	if method == "Defragment" {
		r.defragInflight.Set(0)
	}
	if err != nil {
		r.failed(write, req, err)
	} else {
		r.succeeded(method, req, resp, took)
	}
	if write || method == "Range" {
		o := r.timers(method, err == nil)
		o.apply.Observe(took.Seconds())
		o.request.Observe(took.Seconds())
		if o.rng != nil {
			o.rng.Observe(took.Seconds())
		}
	}
	return resp, err
}

func (r *requestMetrics) failed(write bool, req any, err error) {
	if write {
		r.proposalsFailed.Inc()
	}
	switch q := req.(type) {
	case *pb.RangeRequest:
		if !q.Serializable {
			r.readIndexFailed.Inc()
		}
	case *pb.MemberPromoteRequest:
		// etcd labels the failure with its error's words.
		r.learnerPromoteFailed.WithLabelValues(status.Convert(err).Message()).Inc()
	}
}

// succeeded counts what a successful call did.
func (r *requestMetrics) succeeded(method string, req, resp any, took time.Duration) {
	switch q := req.(type) {
	case *pb.RangeRequest:
		r.ranges.Inc()
	case *pb.PutRequest:
		r.countPut(q)
	case *pb.DeleteRangeRequest:
		r.deletes.Inc()
	case *pb.TxnRequest:
		if ops := r.countTxn(q, resp.(*pb.TxnResponse)); ops > 1 {
			r.txn.Inc()
		}
	case *pb.CompactionRequest:
		r.compactionLast.Set(float64(time.Now().Unix()))
		r.compactionTotalMs.Observe(float64(took.Milliseconds()))
		r.compactionPauseMs.Observe(float64(took.Milliseconds()))
		r.indexCompactionPauseMs.Observe(float64(took.Milliseconds()))
	case *pb.LeaseGrantRequest:
		r.leaseGranted.Inc()
		r.leaseTTL.Observe(float64(resp.(*pb.LeaseGrantResponse).TTL))
	case *pb.LeaseRevokeRequest:
		r.leaseRevoked.Inc()
	case *pb.DefragmentRequest:
		r.defragSeconds.Observe(took.Seconds())
	case *pb.HashRequest:
		r.hashSeconds.Observe(took.Seconds())
	case *pb.HashKVRequest:
		r.hashRevSecond.Observe(took.Seconds())
	case *pb.MemberPromoteRequest:
		r.learnerPromotions.Inc()
	}
}

func (r *requestMetrics) countPut(p *pb.PutRequest) {
	r.puts.Inc()
	r.putBytes.Add(float64(len(p.Key) + len(p.Value)))
}

// countTxn counts the operations of the branch a transaction took, as
// etcd's store counts them, and returns how many there were.
func (r *requestMetrics) countTxn(q *pb.TxnRequest, resp *pb.TxnResponse) int {
	ops := q.Failure
	if resp.Succeeded {
		ops = q.Success
	}
	n := 0
	for i, op := range ops {
		switch {
		case op.GetRequestRange() != nil:
			r.ranges.Inc()
			n++
		case op.GetRequestPut() != nil:
			r.countPut(op.GetRequestPut())
			n++
		case op.GetRequestDeleteRange() != nil:
			r.deletes.Inc()
			n++
		case op.GetRequestTxn() != nil && i < len(resp.Responses):
			n += r.countTxn(op.GetRequestTxn(), resp.Responses[i].GetResponseTxn())
		}
	}
	return n
}

// stream counts a stream call and, by wrapping its stream, its messages.
func (m *metrics) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	r := &m.req
	r.calls(true, apiVersion(ss.Context())).Inc()
	ms := &meteredStream{ServerStream: ss, r: r}
	watch := info.FullMethod == "/etcdserverpb.Watch/Watch"
	if watch {
		r.watchStreams.Inc()
		defer r.watchStreams.Dec()
	}
	start := time.Now()
	err := handler(srv, ms)
	r.watchers.Sub(float64(ms.watchers.Load()))
	if info.FullMethod == "/etcdserverpb.Maintenance/Snapshot" && err == nil {
		r.snapshotSeconds.Observe(time.Since(start).Seconds())
	}
	return err
}

// meteredStream counts a watch stream's watchers and events, a
// keep-alive stream's renewals (the codec counts the bytes).
type meteredStream struct {
	grpc.ServerStream
	r        *requestMetrics
	watchers atomic.Int64 // open on this stream
}

func (s *meteredStream) SendMsg(m any) error {
	start := time.Now()
	err := s.ServerStream.SendMsg(m)
	if err != nil {
		return err
	}
	switch resp := m.(type) {
	case *pb.WatchResponse:
		s.countWatch(resp, time.Since(start))
	case *pb.LeaseKeepAliveResponse:
		if resp.TTL > 0 {
			s.r.leaseRenewed.Inc()
		}
	}
	return nil
}

// countWatch follows the watchers a stream opens and closes and the
// events and sends it makes.
func (s *meteredStream) countWatch(resp *pb.WatchResponse, took time.Duration) {
	r := s.r
	switch {
	case resp.Created && !resp.Canceled:
		s.watchers.Add(1)
		r.watchers.Inc()
		r.watchSendControl.Observe(took.Seconds())
	case resp.Canceled && !resp.Created:
		s.watchers.Add(-1)
		r.watchers.Dec()
		r.watchSendControl.Observe(took.Seconds())
	case len(resp.Events) == 0:
		r.watchSendProgress.Observe(took.Seconds())
	default:
		r.events.Add(float64(len(resp.Events)))
		r.watchSendEvents.Observe(took.Seconds())
		r.watchSendPerEvent.Observe(took.Seconds() / float64(len(resp.Events)))
	}
}
