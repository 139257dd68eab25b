package diff

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A deliberate difference is parsed from its directives and replaces only
// berth's expectation; a differs: without berth-* lines is refused.
func TestParseDiffers(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "cases.txt")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases, err := parseCases(write(`[c]
run: volume prune -f
out: sorted
differs: API 1.43
berth-exit: 3
berth-out: b {nofile-hard}
berth-out: a
berth-stderr: (none)
run: ps
`))
	if err != nil {
		t.Fatal(err)
	}
	s := cases[0].steps[0]
	if s.berth == nil || s.berth.reason != "API 1.43" || *s.berth.exit != 3 || len(s.berth.out) != 2 {
		t.Fatalf("parsed %+v", s.berth)
	}
	if cases[0].steps[1].berth != nil {
		t.Fatal("differs: leaked into the next step")
	}
	golden := stepOut{cmd: s.cmd, code: 0, stdout: []string{"x"}, stderr: "boom"}
	bs, bw := berthWant(s, golden)
	hard := berthPlaceholders().Replace("{nofile-hard}")
	if bw.code != 3 || strings.Join(bw.stdout, "|") != "a|b "+hard || bw.stderr != "" || bs.stderr != nil {
		t.Errorf("berthWant = %+v, %+v", bs, bw)
	}
	if _, w := berthWant(cases[0].steps[1], golden); w.code != 0 || w.stdout[0] != "x" {
		t.Errorf("a step without differs: must keep the golden output, got %+v", w)
	}

	for _, bad := range []string{
		"[c]\nrun: ps\ndiffers: why\n",
		"[c]\nrun: ps\nberth-exit: 1\n",
		"[c]\nrun: ps\ndiffers:\nberth-exit: 1\n",
		"[c]\nrun: ps\ndiffers: why\nberth-exit: x\n",
	} {
		if _, err := parseCases(write(bad)); err == nil {
			t.Errorf("parseCases accepted %q", bad)
		}
	}
}
