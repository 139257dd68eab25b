package layer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestAdhocSpeed(t *testing.T) {
	var ents []ent
	for d := 0; d < 100; d++ {
		ents = append(ents, dirEnt(fmt.Sprintf("usr/share/d%03d/", d), 0o755))
		for f := 0; f < 100; f++ {
			ents = append(ents, fileEnt(fmt.Sprintf("usr/share/d%03d/f%03d", d, f), "hello world content\n", 0o644))
		}
	}
	tb := buildTar(t, ents...)
	os.WriteFile("/tmp/adhoc.tar", tb, 0o644)
	for i := 0; i < 3; i++ {
		root := t.TempDir()
		st := time.Now()
		if _, err := Apply(context.Background(), root, bytes.NewReader(tb)); err != nil {
			t.Fatal(err)
		}
		t.Logf("Apply %d entries: %v", len(ents), time.Since(st))
		root2 := t.TempDir()
		st = time.Now()
		if out, err := exec.Command("tar", "-xpf", "/tmp/adhoc.tar", "-C", root2).CombinedOutput(); err != nil {
			t.Fatal(err, string(out))
		}
		t.Logf("GNU tar: %v", time.Since(st))
	}
}
