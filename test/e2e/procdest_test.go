package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMountDestinationIntoProcOrSys: a container sharing a volume with a
// victim turns a directory of it into a symlink into the victim's /proc
// (or /sys). The victim mounts the volume on /data and a second volume
// on /data/x; followed inside the victim's root, /data/x leads to
// /proc/sys/kernel, and a runtime that mounts there lets the attacker's
// files stand in for the victim's procfs entries (sysctls, masked or
// read-only paths). runc refuses any mount inside /proc ("cannot be
// mounted because it is inside /proc"); berth must refuse it too, name
// the destination and where it led, and leave nothing behind (a refused
// --rm container included, under either runtime). berth's runtime also
// refuses a destination that only a symlink leads into /sys (runc does
// not).
func TestMountDestinationIntoProcOrSys(t *testing.T) {
	e := newEnv(t)
	suffix := randomHex(t)
	builtin := os.Getenv("BERTH_RUNTIME") == "" || os.Getenv("BERTH_RUNTIME") == "berth"
	for _, tc := range []struct {
		name, target string
		runcAllows   bool // runc refuses only /proc
	}{
		{"proc-sys-kernel", "/proc/sys/kernel", false},
		{"proc-1", "/proc/1", false},
		{"sys-kernel", "/sys/kernel", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pv, pw := "pv-"+tc.name+"-"+suffix, "pw-"+tc.name+"-"+suffix
			e.must("volume", "create", pv)
			e.must("volume", "create", pw)
			pwData := strings.TrimSpace(e.must("volume", "inspect", "-f", "{{.Mountpoint}}", pw))
			marker := "marker-" + suffix
			if err := os.WriteFile(filepath.Join(pwData, marker), []byte("attacker"), 0o644); err != nil {
				t.Fatal(err)
			}
			victim := []string{"run", "--rm", "--network", "none", "-v", pv + ":/data", "-v", pw + ":/data/x",
				"busybox", "sh", "-c", `test -e /data/x/$0 && echo mounted; test -e ` + tc.target + `/$0 && echo SPOOFED; echo started`, marker}

			// Without the symlink the victim starts and sees pw at /data/x.
			if out := e.must(victim...); out != "mounted\nstarted\n" {
				t.Fatalf("victim without the symlink: %q", out)
			}
			e.must("run", "--rm", "--network", "none", "-v", pv+":/v", "busybox", "sh", "-c",
				"rm -rf /v/x && ln -s "+tc.target+" /v/x")

			r := e.run(victim...)
			if !builtin && tc.runcAllows && r.code == 0 {
				// Only berth's own runtime holds this line; runc 1.1.5
				// mounts there.
				t.Logf("runc mounted the volume over %s: %s", tc.target, r)
				return
			}
			if strings.Contains(r.stdout, "SPOOFED") || r.code == 0 {
				t.Fatalf("the victim started with the attacker's volume over %s: %s", tc.target, r)
			}
			if builtin {
				want := "mount destination /data/x resolves to " + tc.target
				if r.code != 125 || !strings.Contains(r.stderr, want) {
					t.Fatalf("want exit 125 and %q: %s", want, r)
				}
			}
			t.Logf("refused: exit %d: %s", r.code, strings.TrimSpace(r.stderr))
			if ids := strings.Fields(e.must("ps", "-aq")); len(ids) != 0 {
				t.Fatalf("containers left after a refused --rm start: %v", ids)
			}
			raw, _ := os.ReadFile("/proc/self/mountinfo")
			if strings.Contains(string(raw), filepath.Dir(pwData)) {
				t.Fatalf("a mount of %s is left on the host", pw)
			}
			assertNoLeftovers(t, e)
		})
	}
	// What runc lets a mount cover inside /proc (lxcfs's files) stays
	// allowed, written directly.
	meminfo := filepath.Join(t.TempDir(), "meminfo")
	if err := os.WriteFile(meminfo, []byte("MemTotal: 42 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := e.must("run", "--rm", "--network", "none", "-v", meminfo+":/proc/meminfo:ro", "busybox", "head", "-n1", "/proc/meminfo"); out != "MemTotal: 42 kB\n" {
		t.Fatalf("a bind over /proc/meminfo: %q", out)
	}
}
