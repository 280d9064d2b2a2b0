package server

import (
	"context"
	"expvar"
	"math"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
)

// httpEndpoints serve etcd's HTTP endpoints: on the client addresses
// /version, /metrics, the health endpoints (health.go), /debug/vars,
// pprof and the JSON gateway, and gRPC requests that came over TLS; on
// the --listen-metrics-urls /metrics and the health endpoints. They own
// both net/http servers and the gateway.
type httpEndpoints struct {
	cors                 []string
	pprof, withGateway   bool
	maxRequestBytes      int
	maxConcurrentStreams uint32
	reg                  *prometheus.Registry
	health               *healthChecks
	lis                  *listeners // which side of a split address a request came to

	version *clusterVersion
	gateway *jsonGateway // nil without --enable-grpc-gateway
	client  *http.Server // nil before startClient
	metrics *http.Server // nil without --listen-metrics-urls
}

func newHTTPEndpoints(cfg *Config, reg *prometheus.Registry, health *healthChecks, lis *listeners, version *clusterVersion) *httpEndpoints {
	return &httpEndpoints{cors: cfg.CORS, pprof: cfg.EnablePprof, withGateway: cfg.EnableGRPCGateway,
		maxRequestBytes: cfg.MaxRequestBytes, maxConcurrentStreams: cfg.MaxConcurrentStreams,
		reg: reg, health: health, lis: lis, version: version}
}

// serveMetrics serves /metrics and the health endpoints on the
// --listen-metrics-urls, at once: a member that is not ready yet says so.
func (h *httpEndpoints) serveMetrics(urls []string) error {
	if len(urls) == 0 {
		return nil
	}
	mux := http.NewServeMux()
	h.addMetricsRoutes(mux)
	h.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return h.lis.serveMetrics(urls, h.metrics)
}

// startClient makes the client addresses' net/http server, with the
// gateway to grpcSrv if enabled.
func (h *httpEndpoints) startClient(grpcSrv *grpc.Server) error {
	if h.withGateway {
		g, err := newJSONGateway(h.maxRequestBytes)
		if err != nil {
			return err
		}
		h.gateway = g
	}
	h.client = &http.Server{Handler: h.grpcOrHTTP(grpcSrv), ReadHeaderTimeout: 10 * time.Second,
		// gRPC over TLS comes through net/http's HTTP/2: the same
		// --max-concurrent-streams as the gRPC server's own.
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: int(min(h.maxConcurrentStreams, math.MaxInt32))}}
	return nil
}

// stop ends the client server, letting requests finish for a while, the
// gateway and the metrics server.
func (h *httpEndpoints) stop() {
	if h.client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if h.client.Shutdown(ctx) != nil {
			h.client.Close() // streams over TLS still open
		}
		cancel()
	}
	if h.gateway != nil {
		h.gateway.close()
	}
	if h.metrics != nil {
		h.metrics.Close()
	}
}

// grpcOrHTTP hands gRPC requests that came through net/http (HTTP/2 over
// TLS) to the gRPC server, and the rest to etcd's HTTP endpoints.
func (h *httpEndpoints) grpcOrHTTP(grpcSrv *grpc.Server) http.Handler {
	endpoints := h.endpoints()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		grpcOnly, httpOnly := h.lis.splitAt(r)
		if !httpOnly && r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			grpcSrv.ServeHTTP(w, r)
			return
		}
		if grpcOnly {
			http.NotFound(w, r)
			return
		}
		// etcd 3.7 still serves the gateway's old /v3beta/ prefix as /v3/.
		if rest, ok := strings.CutPrefix(r.URL.Path, "/v3beta/"); ok {
			r.URL.Path = "/v3/" + rest
		}
		endpoints.ServeHTTP(w, r)
	})
}

// endpoints are etcd's HTTP endpoints on the client addresses, with
// --cors's headers.
func (h *httpEndpoints) endpoints() http.Handler { return h.withCORS(h.clientHandler()) }

// withCORS adds etcd's CORS headers for the origins --cors allows ("*",
// the default, allows any) and answers preflight requests.
func (h *httpEndpoints) withCORS(next http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, o := range h.cors {
		allowed[o] = true
	}
	if len(allowed) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		switch {
		case allowed["*"]:
			w.Header().Set("Access-Control-Allow-Origin", "*")
		case allowed[origin]:
			w.Header().Set("Access-Control-Allow-Origin", origin)
		default:
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE")
		w.Header().Set("Access-Control-Allow-Headers", "accept, content-type, authorization")
		if r.Method == http.MethodOptions {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// addMetricsRoutes adds what --listen-metrics-urls serve too: /metrics and
// the health endpoints.
func (h *httpEndpoints) addMetricsRoutes(mux *http.ServeMux) {
	mux.Handle("/metrics", promhttp.InstrumentMetricHandler(h.reg, promhttp.HandlerFor(h.reg, promhttp.HandlerOpts{})))
	h.health.addRoutes(mux)
}

// clientHandler serves etcd's HTTP endpoints on the client addresses.
func (h *httpEndpoints) clientHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/version", h.version.handler())
	h.addMetricsRoutes(mux)
	// etcd's /debug/vars: the process's expvars (cmdline, memstats).
	mux.Handle("/debug/vars", expvar.Handler())
	if h.gateway != nil {
		mux.Handle("/v3/", h.gateway.handler)
	}
	if h.pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
