package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// streamWriter writes a stream's messages as grpc-gateway does: each a
// {"result": ...} object and a newline, flushed at once.
type streamWriter struct {
	w       http.ResponseWriter
	started bool
}

func (s *streamWriter) result(m proto.Message) error {
	b, err := marshalJSON.Marshal(m)
	if err != nil {
		return err
	}
	return s.chunk(`{"result":`, b)
}

// fail ends the stream with an error: an error object within the stream
// once it has begun, a plain error answer before.
func (s *streamWriter) fail(err error) {
	st := status.Convert(err)
	if !s.started {
		writeError(s.w, httpStatus(st.Code()), st)
		return
	}
	b, merr := marshalJSON.Marshal(st.Proto())
	if merr == nil {
		s.chunk(`{"error":`, b)
	}
}

func (s *streamWriter) chunk(prefix string, body []byte) error {
	if !s.started {
		s.w.Header().Set("Content-Type", "application/json")
		s.started = true
	}
	if _, err := io.WriteString(s.w, prefix); err != nil {
		return err
	}
	if _, err := s.w.Write(body); err != nil {
		return err
	}
	if _, err := io.WriteString(s.w, "}\n"); err != nil {
		return err
	}
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}

// serverStream serves a call with one request and a stream of answers
// (Maintenance.Snapshot).
func serverStream[Req, Resp any, PReq pbMsg[Req], PResp pbMsg[Resp]](call func(context.Context, PReq, ...grpc.CallOption) (grpc.ServerStreamingClient[Resp], error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := PReq(new(Req))
		if err := decode(json.NewDecoder(r.Body), req); err != nil && !errors.Is(err, io.EOF) {
			writeError(w, http.StatusBadRequest, status.New(codes.InvalidArgument, err.Error()))
			return
		}
		sw := &streamWriter{w: w}
		stream, err := call(outgoing(r), req)
		if err != nil {
			sw.fail(err)
			return
		}
		forward[Resp, PResp](sw, stream.Recv, func() bool { return true })
	})
}

// forward writes a stream's answers until it ends; an error ends the
// answer too, when report says it is worth telling.
func forward[Resp any, PResp pbMsg[Resp]](sw *streamWriter, recv func() (*Resp, error), report func() bool) {
	for {
		m, err := recv()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			if report() {
				sw.fail(err)
			}
			return
		}
		if sw.result(PResp(m)) != nil {
			return
		}
	}
}

// bidi serves a bidirectional stream (Watch, LeaseKeepAlive): the request
// body is a sequence of JSON requests, read as they come; answers are
// written as they come, until the body ends and the server is done, or
// the client goes away.
func bidi[Req, Resp any, PReq pbMsg[Req], PResp pbMsg[Resp]](open func(context.Context) (grpc.BidiStreamingClient[Req, Resp], error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancel(outgoing(r))
		defer cancel()
		sw := &streamWriter{w: w}
		stream, err := open(ctx)
		if err != nil {
			sw.fail(err)
			return
		}
		// Answers may start before the body ends: let them through.
		http.NewResponseController(w).EnableFullDuplex()
		go func() {
			d := json.NewDecoder(r.Body)
			for {
				req := PReq(new(Req))
				if err := decode(d, req); err != nil {
					if !errors.Is(err, io.EOF) {
						cancel()
					}
					stream.CloseSend()
					return
				}
				if stream.Send((*Req)(req)) != nil {
					return
				}
			}
		}()
		// An error after the client went away has no one to tell.
		forward[Resp, PResp](sw, stream.Recv, func() bool { return ctx.Err() == nil })
	})
}
