package metadata

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"os"
	"runtime/debug"

	bolt "go.etcd.io/bbolt"
)

// A corrupted bbolt file does not always give an error: bbolt trusts the
// page ids and offsets it finds and panics (or faults on the mapped file)
// on garbage. Every bbolt call therefore runs in the calling goroutine
// under guard, which turns such a panic into the store's corruption error,
// while a panic of berth's own code in a transaction stays a panic (it is
// a bug, not a damaged file, and must not send users to delete their
// state).

// storePanic is a panic raised inside bbolt (or a fault reading the
// mapped file).
type storePanic struct{ v any }

// callerPanic is a panic raised by the caller's code in a transaction.
type callerPanic struct{ v any }

// fault is what a memory fault becomes under debug.SetPanicOnFault.
type fault interface{ Addr() uintptr }

// guard runs f, which calls bbolt on h, and reports a panic from bbolt as
// corruption of the store; h is then marked broken (see handle.close).
func (s *Store) guard(h *handle, f func() error) (err error) {
	// A fault on the mapped file (a page id past its end) panics instead
	// of crashing the process.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if cp, ok := r.(callerPanic); ok {
			panic(cp.v)
		}
		if sp, ok := r.(storePanic); ok {
			r = sp.v
		}
		h.broken = true
		err = s.corrupted(fmt.Errorf("%v", r))
	}()
	return f()
}

// callCaller runs the caller's f inside a transaction and labels a panic
// of its own as the caller's; a panic of the store (from a Tx method f
// called) or a fault keeps its label.
func callCaller(f func() error) error {
	defer func() {
		if r := recover(); r != nil {
			switch r.(type) {
			case storePanic, callerPanic, fault:
				panic(r)
			}
			panic(callerPanic{r})
		}
	}()
	return f()
}

// catch labels a panic inside a Tx method as the store's, unless it came
// from the caller's callback.
func catch() {
	if r := recover(); r != nil {
		if _, ok := r.(callerPanic); ok {
			panic(r)
		}
		panic(storePanic{r})
	}
}

// checkSize refuses a file shorter than its meta page says: reading a
// page past the end of the mapping would fault.
func (s *Store) checkSize(tx *bolt.Tx, f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if tx.Size() > st.Size() {
		return s.corrupted(fmt.Errorf("the file has %d bytes but its pages need %d: it was truncated", st.Size(), tx.Size()))
	}
	return nil
}

// checkPages refuses a tree whose pages claim more room than the file
// has: a commit frees the pages it rewrites one id at a time, up to a
// page's overflow count, which on a damaged page is garbage (billions).
// It reads every branch and leaf page header once, what bbolt itself did
// at every write before the freelist was kept.
func (s *Store) checkPages(tx *bolt.Tx, f *os.File) error {
	st := tx.Cursor().Bucket().Stats()
	pages := int64(st.BranchPageN) + int64(st.BranchOverflowN) + int64(st.LeafPageN) + int64(st.LeafOverflowN)
	limit := tx.Size() / int64(tx.DB().Info().PageSize)
	if pages > limit || st.BranchOverflowN < 0 || st.LeafOverflowN < 0 {
		return s.corrupted(fmt.Errorf("its pages claim %d pages of a file of %d", pages, limit))
	}
	// The commit frees the old freelist page the same way.
	if fl, ok := currentFreelist(f); ok && fl != noFreelist {
		p, err := tx.Page(int(fl))
		if err != nil {
			return err
		}
		if p == nil || int64(p.ID)+int64(p.OverflowCount) >= limit {
			return s.corrupted(fmt.Errorf("its freelist page %d is out of bounds", fl))
		}
	}
	return nil
}

// bbolt's on-disk meta page (format version 2): a 16-byte page header,
// then magic, version, page size, flags (uint32 each), the root bucket
// (two uint64), the freelist page id, the high-water page id, the
// transaction id and an FNV-64a checksum of what precedes it.
const (
	metaOffset      = 16
	metaMagic       = 0xED0CDAED
	metaFreelistOff = metaOffset + 32
	metaTxidOff     = metaOffset + 48
	metaChecksumOff = metaOffset + 56
	noFreelist      = ^uint64(0)
)

// readMeta returns the freelist page id and transaction id of the meta
// page in buf, and whether it is valid.
func readMeta(buf []byte) (freelist, txid uint64, ok bool) {
	if len(buf) < metaChecksumOff+8 {
		return 0, 0, false
	}
	le := binary.LittleEndian
	if le.Uint32(buf[metaOffset:]) != metaMagic || le.Uint32(buf[metaOffset+4:]) != 2 {
		return 0, 0, false
	}
	h := fnv.New64a()
	h.Write(buf[metaOffset:metaChecksumOff])
	if h.Sum64() != le.Uint64(buf[metaChecksumOff:]) {
		return 0, 0, false
	}
	return le.Uint64(buf[metaFreelistOff:]), le.Uint64(buf[metaTxidOff:]), true
}

// currentFreelist returns the freelist page id recorded in the current
// (valid, newest) meta page of f; ok is false when neither meta is valid.
func currentFreelist(f *os.File) (freelist uint64, ok bool) {
	first := make([]byte, 4096)
	if n, _ := f.ReadAt(first, 0); n < metaChecksumOff+8 {
		return 0, false
	}
	fl0, tx0, ok0 := readMeta(first)
	pageSize := int64(binary.LittleEndian.Uint32(first[metaOffset+8:]))
	var fl1, tx1 uint64
	ok1 := false
	if ok0 && pageSize >= 1024 && pageSize <= 1<<24 {
		second := make([]byte, metaChecksumOff+8)
		if n, _ := f.ReadAt(second, pageSize); n == len(second) {
			fl1, tx1, ok1 = readMeta(second)
		}
	}
	switch {
	case ok0 && ok1 && tx1 > tx0, !ok0 && ok1:
		return fl1, true
	case ok0:
		return fl0, true
	}
	return 0, false
}

// freelistSynced reports whether the current meta page of the file at
// path records a freelist page. Unreadable metas count as synced: bbolt
// then refuses the file itself, with an error.
func freelistSynced(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return true
	}
	defer f.Close()
	fl, ok := currentFreelist(f)
	return !ok || fl != noFreelist
}

// checkBeforeFreelistRebuild walks every page of a store that has no
// freelist, under guard, before bbolt rebuilds the freelist in a
// goroutine that no recover reaches. The walk happens once: the write
// that follows records a freelist.
func (s *Store) checkBeforeFreelistRebuild() error {
	if _, err := os.Stat(s.path); err != nil || freelistSynced(s.path) {
		return nil
	}
	h := &handle{}
	opts := &bolt.Options{Timeout: s.timeout, ReadOnly: true, OpenFile: h.openFile}
	defer h.close()
	return s.guard(h, func() error {
		var err error
		if h.db, err = bolt.Open(s.path, 0o600, opts); err != nil {
			if isCorruptionError(err) {
				return s.corrupted(err)
			}
			return err
		}
		return h.db.View(func(tx *bolt.Tx) error {
			if err := s.checkSize(tx, h.file); err != nil {
				return err
			}
			return tx.ForEach(func(name []byte, b *bolt.Bucket) error { return walkBucket(b) })
		})
	})
}

// walkBucket reads every page, key and value of b and its sub-buckets.
func walkBucket(b *bolt.Bucket) error {
	b.Stats() // visits every branch and leaf page
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			if sub := b.Bucket(k); sub != nil {
				return walkBucket(sub)
			}
		}
		return nil
	})
}
