package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

// aliceHtpasswd is alice's entry for password "s3cret" (bcrypt, cost 10,
// made with golang.org/x/crypto/bcrypt).
const aliceHtpasswd = "alice:$2a$10$NmdpLpGFAGMRQtZFsaPR8OPOBiYu2AED6nF9wgWgddAiZRxEpNI0C\n"

// startDockerRegistry runs Debian's docker-registry (distribution 2.8.2)
// on a free loopback port, with htpasswd auth when htpasswd is set, and
// returns its host:port. It is stopped by its pid when the test ends.
func startDockerRegistry(t *testing.T, htpasswd bool) string {
	t.Helper()
	bin := testutil.RequiresBinary(t, "docker-registry")
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if htpasswd {
		pw := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(pw, []byte(aliceHtpasswd), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: berth-test\n    path: %s\n", pw)
	}
	conf := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", conf)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
		log.Close()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			res.Body.Close()
			return addr
		}
		if time.Now().After(deadline) {
			raw, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Fatalf("docker-registry did not start: %v\n%s", err, raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// skopeoDigest is the manifest digest skopeo sees for ref.
func skopeoDigest(t *testing.T, ref string, creds ...string) string {
	t.Helper()
	bin := testutil.RequiresBinary(t, "skopeo")
	args := []string{"inspect", "--tls-verify=false"}
	if len(creds) > 0 {
		args = append(args, "--creds", creds[0])
	}
	out, err := exec.Command(bin, append(args, "docker://"+ref)...).Output()
	if err != nil {
		t.Fatalf("skopeo inspect %s: %v", ref, err)
	}
	var doc struct{ Digest string }
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Digest
}

// pushedDigest is the digest a push printed ("TAG: digest: D size: N").
func pushedDigest(t *testing.T, out string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if _, rest, ok := strings.Cut(line, ": digest: "); ok {
			d, _, _ := strings.Cut(rest, " ")
			return d
		}
	}
	t.Fatalf("no digest in push output:\n%s", out)
	return ""
}

// TestRegistryPushPull: an image pushed from one berth store through
// docker-registry and pulled into another keeps its digests (as skopeo
// sees them), its blobs and its ID, runs, and is pushed again with the
// same bytes.
func TestRegistryPushPull(t *testing.T) {
	reg := startDockerRegistry(t, false)
	a, b := newEnv(t), newEnv(t)
	ref := reg + "/team/busybox:1"
	// Two layers: busybox's, which the other store has, and a new one.
	a.must("run", "--name", "src", "busybox", "sh", "-c", "echo pushed > /pushed")
	a.must("commit", "src", ref)
	push := a.must("push", ref)
	digest := pushedDigest(t, push)
	for _, w := range []string{"The push refers to repository [" + reg + "/team/busybox]", ": Pushed"} {
		if !strings.Contains(push, w) {
			t.Errorf("push output lacks %q:\n%s", w, push)
		}
	}
	if got := skopeoDigest(t, ref); got != digest {
		t.Errorf("skopeo sees %s, berth pushed %s", got, digest)
	}
	if again := a.must("push", ref); !strings.Contains(again, "Layer already exists") {
		t.Errorf("second push:\n%s", again)
	}

	pull := b.must("pull", ref)
	for _, w := range []string{"1: Pulling from team/busybox", "Already exists", "Pull complete", "Digest: " + digest, "Status: Downloaded newer image for " + ref, "\n" + ref + "\n"} {
		if !strings.Contains("\n"+pull, w) {
			t.Errorf("pull output lacks %q:\n%s", w, pull)
		}
	}
	if idA, idB := a.inspect(ref, "{{.Id}}"), b.inspect(ref, "{{.Id}}"); idA != idB {
		t.Errorf("image ID %s pushed, %s pulled", idA, idB)
	}
	if rd := b.inspect(ref, "{{json .RepoDigests}}"); rd != `["`+reg+`/team/busybox@`+digest+`"]` {
		t.Errorf("RepoDigests %s", rd)
	}
	if out := b.must("images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}", reg+"/team/busybox"); strings.TrimSpace(out) != reg+"/team/busybox 1 "+digest {
		t.Errorf("images --digests: %q", out)
	}
	// Docker's pull event: the reference, its repository as the name.
	if out := b.must("events", "--since", "1h", "--until", "0s", "--filter", "type=image", "--filter", "event=pull", "--format", `{{.Action}} {{.Actor.ID}} {{index .Actor.Attributes "name"}}`); out != "pull "+ref+" "+reg+"/team/busybox\n" {
		t.Errorf("pull events: %q", out)
	}
	if out := a.must("events", "--since", "1h", "--until", "0s", "--filter", "type=image", "--filter", "event=push", "--format", `{{.Action}} {{.Actor.ID}}`); !strings.HasPrefix(out, "push "+ref+"\n") {
		t.Errorf("push events: %q", out)
	}
	// A tag of another repository has no digest of its own (docker's).
	b.must("tag", ref, "local/copy:1")
	if out := b.must("images", "--digests", "--format", "{{.Repository}} {{.Digest}}", "local/copy"); out != "local/copy <none>\n" {
		t.Errorf("images --digests of a local tag: %q", out)
	}
	if q := b.must("pull", "-q", ref); q != ref+"\n" {
		t.Errorf("pull -q: %q", q)
	}
	if up := b.must("pull", ref); !strings.Contains(up, "Status: Image is up to date for "+ref) || !strings.Contains(up, "Already exists") {
		t.Errorf("second pull:\n%s", up)
	}
	if out := b.must("run", "--rm", ref, "cat", "/pushed"); out != "pushed\n" {
		t.Errorf("run: %q", out)
	}
	// By digest: no tag made.
	c := newEnv(t)
	byDigest := reg + "/team/busybox@" + digest
	c.must("pull", byDigest)
	if tags := c.inspect(byDigest, "{{json .RepoTags}}"); tags != "[]" {
		t.Errorf("a pull by digest tagged %s", tags)
	}

	// Pushed on from the second store: the same bytes, the same digest
	// (the layer is mounted from the repository it came from).
	other := reg + "/team/copy:2"
	b.must("tag", ref, other)
	push2 := b.must("push", other)
	if d := pushedDigest(t, push2); d != digest || skopeoDigest(t, other) != digest {
		t.Errorf("pushed again as %s, first %s", d, digest)
	}
	if !strings.Contains(push2, "Mounted from team/busybox") {
		t.Errorf("no cross-repository mount:\n%s", push2)
	}

	// --all-tags both ways.
	a.must("tag", "busybox", reg+"/team/all:x")
	a.must("tag", "busybox", reg+"/team/all:y")
	if out := a.must("push", "--all-tags", reg+"/team/all"); strings.Count(out, ": digest: ") != 2 {
		t.Errorf("push --all-tags:\n%s", out)
	}
	b.must("pull", "-a", reg+"/team/all")
	if out := b.must("images", "--format", "{{.Tag}}", reg+"/team/all"); out != "x\ny\n" && out != "y\nx\n" {
		t.Errorf("pull --all-tags made tags %q", out)
	}

	// A repository that is not there: docker's words, exit 1, nothing stored.
	r := b.run("pull", reg+"/team/none:1")
	if r.code != 1 || !strings.Contains(r.stderr, "manifest for "+reg+"/team/none:1 not found") {
		t.Errorf("pull of a missing image: %s", r)
	}
}

// TestRegistryLogin: login checks the password against an htpasswd
// registry before storing it, docker's messages and exit codes; push and
// pull then authenticate; logout removes the credential.
func TestRegistryLogin(t *testing.T) {
	reg := startDockerRegistry(t, true)
	e := newEnv(t)
	cfgDir := filepath.Join(e.dir, "docker-config")
	e.extra = []string{"DOCKER_CONFIG=" + cfgDir}
	ref := reg + "/team/busybox:1"
	e.must("tag", "busybox", ref)
	// docker's words for a Basic-auth registry and no credentials.
	if r := e.run("push", ref); r.code != 1 || !strings.Contains(r.stderr, "no basic auth credentials") {
		t.Errorf("push without login: %s", r)
	}
	r := e.runIn([]byte("wrong\n"), "login", "-u", "alice", "--password-stdin", reg)
	if r.code != 1 || r.stderr != "Error response from daemon: login attempt to http://"+reg+"/v2/ failed with status: 401 Unauthorized\n" {
		t.Errorf("wrong password: %s", r)
	}
	if _, err := os.Stat(filepath.Join(cfgDir, "config.json")); err == nil {
		t.Error("a refused login stored something")
	}
	r = e.runIn([]byte("s3cret\n"), "login", "-u", "alice", "--password-stdin", reg)
	if r.code != 0 || r.stdout != "Login Succeeded\n" || !strings.Contains(r.stderr, "WARNING! Your credentials are stored unencrypted in '"+filepath.Join(cfgDir, "config.json")+"'") {
		t.Fatalf("login: %s", r)
	}
	raw, _ := os.ReadFile(filepath.Join(cfgDir, "config.json"))
	if !strings.Contains(string(raw), `"`+reg+`"`) || !strings.Contains(string(raw), `"auth": "YWxpY2U6czNjcmV0"`) {
		t.Errorf("config.json:\n%s", raw)
	}
	digest := pushedDigest(t, e.must("push", ref))
	if got := skopeoDigest(t, ref, "alice:s3cret"); got != digest {
		t.Errorf("skopeo sees %s, berth pushed %s", got, digest)
	}
	e.must("rmi", ref)
	e.must("pull", ref)
	if out := e.must("logout", reg); out != "Removing login credentials for "+reg+"\n" {
		t.Errorf("logout: %q", out)
	}
	if out := e.must("logout", reg); out != "Not logged in to "+reg+"\n" {
		t.Errorf("second logout: %q", out)
	}
	e.must("rmi", ref)
	if r := e.run("pull", ref); r.code != 1 || !strings.Contains(r.stderr, "pull access denied for "+reg+"/team/busybox") {
		t.Errorf("pull after logout: %s", r)
	}
	if r := e.run("images", "-q", ref); r.stdout != "" {
		t.Errorf("a refused pull left an image: %s", r)
	}
}

// TestRunPull: run and create pull a missing image (docker's "Unable to
// find image" line on stderr), --pull never does not, --pull always does.
func TestRunPull(t *testing.T) {
	reg := startDockerRegistry(t, false)
	a, b := newEnv(t), newEnv(t)
	ref := reg + "/team/busybox:1"
	a.must("tag", "busybox", ref)
	a.must("push", ref)

	r := b.run("run", "--rm", "--pull", "never", ref, "echo", "ok")
	if r.code != 125 || !strings.Contains(r.stderr, "No such image: "+ref) || strings.Contains(r.stderr, "Pulling") {
		t.Errorf("--pull never: %s", r)
	}
	r = b.run("run", "--rm", ref, "echo", "ok")
	if r.code != 0 || r.stdout != "ok\n" || !strings.HasPrefix(r.stderr, "Unable to find image '"+ref+"' locally\n") || !strings.Contains(r.stderr, "Status: Downloaded newer image for "+ref) {
		t.Errorf("run of a missing image: %s", r)
	}
	r = b.run("create", "--pull", "always", ref, "true")
	if r.code != 0 || !strings.Contains(r.stderr, "Status: Image is up to date for "+ref) {
		t.Errorf("create --pull always: %s", r)
	}
	if r := b.run("run", "--pull", "sometimes", ref); r.code != 125 || !strings.Contains(r.stderr, "invalid pull option") {
		t.Errorf("--pull sometimes: %s", r)
	}
}
