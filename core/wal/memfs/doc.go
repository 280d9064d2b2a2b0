// Package memfs is an in-memory wal.FS that models durability, for tests and
// for the simulator. It is deterministic: nothing in it is random, and every
// fault (which sync fails, how much of a write survives a crash, which bit
// rots) is chosen by the caller.
//
// Model:
//   - Each file has synced content and current content. File.Sync makes the
//     current content durable.
//   - Creations, renames and removals change the current namespace; SyncDir
//     makes those in one directory durable. Directories themselves are
//     durable as soon as MkdirAll returns.
//   - Crash drops everything not durable: the namespace rolls back to its
//     durable state and every file to its synced content, except that the
//     caller may keep a prefix of each file's unsynced bytes (a torn write)
//     and, with TornGarbage, fill the unsynced bytes of the sector past
//     that prefix with garbage, as a disk without atomic sector writes can.
//     Files opened before a crash are dead: every call on them fails.
//   - A Sync or SyncDir failed by SyncErr changes nothing durable.
//
// An FS is not safe for concurrent use: the simulator drives it from one
// goroutine.
package memfs
