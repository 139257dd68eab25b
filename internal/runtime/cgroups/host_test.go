package cgroups

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestLoadHostCache: LoadHost agrees with ReadHost, keeps its answer in
// the cache file, uses the cache while it matches the host, and reads
// mountinfo again when the cache names a mount that is no longer there or
// hierarchies that differ from /proc/self/cgroup's.
func TestLoadHostCache(t *testing.T) {
	want, err := ReadHost()
	if err != nil {
		t.Fatalf("ReadHost: %v (cgroups must be mounted)", err)
	}
	cache := filepath.Join(t.TempDir(), "state", "cgroup-layout")
	got, err := LoadHost(cache)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("LoadHost without a cache: %+v, %v; want %+v", got, err, want)
	}
	raw, err := os.ReadFile(cache)
	if err != nil {
		t.Fatalf("no cache written: %v", err)
	}
	lines := strings.Split(string(raw), "\n")
	edit := func(t *testing.T, i int, f func(string) string) {
		t.Helper()
		l := append([]string{}, lines...)
		l[i] = f(l[i])
		if err := os.WriteFile(cache, []byte(strings.Join(l, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("cache used while it matches", func(t *testing.T) {
		// A different mode in an otherwise valid cache shows whether
		// the cache was read.
		other := Legacy
		if want.layout.mode == Legacy {
			other = Hybrid
		}
		edit(t, 2, func(l string) string { return string(rune('0'+int(other))) + l[1:] })
		got, err := LoadHost(cache)
		if err != nil || got.layout.mode != other {
			t.Fatalf("got mode %v (%v); want the cached %v", got.layout.mode, err, other)
		}
	})
	t.Run("stale mount", func(t *testing.T) {
		edit(t, 3, func(l string) string {
			_, rest, _ := strings.Cut(l, " ")
			return "1:1 " + rest
		})
		got, err := LoadHost(cache)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v (%v); want mountinfo's %+v", got, err, want)
		}
		again, _ := os.ReadFile(cache)
		if string(again) != string(raw) {
			t.Errorf("stale cache not rewritten:\n%s", again)
		}
	})
	t.Run("other hierarchies", func(t *testing.T) {
		edit(t, 1, func(l string) string { return l + ";99:imaginary" })
		got, err := LoadHost(cache)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v (%v); want mountinfo's %+v", got, err, want)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		if err := os.WriteFile(cache, []byte("berth-cgroup-layout 1\nnonsense"), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := LoadHost(cache)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v (%v); want mountinfo's %+v", got, err, want)
		}
	})
}
