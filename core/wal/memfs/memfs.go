package memfs

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/detcd/detcd/core/wal"
)

// FileBytesMax caps a file's size, so a bad Truncate or Preallocate fails
// instead of exhausting memory.
const FileBytesMax = 4 << 30

// ErrCrashed is returned by every call on a file opened before a Crash.
var ErrCrashed = errors.New("memfs: file was opened before a crash")

// FS is an in-memory file system. The zero value is not usable; call New.
type FS struct {
	// SyncErr, when set, is asked before every File.Sync (with the name the
	// file was opened under) and every SyncDir (with the directory). A
	// non-nil result fails that call, and nothing becomes durable.
	SyncErr func(name string) error
	// SectorBytes, when positive, makes a torn write at Crash keep whole
	// sectors only (see Crash). Zero tears at any byte.
	SectorBytes int
	// TornGarbage, when set with SectorBytes, is asked at a Crash for the
	// content of the sector a torn write was writing when the power went:
	// name's bytes [off, off+n) in the first sector past the kept prefix
	// that were written (not zero-filled by Truncate or Preallocate) since
	// the last sync, where the file's unsynced bytes start at from. It
	// returns n bytes to leave there instead of the old content, or nil
	// to leave the old content. Only unsynced bytes of that one sector can
	// turn to garbage, as on a disk that does not write a sector
	// atomically; synced bytes never change.
	TornGarbage func(name string, from, off, n int) []byte

	dirs    map[string]bool
	names   map[string]*inode
	durable map[string]*inode
	// gen counts crashes; a file handle from an older gen is dead.
	gen uint64
}

var _ wal.FS = (*FS)(nil)

// New returns an empty FS holding only the root directory ".".
func New() *FS {
	return &FS{
		dirs:    map[string]bool{".": true},
		names:   map[string]*inode{},
		durable: map[string]*inode{},
	}
}

func clean(op, name string) (string, error) {
	c := path.Clean(name)
	if !fs.ValidPath(c) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	return c, nil
}

// lookup finds an existing file.
func (m *FS) lookup(op, name string) (string, *inode, error) {
	c, err := clean(op, name)
	if err != nil {
		return "", nil, err
	}
	n, ok := m.names[c]
	if !ok {
		return "", nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return c, n, nil
}

// checkParent makes sure a new file name has a directory to live in.
func (m *FS) checkParent(op, c string) error {
	if !m.dirs[path.Dir(c)] {
		return &fs.PathError{Op: op, Path: c, Err: fs.ErrNotExist}
	}
	if m.dirs[c] {
		return &fs.PathError{Op: op, Path: c, Err: errors.New("is a directory")}
	}
	return nil
}

func (m *FS) Create(name string) (wal.File, error) {
	c, err := clean("create", name)
	if err != nil {
		return nil, err
	}
	if err := m.checkParent("create", c); err != nil {
		return nil, err
	}
	n, ok := m.names[c]
	if ok {
		n.truncate(0)
	} else {
		n = &inode{}
		m.names[c] = n
	}
	return m.handle(c, n, 0, true), nil
}

func (m *FS) Open(name string) (wal.File, error) {
	c, n, err := m.lookup("open", name)
	if err != nil {
		return nil, err
	}
	return m.handle(c, n, 0, false), nil
}

func (m *FS) OpenAppend(name string) (wal.File, error) {
	c, n, err := m.lookup("open", name)
	if err != nil {
		return nil, err
	}
	return m.handle(c, n, int64(n.size), true), nil
}

func (m *FS) handle(name string, n *inode, off int64, writable bool) *file {
	return &file{fs: m, n: n, name: name, gen: m.gen, off: off, writable: writable}
}

func (m *FS) Remove(name string) error {
	c, _, err := m.lookup("remove", name)
	if err != nil {
		return err
	}
	delete(m.names, c)
	return nil
}

func (m *FS) Rename(oldname, newname string) error {
	oc, n, err := m.lookup("rename", oldname)
	if err != nil {
		return err
	}
	nc, err := clean("rename", newname)
	if err != nil {
		return err
	}
	if err := m.checkParent("rename", nc); err != nil {
		return err
	}
	delete(m.names, oc)
	m.names[nc] = n
	return nil
}

func (m *FS) List(dir string) ([]string, error) {
	c, err := clean("list", dir)
	if err != nil {
		return nil, err
	}
	if !m.dirs[c] {
		return nil, &fs.PathError{Op: "list", Path: dir, Err: fs.ErrNotExist}
	}
	var out []string
	for n := range m.names { //core:maporder-ok: sorted below
		if path.Dir(n) == c {
			out = append(out, path.Base(n))
		}
	}
	for d := range m.dirs { //core:maporder-ok: sorted below
		if d != "." && path.Dir(d) == c {
			out = append(out, path.Base(d))
		}
	}
	sort.Strings(out)
	return out, nil
}

func (m *FS) MkdirAll(dir string) error {
	c, err := clean("mkdir", dir)
	if err != nil {
		return err
	}
	for d := c; d != "."; d = path.Dir(d) {
		if _, ok := m.names[d]; ok {
			return &fs.PathError{Op: "mkdir", Path: d, Err: errors.New("not a directory")}
		}
	}
	for d := c; d != "."; d = path.Dir(d) {
		m.dirs[d] = true
	}
	return nil
}

func (m *FS) SyncDir(dir string) error {
	c, err := clean("syncdir", dir)
	if err != nil {
		return err
	}
	if !m.dirs[c] {
		return &fs.PathError{Op: "syncdir", Path: dir, Err: fs.ErrNotExist}
	}
	if m.SyncErr != nil {
		if err := m.SyncErr(c); err != nil {
			return &fs.PathError{Op: "syncdir", Path: dir, Err: err}
		}
	}
	for n := range m.durable { //core:maporder-ok: deletes commute
		if path.Dir(n) == c {
			delete(m.durable, n)
		}
	}
	for n, in := range m.names { //core:maporder-ok: inserts commute
		if path.Dir(n) == c {
			m.durable[n] = in
		}
	}
	return nil
}

// RemoveAll removes dir and everything under it, durably at once, as an
// operator's rm -r on a stopped member followed by a sync would.
func (m *FS) RemoveAll(dir string) error {
	c, err := clean("removeall", dir)
	if err != nil {
		return err
	}
	if c == "." {
		return &fs.PathError{Op: "removeall", Path: dir, Err: fs.ErrInvalid}
	}
	under := func(n string) bool { return n == c || strings.HasPrefix(n, c+"/") }
	for _, set := range []map[string]*inode{m.names, m.durable} {
		for n := range set { //core:maporder-ok: deletes commute
			if under(n) {
				delete(set, n)
			}
		}
	}
	for d := range m.dirs { //core:maporder-ok: deletes commute
		if under(d) {
			delete(m.dirs, d)
		}
	}
	return nil
}

// ReadFile returns a copy of name's current content, durable or not.
func (m *FS) ReadFile(name string) ([]byte, error) {
	_, n, err := m.lookup("read", name)
	if err != nil {
		return nil, err
	}
	return n.content(), nil
}

// Crash loses everything not durable, as a power failure would. For each
// surviving file with unsynced bytes past its last synced point, tear is
// called (in name order) with the file's name and how many such bytes there
// are (zeros an unsynced Preallocate added count too), and returns how many
// of them to keep; a nil tear keeps none. With SectorBytes set, a keep short
// of all of them is cut back to a sector boundary by file offset: the
// sectors after it keep their old content (synced bytes, or zeros), as a
// disk that wrote the first sectors of a write and not the rest, while the
// file's size may still grow to the full keep, and TornGarbage may fill
// the unsynced bytes of the sector past the kept ones. What survives a
// crash is durable.
func (m *FS) Crash(tear func(name string, unsyncedBytes int) (keep int)) {
	m.gen++
	m.names = make(map[string]*inode, len(m.durable))
	names := make([]string, 0, len(m.durable))
	for n, in := range m.durable { //core:maporder-ok: names sorted below
		m.names[n] = in
		names = append(names, n)
	}
	sort.Strings(names)
	done := map[*inode]bool{}
	for _, n := range names {
		in := m.durable[n]
		if done[in] {
			continue
		}
		done[in] = true
		in.crash(n, tear, m.SectorBytes, m.TornGarbage)
	}
}

// FlipBit flips one bit of name's durable content (and of its current
// content, if that reaches off), as bit rot would.
func (m *FS) FlipBit(name string, off int64, bit uint) error {
	_, n, err := m.lookup("flipbit", name)
	if err != nil {
		return err
	}
	if bit > 7 || off < 0 || off >= int64(n.syncedSize) {
		return fmt.Errorf("memfs: flipbit %s: bit %d at offset %d is outside the %d durable bytes", name, bit, off, n.syncedSize)
	}
	n.flipBit(int(off), bit)
	return nil
}
