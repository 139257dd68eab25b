package e2e

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
)

// ufwLikeFilter is table ip filter as ufw leaves it (FORWARD policy DROP,
// ufw's chains, no DOCKER-USER); loaded only in the test's namespace.
const ufwLikeFilter = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:ufw-before-forward - [0:0]
:ufw-user-forward - [0:0]
-A FORWARD -j ufw-before-forward
-A ufw-before-forward -j ufw-user-forward
COMMIT
`

// TestForwardDropWarning: beside a firewall whose FORWARD drops (ufw's
// shape, in a network namespace of the test's own that stands for the
// host: the host's own firewall is never touched), network create,
// create and run on a bridge network print Docker's "WARNING: ..." on
// stderr naming the table, the chain and what to do, and still succeed;
// a container without a bridge network, or on an --internal one (nothing
// of it is forwarded), gets no warning, nor one once the user's rules
// accept the bridge's traffic.
func TestForwardDropWarning(t *testing.T) {
	wrap := newNetns(t, "192.0.2.30")
	e := newEnv(t)
	e.wrap = wrap
	inNS := func(stdin string, name string, args ...string) {
		t.Helper()
		cmd := exec.Command(wrap[0], append(wrap[1:], append([]string{testutil.RequiresBinary(t, name)}, args...)...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s %v in the test's namespace: %v\n%s", name, args, err, errb.String())
		}
	}
	inNS(ufwLikeFilter, "iptables-nft-restore", "--noflush")
	const what = "WARNING: The host's firewall drops forwarded IPv4 traffic (nftables table ip filter, chain FORWARD, policy drop): containers on bridge "

	r := e.run("network", "create", "fwwarn-net")
	if r.code != 0 {
		t.Fatalf("network create: %s", r)
	}
	id := strings.TrimSpace(r.stdout)
	br := "br-" + id[:12]
	if !strings.HasPrefix(r.stderr, what+br+" ") || !strings.Contains(r.stderr, "`ufw route allow in on "+br+"`") ||
		strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("network create's stderr:\n%s\nwant one line: %s%s ...", r.stderr, what, br)
	}
	for _, args := range [][]string{
		{"create", "--network", "fwwarn-net", "busybox", "true"},
		{"run", "-d", "--network", "fwwarn-net", "busybox", "sleep", "60"},
	} {
		r := e.run(args...)
		if r.code != 0 {
			t.Fatalf("%v: %s", args, r)
		}
		if !strings.HasPrefix(r.stderr, what+br+" ") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%v: stderr:\n%s\nwant one line: %s%s ...", args, r.stderr, what, br)
		}
	}
	for _, args := range [][]string{
		{"network", "create", "--internal", "fwwarn-int"},
		{"create", "--network", "fwwarn-int", "busybox", "true"},
		{"create", "--network", "none", "busybox", "true"},
		{"create", "--network", "host", "busybox", "true"},
	} {
		if r := e.run(args...); r.code != 0 || r.stderr != "" {
			t.Errorf("%v: %s\nwant no warning", args, r)
		}
	}
	// The advice followed (ufw route allow in and out on the bridge):
	// no more warning.
	inNS("", "iptables-nft", "-A", "ufw-user-forward", "-i", br, "-j", "ACCEPT")
	inNS("", "iptables-nft", "-A", "ufw-user-forward", "-o", br, "-j", "ACCEPT")
	if r := e.run("create", "--network", "fwwarn-net", "busybox", "true"); r.code != 0 || r.stderr != "" {
		t.Errorf("create after ufw route allow in and out on %s: %s\nwant no warning", br, r)
	}
}
