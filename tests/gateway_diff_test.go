package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var gwEtcdOnly = flag.Bool("gatewaydiff.etcd-only", false, "TestGatewayDiff: run the scenario against etcd only and log its transcript")

const (
	// gwTimeout bounds every unary HTTP request, so that a server that
	// does not answer fails the step instead of hanging the test.
	gwTimeout = 5 * time.Second
	// gwStreamTimeout bounds a whole streaming call; gwLineTimeout bounds
	// the wait for each line of it.
	gwStreamTimeout = 10 * time.Second
	gwLineTimeout   = 3 * time.Second
	// gwLeaseID is the lease the scenario grants: choosing it makes the
	// IDs agree between the two servers.
	gwLeaseID = 7587
	// gwLockLeaseID is the lease Lock and Campaign run under: with a lease
	// chosen, their keys (name/lease in hex) agree too.
	gwLockLeaseID = 7588
)

// TestGatewayDiff sends the same HTTP/JSON requests to etcd's grpc-gateway
// and to detcd's, and compares status codes and JSON bodies step by step.
func TestGatewayDiff(t *testing.T) {
	etcdAddr, _ := startEmbeddedEtcd(t, true)
	want := gwRunScenario(t, "etcd", etcdAddr)
	if *gwEtcdOnly {
		t.Logf("etcd transcript:\n%s", gwTranscript(want))
		return
	}
	detcdAddr, _ := startInProcDetcd(t, true)
	got := gwRunScenario(t, "detcd", detcdAddr)
	gwCompare(t, want, got)
}

// gwResult is what one step observed: an HTTP status, the response's
// Content-Type and its body as a generic JSON value (for streams, the
// lines read, in order).
type gwResult struct {
	name   string
	status int
	ctype  string
	body   any
}

func (r gwResult) String() string {
	return fmt.Sprintf("%s -> %d %s %s", r.name, r.status, r.ctype, gwCanon(r.body))
}

func (r gwResult) equal(o gwResult) bool {
	return r.status == o.status && r.ctype == o.ctype && cmp.Equal(r.body, o.body)
}

// gwFail is the result of a request that got no HTTP response.
func gwFail(err error) gwResult { return gwResult{body: gwObj{"transport_error": err.Error()}} }

// gwStep is one step of the scenario. do makes the request(s); norm, when
// set, replaces values that legitimately differ between two servers
// after gwMaskHeaders has run.
type gwStep struct {
	name string
	do   func(c *gwClient) gwResult
	norm func(any) any
}

// gwClient talks HTTP to one server.
type gwClient struct {
	t    *testing.T
	base string
	// unary has a whole-request timeout; stream has none, since a
	// stream's body is read for as long as the step wants, under a
	// context deadline instead.
	unary, stream *http.Client
}

func gwRunScenario(t *testing.T, side, addr string) []gwResult {
	c := &gwClient{
		t:      t,
		base:   "http://" + addr,
		unary:  &http.Client{Timeout: gwTimeout},
		stream: &http.Client{},
	}
	var out []gwResult
	for i, st := range gwScenario() {
		r := st.do(c)
		r.name = fmt.Sprintf("%02d %s", i+1, st.name)
		r.body = gwMaskHeaders(r.body)
		if st.norm != nil {
			r.body = st.norm(r.body)
		}
		out = append(out, r)
	}
	t.Logf("%s: %d steps run", side, len(out))
	return out
}

// gwCompare reports the first step where detcd differs from etcd, then
// every differing step, since later ones are often consequences.
func gwCompare(t *testing.T, want, got []gwResult) {
	t.Helper()
	var diffs []string
	first := ""
	for i := range max(len(want), len(got)) {
		w, g := gwAt(want, i), gwAt(got, i)
		if w.equal(g) {
			continue
		}
		diffs = append(diffs, fmt.Sprintf("step %s:\n  etcd:  %s\n  detcd: %s", w.name, w, g))
		if first == "" {
			first = diffs[0]
			if d := cmp.Diff(w.body, g.body); d != "" {
				first += "\n  body (-etcd +detcd):\n" + d
			}
		}
	}
	if len(diffs) == 0 {
		return
	}
	t.Errorf("first difference of %d, at %s", len(diffs), first)
	t.Logf("all differences:\n%s", strings.Join(diffs, "\n"))
	t.Logf("etcd transcript:\n%s", gwTranscript(want))
}

func gwAt(r []gwResult, i int) gwResult {
	if i < len(r) {
		return r[i]
	}
	return gwResult{name: "(missing)", body: "(missing)"}
}

func gwTranscript(r []gwResult) string {
	lines := make([]string, len(r))
	for i, x := range r {
		lines[i] = x.String()
	}
	return strings.Join(lines, "\n")
}

// gwScenario is the script; the store starts empty at revision 1.
func gwScenario() []gwStep {
	var s []gwStep
	s = append(s, gwKVSteps()...)
	s = append(s, gwErrorSteps()...)
	s = append(s, gwLeaseSteps()...)
	s = append(s, gwWatchStep(),
		gwStep{name: "watch two creates in one body (stream)", do: gwTwoWatches})
	s = append(s, gwClusterSteps()...)
	s = append(s, gwLockSteps()...)
	return s
}

func gwKVSteps() []gwStep {
	foo := gwB("foo")
	return []gwStep{
		gwPost("put foo=bar", "/v3/kv/put", gwObj{"key": foo, "value": gwB("bar")}),
		gwPost("put foo=baz prev_kv", "/v3/kv/put", gwObj{"key": foo, "value": gwB("baz"), "prev_kv": true}),
		gwPost("range foo", "/v3/kv/range", gwObj{"key": foo}),
		gwPost("put foo/a", "/v3/kv/put", gwObj{"key": gwB("foo/a"), "value": gwB("1")}),
		gwPost("put foo/b", "/v3/kv/put", gwObj{"key": gwB("foo/b"), "value": gwB("2")}),
		gwPost("put foo/c", "/v3/kv/put", gwObj{"key": gwB("foo/c"), "value": gwB("3")}),
		// "foo0" ends the prefix "foo/", as '0' follows '/'.
		gwPost("range prefix limit 2", "/v3/kv/range", gwObj{"key": gwB("foo/"), "range_end": gwB("foo0"), "limit": 2}),
		gwPost("range prefix count_only", "/v3/kv/range", gwObj{"key": gwB("foo/"), "range_end": gwB("foo0"), "count_only": true}),
		gwPost("range prefix keys_only", "/v3/kv/range", gwObj{"key": gwB("foo/"), "range_end": gwB("foo0"), "keys_only": true}),
		// Which empty fields are omitted (kvs, count, more) is the point.
		gwPost("range missing key", "/v3/kv/range", gwObj{"key": gwB("nope")}),
		// The JSON name (lowerCamelCase) is accepted as well as the proto name.
		gwPost("range camelCase rangeEnd", "/v3/kv/range", gwObj{"key": gwB("foo/"), "rangeEnd": gwB("foo0"), "countOnly": true}),
		gwPost("deleterange foo/a prev_kv", "/v3/kv/deleterange", gwObj{"key": gwB("foo/a"), "prev_kv": true}),
		gwPost("txn value(foo)==baz: put, range", "/v3/kv/txn", gwTxn("baz")),
		gwPost("txn value(foo)==nope: failure range", "/v3/kv/txn", gwTxn("nope")),
		gwPost("compaction rev 3", "/v3/kv/compaction", gwObj{"revision": 3, "physical": true}),
		gwPost("range foo at compacted rev 2", "/v3/kv/range", gwObj{"key": foo, "revision": 2}),
		gwPost("range foo at rev 3", "/v3/kv/range", gwObj{"key": foo, "revision": "3"}),
	}
}

// gwTxn compares foo's value with v: on success it puts foo=qux and reads
// foo back, on failure it reads foo and the prefix foo/.
func gwTxn(v string) gwObj {
	return gwObj{
		"compare": []gwObj{{"key": gwB("foo"), "target": "VALUE", "result": "EQUAL", "value": gwB(v)}},
		"success": []gwObj{
			{"request_put": gwObj{"key": gwB("foo"), "value": gwB("qux")}},
			{"request_range": gwObj{"key": gwB("foo")}},
		},
		"failure": []gwObj{
			{"request_range": gwObj{"key": gwB("foo")}},
			{"request_range": gwObj{"key": gwB("foo/"), "range_end": gwB("foo0"), "count_only": true}},
		},
	}
}

func gwErrorSteps() []gwStep {
	return []gwStep{
		gwPost("put empty key", "/v3/kv/put", gwObj{"value": gwB("x")}),
		gwPost("range future rev", "/v3/kv/range", gwObj{"key": gwB("foo"), "revision": 1000}),
		gwPost("compaction future rev", "/v3/kv/compaction", gwObj{"revision": 1000}),
		gwRaw("malformed JSON", http.MethodPost, "/v3/kv/range", `{"key":`, nil),
		gwRaw("key not base64", http.MethodPost, "/v3/kv/range", `{"key":"fo!o"}`, nil),
		gwRaw("wrong type for limit", http.MethodPost, "/v3/kv/range", `{"key":"Zm9v","limit":"many"}`, nil),
		gwRaw("unknown field", http.MethodPost, "/v3/kv/range", `{"key":"Zm9v","bogus":1}`, nil),
		gwRaw("empty body range", http.MethodPost, "/v3/kv/range", ``, nil),
		gwRaw("GET range", http.MethodGet, "/v3/kv/range", ``, nil),
		gwRaw("GET range with body", http.MethodGet, "/v3/kv/range", `{"key":"Zm9v"}`, nil),
		gwRaw("POST unknown path", http.MethodPost, "/v3/kv/nope", `{}`, nil),
		// With auth disabled, a token is ignored, even a bogus one.
		gwRaw("range with bogus Authorization", http.MethodPost, "/v3/kv/range", `{"key":"Zm9v"}`,
			map[string]string{"Authorization": "bogus.token.1"}),
	}
}

func gwLeaseSteps() []gwStep {
	return []gwStep{
		gwPost("lease grant", "/v3/lease/grant", gwObj{"ID": gwLeaseID, "TTL": 60}),
		gwPost("lease grant same ID", "/v3/lease/grant", gwObj{"ID": gwLeaseID, "TTL": 60}),
		gwPost("put lkey with lease", "/v3/kv/put", gwObj{"key": gwB("lkey"), "value": gwB("v"), "lease": fmt.Sprint(gwLeaseID)}),
		gwPost("range lkey", "/v3/kv/range", gwObj{"key": gwB("lkey")}),
		gwPost("lease timetolive keys", "/v3/lease/timetolive", gwObj{"ID": fmt.Sprint(gwLeaseID), "keys": true}).with(gwMaskTTL),
		gwPost("lease leases", "/v3/lease/leases", gwObj{}),
		{name: "lease keepalive (stream)", do: gwKeepAlive},
		gwPost("lease revoke", "/v3/lease/revoke", gwObj{"ID": fmt.Sprint(gwLeaseID)}),
		gwPost("lease timetolive revoked", "/v3/lease/timetolive", gwObj{"ID": fmt.Sprint(gwLeaseID)}),
		gwPost("lease revoke again", "/v3/lease/revoke", gwObj{"ID": fmt.Sprint(gwLeaseID)}),
		gwPost("range lkey after revoke", "/v3/kv/range", gwObj{"key": gwB("lkey")}),
	}
}

func gwClusterSteps() []gwStep {
	return []gwStep{
		gwPost("maintenance status", "/v3/maintenance/status", gwObj{}).with(gwStatusShape),
		gwPost("maintenance alarm GET", "/v3/maintenance/alarm", gwObj{"action": "GET"}),
		// Both compute HashKV with etcd's algorithm over the same history,
		// so the hash itself should agree.
		gwPost("maintenance hashkv rev 0", "/v3/maintenance/hashkv", gwObj{"revision": 0}),
		gwPost("maintenance downgrade validate 3.6", "/v3/maintenance/downgrade", gwObj{"action": "VALIDATE", "version": "3.6"}),
		gwPost("maintenance downgrade validate 3.5", "/v3/maintenance/downgrade", gwObj{"action": "VALIDATE", "version": "3.5"}),
		gwPost("cluster member list", "/v3/cluster/member/list", gwObj{}).with(gwShape),
		gwPost("auth status", "/v3/auth/status", gwObj{}),
		gwPost("auth authenticate (auth disabled)", "/v3/auth/authenticate", gwObj{"name": "root", "password": "pw"}),
	}
}

func gwLockSteps() []gwStep {
	lockKey := gwB(fmt.Sprintf("gwlock/%x", gwLockLeaseID))
	return []gwStep{
		gwPost("lease grant for locks", "/v3/lease/grant", gwObj{"ID": gwLockLeaseID, "TTL": 60}),
		gwPost("lock gwlock", "/v3/lock/lock", gwObj{"name": gwB("gwlock"), "lease": fmt.Sprint(gwLockLeaseID)}),
		gwPost("lock gwlock again, same lease", "/v3/lock/lock", gwObj{"name": gwB("gwlock"), "lease": fmt.Sprint(gwLockLeaseID)}),
		gwPost("unlock gwlock", "/v3/lock/unlock", gwObj{"key": lockKey}),
		gwPost("unlock gwlock again", "/v3/lock/unlock", gwObj{"key": lockKey}),
		gwPost("lock with an unknown lease", "/v3/lock/lock", gwObj{"name": gwB("gwlock2"), "lease": "12345"}),
		gwPost("election leader, none", "/v3/election/leader", gwObj{"name": gwB("gwel")}),
		gwPost("election proclaim without leader", "/v3/election/proclaim", gwObj{"value": gwB("v")}),
		gwPost("election resign without leader", "/v3/election/resign", gwObj{}),
		{name: "election campaign, leader, observe, proclaim, resign", do: gwElection},
		gwPost("election leader after resign", "/v3/election/leader", gwObj{"name": gwB("gwel")}),
		gwPost("lease revoke for locks", "/v3/lease/revoke", gwObj{"ID": fmt.Sprint(gwLockLeaseID)}),
	}
}

// gwElection campaigns, then uses the leader key the campaign returned:
// each call's status and body are recorded, in order.
func gwElection(c *gwClient) gwResult {
	var out []any
	record := func(r gwResult) { out = append(out, gwObj{"status": r.status, "body": r.body}) }
	campaign := c.call(http.MethodPost, "/v3/election/campaign", gwCanon(gwObj{"name": gwB("gwel"), "value": gwB("v1"), "lease": fmt.Sprint(gwLockLeaseID)}), nil)
	record(campaign)
	var leader any
	if m, ok := campaign.body.(map[string]any); ok {
		leader = m["leader"]
	}
	record(c.call(http.MethodPost, "/v3/election/leader", gwCanon(gwObj{"name": gwB("gwel")}), nil))
	s, err := c.openStream("/v3/election/observe", gwCanon(gwObj{"name": gwB("gwel")}))
	if err != nil {
		return gwFail(err)
	}
	defer s.close()
	out = append(out, s.next())
	record(c.call(http.MethodPost, "/v3/election/proclaim", gwCanon(gwObj{"leader": leader, "value": gwB("v2")}), nil))
	out = append(out, s.next())
	record(c.call(http.MethodPost, "/v3/election/resign", gwCanon(gwObj{"leader": leader}), nil))
	return s.result(out)
}

// gwObj is a JSON object to send.
type gwObj = map[string]any

// gwB base64-encodes s: the gateway carries bytes fields as base64.
func gwB(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func (s gwStep) with(norm func(any) any) gwStep { s.norm = norm; return s }

// gwPost is a POST of body, marshalled as JSON, to path.
func gwPost(name, path string, body gwObj) gwStep {
	b, err := json.Marshal(body)
	if err != nil {
		panic(err) // the scenario's own bodies always marshal
	}
	return gwRaw(name, http.MethodPost, path, string(b), nil)
}

// gwRaw sends body as is, so that a step can send malformed JSON, another
// method or extra headers.
func gwRaw(name, method, path, body string, hdr map[string]string) gwStep {
	return gwStep{name: name, do: func(c *gwClient) gwResult {
		return c.call(method, path, body, hdr)
	}}
}

// call makes one unary request and returns its result.
func (c *gwClient) call(method, path, body string, hdr map[string]string) gwResult {
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatalf("request %s %s: %v", method, path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.unary.Do(req)
	if err != nil {
		return gwFail(err)
	}
	defer resp.Body.Close()
	r := gwResult{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type")}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		r.body = gwObj{"read_error": err.Error()}
		return r
	}
	r.body = gwParse(raw)
	return r
}

// gwParse decodes a body as generic JSON. Numbers stay json.Number so
// that 5 and "5" differ: the gateway writes int64 fields as strings and
// smaller ones as numbers, and an implementation must match that.
func gwParse(raw []byte) any {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "<not JSON> " + string(raw)
	}
	if dec.More() {
		return "<trailing data> " + string(raw)
	}
	return v
}

// gwCanon is v as compact JSON with sorted keys, unescaped so that the
// transcript shows <markers> as is.
func gwCanon(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprintf("<unmarshalable %v>", v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// gwStream is an open streaming call whose response lines the step reads
// one by one.
//
// Its request body is fixed, not held open: etcd's gateway runs on
// net/http's HTTP/1.1 server, which, before it writes the response
// headers, reads the rest of an unfinished request body (up to 256 KiB),
// so a client holding its body open never sees a response. Once the body
// ends, the gateway half-closes the gRPC stream and the server goes on
// streaming (watch) or ends the stream (keepalive). (detcd answers
// before the body ends; that difference is not compared.)
type gwStream struct {
	status int
	ctype  string
	lines  chan []byte
	cancel context.CancelFunc
	body   io.Closer
}

// openStream POSTs body to path and returns once the response headers
// arrive; the gateway sends them with the first message.
func (c *gwClient) openStream(path, body string) (*gwStream, error) {
	ctx, cancel := context.WithTimeout(context.Background(), gwStreamTimeout)
	resp, err := c.do(ctx, path, strings.NewReader(body))
	if err != nil {
		cancel()
		return nil, err
	}
	return gwNewStream(resp, cancel), nil
}

// do POSTs a streaming request, without the unary client's timeout: ctx
// bounds it instead, body reads included.
func (c *gwClient) do(ctx context.Context, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.stream.Do(req)
}

func gwNewStream(resp *http.Response, cancel context.CancelFunc) *gwStream {
	s := &gwStream{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), lines: make(chan []byte, 16), cancel: cancel, body: resp.Body}
	go s.pump(bufio.NewReader(resp.Body))
	return s
}

// pump hands over the response's newline-delimited JSON messages.
func (s *gwStream) pump(r *bufio.Reader) {
	defer close(s.lines)
	for {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			s.lines <- line
		}
		if err != nil {
			return
		}
	}
}

// next is the next message, or a marker when none comes in time or the
// stream ended.
func (s *gwStream) next() any {
	select {
	case line, ok := <-s.lines:
		if !ok {
			return "<stream ended>"
		}
		return gwParse(line)
	case <-time.After(gwLineTimeout):
		return fmt.Sprintf("<no line within %v>", gwLineTimeout)
	}
}

// result is the stream's status and Content-Type with body.
func (s *gwStream) result(body any) gwResult {
	return gwResult{status: s.status, ctype: s.ctype, body: body}
}

func (s *gwStream) close() {
	s.cancel()
	s.body.Close()
}

// gwKeepAlive renews the lease once through the streaming keepalive call
// and records its response lines: the renewal, then the end of the
// stream, since the server ends it once the request body has ended.
func gwKeepAlive(c *gwClient) gwResult {
	s, err := c.openStream("/v3/lease/keepalive", fmt.Sprintf(`{"ID":"%d"}`, gwLeaseID))
	if err != nil {
		return gwFail(err)
	}
	defer s.close()
	return s.result([]any{s.next(), s.next()})
}

// gwWatchStep watches foo, puts foo through a unary request while the
// stream is open, and records the created line, the put and the event.
func gwWatchStep() gwStep {
	return gwStep{name: "watch foo (stream) + put foo=w", do: func(c *gwClient) gwResult {
		s, err := c.openStream("/v3/watch", gwCanon(gwObj{"create_request": gwObj{"key": gwB("foo")}}))
		if err != nil {
			return gwFail(err)
		}
		defer s.close()
		created := s.next()
		put := c.call(http.MethodPost, "/v3/kv/put", gwCanon(gwObj{"key": gwB("foo"), "value": gwB("w")}), nil)
		event := s.next()
		return s.result([]any{created, gwObj{"put_status": put.status, "put_body": put.body}, event})
	}}
}

// gwTwoWatches sends two create requests, concatenated, in one body: the
// gateway decodes the body as a stream of JSON objects, one request each.
func gwTwoWatches(c *gwClient) gwResult {
	body := gwCanon(gwObj{"create_request": gwObj{"key": gwB("foo")}}) +
		gwCanon(gwObj{"create_request": gwObj{"key": gwB("foo/"), "range_end": gwB("foo0"), "prev_kv": true}})
	s, err := c.openStream("/v3/watch", body)
	if err != nil {
		return gwFail(err)
	}
	defer s.close()
	return s.result([]any{s.next(), s.next()})
}

// gwMaskHeaders deletes, in every "header" object however deep (txn
// responses and stream lines nest them), the fields that name the
// server rather than the state: ids and the raft term.
//
// It also turns no-break spaces into spaces: protojson's error messages
// ("proto:\u00a0(line 1:8): ...") pick a space or a no-break space per
// binary, on purpose, so that nobody depends on their exact text.
func gwMaskHeaders(v any) any {
	switch x := v.(type) {
	case string:
		return strings.ReplaceAll(x, "\u00a0", " ")
	case map[string]any:
		for k, e := range x {
			if h, ok := e.(map[string]any); ok && k == "header" {
				delete(h, "cluster_id")
				delete(h, "member_id")
				delete(h, "raft_term")
			}
			x[k] = gwMaskHeaders(e)
		}
	case []any:
		for i, e := range x {
			x[i] = gwMaskHeaders(e)
		}
	}
	return v
}

// gwMaskTTL keeps only whether the remaining TTL is in range: it counts
// down, so its value depends on timing.
func gwMaskTTL(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	if ttl, ok := m["TTL"].(string); ok {
		var n int
		_, err := fmt.Sscan(ttl, &n)
		m["TTL"] = fmt.Sprintf("<string, in (50,60]: %v>", err == nil && n > 50 && n <= 60)
	}
	return v
}

// gwStatusShape is the shape of a status response without storageVersion:
// etcd fills that in a while after it starts, so whether it is there
// depends on timing.
func gwStatusShape(v any) any {
	if m, ok := v.(map[string]any); ok {
		delete(m, "storageVersion")
	}
	return gwShape(v)
}

// gwShape replaces every leaf with its JSON type, for responses whose
// values name the server (versions, sizes, ids, URLs) but whose fields
// and types should still agree.
func gwShape(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = gwShape(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = gwShape(e)
		}
		return out
	case string:
		return "<string>"
	case json.Number:
		return "<number>"
	case bool:
		return "<bool>"
	case nil:
		return "<null>"
	}
	return fmt.Sprintf("<%T>", v)
}
