package memfs

// inode is one file's content: data, then zeros up to size. Keeping the
// zeros implicit makes preallocating a 64 MiB segment cost nothing until it
// is written. The synced content is kept the same way. data and synced
// never share memory.
type inode struct {
	data       []byte
	size       int
	synced     []byte
	syncedSize int
	// dirty says the content differs from the synced content somewhere in
	// [lo, hi) or in size; lo is where a torn write would start.
	dirty  bool
	lo, hi int
	// wlo and whi bound the bytes written (not zero-filled by a truncate
	// or preallocation) since the last sync, if whi > wlo: only those can
	// turn to garbage at a crash.
	wlo, whi int
}

func (n *inode) mark(lo, hi int) {
	if !n.dirty {
		n.dirty, n.lo, n.hi = true, lo, hi
		return
	}
	n.lo, n.hi = min(n.lo, lo), max(n.hi, hi)
}

// materialize makes data explicit up to end, which is at most size.
func materialize(b []byte, end int) []byte {
	if end > len(b) {
		// append copies zeros over whatever stale bytes the backing array
		// holds from before a shrink.
		b = append(b, make([]byte, end-len(b))...)
	}
	return b
}

func (n *inode) readAt(p []byte, off int) int {
	if off >= n.size {
		return 0
	}
	k := min(len(p), n.size-off)
	c := 0
	if off < len(n.data) {
		c = copy(p[:k], n.data[off:])
	}
	clear(p[c:k])
	return k
}

func (n *inode) writeAt(p []byte, off int) {
	end := off + len(p)
	n.size = max(n.size, end)
	n.data = materialize(n.data, end)
	copy(n.data[off:], p)
	n.mark(off, end)
	if n.whi <= n.wlo {
		n.wlo, n.whi = off, end
	} else {
		n.wlo, n.whi = min(n.wlo, off), max(n.whi, end)
	}
}

func (n *inode) truncate(size int) {
	old := n.size
	if size == old {
		return
	}
	if size < len(n.data) {
		n.data = n.data[:size]
	}
	n.size = size
	n.mark(min(old, size), max(old, size))
}

// sync copies only what changed, so syncing a large file after a small
// write stays cheap.
func (n *inode) sync() {
	if !n.dirty {
		return
	}
	old := len(n.synced)
	if len(n.data) > old {
		n.synced = append(n.synced, n.data[old:]...)
	} else {
		n.synced = n.synced[:len(n.data)]
	}
	if hi := min(n.hi, old, len(n.data)); n.lo < hi {
		copy(n.synced[n.lo:hi], n.data[n.lo:hi])
	}
	n.syncedSize = n.size
	n.dirty, n.wlo, n.whi = false, 0, 0
}

// crash rolls back to the synced content, keeping the prefix of the
// unsynced bytes from lo on that tear asks for. With sector > 0 the kept
// prefix ends at a sector boundary (by file offset) unless it keeps every
// unsynced byte: the sectors past it hold their old content, as on a disk
// that writes whole sectors, while the size may still reach the end tear
// asked for; garbage, if set, may fill the unsynced bytes of the sector
// past the kept prefix.
func (n *inode) crash(name string, tear func(string, int) int, sector int, garbage func(string, int, int, int) []byte) {
	if !n.dirty {
		return
	}
	result, size := append([]byte{}, n.synced...), n.syncedSize
	if unsynced := n.size - n.lo; unsynced > 0 && tear != nil {
		end := n.lo + min(max(tear(name, unsynced), 0), unsynced)
		written := end
		if sector > 0 && end < n.size {
			written = end - end%sector
		}
		explicit := min(written, len(n.data))
		result = materialize(result, explicit)
		if n.lo < explicit {
			copy(result[n.lo:explicit], n.data[n.lo:explicit])
		}
		// Written bytes past data are zeros; only the explicit part of
		// the result needs clearing.
		if zlo, zhi := max(n.lo, explicit), min(written, len(result)); zlo < zhi {
			clear(result[zlo:zhi])
		}
		size = max(size, end)
		if sector > 0 && end < n.size && garbage != nil {
			// The sector being written when the power went: only its
			// bytes written since the last sync, within the file, may turn
			// to garbage.
			lo, hi := max(written, n.lo, n.wlo), min(written+sector, size, n.whi)
			if lo < hi {
				if g := garbage(name, n.lo, lo, hi-lo); len(g) == hi-lo {
					result = materialize(result, hi)
					copy(result[lo:hi], g)
				}
			}
		}
	}
	n.data, n.size = result, size
	n.synced, n.syncedSize = append([]byte{}, result...), size
	n.dirty, n.wlo, n.whi = false, 0, 0
}

// flipBit flips a bit of the synced content and, if it reaches off, of the
// current content.
func (n *inode) flipBit(off int, bit uint) {
	n.synced = materialize(n.synced, off+1)
	n.synced[off] ^= 1 << bit
	if off < n.size {
		n.data = materialize(n.data, off+1)
		n.data[off] ^= 1 << bit
	}
}

func (n *inode) content() []byte {
	b := make([]byte, n.size)
	copy(b, n.data)
	return b
}
