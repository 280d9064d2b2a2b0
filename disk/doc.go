// Package disk keeps a member's durable state in a data directory over a
// wal.FS: it bootstraps or restarts a core.Node from what the directory
// holds, and carries out the durable parts of a core.Ready (log writes,
// checkpoints, releases). Both drivers use it, the server over the real
// file system and the simulator over a simulated one, so recovery is the
// same code in both.
//
// Layout, as etcd's: DIR/member/wal holds the log segments and
// DIR/member/snap the checkpoints. DIR/member/initialized, written once the
// log exists, marks a directory that held a member: with checkpoints, it
// tells a log that was lost from a new directory (HasLog).
//
// Disk is not safe for concurrent use except that WriteCheckpoint may run
// on another goroutine while the log is written.
package disk
