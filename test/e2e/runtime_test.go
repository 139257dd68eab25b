package e2e

import (
	"regexp"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
)

// probe prints what a container sees of its own confinement: credentials,
// capabilities, seccomp and no_new_privs, signal dispositions, limits,
// devices, mounts, cgroups, namespaces' view of the network, and stdio.
const probe = `grep -E '^(Cap|NoNewPrivs|Seccomp|Sig(Ign|Blk)|Uid|Gid|Groups)' /proc/self/status
ulimit -a | sort
id; umask; pwd; echo "$PATH"; hostname
ls -la /dev | awk '{print $1,$3,$4,$5,$6,$9,$10,$11}' | sort -k6
awk '{print $5,$6,$9}' /proc/self/mountinfo | sort
cat /proc/self/cgroup /proc/self/oom_score_adj
ip -o addr | awk '{print $2,$3,$4}'
ls -l /proc/self/fd | awk '{print $1,$9,$10}'`

// TestRuntimesAgree runs the same containers under runc and under berth's
// built-in runtime and compares what they see from inside: the built-in
// runtime must confine a container exactly as runc does.
func TestRuntimesAgree(t *testing.T) {
	e := newEnv(t)
	testutil.RequiresBinary(t, "runc")
	// What legitimately differs between two containers: ids in paths,
	// pipe inode numbers, /sys/fs/cgroup's own tmpfs (ro under berth, rw
	// under runc), the hybrid host's cgroup2 mount, which only berth
	// shows, and the source name runc gives the named systemd hierarchy.
	normalise := strings.NewReplacer("relatime systemd\n", "relatime cgroup\n")
	ids := regexp.MustCompile(`[0-9a-f]{64}|pipe:\[\d+\]|[0-9a-f]{12}\n`)
	cgroupRoot := regexp.MustCompile(`(?m)^/sys/fs/cgroup(/unified)? .*\n`)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"defaults", nil},
		{"restricted", []string{"-u", "1000:1000", "--group-add", "5", "--cap-drop", "ALL", "--cap-add", "NET_RAW", "--security-opt", "no-new-privileges", "--read-only", "--tmpfs", "/run", "-w", "/work/here", "--ulimit", "nofile=100:200", "--oom-score-adj", "300"}},
		{"privileged", []string{"--privileged"}},
		{"limits and mounts", []string{"-m", "64m", "--pids-limit", "30", "--cpus", "0.5", "-v", "/etc/hostname:/host-hostname:ro", "--shm-size", "8m", "--hostname", "agree"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := map[string]string{}
			for _, rt := range []string{"runc", "berth"} {
				args := append([]string{"run", "--rm", "--runtime", rt}, tc.args...)
				args = append(args, "busybox", "sh", "-c", probe)
				got := e.must(args...)
				got = ids.ReplaceAllString(got, "<id>")
				got = cgroupRoot.ReplaceAllString(got, "")
				out[rt] = normalise.Replace(got)
			}
			if out["runc"] != out["berth"] {
				t.Errorf("containers differ between runtimes\n--- runc\n%s\n--- berth\n%s", out["runc"], out["berth"])
			}
		})
	}
}
