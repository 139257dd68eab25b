package dns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// writerEnv makes the test binary a writer process for
// TestRegistryConcurrentProcesses: "dir network prefix count".
const writerEnv = "BERTH_DNS_TEST_WRITER"

func TestMain(m *testing.M) {
	if args := os.Getenv(writerEnv); args != "" {
		os.Exit(runWriter(args))
	}
	os.Exit(m.Run())
}

func runWriter(args string) int {
	var dir, network, prefix string
	var count int
	if _, err := fmt.Sscan(args, &dir, &network, &prefix, &count); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	reg := OpenRegistry(dir)
	for i := range count {
		if err := reg.Add(context.Background(), testEntry(network, prefix, i)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		// Take every other entry off again, the odd ones by container
		// and the even ones by network.
		var err error
		switch {
		case i%4 == 1:
			err = reg.RemoveContainer(context.Background(), testEntry(network, prefix, i).ContainerID)
		case i%4 == 2:
			err = reg.Remove(context.Background(), network, testEntry(network, prefix, i).ContainerID)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

func testEntry(network, prefix string, i int) Entry {
	return Entry{
		Network:     network,
		ContainerID: fmt.Sprintf("%s%04d", prefix, i),
		Names:       []string{fmt.Sprintf("%s-c%d", prefix, i), "shared-" + prefix},
		IPv4:        netip.AddrFrom4([4]byte{10, byte(len(prefix)), byte(i >> 8), byte(i)}),
	}
}

func TestRegistryAddRemove(t *testing.T) {
	ctx := context.Background()
	reg := OpenRegistry(filepath.Join(t.TempDir(), "dns"))
	// Nothing yet: empty, and removing is fine.
	if es, err := reg.Entries(ctx, "net1"); err != nil || len(es) != 0 {
		t.Fatalf("Entries of an empty registry: %v %v", es, err)
	}
	if err := reg.Remove(ctx, "net1", "nope"); err != nil {
		t.Fatalf("Remove from an empty registry: %v", err)
	}
	if err := reg.RemoveContainer(ctx, "nope"); err != nil {
		t.Fatalf("RemoveContainer on an empty registry: %v", err)
	}
	a := Entry{Network: "net1", ContainerID: "b", Names: []string{"web", "alias"}, IPv4: netip.MustParseAddr("10.0.0.2"), IPv6: netip.MustParseAddr("fd00::2")}
	b := Entry{Network: "net1", ContainerID: "a", Names: []string{"db"}, IPv4: netip.MustParseAddr("10.0.0.3")}
	c := Entry{Network: "net2", ContainerID: "b", Names: []string{"web"}, IPv4: netip.MustParseAddr("10.1.0.2")}
	addEntries(t, reg, a, b, c)
	// Add again replaces.
	a.IPv4 = netip.MustParseAddr("10.0.0.9")
	addEntries(t, reg, a)
	es, err := reg.Entries(ctx, "net1")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].ContainerID != "a" || es[1].ContainerID != "b" || es[1].IPv4 != a.IPv4 || es[1].IPv6 != a.IPv6 || !slices.Equal(es[1].Names, a.Names) || es[1].Network != "net1" {
		t.Fatalf("Entries(net1) = %+v", es)
	}
	nets, err := reg.Networks(ctx)
	if err != nil || !slices.Equal(nets, []string{"net1", "net2"}) {
		t.Fatalf("Networks = %v %v", nets, err)
	}
	// Remove is idempotent.
	for range 2 {
		if err := reg.Remove(ctx, "net1", "a"); err != nil {
			t.Fatal(err)
		}
	}
	if es, _ := reg.Entries(ctx, "net1"); len(es) != 1 || es[0].ContainerID != "b" {
		t.Fatalf("after Remove: %+v", es)
	}
	// RemoveContainer takes b off both networks; empty tables go away.
	if err := reg.RemoveContainer(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"net1", "net2"} {
		if es, _ := reg.Entries(ctx, n); len(es) != 0 {
			t.Fatalf("after RemoveContainer: %s has %+v", n, es)
		}
	}
	if nets, _ := reg.Networks(ctx); len(nets) != 0 {
		t.Fatalf("tables left: %v", nets)
	}
	left, _ := filepath.Glob(filepath.Join(reg.dir, ".tmp-*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestRegistryRejects(t *testing.T) {
	reg := OpenRegistry(t.TempDir())
	ip := netip.MustParseAddr("10.0.0.2")
	tests := []struct {
		name string
		e    Entry
	}{
		{"no network", Entry{ContainerID: "c", Names: []string{"a"}, IPv4: ip}},
		{"network with a slash", Entry{Network: "../x", ContainerID: "c", Names: []string{"a"}, IPv4: ip}},
		{"hidden network", Entry{Network: ".lock", ContainerID: "c", Names: []string{"a"}, IPv4: ip}},
		{"no container", Entry{Network: "n", Names: []string{"a"}, IPv4: ip}},
		{"no names", Entry{Network: "n", ContainerID: "c", IPv4: ip}},
		{"empty name", Entry{Network: "n", ContainerID: "c", Names: []string{""}, IPv4: ip}},
		{"space in a name", Entry{Network: "n", ContainerID: "c", Names: []string{"a b"}, IPv4: ip}},
		{"IPv6 as IPv4", Entry{Network: "n", ContainerID: "c", Names: []string{"a"}, IPv4: netip.MustParseAddr("fd00::1")}},
		{"IPv4 as IPv6", Entry{Network: "n", ContainerID: "c", Names: []string{"a"}, IPv6: ip}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := reg.Add(context.Background(), tc.e); !errdefs.IsInvalidArgument(err) {
				t.Fatalf("Add(%+v) = %v, want an invalid-argument error", tc.e, err)
			}
		})
	}
	if err := reg.Remove(context.Background(), "a/b", "c"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Remove with a bad network ID: %v", err)
	}
}

// TestRegistryConcurrentWriters: goroutines and processes adding and
// removing at once lose nothing, and a reader that does not lock never
// sees a partial table.
func TestRegistryConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "dns")
	reg := OpenRegistry(dir)
	const perWriter = 25
	prefixes := []string{"g", "gg", "ggg"} // goroutines
	procs := []string{"p", "pp", "ppp"}    // processes

	stop := make(chan struct{})
	readerErr := make(chan error, 1)
	go func() {
		// The reader parses the file under the writers' feet, through
		// the listing and through the servers' cache: every read is a
		// whole table, and the entries of the goroutines (which only
		// add) never go back.
		lastList, lastCached := 0, 0
		reader := OpenRegistry(dir)
		s := &Server{reg: reader}
		s.SetNetworks([]string{"net"})
		for {
			select {
			case <-stop:
				readerErr <- nil
				return
			default:
			}
			es, err := reader.Entries(ctx, "net")
			if err != nil {
				readerErr <- err
				return
			}
			added := 0
			for _, e := range es {
				if len(e.Names) != 2 || !e.IPv4.IsValid() {
					readerErr <- fmt.Errorf("a torn entry: %+v", e)
					return
				}
				if e.ContainerID[0] == 'g' {
					added++
				}
			}
			cached := 0
			for _, p := range prefixes {
				addrs, _, err := s.addrs("shared-"+p, false)
				if err != nil {
					readerErr <- err
					return
				}
				cached += len(addrs)
			}
			if added < lastList || cached < lastCached {
				readerErr <- fmt.Errorf("a table went back: listing %d -> %d, cache %d -> %d", lastList, added, lastCached, cached)
				return
			}
			lastList, lastCached = added, cached
		}
	}()

	var cmds []*exec.Cmd
	for _, p := range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), writerEnv+"="+dir+" net "+p+" "+strconv.Itoa(perWriter))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(prefixes))
	for _, p := range prefixes {
		wg.Go(func() {
			r := OpenRegistry(dir) // as another process would
			for i := range perWriter {
				if err := r.Add(ctx, testEntry("net", p, i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("writer process: %v", err)
		}
	}
	close(stop)
	if err := <-readerErr; err != nil {
		t.Fatalf("reader: %v", err)
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	es, err := reg.Entries(ctx, "net")
	if err != nil {
		t.Fatal(err)
	}
	kept := 0 // what a writer process leaves of its perWriter entries
	for i := range perWriter {
		if i%4 != 1 && i%4 != 2 {
			kept++
		}
	}
	want := len(prefixes)*perWriter + len(procs)*kept
	if len(es) != want {
		t.Fatalf("%d entries, want %d", len(es), want)
	}
	// The server's view agrees, and sees a later removal at once.
	s := &Server{reg: reg}
	s.SetNetworks([]string{"net"})
	addrs, known, err := s.addrs("shared-pp", false)
	if err != nil || !known || len(addrs) != kept {
		t.Fatalf("shared-pp: %d addresses, known %v, %v", len(addrs), known, err)
	}
	if err := reg.Remove(ctx, "net", "pp0000"); err != nil {
		t.Fatal(err)
	}
	if addrs, _, _ := s.addrs("shared-pp", false); len(addrs) != kept-1 {
		t.Fatalf("after Remove: %d addresses", len(addrs))
	}
}

// TestRegistryReaderSeesEveryChange: a reader holding a table notices
// each replacement, even of the same size written in the same instant
// (it compares inodes, and holds the old one open so that it cannot be
// reused).
func TestRegistryReaderSeesEveryChange(t *testing.T) {
	ctx := context.Background()
	reg := OpenRegistry(t.TempDir())
	s := &Server{reg: reg}
	s.SetNetworks([]string{"n"})
	for i := range 50 {
		ip := netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}) // same length each time
		addEntries(t, reg, Entry{Network: "n", ContainerID: "c", Names: []string{"x"}, IPv4: ip})
		addrs, _, err := s.addrs("x", false)
		if err != nil || len(addrs) != 1 || addrs[0] != ip {
			t.Fatalf("round %d: got %v %v, want %v", i, addrs, err, ip)
		}
	}
	if err := reg.Remove(ctx, "n", "c"); err != nil {
		t.Fatal(err)
	}
	if _, known, _ := s.addrs("x", false); known {
		t.Fatal("a removed name is still known")
	}
}

func TestRegistryContext(t *testing.T) {
	dir := t.TempDir()
	reg := OpenRegistry(dir)
	e := Entry{Network: "n", ContainerID: "c", Names: []string{"x"}, IPv4: netip.MustParseAddr("10.0.0.1")}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := reg.Add(ctx, e); !errors.Is(err, context.Canceled) {
		t.Fatalf("Add with a cancelled ctx: %v", err)
	}
	// A held lock is waited for only as long as ctx allows.
	addEntries(t, reg, e) // makes the directory and lock file
	holder, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := unix.Flock(int(holder.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := reg.Remove(ctx, "n", "c"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Remove while the lock is held: %v", err)
	}
	if es, _ := reg.Entries(context.Background(), "n"); len(es) != 1 {
		t.Fatalf("Remove that gave up changed the table: %+v", es)
	}
}
