// Package invariants says whether deep invariant checks are compiled in, as
// Pebble's package of the same name does. Build with `-tags invariants`
// (the simulator's tests and CI do) to have core check its whole state
// after every Ready: the raft log against the applied index, the mvcc
// index against its revisions, the watch hub's synced and unsynced groups,
// the lease expiry heap and lease-key attachments, checkpoint indexes.
// The checks walk every key, so production builds leave them out; cheap
// checks stay on in every build.
package invariants
