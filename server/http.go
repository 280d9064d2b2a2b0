package server

import (
	"encoding/json"
	"expvar"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// grpcOrHTTP hands gRPC requests that came through net/http (HTTP/2 over
// TLS) to the gRPC server, and the rest to etcd's HTTP endpoints.
func (s *Server) grpcOrHTTP() http.Handler {
	h := s.withCORS(s.httpHandler())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		grpcOnly, httpOnly := s.lis.splitAt(r)
		if !httpOnly && r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			s.grpc.ServeHTTP(w, r)
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
		h.ServeHTTP(w, r)
	})
}

// withCORS adds etcd's CORS headers for the origins --cors allows ("*",
// the default, allows any) and answers preflight requests.
func (s *Server) withCORS(h http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, o := range s.cfg.CORS {
		allowed[o] = true
	}
	if len(allowed) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		switch {
		case allowed["*"]:
			w.Header().Set("Access-Control-Allow-Origin", "*")
		case allowed[origin]:
			w.Header().Set("Access-Control-Allow-Origin", origin)
		default:
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE")
		w.Header().Set("Access-Control-Allow-Headers", "accept, content-type, authorization")
		if r.Method == http.MethodOptions {
			return
		}
		h.ServeHTTP(w, r)
	})
}

// addMetricsRoutes adds what --listen-metrics-urls serve too: /metrics and
// the health endpoints.
func (s *Server) addMetricsRoutes(mux *http.ServeMux) {
	mux.Handle("/metrics", promhttp.InstrumentMetricHandler(s.metrics.reg, promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})))
	s.addHealthRoutes(mux)
}

// metricsHandler serves the --listen-metrics-urls.
func (s *Server) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	s.addMetricsRoutes(mux)
	return mux
}

// httpHandler serves etcd's HTTP endpoints on the client port.
func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(struct {
			Server  string `json:"etcdserver"`
			Cluster string `json:"etcdcluster"`
			Storage string `json:"storage"`
		}{Version, ClusterVersion, ClusterVersion})
	})
	s.addMetricsRoutes(mux)
	// etcd's /debug/vars: the process's expvars (cmdline, memstats).
	mux.Handle("/debug/vars", expvar.Handler())
	if s.gateway != nil {
		mux.Handle("/v3/", s.gateway)
	}
	if s.cfg.EnablePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
