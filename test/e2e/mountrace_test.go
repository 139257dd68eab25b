package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMountDestinationSymlinkRace is CVE-2021-30465 against berth: a
// container sharing a volume with a victim swaps a directory of it for a
// symlink, again and again, while the victim starts. The victim mounts
// the volume twice (/data and /data/x) and a second volume under it
// (/data/y/z). If the runtime resolves /data/x and then mounts by path,
// the mount can follow the symlink onto the host's directory of the
// second volume, so that the second volume's source, looked up next,
// leads to a symlink to the host's / that the attacker planted: the
// victim then sees the host's root at /data/y/z. A runtime must refuse
// such a start (runc: "possibly malicious path detected") or mount where
// it meant to; the test allows both, and fails if any victim ever sees
// the canary file on the host, or if anything is left on the host.
func TestMountDestinationSymlinkRace(t *testing.T) {
	e := newEnv(t)
	tmp := t.TempDir()
	swap := buildTestHelper(t, "renameswap", tmp)
	suffix := randomHex(t)
	canaryDir := filepath.Join(tmp, "host")
	if err := os.Mkdir(canaryDir, 0o755); err != nil {
		t.Fatal(err)
	}
	canary := filepath.Join(canaryDir, "canary-"+suffix)
	if err := os.WriteFile(canary, []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}

	rv, rw := "rv-"+suffix, "rw-"+suffix
	e.must("volume", "create", rv)
	e.must("volume", "create", rw)
	rvData := strings.TrimSpace(e.must("volume", "inspect", "-f", "{{.Mountpoint}}", rv))
	rwData := strings.TrimSpace(e.must("volume", "inspect", "-f", "{{.Mountpoint}}", rw))
	rwDir := filepath.Dir(rwData) // the host directory that holds rw's data
	copyFile(t, swap, filepath.Join(rvData, "renameswap"))
	if err := os.Chmod(filepath.Join(rvData, "renameswap"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"x", "y"} {
		if err := os.Mkdir(filepath.Join(rvData, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// x and xlink trade places; xlink leads to rw's host directory, where
	// a misplaced mount of rv would put this "_data" over rw's.
	for link, target := range map[string]string{"xlink": rwDir, "_data": "/"} {
		if err := os.Symlink(target, filepath.Join(rvData, link)); err != nil {
			t.Fatal(err)
		}
	}
	rwDirBefore := listDir(t, rwDir)

	victim := []string{"run", "--rm", "--network", "none",
		"-v", rv + ":/data", "-v", rv + ":/data/x", "-v", rw + ":/data/y/z",
		"busybox", "sh", "-c",
		`for p in "" /data /data/x /data/y /data/y/z /data/x/x /data/x/y/z; do test -e "$p$0" && echo "ESCAPED: $p$0"; done; echo started`,
		canary}
	// Without the attacker the victim starts and sees nothing of the host.
	if out := e.must(victim...); strings.TrimSpace(out) != "started" {
		t.Fatalf("victim without an attacker: %q", out)
	}

	attacker := "attacker-" + suffix
	e.must("run", "-d", "--name", attacker, "-v", rv+":/rv", "busybox", "/rv/renameswap", "/rv", "x", "xlink", "60")
	defer e.run("rm", "-f", attacker)
	eventually(t, 10*time.Second, "the attacker swapping x and xlink", func() bool {
		fi, err := os.Lstat(filepath.Join(rvData, "x"))
		return err == nil && fi.Mode()&os.ModeSymlink != 0
	})

	const attempts = 40
	deadline := time.Now().Add(30 * time.Second)
	var started, refused, tried int
	for tried < attempts && time.Now().Before(deadline) {
		tried++
		r := e.run(victim...)
		if strings.Contains(r.stdout, "ESCAPED") {
			t.Fatalf("attempt %d: the victim sees the host's files: %s", tried, r)
		}
		if r.code != 0 {
			refused++
			if refused <= 3 {
				t.Logf("attempt %d refused: %s", tried, strings.TrimSpace(r.stderr))
			}
			continue
		}
		started++
	}
	if running := e.inspect(attacker, "{{.State.Running}}"); running != "true" {
		t.Fatalf("the attacker stopped before the attempts ended (running=%s): %s", running, e.run("logs", attacker))
	}
	e.must("rm", "-f", attacker)
	t.Logf("%d attempts in the race: %d started, %d refused", tried, started, refused)

	// Nothing may have been created or mounted on the host.
	if after := listDir(t, rwDir); strings.Join(after, ",") != strings.Join(rwDirBefore, ",") {
		t.Fatalf("rw's host directory changed: %v, was %v", after, rwDirBefore)
	}
	if names := listDir(t, canaryDir); len(names) != 1 {
		t.Fatalf("the host's canary directory changed: %v", names)
	}
	raw, _ := os.ReadFile("/proc/self/mountinfo")
	for _, dir := range []string{rwDir, rvData, tmp} {
		if strings.Contains(string(raw), dir) {
			t.Fatalf("a mount is left on the host under %s", dir)
		}
	}
	if ids := strings.Fields(e.must("ps", "-aq")); len(ids) != 0 {
		t.Fatalf("containers left after refused --rm starts: %v", ids)
	}
	assertNoLeftovers(t, e)
}

func randomHex(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
