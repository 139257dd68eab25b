package dns

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/lockfile"
)

// Registry is the shared name table: one small file per network under
// its directory (<network ID>.json), changed by any berth process under
// one flock and replaced by rename, so that a reader never sees half a
// table and never takes a lock. Readers (the servers) keep the parsed
// table of each network with the file it came from held open: while it is
// open its inode cannot be reused, so "the path names another inode" is an
// exact test for "the table changed", at the cost of one stat.
type Registry struct {
	dir string

	mu     sync.Mutex
	tables map[string]*table // by network ID
}

// OpenRegistry returns the table kept under dir (for example
// <runroot>/network/dns). Nothing is created until the first Add.
func OpenRegistry(dir string) *Registry {
	return &Registry{dir: dir, tables: map[string]*table{}}
}

const (
	tableSuffix = ".json"
	lockName    = ".lock"
	// maxTableSize bounds what a reader reads: a table of thousands of
	// containers stays far below it.
	maxTableSize = 16 << 20
	// maxNameLen is the longest name a DNS message can carry (253
	// characters without the final dot).
	maxNameLen = 253
)

// fileTable is the on-disk form of one network's table.
type fileTable struct {
	Entries []fileEntry `json:"entries"`
}

type fileEntry struct {
	ContainerID string     `json:"id"`
	Names       []string   `json:"names"`
	IPv4        netip.Addr `json:"ipv4"`
	IPv6        netip.Addr `json:"ipv6"`
}

// Add puts e into its network's table, replacing the container's earlier
// entry on that network if there is one.
func (r *Registry) Add(ctx context.Context, e Entry) error {
	if err := validateEntry(e); err != nil {
		return err
	}
	return r.update(ctx, func(networkID string, entries []fileEntry) ([]fileEntry, bool) {
		if networkID != e.Network {
			return entries, false
		}
		entries = slices.DeleteFunc(entries, func(fe fileEntry) bool { return fe.ContainerID == e.ContainerID })
		entries = append(entries, fileEntry{
			ContainerID: e.ContainerID,
			Names:       slices.Clone(e.Names),
			IPv4:        e.IPv4,
			IPv6:        e.IPv6,
		})
		slices.SortFunc(entries, func(a, b fileEntry) int { return cmp.Compare(a.ContainerID, b.ContainerID) })
		return entries, true
	}, e.Network)
}

// Remove takes the container's entry off the network's table; removing
// one that is not there is not an error.
func (r *Registry) Remove(ctx context.Context, networkID, containerID string) error {
	if err := validateNetworkID(networkID); err != nil {
		return err
	}
	return r.update(ctx, func(_ string, entries []fileEntry) ([]fileEntry, bool) {
		n := len(entries)
		entries = slices.DeleteFunc(entries, func(fe fileEntry) bool { return fe.ContainerID == containerID })
		return entries, len(entries) != n
	}, networkID)
}

// RemoveContainer takes the container's entries off every network's
// table (a removed container, or reconciliation after a crash).
func (r *Registry) RemoveContainer(ctx context.Context, containerID string) error {
	networks, err := r.Networks(ctx)
	if err != nil {
		return err
	}
	return r.update(ctx, func(_ string, entries []fileEntry) ([]fileEntry, bool) {
		n := len(entries)
		entries = slices.DeleteFunc(entries, func(fe fileEntry) bool { return fe.ContainerID == containerID })
		return entries, len(entries) != n
	}, networks...)
}

// Entries lists the network's table, ordered by container ID; a network
// without a table has no entries.
func (r *Registry) Entries(ctx context.Context, networkID string) ([]Entry, error) {
	if err := validateNetworkID(networkID); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	entries, err := readTable(r.path(networkID))
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(entries))
	for _, fe := range entries {
		out = append(out, Entry{Network: networkID, ContainerID: fe.ContainerID, Names: fe.Names, IPv4: fe.IPv4, IPv6: fe.IPv6})
	}
	return out, nil
}

// Networks lists the IDs of the networks that have a table, for
// reconciliation.
func (r *Registry) Networks(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	des, err := os.ReadDir(r.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list the DNS tables in %s: %w", r.dir, err)
	}
	var ids []string
	for _, de := range des {
		id, ok := strings.CutSuffix(de.Name(), tableSuffix)
		if ok && validateNetworkID(id) == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func (r *Registry) path(networkID string) string {
	return filepath.Join(r.dir, networkID+tableSuffix)
}

// update runs change on the tables of networks under the registry's lock
// and writes back those it changed. An emptied table is removed.
func (r *Registry) update(ctx context.Context, change func(networkID string, entries []fileEntry) ([]fileEntry, bool), networks ...string) error {
	if err := ctx.Err(); err != nil || len(networks) == 0 {
		return err
	}
	if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return fmt.Errorf("create the DNS table directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(r.dir, lockName), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("open the DNS table lock: %w", err)
	}
	defer lock.Close() // closing drops the flock
	if err := lockfile.Flock(ctx, lock, unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock the DNS tables: %w", err)
	}
	for _, id := range networks {
		path := r.path(id)
		entries, err := readTable(path)
		if err != nil {
			return err
		}
		entries, changed := change(id, entries)
		if !changed {
			continue
		}
		if len(entries) == 0 {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove the DNS table of network %s: %w", id, err)
			}
			continue
		}
		if err := writeTable(r.dir, path, entries); err != nil {
			return fmt.Errorf("write the DNS table of network %s: %w", id, err)
		}
	}
	return nil
}

// writeTable replaces path by a complete new file. There is no fsync:
// the table lives in the runroot (a tmpfs) and is rebuilt by
// reconciliation after a reboot; the rename alone is what readers need.
func writeTable(dir, path string, entries []fileEntry) error {
	data, err := json.Marshal(fileTable{Entries: entries})
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

func readTable(path string) ([]fileEntry, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the DNS table: %w", err)
	}
	defer f.Close()
	return parseTable(f, path)
}

func parseTable(f *os.File, path string) ([]fileEntry, error) {
	data, err := io.ReadAll(io.LimitReader(f, maxTableSize+1))
	if err != nil {
		return nil, fmt.Errorf("read the DNS table %s: %w", path, err)
	}
	if len(data) > maxTableSize {
		return nil, errdefs.DataLoss("the DNS table %s is larger than %d bytes", path, maxTableSize)
	}
	var ft fileTable
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&ft); err != nil {
		return nil, errdefs.DataLoss("the DNS table %s is unreadable (%v): remove it and run `berth system restore`", path, err)
	}
	return ft.Entries, nil
}

func validateNetworkID(id string) error {
	if id == "" || strings.HasPrefix(id, ".") || strings.ContainsAny(id, "/\x00") || len(id) > 200 {
		return errdefs.InvalidArgument("invalid network ID %q for the DNS table", id)
	}
	return nil
}

func validateEntry(e Entry) error {
	if err := validateNetworkID(e.Network); err != nil {
		return err
	}
	if e.ContainerID == "" {
		return errdefs.InvalidArgument("a DNS entry on network %s has no container ID", e.Network)
	}
	if len(e.Names) == 0 {
		return errdefs.InvalidArgument("the DNS entry of container %s has no name", e.ContainerID)
	}
	for _, n := range e.Names {
		// Docker does not restrict aliases; only what cannot be a name
		// on the wire (or in the table) is refused.
		if n == "" || len(n) > maxNameLen || !utf8.ValidString(n) || strings.ContainsFunc(n, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return errdefs.InvalidArgument("invalid DNS name %q for container %s: no spaces or control characters, at most %d bytes", n, e.ContainerID, maxNameLen)
		}
	}
	if e.IPv4.IsValid() && !e.IPv4.Is4() {
		return errdefs.InvalidArgument("the IPv4 address %s of container %s is not IPv4", e.IPv4, e.ContainerID)
	}
	if e.IPv6.IsValid() && (!e.IPv6.Is6() || e.IPv6.Is4In6()) {
		return errdefs.InvalidArgument("the IPv6 address %s of container %s is not IPv6", e.IPv6, e.ContainerID)
	}
	return nil
}

// table is one network's parsed table, immutable once built, with the
// file it was read from held open (see Registry).
type table struct {
	file    *os.File
	dev     uint64
	ino     uint64
	entries []fileEntry
	byName  map[string][]int // lower-cased name, without a final dot -> entries
	byAddr  map[netip.Addr]int
}

// current returns the network's table as it is now: the cached one when
// the file is still the one it was read from, else a fresh read. A
// missing file is an empty table.
func (r *Registry) current(networkID string) (*table, error) {
	if validateNetworkID(networkID) != nil {
		return &table{}, nil
	}
	path := r.path(networkID)
	var st unix.Stat_t
	err := unix.Stat(path, &st)
	if err != nil && err != unix.ENOENT {
		return nil, fmt.Errorf("stat the DNS table %s: %w", path, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.tables[networkID]
	if err == nil && old != nil && old.file != nil && old.dev == uint64(st.Dev) && old.ino == st.Ino {
		return old, nil
	}
	if err != nil { // no table (any longer)
		if old != nil && old.file == nil {
			return old, nil
		}
		if old != nil {
			old.file.Close()
		}
		t := &table{}
		r.tables[networkID] = t
		return t, nil
	}
	t, err := loadTable(path)
	if err != nil {
		return nil, err
	}
	if old != nil && old.file != nil {
		old.file.Close()
	}
	r.tables[networkID] = t
	return t, nil
}

func loadTable(path string) (*table, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &table{}, nil // removed between the stat and the open
	}
	if err != nil {
		return nil, fmt.Errorf("open the DNS table: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat the DNS table %s: %w", path, err)
	}
	entries, err := parseTable(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	t := &table{file: f, dev: uint64(st.Dev), ino: st.Ino, entries: entries, byName: map[string][]int{}, byAddr: map[netip.Addr]int{}}
	for i, e := range entries {
		for _, n := range e.Names {
			key := canonicalName(n)
			if !slices.Contains(t.byName[key], i) {
				t.byName[key] = append(t.byName[key], i)
			}
		}
		for _, a := range []netip.Addr{e.IPv4, e.IPv6} {
			if _, dup := t.byAddr[a]; a.IsValid() && !dup {
				t.byAddr[a] = i
			}
		}
	}
	return t, nil
}

// canonicalName is the form names are compared in: lower case (DNS
// names are case-insensitive), without the final dot.
func canonicalName(n string) string {
	n = strings.TrimSuffix(n, ".")
	for i := 0; i < len(n); i++ {
		if 'A' <= n[i] && n[i] <= 'Z' {
			// ASCII only, as DNS compares: other bytes stay as they are.
			b := []byte(n)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return n
}
