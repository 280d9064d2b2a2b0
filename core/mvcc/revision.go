package mvcc

import "errors"

// Revision is a main revision of the key space: it grows by one with every
// transaction that changes something.
type Revision int64

// LeaseID names a lease a key is attached to; 0 means none.
type LeaseID int64

var (
	// ErrCompacted is returned for a read or compaction at a revision that
	// compaction has removed.
	ErrCompacted = errors.New("mvcc: required revision has been compacted")
	// ErrFutureRev is returned for a read or compaction at a revision the
	// store has not reached.
	ErrFutureRev = errors.New("mvcc: required revision is a future revision")
)
