package e2e

import (
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCorruptedMetadataDatabase: a damaged metadata.db gives every
// command a clear error naming the file and what to do, with docker's
// exit code for an engine error, never a Go panic (issue 7).
func TestCorruptedMetadataDatabase(t *testing.T) {
	e := newEnv(t)
	e.must("create", "--name", "keep", "-v", "mdvol:/data", "busybox", "true")
	for i := range 30 { // several pages of records
		e.must("volume", "create", "vol"+strings.Repeat("x", 100)+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	db := filepath.Join(e.root, "metadata.db")
	good, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	if len(good) < 6*page {
		t.Fatalf("metadata.db has only %d bytes", len(good))
	}
	defer os.WriteFile(db, good, 0o600) // for the env's cleanup
	garbage := make([]byte, len(good))
	rand.New(rand.NewSource(1)).Read(garbage)
	corruptions := map[string]func([]byte) []byte{
		"truncated": func(b []byte) []byte { return b[:3*page] }, // the metas and one page
		"garbage":   func([]byte) []byte { return garbage },
		"data pages": func(b []byte) []byte {
			for p := 2; p*page < len(b); p++ {
				for i := range 16 {
					b[p*page+i] ^= 0x5A
				}
			}
			return b
		},
	}
	commands := []struct {
		args []string
		code int // 0: 1 or 125 (docker's CLI uses 1 for a daemon error outside run/create)
	}{
		{[]string{"ps", "-a"}, 0},
		{[]string{"images"}, 0},
		{[]string{"volume", "ls"}, 0},
		{[]string{"inspect", "keep"}, 0},
		{[]string{"volume", "create", "another"}, 0},
		{[]string{"rm", "keep"}, 0},
		{[]string{"run", "--rm", "busybox", "true"}, 125},
		{[]string{"create", "busybox", "true"}, 1},
	}
	for name, corrupt := range corruptions {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(db, corrupt(append([]byte(nil), good...)), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, c := range commands {
				r := e.run(c.args...)
				codeOK := r.code == c.code || c.code == 0 && (r.code == 1 || r.code == 125)
				if !codeOK || !strings.Contains(r.stderr, "metadata database "+db+" is corrupted") ||
					!strings.Contains(r.stderr, "restore the file from a backup") ||
					strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") {
					t.Fatalf("berth %s on a corrupted database: %s", strings.Join(c.args, " "), r)
				}
			}
		})
	}
	if err := os.WriteFile(db, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := e.must("ps", "-a", "--format", "{{.Names}}"); strings.TrimSpace(out) != "keep" {
		t.Fatalf("after restoring the database: %q", out)
	}
}
