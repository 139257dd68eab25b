package e2e

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestStartPathRunsFromShim checks that the container start path runs
// from berth-shim: the monitor runs it, and the read-only copy the init
// and exec helpers run from is a copy of it, not of berth.
func TestStartPathRunsFromShim(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "shim", "busybox", "sleep", "100")
	shim := filepath.Join(filepath.Dir(berthBin), "berth-shim")
	mon := monitorOf(e, "shim")
	if mon == 0 {
		t.Fatal("no monitor found")
	}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", mon)); err != nil || exe != shim {
		t.Errorf("the monitor runs %q (%v), want %s", exe, err, shim)
	}
	if rt := os.Getenv("BERTH_RUNTIME"); rt != "" && rt != "berth" {
		return // runc runs its own binary
	}
	copies, _ := filepath.Glob(filepath.Join(e.runroot, "runtime", "berth", "exe:ro", "berth-*"))
	want := fileSum(t, berthBin)[1]
	found := false
	for _, c := range copies {
		raw, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		found = found || sha256Of(raw) == want
	}
	if !found {
		t.Errorf("no read-only copy of berth-shim among %v", copies)
	}
}

func sha256Of(b []byte) [32]byte { return sha256.Sum256(b) }
