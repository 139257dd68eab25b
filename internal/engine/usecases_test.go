package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
)

// newTestEngine opens an engine over fresh state (no container runs).
func newTestEngine(t *testing.T) *Engine {
	t.Helper()
	testutil.RequiresRoot(t) // layer extraction keeps owners
	dir := t.TempDir()
	e, err := New(context.Background(), Config{Root: filepath.Join(dir, "root"), RunRoot: filepath.Join(dir, "run"), Self: "/bin/true"})
	if err != nil {
		t.Fatal(err)
	}
	// No container runs here: whatever the use cases do, the root
	// must not leave a bridge or a table in the kernel.
	t.Cleanup(func() { testutil.NoDataplaneLeft(t, e.Networks.DataplaneTable(), "at the end of the test") })
	return e
}

func oneFileTar(t *testing.T, name, body string) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(body))
	tw.Close()
	return &buf
}

// eventsOf lists "Type Action Actor.ID" of the events recorded so far.
func eventsOf(t *testing.T, e *Engine) []string {
	t.Helper()
	var out []string
	err := e.Events(context.Background(), EventsRequest{Since: "1", Until: fmt.Sprint(time.Now().Add(time.Second).Unix())}, func(m EventMessage) error {
		out = append(out, m.Type+" "+m.Action+" "+m.Actor.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestImageAndVolumeUseCases drives the image and volume use cases the
// CLI renders: Docker's results, and the events the engine emits (never
// the front end).
func TestImageAndVolumeUseCases(t *testing.T) {
	e := newTestEngine(t)
	ctx := context.Background()

	imp, err := e.ImageImport(ctx, oneFileTar(t, "hello", "hi\n"), ImageImportRequest{Reference: "imported:1", Source: "-"})
	if err != nil || !strings.HasPrefix(imp.ID, "sha256:") {
		t.Fatalf("ImageImport = %+v, %v", imp, err)
	}
	if _, err := e.ImageTag(ctx, "imported:1", "other"); err != nil {
		t.Fatal(err)
	}

	var saved bytes.Buffer
	if err := e.ImageSave(ctx, &saved, []string{"other"}); err != nil {
		t.Fatal(err)
	}

	// rmi of one of two tags untags; of the last tag, deletes too: the
	// untagged references first, then the deleted IDs.
	items, err := e.ImageRemove(ctx, "other", ImageRemoveRequest{})
	if want := []ImageDeleteResponseItem{{Untagged: "other:latest"}}; err != nil || !slices.Equal(items, want) {
		t.Fatalf("ImageRemove(other) = %+v, %v; want %+v", items, err, want)
	}
	items, err = e.ImageRemove(ctx, "imported:1", ImageRemoveRequest{})
	if want := []ImageDeleteResponseItem{{Untagged: "imported:1"}, {Deleted: imp.ID}}; err != nil || !slices.Equal(items, want) {
		t.Fatalf("ImageRemove(imported:1) = %+v, %v; want %+v", items, err, want)
	}
	if _, err := e.ImageRemove(ctx, "imported:1", ImageRemoveRequest{}); !errdefs.IsNotFound(err) {
		t.Fatalf("ImageRemove of a removed image: %v, want not found", err)
	}

	loaded, err := e.ImageLoad(ctx, &saved)
	if err != nil || len(loaded) != 1 || loaded[0].ID != imp.ID || !slices.Equal(loaded[0].RepoTags, []string{"other:latest"}) {
		t.Fatalf("ImageLoad = %+v, %v; want %s as other:latest (a familiar name)", loaded, err, imp.ID)
	}

	v, err := e.VolumeCreate(ctx, VolumeCreateRequest{Name: "data", Driver: "local", Labels: map[string]string{"a": "b"}})
	if err != nil || v.Name != "data" || v.Labels["a"] != "b" {
		t.Fatalf("VolumeCreate = %+v, %v", v, err)
	}
	if err := e.VolumeRemove(ctx, "data", false); err != nil {
		t.Fatal(err)
	}
	if err := e.VolumeRemove(ctx, "data", false); !errdefs.IsNotFound(err) {
		t.Fatalf("VolumeRemove of a removed volume: %v, want not found", err)
	}

	got := eventsOf(t, e)
	want := []string{
		"image tag " + imp.ID, "image save " + imp.ID, "image untag " + imp.ID, "image untag " + imp.ID,
		"image delete " + imp.ID, "image load " + imp.ID, "volume create data", "volume destroy data",
	}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
}

func TestChangeTypeAsDocker(t *testing.T) {
	for kind, want := range map[ChangeType]string{ChangeModify: "C", ChangeAdd: "A", ChangeDelete: "D"} {
		if kind.String() != want {
			t.Errorf("%d prints %q, want %q", kind, kind.String(), want)
		}
	}
	if ChangeModify != 0 || ChangeAdd != 1 || ChangeDelete != 2 {
		t.Error("Docker's change kinds are 0 modified, 1 added, 2 deleted")
	}
}
