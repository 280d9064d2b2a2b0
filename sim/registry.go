package sim

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// registry is a member's gRPC services as grpcsvc.Register registers them
// on the server's grpc.Server: etcd's generated service descriptors, each
// method's generated handler with the implementation registered for it.
// The simulator calls a method by its full gRPC name through them, as the
// gRPC server dispatches a call: the generated handler decodes the
// request (here: copies it, as a transport would) and calls the
// interceptors with the method's name.
type registry struct {
	unary   map[string]registered[grpc.MethodHandler]
	streams map[string]registered[grpc.StreamHandler]
	// services describes the methods as grpc.Server.GetServiceInfo does.
	services map[string]grpc.ServiceInfo
}

// registered is one method's handler and the implementation it serves.
type registered[H any] struct {
	impl any
	h    H
}

func newRegistry() *registry {
	return &registry{unary: map[string]registered[grpc.MethodHandler]{}, streams: map[string]registered[grpc.StreamHandler]{},
		services: map[string]grpc.ServiceInfo{}}
}

// RegisterService implements grpc.ServiceRegistrar.
func (r *registry) RegisterService(desc *grpc.ServiceDesc, impl any) {
	info := grpc.ServiceInfo{Metadata: desc.Metadata}
	for _, md := range desc.Methods {
		r.unary["/"+desc.ServiceName+"/"+md.MethodName] = registered[grpc.MethodHandler]{impl, md.Handler}
		info.Methods = append(info.Methods, grpc.MethodInfo{Name: md.MethodName})
	}
	for _, sd := range desc.Streams {
		r.streams["/"+desc.ServiceName+"/"+sd.StreamName] = registered[grpc.StreamHandler]{impl, sd.Handler}
		info.Methods = append(info.Methods, grpc.MethodInfo{Name: sd.StreamName, IsClientStream: sd.ClientStreams, IsServerStream: sd.ServerStreams})
	}
	r.services[desc.ServiceName] = info
}

// call calls the unary method named method with req, through interceptor.
func (r *registry) call(ctx context.Context, method string, req proto.Message, interceptor grpc.UnaryServerInterceptor) (proto.Message, error) {
	m, ok := r.unary[method]
	if !ok {
		return nil, fmt.Errorf("%w: %s", errNoService, method)
	}
	decode := func(in any) error {
		proto.Merge(in.(proto.Message), req)
		return nil
	}
	resp, err := m.h(m.impl, ctx, decode, interceptor)
	if err != nil {
		return nil, err
	}
	return resp.(proto.Message), nil
}

// stream is the stream method named method: its implementation and
// generated handler.
func (r *registry) stream(method string) (registered[grpc.StreamHandler], error) {
	s, ok := r.streams[method]
	if !ok {
		return s, fmt.Errorf("%w: %s", errNoService, method)
	}
	return s, nil
}
