package sim

import (
	"context"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"

	"github.com/detcd/detcd/core"
	"github.com/detcd/detcd/driver"
	"github.com/detcd/detcd/server"
)

// instruments are one incarnation's server.Instruments (etcd's metrics
// and health endpoints, the server's own code) and what the world
// counted of the member's calls to check them against
// (checks_metrics.go).
type instruments struct {
	*server.Instruments
	// served counts the calls the member's services answered without an
	// error since it started, by etcd's rules of what its store counts.
	served servedCounts
	// last is what the metrics check last read (if checked), and
	// nextCheckUs when it reads them next.
	last        server.Readings
	checked     bool
	nextCheckUs int64
}

// servedCounts are the key-space and lease operations a member did for
// its clients.
type servedCounts struct {
	puts, deletes, ranges, txns  int
	leasesGranted, leasesRevoked int
}

// startInstruments installs the server's instruments on a starting
// member: its driver feeds their disk metrics, every turn publishes to
// them, its calls pass their interceptor.
func (m *member) startInstruments() {
	m.inst = &instruments{Instruments: server.NewInstruments(&m.flags, m.id, func() []core.Member {
		if m.node == nil {
			return nil
		}
		return m.node.Members()
	})}
}

// unary calls h, the guarded service method, through the instruments'
// interceptor as the gRPC server does, and counts what it served.
func (in *instruments) unary(ctx context.Context, method string, req any, h grpc.UnaryHandler) (any, error) {
	resp, err := in.Unary(ctx, req, &grpc.UnaryServerInfo{FullMethod: method}, h)
	if err == nil {
		in.served.count(req, resp)
	}
	return resp, err
}

// count counts a call served, as etcd's store counts: each range, put
// and delete, in a transaction the branch it took (nested ones too),
// and a transaction of more than one of those as a txn.
func (c *servedCounts) count(req, resp any) {
	switch q := req.(type) {
	case *pb.RangeRequest:
		c.ranges++
	case *pb.PutRequest:
		c.puts++
	case *pb.DeleteRangeRequest:
		c.deletes++
	case *pb.TxnRequest:
		if c.txnOps(q, resp.(*pb.TxnResponse)) > 1 {
			c.txns++
		}
	case *pb.LeaseGrantRequest:
		c.leasesGranted++
	case *pb.LeaseRevokeRequest:
		c.leasesRevoked++
	}
}

// txnOps counts the operations of the branch a transaction took.
func (c *servedCounts) txnOps(q *pb.TxnRequest, resp *pb.TxnResponse) int {
	branch := q.Failure
	if resp.Succeeded {
		branch = q.Success
	}
	n := 0
	for i, op := range branch {
		switch r := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			c.ranges++
			n++
		case *pb.RequestOp_RequestPut:
			c.puts++
			n++
		case *pb.RequestOp_RequestDeleteRange:
			c.deletes++
			n++
		case *pb.RequestOp_RequestTxn:
			n += c.txnOps(r.RequestTxn, resp.Responses[i].GetResponseTxn())
		}
	}
	return n
}

// observers is a member's driver.Observer: the trace's and the
// instruments' disk metrics.
type observers []driver.Observer

func (os observers) Ready(rd *core.Ready) {
	for _, o := range os {
		o.Ready(rd)
	}
}

func (os observers) Wrote(p *core.Persist, took time.Duration) {
	for _, o := range os {
		o.Wrote(p, took)
	}
}

func (os observers) Synced(took time.Duration) {
	for _, o := range os {
		o.Synced(took)
	}
}

func (os observers) Durable(id uint64) {
	for _, o := range os {
		o.Durable(id)
	}
}

func (os observers) Checkpointed(index uint64, size int64, took time.Duration, err error) {
	for _, o := range os {
		o.Checkpointed(index, size, took, err)
	}
}
