// Package wal owns detcd's files on disk: the raft log and hard state in a
// write-ahead log of segment files, and sealed full-state checkpoint files.
// Every file access goes through the FS interface, so the same code, recovery
// included, runs over the os-backed FS (package diskfs) and the simulator's
// in-memory one (package memfs).
//
// Record format. A WAL segment is a run of records:
//
//	u32 le payload length | u32 le crc32c(length bytes) | u32 le crc32c(type + payload) | u8 type | payload
//
// Types: segment header (magic "detcdwal", version, sequence, first index,
// meta), entry (uvarint term, uvarint index, u8 entry type, data), hard state
// (uvarint term, vote, commit). CRC32C is the Castagnoli polynomial. Segment
// files are named %016x-%016x.wal (sequence, first index) and are
// preallocated, so a segment may end in zeros; an all-zero record header
// ends the written data.
//
// Invariants:
//   - Nothing is durable until Sync returns nil; after any failed write or
//     sync the WAL refuses further work, because a failed fsync may have
//     dropped dirty pages and a retry would falsely report them durable.
//   - Every segment starts with its header and a copy of the latest hard
//     state, both synced before the segment's name appears (it is written
//     under a .tmp name and renamed), so releasing old segments never loses
//     the hard state and a visible segment always has a valid start.
//   - Only the last segment is ever written to. A finished segment is
//     truncated to its exact length and synced before the next one is
//     created, so any defect in a non-last segment is corruption.
//   - Entries are written before the hard state of the same Save, so a torn
//     tail that keeps a hard state keeps the entries its commit index needs.
//   - Recovery cuts a torn tail only in the last segment and only where a
//     crash can have made it: a final record that runs past the end of
//     the file, or whose bytes from a sector boundary (SectorBytes, by file
//     offset) on are zeros with nothing but zeros after them (etcd's rule,
//     with a disk that writes a write's sectors in order). A complete
//     record that fails its checksum is damage, last record or not.
//     Damage, segments missing from the front or the middle of the log,
//     and a log that starts after the checkpoint's index are refused with
//     an error wrapping ErrCorrupt that names the file and the byte offset;
//     Options.UnsafeRepair lets an operator cut damage in the last segment
//     instead. A record whose own bytes end in zeros across a sector
//     boundary stays ambiguous: damage elsewhere in it, when it is the
//     last record, is taken for a torn write.
//   - Garbage in a torn tail is refused, not cut. A disk that writes each
//     sector atomically leaves a torn write's sectors new or old (zeros),
//     which the rule above cuts. A disk that does not may leave the sector
//     it was writing at the power loss as garbage (or unreadable). The WAL
//     keeps no record of how far it synced (that would cost a second fsync
//     per batch), so a final record damaged by garbage in its last sector
//     cannot be told from the last synced record damaged by rot; cutting
//     it could drop an entry this member acknowledged, which raft's safety
//     rests on. Recovery refuses it with ErrCorrupt naming the last
//     segment and an offset in its tail, as etcd refuses a CRC mismatch;
//     the operator replaces the member or, knowing the disk, starts it
//     with Options.UnsafeRepair, which cuts the tail there. Such a
//     refusal's offset is at or past the end of the synced data, since
//     garbage can only be in bytes written since the last fsync.
//
// Checkpoint format. dir/%016x.ckpt (the index) holds a 24-byte header
// (magic "detcdckp", u64 index, u32 version, u32 crc32c of those), the
// content bytes unframed, a u32 crc32c per CheckpointChunkBytes of content,
// and a 32-byte footer (u64 content length, u64 chunk count, u32 zero, u32
// crc32c of the crc table and the footer fields before it, magic
// "detcdend"), all little-endian. It is written under a .tmp name, synced
// and renamed, so a visible checkpoint is complete and any defect in it,
// a short file included, is corruption. A restart maps the file where the
// FS can (Mapper, MapCheckpoint) instead of reading it; the checks are the
// same.
//
// The package is pure: no goroutines, locks, clocks or os access. A WAL is
// used from one goroutine; the checkpoint functions touch only their own
// files and may run on another goroutine over an FS that allows it.
package wal
