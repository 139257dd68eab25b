package e2e

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// layerTar writes a one-file image tar of size bytes under dir, unique by
// name and content.
func layerTar(t *testing.T, dir, name string, size int) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	data := bytes.Repeat([]byte(name[:1]), size)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write(data)
	tw.Close()
	p := filepath.Join(dir, name+".tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// danglingImage imports layer with the label, as ref, then imports
// another layer under the same ref: the first image is left untagged.
// It returns the dangling image's ID.
func (e *env) danglingImage(layer, label, ref, other string) string {
	e.t.Helper()
	id := strings.TrimSpace(e.must("import", "-c", "LABEL "+label, layer, ref))
	e.must("import", other, ref)
	return id
}

func (e *env) imageIDs() string {
	e.t.Helper()
	return e.must("images", "-a", "-q", "--no-trunc")
}

// System prune with a label filter removes only the labelled stopped
// containers and dangling images, and reports only the layers it freed.
func TestSystemPruneFilters(t *testing.T) {
	e := newEnv(t)
	filler := layerTar(t, e.dir, "filler", 10)
	gone := e.danglingImage(layerTar(t, e.dir, "gone", 5000), "prune=yes", "pf-a:1", filler)
	kept := e.danglingImage(layerTar(t, e.dir, "kept", 3000), "prune=no", "pf-b:1", filler)
	e.must("run", "--name", "pf-labelled", "-l", "prune=yes", "busybox", "true")
	e.must("run", "--name", "pf-plain", "busybox", "true")

	out := e.must("system", "prune", "-f", "--filter", "label=prune=yes")
	if !strings.Contains(out, "Total reclaimed space: 5kB\n") {
		t.Errorf("system prune reported:\n%s\nwant 5kB (the labelled image's own layer)", out)
	}
	names := e.must("ps", "-a", "--format", "{{.Names}}")
	if names != "pf-plain\n" {
		t.Errorf("containers left: %q, want only pf-plain", names)
	}
	ids := e.imageIDs()
	if strings.Contains(ids, gone) || !strings.Contains(ids, kept) {
		t.Errorf("images left:\n%s\nwant %s gone and %s kept", ids, gone, kept)
	}
	if !strings.Contains(out, "deleted: "+gone) || strings.Contains(out, kept) {
		t.Errorf("system prune output:\n%s", out)
	}

	// label! keeps what carries the label; until must not go with --volumes.
	if r := e.run("system", "prune", "-f", "--volumes", "--filter", "until=1h"); r.code == 0 || !strings.Contains(r.stderr, `"until" filter is not supported with "--volumes"`) {
		t.Errorf("system prune --volumes --filter until: %s", r)
	}
	if r := e.run("system", "prune", "-f", "--filter", "dangling=true"); r.code == 0 || !strings.Contains(r.stderr, "invalid filter 'dangling'") {
		t.Errorf("system prune --filter dangling: %s", r)
	}
	e.must("system", "prune", "-f", "--filter", "label!=prune=no")
	if !strings.Contains(e.imageIDs(), kept) {
		t.Errorf("label!=prune=no removed %s", kept)
	}
	if names := e.must("ps", "-a", "--format", "{{.Names}}"); names != "" {
		t.Errorf("label!=prune=no left containers %q", names)
	}
}

// image prune takes until and label filters, with and without -a.
func TestImagePruneFilters(t *testing.T) {
	e := newEnv(t)
	filler := layerTar(t, e.dir, "filler", 10)
	dang := e.danglingImage(layerTar(t, e.dir, "dang", 2000), "k=v", "ip-a:1", filler)
	tagged := strings.TrimSpace(e.must("import", "-c", "LABEL keep=1", layerTar(t, e.dir, "tagged", 4000), "ip-t:1"))

	// Everything here is seconds old: until=1h prunes nothing.
	out := e.must("image", "prune", "-f", "--filter", "until=1h")
	if out != "Total reclaimed space: 0B\n" || !strings.Contains(e.imageIDs(), dang) {
		t.Fatalf("image prune --filter until=1h:\n%s", out)
	}
	// A label the dangling image lacks keeps it.
	e.must("image", "prune", "-f", "--filter", "label=k=other")
	if !strings.Contains(e.imageIDs(), dang) {
		t.Fatal("label=k=other pruned the image labelled k=v")
	}
	// -a with a label: only the tagged image with that label goes, and
	// busybox (unused, unlabelled) stays.
	out = e.must("image", "prune", "-a", "-f", "--filter", "label=keep=1")
	ids := e.imageIDs()
	if strings.Contains(ids, tagged) || !strings.Contains(ids, dang) || !strings.Contains(out, "untagged: ip-t:1") {
		t.Fatalf("image prune -a --filter label=keep=1:\n%s\nleft:\n%s", out, ids)
	}
	if !strings.Contains(out, "Total reclaimed space: 4kB\n") {
		t.Fatalf("image prune -a reported:\n%s\nwant 4kB", out)
	}
	if e.must("images", "-q", "busybox") == "" {
		t.Fatal("image prune -a --filter label removed busybox")
	}
	// until in the future covers the image made just now.
	e.must("image", "prune", "-f", "--filter", "until=-1m")
	if strings.Contains(e.imageIDs(), dang) {
		t.Fatal("image prune --filter until=-1m kept the dangling image")
	}
	if r := e.run("image", "prune", "-f", "--filter", "reference=x"); r.code == 0 || !strings.Contains(r.stderr, "invalid filter 'reference'") {
		t.Fatalf("image prune --filter reference: %s", r)
	}
}

// Events carry Docker's shape (Actor.ID, Actor.Attributes, status, id,
// from), container labels among the attributes, and stop emits kill
// (with the signal) before die and stop, as Docker does.
func TestEventsShapeAndStopSequence(t *testing.T) {
	e := newEnv(t)
	e.must("volume", "create", "ev-vol")
	e.must("run", "-d", "--name", "ev-trap", "-l", "team=blue", "busybox", "sh", "-c", `trap "exit 0" TERM; echo ready; while :; do sleep 0.1; done`)
	// A SIGTERM that came before the trap would be ignored (PID 1).
	eventually(t, 30*time.Second, "the trap of ev-trap", func() bool { return strings.Contains(e.must("logs", "ev-trap"), "ready") })
	e.must("stop", "ev-trap")
	e.must("rm", "ev-trap")
	// PID 1 without a handler ignores SIGTERM: stop ends it with SIGKILL.
	e.must("run", "-d", "--name", "ev-deaf", "busybox", "sleep", "1000")
	e.must("stop", "-t", "1", "ev-deaf")
	e.must("run", "-d", "--name", "ev-rmf", "busybox", "sleep", "1000")
	e.must("rm", "-f", "ev-rmf")
	e.must("tag", "busybox", "ev-img:1")
	e.must("rmi", "ev-img:1")
	e.must("volume", "rm", "ev-vol")

	format := "{{.Type}} {{.Status}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.signal}} {{.Actor.Attributes.exitCode}} {{.Actor.Attributes.team}} {{.From}}"
	out := e.must("events", "--since", "1h", "--until", "0s", "--filter", "container=ev-trap", "--format", format)
	want := strings.Join([]string{
		"container create create ev-trap <no value> <no value> blue busybox",
		"container start start ev-trap <no value> <no value> blue busybox",
		"container kill kill ev-trap 15 <no value> blue busybox",
		"container die die ev-trap <no value> 0 blue busybox",
		"container stop stop ev-trap <no value> <no value> blue busybox",
		"container destroy destroy ev-trap <no value> <no value> blue busybox",
	}, "\n") + "\n"
	if out != want {
		t.Errorf("events of ev-trap:\n%s\nwant:\n%s", out, want)
	}
	out = e.must("events", "--since", "1h", "--until", "0s", "--filter", "container=ev-deaf", "--filter", "event=kill", "--filter", "event=die",
		"--format", `{{.Action}} {{index .Actor.Attributes "signal"}}{{index .Actor.Attributes "exitCode"}}`)
	if out != "kill 15\nkill 9\ndie 137\n" {
		t.Errorf("kill/die events of ev-deaf:\n%s", out)
	}
	out = e.must("events", "--since", "1h", "--until", "0s", "--filter", "container=ev-rmf", "--format", `{{.Action}} {{index .Actor.Attributes "signal"}}`)
	if out != "create \nstart \nkill 9\ndie \ndestroy \n" {
		t.Errorf("events of rm -f:\n%s", out)
	}
	// id and Actor.ID are the same; labels filter on attributes.
	out = e.must("events", "--since", "1h", "--until", "0s", "--filter", "label=team=blue", "--filter", "event=create", "--format", "{{.ID}}={{.Actor.ID}}")
	if id, actor, _ := strings.Cut(strings.TrimSpace(out), "="); len(id) != 64 || id != actor {
		t.Errorf("label-filtered create event: %q", out)
	}
	out = e.must("events", "--since", "1h", "--until", "0s", "--filter", "type=image", "--format", "{{.Action}} {{.Actor.Attributes.name}} {{printf \"%.7s\" .Actor.ID}}")
	if !strings.HasPrefix(out, "tag ev-img:1 sha256:\nuntag sha256:") {
		t.Errorf("image events:\n%s", out)
	}
	out = e.must("events", "--since", "1h", "--until", "0s", "--filter", "volume=ev-vol", "--format", "{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.driver}}")
	if out != "volume create ev-vol local\nvolume destroy ev-vol local\n" {
		t.Errorf("volume events:\n%s", out)
	}
	if r := e.run("events", "--since", "1h", "--until", "0s", "--filter", "colour=red"); r.code == 0 || !strings.Contains(r.stderr, "invalid filter 'colour'") {
		t.Errorf("events --filter colour: %s", r)
	}
}

// system df -v lists images, containers and volumes in Docker's tables.
func TestSystemDfVerbose(t *testing.T) {
	e := newEnv(t)
	e.must("volume", "create", "dfv-vol")
	e.must("run", "--name", "dfv-ctr", "-v", "dfv-vol:/d", "busybox", "sh", "-c", "printf abc > /d/f; printf xy > /x")
	out := e.must("system", "df", "-v")
	for _, want := range []string{
		"Images space usage:\n\nREPOSITORY   TAG       IMAGE ID       CREATED",
		"SIZE      SHARED SIZE   UNIQUE SIZE   CONTAINERS\nbusybox      latest    ",
		"\nContainers space usage:\n\nCONTAINER ID   IMAGE     COMMAND                  LOCAL VOLUMES   SIZE      CREATED",
		`   busybox   "sh -c 'printf abc >…"   1               2B        `,
		"\nLocal Volumes space usage:\n\nVOLUME NAME   LINKS     SIZE\ndfv-vol       1         3B\n",
		"\nBuild cache usage: 0B\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("system df -v lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "dfv-ctr\n") {
		t.Errorf("system df -v lacks the container:\n%s", out)
	}
	out = e.must("system", "df", "-v", "--format", "{{range .Volumes}}{{.Name}} {{.Links}} {{.Size}}{{end}}")
	if out != "dfv-vol 1 3B\n" {
		t.Errorf("system df -v --format: %q", out)
	}
}

// ps filters since and before by creation order; a filter key ps does not
// know is refused with Docker's message.
func TestPsFiltersSinceBefore(t *testing.T) {
	e := newEnv(t)
	for _, n := range []string{"pso-1", "pso-2", "pso-3"} {
		e.must("create", "--name", n, "busybox", "true")
	}
	for _, tc := range []struct {
		filter, want string
	}{
		{"since=pso-1", "pso-3\npso-2\n"},
		{"before=pso-3", "pso-2\npso-1\n"},
		{"name=^pso-[13]$", "pso-3\npso-1\n"},
		{"status=created", "pso-3\npso-2\npso-1\n"},
	} {
		if out := e.must("ps", "-a", "--filter", tc.filter, "--format", "{{.Names}}"); out != tc.want {
			t.Errorf("ps --filter %s: %q, want %q", tc.filter, out, tc.want)
		}
	}
	if r := e.run("ps", "--filter", "colour=red"); r.code == 0 || !strings.Contains(r.stderr, "invalid filter 'colour'") {
		t.Errorf("ps --filter colour: %s", r)
	}
}
