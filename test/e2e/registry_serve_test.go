package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

// startBerthRegistry runs `berth registry serve` (under wrap, when set)
// with args and returns the host:port it serves on. It is interrupted by
// its pid when the test ends; its log is shown when the test failed.
func startBerthRegistry(t *testing.T, wrap []string, args ...string) string {
	t.Helper()
	argv := append(append(append([]string{}, wrap...), berthBin, "registry", "serve"), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var log strings.Builder
	first := make(chan string, 1)
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		n := 0
		for sc.Scan() {
			if n == 0 {
				first <- sc.Text()
			}
			n++
			mu.Lock()
			log.WriteString(sc.Text() + "\n")
			mu.Unlock()
		}
		if n == 0 {
			first <- ""
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { <-logDone; cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("registry log:\n%s", log.String())
			mu.Unlock()
		}
	})
	select {
	case line := <-first:
		// "berth registry: serving ROOT on https://HOST:PORT"
		_, addr, ok := strings.Cut(line, "://")
		if !ok {
			t.Fatalf("registry serve did not start: %q", line)
		}
		return addr
	case <-time.After(30 * time.Second):
		t.Fatal("registry serve did not start within 30s")
	}
	return ""
}

// newNetns makes a network namespace of the test's own whose loopback
// device also holds addr, a documentation address (192.0.2.0/24): not a
// loopback one, so berth treats a registry there as secure (TLS
// verified against certs.d), as it would a remote one. It returns the
// command prefix that runs a program in it.
func newNetns(t *testing.T, addr string) []string {
	t.Helper()
	testutil.RequiresRoot(t)
	ip := testutil.RequiresBinary(t, "ip")
	nsenter := testutil.RequiresBinary(t, "nsenter")
	name := fmt.Sprintf("berth-e2e-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
	if out, err := exec.Command(ip, "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(ip, "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	for _, args := range [][]string{{"link", "set", "lo", "up"}, {"addr", "add", addr + "/32", "dev", "lo"}} {
		if out, err := exec.Command(ip, append([]string{"-n", name}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip -n %s %v: %v\n%s", name, args, err, out)
		}
	}
	return []string{nsenter, "--net=/run/netns/" + name, "--"}
}

// writeTLS writes a CA and a server certificate it signed for ip, and
// returns the CA's PEM and the server's certificate and key files.
func writeTLS(t *testing.T, dir, ip string) (caPEM []byte, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "berth e2e CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: ip},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP(ip)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caPEM, certFile, keyFile
}

// TestRegistryServeTLSAuth: two berth stores exchange an image through
// `berth registry serve` with htpasswd auth and TLS, its CA trusted
// through certs.d/<host:port>/ca.crt under the configuration's
// certs-dirs: login, push, logout (a push then fails with docker's
// words), pull with the concurrency flags, search; both stores end with
// the same ID, digest and RepoDigests.
func TestRegistryServeTLSAuth(t *testing.T) {
	const ip = "192.0.2.10"
	wrap := newNetns(t, ip)
	dir := t.TempDir()
	caPEM, certFile, keyFile := writeTLS(t, dir, ip)
	host := ip + ":5443" // the namespace is the test's: the port is free
	certsD := filepath.Join(dir, "certs.d")
	if err := os.MkdirAll(filepath.Join(certsD, host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(certsD, host, "ca.crt"), caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(cfg, []byte(`{"certs-dirs": ["`+certsD+`"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	untrusted := filepath.Join(dir, "untrusted.json")
	if err := os.WriteFile(untrusted, []byte(`{"certs-dirs": ["`+filepath.Join(dir, "none")+`"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(aliceHtpasswd), 0o600); err != nil {
		t.Fatal(err)
	}
	if addr := startBerthRegistry(t, wrap, "--addr", host, "--root", filepath.Join(dir, "registry"),
		"--htpasswd", htpasswd, "--tls-cert", certFile, "--tls-key", keyFile); addr != host {
		t.Fatalf("registry serves on %q, want %q", addr, host)
	}

	a, b := newEnv(t), newEnv(t)
	for _, e := range []*env{a, b} {
		e.wrap = wrap
		e.extra = []string{"BERTH_CONFIG_FILE=" + cfg, "DOCKER_CONFIG=" + filepath.Join(e.dir, "docker-config"),
			// The harness's dead proxy keeps tests off any registry but
			// loopback; this one is in the test's own namespace.
			"NO_PROXY=" + ip}
	}
	login := func(e *env) {
		t.Helper()
		r := e.runIn([]byte("s3cret\n"), "login", "-u", "alice", "--password-stdin", host)
		if r.code != 0 || r.stdout != "Login Succeeded\n" {
			t.Fatalf("login: %s", r)
		}
	}
	ref := host + "/team/busybox:1"
	a.must("tag", "busybox", ref)

	// Without the CA the certificate does not verify.
	r := a.runIn([]byte("s3cret\n"), "--config-file", untrusted, "login", "-u", "alice", "--password-stdin", host)
	if r.code != 1 || !strings.Contains(r.stderr, "certificate signed by unknown authority") {
		t.Errorf("login without the CA: %s", r)
	}
	if r := a.run("push", ref); r.code != 1 || !strings.Contains(r.stderr, "no basic auth credentials") {
		t.Errorf("push before login: %s", r)
	}
	login(a)
	push := a.must("--max-concurrent-uploads", "1", "push", ref)
	digest := pushedDigest(t, push)
	if !strings.Contains(push, ": Pushed") {
		t.Errorf("push:\n%s", push)
	}
	if out := a.must("logout", host); out != "Removing login credentials for "+host+"\n" {
		t.Errorf("logout: %q", out)
	}
	a.must("tag", "busybox", host+"/team/other:1")
	if r := a.run("push", host+"/team/other:1"); r.code != 1 || !strings.Contains(r.stderr, "no basic auth credentials") {
		t.Errorf("push after logout: %s", r)
	}

	login(b)
	pull := b.must("--max-concurrent-downloads", "1", "pull", ref)
	for _, w := range []string{"Digest: " + digest, "Status: Downloaded newer image for " + ref} {
		if !strings.Contains(pull, w) {
			t.Errorf("pull output lacks %q:\n%s", w, pull)
		}
	}
	// The same image and digests on both sides.
	if idA, idB := a.inspect(ref, "{{.Id}}"), b.inspect(ref, "{{.Id}}"); idA != idB {
		t.Errorf("image ID %s pushed, %s pulled", idA, idB)
	}
	want := `["` + host + `/team/busybox@` + digest + `"]`
	for name, e := range map[string]*env{"pushing": a, "pulling": b} {
		if rd := e.inspect(ref, "{{json .RepoDigests}}"); rd != want {
			t.Errorf("%s store: RepoDigests %s, want %s", name, rd, want)
		}
		if out := e.must("images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}", host+"/team/busybox"); out != host+"/team/busybox 1 "+digest+"\n" {
			t.Errorf("%s store: images --digests: %q", name, out)
		}
	}
	if out := b.must("search", host+"/team"); !strings.Contains(out, "team/busybox ") {
		t.Errorf("search:\n%s", out)
	}
	if out := b.must("run", "--rm", "--network", "none", ref, "echo", "ok"); out != "ok\n" {
		t.Errorf("run of the pulled image: %q", out)
	}
}

// TestRegistryServeRunPull: against berth's own registry on loopback,
// `run --rm` pulls a missing image (docker's "Unable to find image"),
// search lists the repository, and the digests match the push.
func TestRegistryServeRunPull(t *testing.T) {
	reg := startBerthRegistry(t, nil, "--addr", "127.0.0.1:0", "--root", filepath.Join(t.TempDir(), "registry"))
	a, b := newEnv(t), newEnv(t)
	ref := reg + "/team/busybox:1"
	a.must("tag", "busybox", ref)
	digest := pushedDigest(t, a.must("push", ref))

	r := b.run("run", "--rm", ref, "echo", "ok")
	if r.code != 0 || r.stdout != "ok\n" || !strings.HasPrefix(r.stderr, "Unable to find image '"+ref+"' locally\n") || !strings.Contains(r.stderr, "Digest: "+digest) {
		t.Errorf("run of a missing image: %s", r)
	}
	for name, e := range map[string]*env{"pushing": a, "pulling": b} {
		if out := e.must("images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}", reg+"/team/busybox"); out != reg+"/team/busybox 1 "+digest+"\n" {
			t.Errorf("%s store: images --digests: %q", name, out)
		}
		if rd := e.inspect(ref, "{{json .RepoDigests}}"); rd != `["`+reg+`/team/busybox@`+digest+`"]` {
			t.Errorf("%s store: RepoDigests %s", name, rd)
		}
	}
	out := b.must("search", reg+"/team")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "team/busybox ") {
		t.Errorf("search:\n%s", out)
	}
}
