package server

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/etcddb"
)

// The peer listeners' HTTP/1.1 server (peerwire.go lists its endpoints)
// and the two ends of a peer stream.

// http1Only are the protocols peers speak: HTTP/1.1, as etcd's.
func http1Only() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	return p
}

// newPeerServer is the peer listeners' server; its requests' contexts
// end with base.
func (t *peerTransport) newPeerServer(base context.Context) *http.Server {
	return &http.Server{
		Handler:           t.handler(),
		Protocols:         http1Only(),
		ReadHeaderTimeout: peerReadHeaderTimeout,
		BaseContext:       func(net.Listener) context.Context { return base },
		// net/http's own complaints (refused handshakes and the like)
		// go to the member's log, at debug.
		ErrorLog: slog.NewLogLogger(t.log.Handler(), slog.LevelDebug),
	}
}

func (t *peerTransport) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", http.NotFound)
	mux.HandleFunc(pathStream, t.serveStream)
	mux.HandleFunc(pathSnapshot, t.serveSnapshot(false))
	mux.HandleFunc(pathSnapshotResume, t.serveSnapshot(true))
	mux.HandleFunc(pathProbing, serveProbing)
	mux.HandleFunc(pathMembers, t.serveMembers)
	mux.HandleFunc(pathHashKV, func(w http.ResponseWriter, r *http.Request) {
		hashKVHandler{Log: t.log, ClusterID: t.clusterID, Hashes: t.hashes}.ServeHTTP(w, r)
	})
	mux.Handle(pathVersion, t.version.handler())
	return mux
}

// allowMethod answers etcd's 405 to any method but m; false if it did.
func allowMethod(w http.ResponseWriter, r *http.Request, m string) bool {
	if r.Method == m {
		return true
	}
	w.Header().Set("Allow", m)
	http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
	return false
}

// checkPeer admits a POST from a member of this cluster to this member,
// as etcd's raft handlers do (412 otherwise), and says who sent it.
func (t *peerTransport) checkPeer(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	if !allowMethod(w, r, http.MethodPost) {
		return 0, false
	}
	// A refusal is answered at once, the stream's body unread (net/http
	// would wait for it), and a stream's connection serves no other.
	w.Header().Set("Connection", "close")
	w.Header().Set(headerClusterID, hexID(t.clusterID))
	if got := r.Header.Get(headerClusterID); got != hexID(t.clusterID) {
		t.log.Warn("refusing a peer of another cluster", "peer", r.Header.Get(headerFrom), "its-cluster", got)
		http.Error(w, errClusterMismatch.Error(), http.StatusPreconditionFailed)
		return 0, false
	}
	if got := r.Header.Get(headerTo); got != hexID(t.id) {
		http.Error(w, errToMismatch.Error(), http.StatusPreconditionFailed)
		return 0, false
	}
	from, err := peerIDHeader(r.Header, headerFrom)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return 0, false
	}
	if t.isRemoved(from) {
		t.log.Warn("rejected stream from remote peer because it was removed", "local-member-id", hexID(t.id), "remote-peer-id-from", hexID(from))
		http.Error(w, errRemovedMember.Error(), http.StatusGone)
		return 0, false
	}
	return from, true
}

// peerStream is one end of a peer stream: frames in from a body, frames
// out to the other end, each sent at once.
type peerStream struct {
	in    *bufio.Reader
	out   io.Writer
	flush func() error
}

func (s *peerStream) recv() ([]byte, error) { return readFrame(s.in) }

func (s *peerStream) send(kind byte, payload []byte) error {
	if err := writeFrame(s.out, kind, payload); err != nil {
		return err
	}
	return s.flush()
}

// acceptStream answers a peer stream's request with 200 at once and
// makes the receiving end, which reads the body while it writes.
func acceptStream(w http.ResponseWriter, r *http.Request) (*peerStream, error) {
	rc := http.NewResponseController(w)
	if err := rc.EnableFullDuplex(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return nil, err
	}
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return nil, err
	}
	return &peerStream{in: bufio.NewReader(r.Body), out: w, flush: rc.Flush}, nil
}

// finish ends a stream with the receiver's verdict.
func (s *peerStream) finish(err error) error {
	var why []byte
	if err != nil {
		why = []byte(err.Error())
		if len(why) == 0 {
			why = []byte("failed")
		}
	}
	return s.send(frameStatus, why)
}

// acceptPeer checks a peer's request and takes its stream; ok is false
// if it was refused (and answered) or broke.
func (t *peerTransport) acceptPeer(w http.ResponseWriter, r *http.Request) (from uint64, s *peerStream, ok bool) {
	if from, ok = t.checkPeer(w, r); !ok {
		return 0, nil, false
	}
	s, err := acceptStream(w, r)
	return from, s, err == nil
}

// serveStream takes a sender's stream of messages.
func (t *peerTransport) serveStream(w http.ResponseWriter, r *http.Request) {
	from, s, ok := t.acceptPeer(w, r)
	if !ok {
		return
	}
	if err := t.receiveMessages(s, from); err != nil {
		t.log.Debug("peer stream broke", "peer", hexID(from), "err", err)
	}
}

// serveSnapshot takes a snapshot stream, resumable on
// pathSnapshotResume, and answers with its verdict.
func (t *peerTransport) serveSnapshot(resumable bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		from, s, ok := t.acceptPeer(w, r)
		if !ok {
			return
		}
		done := t.metrics.snapshotStarted(&t.metrics.snapReceive, hexID(from))
		err := t.receiveSnapshot(r.Context(), s, resumable)
		done(err)
		_ = s.finish(err)
	}
}

// probeHealth is etcd's answer to /raft/probing.
type probeHealth struct {
	OK  bool
	Now time.Time
}

func serveProbing(w http.ResponseWriter, _ *http.Request) {
	_ = json.NewEncoder(w).Encode(probeHealth{OK: true, Now: time.Now()})
}

// serveMembers answers etcd's GET /members: the membership the loop last
// applied, by id.
func (t *peerTransport) serveMembers(w http.ResponseWriter, r *http.Request) {
	if !onlyGet(w, r) {
		return
	}
	w.Header().Set(headerClusterID, hexID(t.clusterID))
	ms := t.memberList()
	slices.SortFunc(ms, func(a, b core.Member) int { return cmp.Compare(a.ID, b.ID) })
	out := make([]etcddb.Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, etcddb.FromMember(m))
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// peerStatusError is a peer's answer other than the one asked for.
type peerStatusError struct {
	code int
	text string
}

func (e *peerStatusError) Error() string {
	return fmt.Sprintf("peer answered %d %s: %s", e.code, http.StatusText(e.code), e.text)
}

// peerErrorTextMax bounds what is read of a peer's error answer.
const peerErrorTextMax = 4 << 10

// statusError reads a peer's answer other than want.
func statusError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, peerErrorTextMax))
	return &peerStatusError{code: resp.StatusCode, text: strings.TrimSpace(string(b))}
}

// isStatus says whether err is a peer's answer with code.
func isStatus(err error, code int) bool {
	var se *peerStatusError
	return errors.As(err, &se) && se.code == code
}
