package server

import (
	"context"
	"errors"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// grpcMetrics are the gRPC server's metrics as etcd exports them (those
// of go-grpc-middleware's Prometheus provider with its default options):
// calls started and handled (by code), messages received and sent, by
// method. Each method's series are resolved once, when the server's
// services are known (initialize), so that a call counts with atomic
// adds instead of hashing its labels for every count: four times per
// keep-alive stream of clientv3's KeepAliveOnce, and a twelfth of the
// server's CPU per keep-alive.
type grpcMetrics struct {
	started, handled, received, sent *prometheus.CounterVec
	// methods are the counters by full method name: filled by
	// initialize before the server serves, only read after.
	methods map[string]*methodCounters
}

// methodCounters are one method's series.
type methodCounters struct {
	started, received, sent prometheus.Counter
	// handled is by code, for gRPC's codes (OK to Unauthenticated).
	handled              [codes.Unauthenticated + 1]prometheus.Counter
	typ, service, method string
}

func newGRPCMetrics() *grpcMetrics {
	labels := []string{"grpc_type", "grpc_service", "grpc_method"}
	vec := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	return &grpcMetrics{
		started:  vec("grpc_server_started_total", "Total number of RPCs started on the server.", labels),
		handled:  vec("grpc_server_handled_total", "Total number of RPCs completed on the server, regardless of success or failure.", append(labels[:3:3], "grpc_code")),
		received: vec("grpc_server_msg_received_total", "Total number of RPC stream messages received on the server.", labels),
		sent:     vec("grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server.", labels),
		methods:  map[string]*methodCounters{},
	}
}

// collectors are what the registry gathers.
func (g *grpcMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{g.started, g.handled, g.received, g.sent}
}

// initialize makes every method's series of the services, at zero, as
// etcd's /metrics shows them before any call: the gRPC server's
// GetServiceInfo, or the simulator's registry of the same services. With
// allCodes false (the simulator) a method's handled series of each code
// are made when a call first ends with it: all of them, seventeen codes
// for each of some fifty methods, would be a thousand series for every
// scrape of every simulated member to gather, a third of a run's time.
func (g *grpcMetrics) initialize(services map[string]grpc.ServiceInfo, allCodes bool) {
	for service, info := range services { //detcd:maporder-ok: each method's series on its own
		for _, mi := range info.Methods {
			m := g.newMethod(methodType(mi.IsClientStream, mi.IsServerStream), service, mi.Name, allCodes)
			g.methods["/"+service+"/"+mi.Name] = m
		}
	}
}

func (g *grpcMetrics) newMethod(typ, service, method string, allCodes bool) *methodCounters {
	m := &methodCounters{typ: typ, service: service, method: method,
		started:  g.started.WithLabelValues(typ, service, method),
		received: g.received.WithLabelValues(typ, service, method),
		sent:     g.sent.WithLabelValues(typ, service, method),
	}
	if allCodes {
		for c := range m.handled {
			m.handled[c] = g.handled.WithLabelValues(typ, service, method, codes.Code(c).String())
		}
	}
	return m
}

// method is fullMethod's counters: resolved by initialize, or made for
// this call if the method is not one of the server's.
func (g *grpcMetrics) method(fullMethod string, clientStream, serverStream bool) *methodCounters {
	if m, ok := g.methods[fullMethod]; ok {
		return m
	}
	service, method := splitMethod(fullMethod)
	return g.newMethod(methodType(clientStream, serverStream), service, method, true)
}

// handledBy counts a call that ended with err.
func (g *grpcMetrics) handledBy(m *methodCounters, err error) {
	c := codeOf(err)
	if int(c) < len(m.handled) {
		h := m.handled[c]
		if h == nil {
			// Only the simulator's series start so (initialize), and it
			// runs one call at a time: the server's never write here.
			h = g.handled.WithLabelValues(m.typ, m.service, m.method, c.String())
			m.handled[c] = h
		}
		h.Inc()
		return
	}
	g.handled.WithLabelValues(m.typ, m.service, m.method, c.String()).Inc()
}

// codeOf is the code a call that returned err ends with, as the gRPC
// server gives it: a status error's, a context error's, else Unknown.
func codeOf(err error) codes.Code {
	c := status.Code(err)
	if c == codes.Unknown {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return codes.DeadlineExceeded
		case errors.Is(err, context.Canceled):
			return codes.Canceled
		}
	}
	return c
}

// methodType is the provider's grpc_type.
func methodType(clientStream, serverStream bool) string {
	switch {
	case !clientStream && !serverStream:
		return "unary"
	case clientStream && !serverStream:
		return "client_stream"
	case !clientStream && serverStream:
		return "server_stream"
	}
	return "bidi_stream"
}

// splitMethod splits "/service/method".
func splitMethod(fullMethod string) (service, method string) {
	fullMethod = strings.TrimPrefix(fullMethod, "/")
	if i := strings.Index(fullMethod, "/"); i >= 0 {
		return fullMethod[:i], fullMethod[i+1:]
	}
	return "unknown", "unknown"
}

// unary counts a unary call: its request received, its response sent
// (as the provider counts it, whether or not the call failed).
func (g *grpcMetrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	m := g.method(info.FullMethod, false, false)
	m.started.Inc()
	m.received.Inc()
	resp, err := handler(ctx, req)
	m.sent.Inc()
	g.handledBy(m, err)
	return resp, err
}

// stream counts a stream and every receive and send on it (failed ones
// too, as the provider counts them).
func (g *grpcMetrics) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	m := g.method(info.FullMethod, info.IsClientStream, info.IsServerStream)
	m.started.Inc()
	err := handler(srv, &countedStream{ServerStream: ss, m: m})
	g.handledBy(m, err)
	return err
}

// countedStream counts a stream's messages.
type countedStream struct {
	grpc.ServerStream
	m *methodCounters
}

func (s *countedStream) SendMsg(x any) error {
	err := s.ServerStream.SendMsg(x)
	s.m.sent.Inc()
	return err
}

func (s *countedStream) RecvMsg(x any) error {
	err := s.ServerStream.RecvMsg(x)
	s.m.received.Inc()
	return err
}
