package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Regression tests for issue 7 (paths resolved in host context): the
// engine reads a container's /etc/passwd and /etc/group to resolve -u, and
// walks its writable layer and volumes for sizes. The container owns those
// trees: a link in them must never lead berth to a host file, a FIFO must
// not hang it, and a directory swapped for a link mid-walk must not make it
// walk the host.

const evilEntry = "evil:x:4242:4242::/:/bin/sh\n"

// hostUserDB writes host passwd and group files naming the user "evil"
// (uid 4242) and the group "evilgrp" (gid 4343), which exist nowhere in
// the container.
func hostUserDB(t *testing.T) (passwd, group string) {
	t.Helper()
	dir := t.TempDir()
	passwd, group = filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	if err := os.WriteFile(passwd, []byte(evilEntry), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(group, []byte("evilgrp:x:4343:evil\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return passwd, group
}

// runBounded runs berth with a short deadline: a FIFO planted in the
// container must not make berth wait for a writer.
func (e *env) runBounded(d time.Duration, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := e.command(ctx, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = time.Second // a monitor left holding the pipes must not hold us
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		e.t.Fatalf("berth %v still running after %s: it blocked on the container's files", args, time.Since(start).Round(time.Millisecond))
	}
	r := result{stdout: out.String(), stderr: errb.String()}
	if err != nil {
		r.code = cmd.ProcessState.ExitCode()
	}
	return r
}

// assertUnknownUser fails unless r is docker's refusal of a user missing
// from the container's passwd file (and nothing ran as uid 4242).
func assertUnknownUser(t *testing.T, what string, r result) {
	t.Helper()
	if strings.Contains(r.stdout, "4242") || strings.Contains(r.stdout, "4343") {
		t.Fatalf("%s ran with the host file's ids:\n%s", what, r)
	}
	if r.code == 0 || !strings.Contains(r.stderr, "unable to find user evil: no matching entries in passwd file") {
		t.Fatalf("%s: want docker's unknown-user error, got:\n%s", what, r)
	}
}

// idsScript prints the process's uid and gid without reading /etc/passwd
// (id would block on the FIFO planted there).
const idsScript = `set -- $(grep '^Uid:' /proc/self/status) $(grep '^Gid:' /proc/self/status); echo $2 $7`

// ociBinaryRuntime reports whether the suite runs containers with an OCI
// runtime binary (BERTH_RUNTIME=runc): runc reads the container's
// /etc/passwd itself, inside the container, even for numeric ids, and
// blocks on a FIFO there as it does under Docker; berth's part (-u NAME)
// is still checked.
func ociBinaryRuntime() bool {
	rt := os.Getenv("BERTH_RUNTIME")
	return rt != "" && rt != "berth"
}

// userDBTraps are the ways a container plants its /etc/passwd and
// /etc/group: links to the host's files, absolute and climbing with "..",
// and FIFOs, which nothing ever writes.
func userDBTraps(passwd, group string) []struct{ name, setup string } {
	return []struct{ name, setup string }{
		{"absolute link", fmt.Sprintf("ln -sf %s /etc/passwd && ln -sf %s /etc/group", passwd, group)},
		{"dotdot link", fmt.Sprintf("ln -sf %s /etc/passwd && ln -sf %s /etc/group", dotdotLink(passwd), dotdotLink(group))},
		{"fifo", "rm -f /etc/passwd /etc/group && mkfifo /etc/passwd /etc/group"},
	}
}

// `exec -u` in a running container whose /etc/passwd leads to a host file
// resolves inside the container (no such user), and a FIFO does not hang.
func TestExecUserPasswdOutsideRoot(t *testing.T) {
	e := newEnv(t)
	passwd, group := hostUserDB(t)
	name := "userexec"
	e.must("run", "-d", "--name", name, "busybox", "sleep", "1000")
	for _, trap := range userDBTraps(passwd, group) {
		e.must("exec", name, "sh", "-c", trap.setup)
		what := fmt.Sprintf("exec -u evil (%s)", trap.name)
		assertUnknownUser(t, what, e.runBounded(20*time.Second, "exec", "-u", "evil", name, "id"))
		r := e.runBounded(20*time.Second, "exec", "-u", "0:evilgrp", name, "id")
		if r.code == 0 || !strings.Contains(r.stderr, "unable to find group evilgrp") {
			t.Fatalf("exec -u 0:evilgrp (%s): want docker's unknown-group error, got:\n%s", trap.name, r)
		}
		if trap.name == "fifo" && ociBinaryRuntime() {
			continue
		}
		// Numeric ids need no entry.
		r = e.runBounded(20*time.Second, "exec", "-u", "1234:5678", name, "sh", "-c", idsScript)
		if r.code != 0 || r.stdout != "1234 5678\n" {
			t.Fatalf("exec -u 1234:5678 (%s): %s", trap.name, r)
		}
	}
}

// `run -u` of an image whose /etc/passwd leads to a host file, or is a
// FIFO, resolves inside the image.
func TestRunUserPasswdOutsideRoot(t *testing.T) {
	e := newEnv(t)
	passwd, group := hostUserDB(t)
	for i, trap := range userDBTraps(passwd, group) {
		img := fmt.Sprintf("userimg%d", i)
		ctr := fmt.Sprintf("usermk%d", i)
		e.must("run", "--name", ctr, "busybox", "sh", "-c", trap.setup)
		e.must("commit", ctr, img)
		what := fmt.Sprintf("run -u evil (%s)", trap.name)
		assertUnknownUser(t, what, e.runBounded(30*time.Second, "run", "--rm", "-u", "evil", img, "id"))
		if trap.name == "fifo" && ociBinaryRuntime() {
			continue
		}
		r := e.runBounded(30*time.Second, "run", "--rm", "-u", "1234:5678", img, "sh", "-c", idsScript)
		if r.code != 0 || r.stdout != "1234 5678\n" {
			t.Fatalf("run -u 1234:5678 (%s): %s", trap.name, r)
		}
	}
}

// `exec -u` reads the passwd file the container's processes see, a bind
// or volume over /etc included, as docker (runc, inside the container)
// does; the host's view of the image's layers lacks it.
func TestExecUserSeesContainerMounts(t *testing.T) {
	e := newEnv(t)
	etc := t.TempDir()
	if err := os.WriteFile(filepath.Join(etc, "passwd"), []byte("mounted:x:777:778::/home/m:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "group"), []byte("mgrp:x:779:mounted\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	name := "usermounts"
	e.must("run", "-d", "--name", name, "-v", etc+":/etc", "busybox", "sleep", "1000")
	r := e.run("exec", "-u", "mounted", name, "id")
	if r.code != 0 || !strings.Contains(r.stdout, "uid=777") || !strings.Contains(r.stdout, "gid=778") || !strings.Contains(r.stdout, "779") {
		t.Fatalf("exec -u mounted: want uid 777, gid 778 and group 779 from the bind over /etc, got:\n%s", r)
	}
	// The image's users are hidden under the bind, as in the container.
	r = e.run("exec", "-u", "daemon", name, "id")
	if r.code == 0 || !strings.Contains(r.stderr, "unable to find user daemon: no matching entries in passwd file") {
		t.Fatalf("exec -u daemon: want docker's unknown-user error, got:\n%s", r)
	}
}

// `system df` and `ps -s` walk the writable layer and the volumes of a
// container that swaps a directory for a link to a host directory holding
// a 1 TiB (sparse) file: the sizes must never count it.
func TestDiskUsageRacingContainer(t *testing.T) {
	e := newEnv(t)
	host := t.TempDir()
	big, err := os.Create(filepath.Join(host, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if err := big.Truncate(1 << 40); err != nil {
		t.Fatal(err)
	}
	big.Close()
	bin := buildSwapper(t)
	name := "dfrace"
	script := fmt.Sprintf("for d in / /v/; do mkdir -p ${d}dir/sub && echo in > ${d}dir/sub/f && ln -s %s ${d}link; done; "+
		"/h/cpswapper /v/dir /v/link & exec /h/cpswapper /dir /link", host)
	e.must("run", "-d", "--name", name, "-v", bin+":/h:ro", "-v", "dfvol:/v", "busybox", "sh", "-c", script)
	eventually(t, 10*time.Second, "the swapper's loop", func() bool {
		return e.run("exec", name, "test", "-e", "/swapper.ready").code == 0
	})
	deadline := time.Now().Add(30 * time.Second)
	tries := 0
	for ; tries < 150 && time.Now().Before(deadline); tries++ {
		out := e.must("system", "df", "--format", "{{.Type}}={{.Size}}")
		if strings.Contains(out, "TB") || strings.Contains(out, "GB") {
			t.Fatalf("system df (attempt %d) counted the host's file:\n%s", tries+1, out)
		}
		if tries%3 == 0 {
			out = e.must("ps", "-s", "--format", "{{.Names}} {{.Size}}")
			if strings.Contains(out, "TB") || strings.Contains(out, "GB") {
				t.Fatalf("ps -s (attempt %d) counted the host's file:\n%s", tries+1, out)
			}
		}
	}
	t.Logf("%d rounds of system df", tries)
}
