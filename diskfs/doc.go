// Package diskfs is the os-backed wal.FS the real server uses. Names are
// slash-separated paths under a root directory.
//
// Durability: File.Sync is fdatasync on Linux (fsync elsewhere), which also
// makes a changed file size durable; SyncDir fsyncs the directory so that
// creations, renames and removals in it survive a power failure.
// Preallocate is fallocate with mode 0, which grows the file with zeros and
// leaves the offset alone; where the file system cannot do that it is a
// no-op. Files are created with mode 0600 and directories with 0700, as
// etcd does for its data directory.
//
// Map (wal.Mapper) maps a restart's checkpoint read only and shared, with
// MAP_POPULATE as etcd maps its bolt file; on other systems it declines
// and the checkpoint is read.
package diskfs
