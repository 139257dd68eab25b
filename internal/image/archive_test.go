package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/layer"
	"github.com/berth-dev/berth/internal/metadata"
	"github.com/berth-dev/berth/internal/snapshot"
	"github.com/berth-dev/berth/internal/testutil"
)

// newTestStore opens an image store in a fresh directory. Extracting
// layers (ownership, whiteout devices) needs root.
func newTestStore(t *testing.T) *Store {
	t.Helper()
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	meta, err := metadata.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := content.New(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := snapshot.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return NewStore(meta, cs, snaps, noUsers{})
}

// tarFile is an entry of a tar built by a test.
type tarFile struct {
	name string
	data string
	link string // symlink target
	dir  bool
}

func makeTar(t *testing.T, files ...tarFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: 0o644, ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg, Size: int64(len(f.data))}
		switch {
		case f.dir:
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o755, 0
		case f.link != "":
			hdr.Typeflag, hdr.Linkname, hdr.Mode, hdr.Size = tar.TypeSymlink, f.link, 0o777, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readTar returns the regular files and symlinks of a tar, and the names
// of all its entries in order.
func readTar(t *testing.T, data []byte) (map[string]tarFile, []string) {
	t.Helper()
	files := map[string]tarFile{}
	var names []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files, names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[hdr.Name] = tarFile{name: hdr.Name, data: string(b), link: hdr.Linkname, dir: hdr.Typeflag == tar.TypeDir}
	}
}

func compress(t *testing.T, data []byte, c layer.Compression) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := layer.CompressStream(&buf, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// makeImage stores layers (bottom first) and records an image over them.
func makeImage(t *testing.T, s *Store, ref, comment string, layers ...[]byte) *Image {
	t.Helper()
	var img *Image
	err := s.WithLease(context.Background(), func(ctx context.Context) error {
		img = makeImageLeased(ctx, t, s, ref, comment, layers...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func makeImageLeased(ctx context.Context, t *testing.T, s *Store, ref, comment string, layers ...[]byte) *Image {
	var stored []Layer
	var parent digest.Digest
	for _, l := range layers {
		got, err := s.AddLayerOn(ctx, parent, bytes.NewReader(l))
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, got)
		parent = got.ChainID
	}
	created := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	cfg := &Config{Created: &created, Architecture: "amd64", OS: "linux", Comment: comment, RootFS: RootFS{Type: "layers"}}
	for _, l := range stored {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.DiffID)
	}
	if ref != "" {
		named, err := ParseTag(ref)
		if err != nil {
			t.Fatal(err)
		}
		ref = named.String()
	}
	img, err := s.Create(ctx, cfg, stored, ref, "")
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func save(t *testing.T, s *Store, refs ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Save(context.Background(), &buf, refs); err != nil {
		t.Fatalf("save %v: %v", refs, err)
	}
	return buf.Bytes()
}

// storeState is what a store holds, for comparisons.
type storeState struct {
	images map[digest.Digest]Image
	tags   map[string]digest.Digest
	blobs  int
	snaps  int
}

func stateOf(t *testing.T, s *Store) storeState {
	t.Helper()
	st := storeState{images: map[digest.Digest]Image{}, tags: map[string]digest.Digest{}}
	imgs, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs {
		st.images[img.ID] = img
		for _, tag := range img.RepoTags {
			st.tags[tag] = img.ID
		}
	}
	s.content.Walk(func(digest.Digest, int64) error { st.blobs++; return nil })
	chains, err := s.snaps.List()
	if err != nil {
		t.Fatal(err)
	}
	st.snaps = len(chains)
	return st
}

func layerSummary(ls []Layer) string {
	var b strings.Builder
	for _, l := range ls {
		fmt.Fprintf(&b, "%s/%s/%s/%d/%d;", l.DiffID, l.ChainID, l.Blob, l.BlobSize, l.Size)
	}
	return b.String()
}

var (
	baseLayer  = tarFile{name: "etc/os-release", data: "NAME=test\n"}
	baseLayer2 = tarFile{name: "bin/tool", data: "#!/bin/sh\necho tool\n"}
)

func TestArchiveRoundTrip(t *testing.T) {
	src := newTestStore(t)
	ctx := context.Background()
	base := makeTar(t, tarFile{name: "etc/", dir: true}, baseLayer, tarFile{name: "bin/", dir: true}, baseLayer2)
	app := makeImage(t, src, "example.com/team/app:1.0", "app", base, makeTar(t, tarFile{name: "app/", dir: true}, tarFile{name: "app/run", data: "run\n"}))
	if _, err := src.Tag(ctx, "example.com/team/app:1.0", "example.com/team/app:latest"); err != nil {
		t.Fatal(err)
	}
	tool := makeImage(t, src, "tool:2", "tool", base, makeTar(t, tarFile{name: ".wh.etc", data: ""}))
	untagged := makeImage(t, src, "", "untagged", makeTar(t, tarFile{name: "only", data: "x"}))

	tests := []struct {
		name     string
		refs     []string
		wantTags map[string]digest.Digest
		wantIDs  []digest.Digest
	}{
		{
			name:     "tags",
			refs:     []string{"example.com/team/app:1.0", "tool:2"},
			wantTags: map[string]digest.Digest{"example.com/team/app:1.0": app.ID, "docker.io/library/tool:2": tool.ID},
			wantIDs:  []digest.Digest{app.ID, tool.ID},
		},
		{
			name:     "repository saves every tag",
			refs:     []string{"example.com/team/app"},
			wantTags: map[string]digest.Digest{"example.com/team/app:1.0": app.ID, "example.com/team/app:latest": app.ID},
			wantIDs:  []digest.Digest{app.ID},
		},
		{
			name:     "IDs save untagged",
			refs:     []string{untagged.ID.String(), ShortID(app.ID.String())},
			wantTags: map[string]digest.Digest{},
			wantIDs:  []digest.Digest{untagged.ID, app.ID},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			archive := save(t, src, tc.refs...)
			dst := newTestStore(t)
			loaded, err := dst.Load(ctx, bytes.NewReader(archive))
			if err != nil {
				t.Fatal(err)
			}
			var ids []digest.Digest
			for _, l := range loaded {
				ids = append(ids, l.ID)
			}
			if !slices.Equal(ids, tc.wantIDs) {
				t.Errorf("loaded %v, want %v", ids, tc.wantIDs)
			}
			got := stateOf(t, dst)
			if fmt.Sprint(got.tags) != fmt.Sprint(tc.wantTags) {
				t.Errorf("tags %v, want %v", got.tags, tc.wantTags)
			}
			want := stateOf(t, src)
			for _, id := range tc.wantIDs {
				g, w := got.images[id], want.images[id]
				if g.ID != id {
					t.Fatalf("image %s missing after load", id)
				}
				if layerSummary(g.Layers) != layerSummary(w.Layers) {
					t.Errorf("layers of %s:\n got %s\nwant %s", id, layerSummary(g.Layers), layerSummary(w.Layers))
				}
				if g.ManifestDigest != w.ManifestDigest || g.Size != w.Size || !g.Created.Equal(w.Created) {
					t.Errorf("record of %s: got %+v, want %+v", id, g.Record, w.Record)
				}
				gc, _ := dst.RawConfig(id)
				wc, _ := src.RawConfig(id)
				if !bytes.Equal(gc, wc) {
					t.Errorf("config of %s not byte-identical", id)
				}
				for _, l := range g.Layers {
					if !dst.snaps.Exists(l.ChainID) {
						t.Errorf("snapshot %s missing", l.ChainID)
					}
				}
			}
			// Saving again from the new store gives the same bytes.
			if again := save(t, dst, tc.refs...); !bytes.Equal(again, archive) {
				t.Errorf("the archive saved from the loaded store differs from the original")
			}
		})
	}
}

func TestArchiveLayout(t *testing.T) {
	s := newTestStore(t)
	base := makeTar(t, baseLayer)
	a := makeImage(t, s, "a:1", "a", base, makeTar(t, tarFile{name: "a", data: "a"}))
	b := makeImage(t, s, "b:1", "b", base, makeTar(t, tarFile{name: "b", data: "b"}))
	data := save(t, s, "a:1", "b:1", "a:1")
	files, names := readTar(t, data)

	count := map[string]int{}
	for _, n := range names {
		count[n]++
	}
	for n, c := range count {
		if c != 1 {
			t.Errorf("%s written %d times", n, c)
		}
	}
	baseBlob := blobName(a.Layers[0].Blob)
	if b.Layers[0].Blob != a.Layers[0].Blob || count[baseBlob] != 1 {
		t.Errorf("shared layer %s: written %d times", baseBlob, count[baseBlob])
	}
	// Metadata first, layers last, so that a streaming reader knows them.
	if i := slices.Index(names, "manifest.json"); i > slices.Index(names, baseBlob) {
		t.Errorf("manifest.json comes after the layers: %v", names)
	}

	var manifests []archiveManifest
	if err := json.Unmarshal([]byte(files["manifest.json"].data), &manifests); err != nil {
		t.Fatal(err)
	}
	if len(manifests) != 2 {
		t.Fatalf("manifest.json: %+v", manifests)
	}
	for i, img := range []*Image{a, b} {
		m := manifests[i]
		if m.Config != "blobs/sha256/"+img.ID.Encoded() || files[m.Config].data == "" {
			t.Errorf("manifest %d config %q", i, m.Config)
		}
		if digest.FromString(files[m.Config].data) != img.ID {
			t.Errorf("config of %s is not byte-identical", img.ID)
		}
		if want := []string{string(rune('a'+i)) + ":1"}; !slices.Equal(m.RepoTags, want) {
			t.Errorf("RepoTags %v, want %v", m.RepoTags, want)
		}
		for j, l := range m.Layers {
			if l != blobName(img.Layers[j].Blob) || digest.FromString(files[l].data) != img.Layers[j].DiffID {
				t.Errorf("layer %d of %s: %s", j, img.ID, l)
			}
		}
	}
	if got := files["oci-layout"].data; got != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout %s", got)
	}
	var repos map[string]map[string]string
	if err := json.Unmarshal([]byte(files["repositories"].data), &repos); err != nil || repos["a"]["1"] != a.Layers[1].Blob.Encoded() {
		t.Errorf("repositories %s (%v)", files["repositories"].data, err)
	}
	var idx Index
	if err := json.Unmarshal([]byte(files["index.json"].data), &idx); err != nil {
		t.Fatal(err)
	}
	if idx.SchemaVersion != 2 || len(idx.Manifests) != 2 {
		t.Fatalf("index.json %s", files["index.json"].data)
	}
	for i, d := range idx.Manifests {
		want := map[string]string{AnnotationImageName: "docker.io/library/" + string(rune('a'+i)) + ":1", AnnotationRefName: "1"}
		if fmt.Sprint(d.Annotations) != fmt.Sprint(want) {
			t.Errorf("index entry %d annotations %v, want %v", i, d.Annotations, want)
		}
		raw := files[blobName(d.Digest)].data
		var m Manifest
		if digest.FromString(raw) != d.Digest || int64(len(raw)) != d.Size || json.Unmarshal([]byte(raw), &m) != nil {
			t.Fatalf("manifest blob %s", d.Digest)
		}
		if blobName(m.Config.Digest) != manifests[i].Config {
			t.Errorf("OCI manifest %d config %s, manifest.json %s", i, m.Config.Digest, manifests[i].Config)
		}
	}

	// An ID saves the image untagged, in both layouts.
	files, _ = readTar(t, save(t, s, a.ID.String()))
	if !strings.Contains(files["manifest.json"].data, `"RepoTags":null`) {
		t.Errorf("untagged manifest.json: %s", files["manifest.json"].data)
	}
	if strings.Contains(files["index.json"].data, "annotations") {
		t.Errorf("untagged index.json: %s", files["index.json"].data)
	}
	if _, ok := files["repositories"]; ok {
		t.Errorf("untagged archive has a repositories file")
	}

	var buf bytes.Buffer
	if err := s.Save(context.Background(), &buf, []string{"nosuch:1"}); !errdefs.IsNotFound(err) {
		t.Errorf("save of a missing image: %v", err)
	}
}

// legacyArchive builds an archive as Docker 20.10's `docker save` writes it:
// <id>.json, <v1 id>/{VERSION,json,layer.tar}, manifest.json, repositories.
// The third layer repeats the second and, as docker does, is a symlink to
// it. The first layer is gzip-compressed, as loaders must accept.
type legacyArchive struct {
	config  []byte
	id      digest.Digest
	layers  [][]byte // uncompressed
	dirs    []string
	files   []tarFile
	entries map[string]int
}

func newLegacyArchive(t *testing.T) *legacyArchive {
	t.Helper()
	la := &legacyArchive{layers: [][]byte{
		makeTar(t, tarFile{name: "etc/", dir: true}, baseLayer, tarFile{name: "etc/gone", data: "soon gone"}),
		makeTar(t, tarFile{name: "etc/", dir: true}, tarFile{name: "etc/.wh.gone"}, tarFile{name: "etc/motd", data: "hi\n"}),
	}}
	la.layers = append(la.layers, la.layers[1])
	var diffIDs []string
	for _, l := range la.layers {
		diffIDs = append(diffIDs, `"`+digest.FromBytes(l).String()+`"`)
	}
	// Docker's own formatting and field order: Load must keep these bytes.
	la.config = []byte(`{"architecture":"amd64","config":{"Hostname":"","Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"Image":"sha256:0000","Labels":null},"container":"3b8b","container_config":{"Hostname":"3b8b","Cmd":["/bin/sh","-c","#(nop) ","CMD [\"sh\"]"]},"created":"2023-05-19T20:19:24.343375459Z","docker_version":"20.10.23","history":[{"created":"2023-05-19T20:19:24Z","created_by":"/bin/sh -c #(nop) ADD file:1 in / "},{"created":"2023-05-19T20:19:24Z","created_by":"/bin/sh -c #(nop) ADD file:2 in / "},{"created":"2023-05-19T20:19:24Z","created_by":"/bin/sh -c #(nop) ADD file:2 in / "}],"os":"linux","rootfs":{"type":"layers","diff_ids":[` + strings.Join(diffIDs, ",") + `]}}`)
	la.id = digest.FromBytes(la.config)
	var parent string
	for i := range la.layers {
		v1 := digest.FromString(fmt.Sprintf("v1 %d %s", i, parent)).Encoded()
		la.dirs = append(la.dirs, v1)
		js := fmt.Sprintf(`{"id":%q,"parent":%q,"created":"1970-01-01T00:00:00Z"}`, v1, parent)
		la.files = append(la.files, tarFile{name: v1 + "/", dir: true}, tarFile{name: v1 + "/VERSION", data: "1.0"}, tarFile{name: v1 + "/json", data: js})
		switch i {
		case 0:
			la.files = append(la.files, tarFile{name: v1 + "/layer.tar", data: string(compress(t, la.layers[0], layer.Gzip))})
		case 1:
			la.files = append(la.files, tarFile{name: v1 + "/layer.tar", data: string(la.layers[1])})
		case 2:
			la.files = append(la.files, tarFile{name: v1 + "/layer.tar", link: "../" + la.dirs[1] + "/layer.tar"})
		}
		parent = v1
	}
	la.files = append(la.files, tarFile{name: la.id.Encoded() + ".json", data: string(la.config)})
	var layerPaths []string
	for _, d := range la.dirs {
		layerPaths = append(layerPaths, `"`+d+`/layer.tar"`)
	}
	la.files = append(la.files,
		tarFile{name: "manifest.json", data: `[{"Config":"` + la.id.Encoded() + `.json","RepoTags":["example.com/legacy:v1","busybox:latest"],"Layers":[` + strings.Join(layerPaths, ",") + `]}]`},
		tarFile{name: "repositories", data: `{"busybox":{"latest":"` + la.dirs[2] + `"},"example.com/legacy":{"v1":"` + la.dirs[2] + `"}}`},
	)
	la.entries = map[string]int{}
	for i, f := range la.files {
		la.entries[f.name] = i
	}
	return la
}

func (la *legacyArchive) tar(t *testing.T) []byte { return makeTar(t, la.files...) }

func TestArchiveLoadDocker2010(t *testing.T) {
	ctx := context.Background()
	la := newLegacyArchive(t)
	s := newTestStore(t)
	loaded, err := s.Load(ctx, bytes.NewReader(la.tar(t)))
	if err != nil {
		t.Fatal(err)
	}
	wantTags := []string{"example.com/legacy:v1", "docker.io/library/busybox:latest"}
	if len(loaded) != 1 || loaded[0].ID != la.id || !slices.Equal(loaded[0].RepoTags, wantTags) || loaded[0].Replaced != nil {
		t.Fatalf("loaded %+v, want %s %v", loaded, la.id, wantTags)
	}
	raw, err := s.RawConfig(la.id)
	if err != nil || !bytes.Equal(raw, la.config) {
		t.Fatalf("config not kept byte for byte (%v)", err)
	}
	img, err := s.Resolve(ctx, "busybox")
	if err != nil {
		t.Fatal(err)
	}
	wantChains := ChainIDs([]digest.Digest{digest.FromBytes(la.layers[0]), digest.FromBytes(la.layers[1]), digest.FromBytes(la.layers[2])})
	if !slices.Equal(img.ChainIDs(), wantChains) || img.Created.Format(time.RFC3339) != "2023-05-19T20:19:24Z" {
		t.Fatalf("record %+v", img.Record)
	}
	// Blobs are kept as they came: layer 0 gzip, the others plain tars.
	gz := digest.FromBytes([]byte(la.files[la.entries[la.dirs[0]+"/layer.tar"]].data))
	for i, l := range img.Layers {
		want, mt := l.DiffID, MediaTypeImageLayer
		if i == 0 {
			want, mt = gz, MediaTypeImageLayerGzip
		}
		if l.Blob != want || l.MediaType != mt || !s.content.Exists(l.Blob) {
			t.Errorf("layer %d blob %s %s (diffID %s), want %s %s", i, l.Blob, l.MediaType, l.DiffID, want, mt)
		}
	}
	if b, err := os.ReadFile(filepath.Join(s.snaps.Dir(wantChains[0]), "etc/os-release")); err != nil || string(b) != baseLayer.data {
		t.Errorf("layer 0 not extracted: %q %v", b, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(s.snaps.Dir(wantChains[2]), "etc/gone"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
		t.Errorf("whiteout of the symlinked layer not extracted: %v", err)
	}

	// Loading again retags: busybox moves from another image to this one.
	other := makeImage(t, s, "busybox:latest", "other", makeTar(t, tarFile{name: "x", data: "x"}))
	loaded, err = s.Load(ctx, bytes.NewReader(la.tar(t)))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]digest.Digest{"docker.io/library/busybox:latest": other.ID}; fmt.Sprint(loaded[0].Replaced) != fmt.Sprint(want) {
		t.Errorf("replaced %v, want %v", loaded[0].Replaced, want)
	}
	st2 := stateOf(t, s)
	if st2.tags["docker.io/library/busybox:latest"] != la.id || len(st2.images[other.ID].RepoTags) != 0 {
		t.Errorf("tags after reload: %v", st2.tags)
	}
}

func TestArchiveLoadRefusesTampering(t *testing.T) {
	la := newLegacyArchive(t)
	tamperedLayer := makeTar(t, tarFile{name: "etc/", dir: true}, tarFile{name: "etc/.wh.gone"}, tarFile{name: "etc/motd", data: "pwned\n"})
	tests := []struct {
		name    string
		archive func(t *testing.T) []byte
		want    string // in the error
	}{
		{
			name: "legacy layer content",
			archive: func(t *testing.T) []byte {
				la := newLegacyArchive(t)
				la.files[la.entries[la.dirs[1]+"/layer.tar"]].data = string(tamperedLayer)
				return la.tar(t)
			},
			want: la.dirs[1] + "/layer.tar",
		},
		{
			name: "legacy config",
			archive: func(t *testing.T) []byte {
				la := newLegacyArchive(t)
				f := &la.files[la.entries[la.id.Encoded()+".json"]]
				f.data = strings.Replace(f.data, `"Cmd":["sh"]`, `"Cmd":["id"]`, 1)
				return la.tar(t)
			},
			want: la.id.Encoded() + ".json",
		},
		{
			name: "missing layer",
			archive: func(t *testing.T) []byte {
				la := newLegacyArchive(t)
				la.files = slices.Delete(la.files, la.entries[la.dirs[1]+"/layer.tar"], la.entries[la.dirs[1]+"/layer.tar"]+1)
				return la.tar(t)
			},
			want: la.dirs[1] + "/layer.tar is missing",
		},
		{
			name: "OCI blob of a berth archive",
			archive: func(t *testing.T) []byte {
				src := newTestStore(t)
				img := makeImage(t, src, "victim:1", "v", makeTar(t, baseLayer), makeTar(t, tarFile{name: "etc/motd", data: "hi\n"}))
				files, names := readTar(t, save(t, src, "victim:1"))
				var out []tarFile
				for _, n := range names {
					f := files[n]
					if n == blobName(img.Layers[1].Blob) {
						f.data = strings.Replace(f.data, "hi\n", "yo\n", 1)
					}
					out = append(out, f)
				}
				return makeTar(t, out...)
			},
			want: "layer blobs/sha256/",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t)
			_, err := s.Load(context.Background(), bytes.NewReader(tc.archive(t)))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errdefs.IsInvalidArgument(err) {
				t.Fatalf("err = %v, want an invalid-argument error mentioning %q", err, tc.want)
			}
			if st := stateOf(t, s); len(st.images) != 0 || len(st.tags) != 0 || st.blobs != 0 || st.snaps != 0 {
				t.Errorf("a refused load left %d images, %d tags, %d blobs, %d snapshots", len(st.images), len(st.tags), st.blobs, st.snaps)
			}
			if ents, _ := os.ReadDir(s.ingestDir()); len(ents) != 0 {
				t.Errorf("ingest not cleaned up: %v", ents)
			}
		})
	}
}

func TestArchiveLoadCompressedAndFiles(t *testing.T) {
	src := newTestStore(t)
	img := makeImage(t, src, "zipped:1", "z", makeTar(t, baseLayer), makeTar(t, baseLayer2))
	plain := save(t, src, "zipped:1")
	tests := []struct {
		name   string
		data   []byte
		asFile bool // read from an *os.File (in place when uncompressed)
	}{
		{"plain stream", plain, false},
		{"plain file", plain, true},
		{"gzip stream", compress(t, plain, layer.Gzip), false},
		{"gzip file", compress(t, plain, layer.Gzip), true},
		{"zstd stream", compress(t, plain, layer.Zstd), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t)
			var r io.Reader = bytes.NewReader(tc.data)
			if tc.asFile {
				p := filepath.Join(t.TempDir(), "a.tar")
				// Some bytes before the archive: reading starts at the
				// file's current offset, as with `load < file`.
				if err := os.WriteFile(p, append([]byte("skip"), tc.data...), 0o600); err != nil {
					t.Fatal(err)
				}
				f, err := os.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if _, err := f.Seek(4, io.SeekStart); err != nil {
					t.Fatal(err)
				}
				r = f
			}
			loaded, err := s.Load(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			if len(loaded) != 1 || loaded[0].ID != img.ID || !slices.Equal(loaded[0].RepoTags, []string{"docker.io/library/zipped:1"}) {
				t.Fatalf("loaded %+v", loaded)
			}
			got, err := s.Resolve(context.Background(), "zipped:1")
			if err != nil || layerSummary(got.Layers) != layerSummary(img.Layers) || got.ManifestDigest != img.ManifestDigest {
				t.Fatalf("loaded image %+v (%v), want %+v", got, err, img.Record)
			}
		})
	}
}

// A plain OCI layout, as skopeo or buildx write it: index.json only, gzip
// layers, a multi-platform index, tags in annotations.
func TestArchiveLoadOCILayout(t *testing.T) {
	ctx := context.Background()
	l1 := makeTar(t, baseLayer)
	l1gz := compress(t, l1, layer.Gzip)
	cfg := []byte(`{"architecture":"` + goruntime.GOARCH + `","os":"linux","config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["` + digest.FromBytes(l1).String() + `"]}}`)
	manifest, _ := json.Marshal(Manifest{
		MediaType: MediaTypeImageManifest,
		Config:    Descriptor{MediaType: MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))},
		Layers:    []Descriptor{{MediaType: MediaTypeImageLayerGzip, Digest: digest.FromBytes(l1gz), Size: int64(len(l1gz))}},
	})
	host := Platform{OS: "linux", Architecture: goruntime.GOARCH}
	index, _ := json.Marshal(Index{MediaType: MediaTypeImageIndex, Manifests: []Descriptor{
		{MediaType: MediaTypeImageManifest, Digest: digest.FromString("absent"), Size: 3, Platform: &Platform{OS: "linux", Architecture: "s390x"}},
		{MediaType: MediaTypeImageManifest, Digest: digest.FromBytes(manifest), Size: int64(len(manifest)), Platform: &host},
	}})
	blob := func(b []byte) tarFile { return tarFile{name: blobName(digest.FromBytes(b)), data: string(b)} }
	top := func(ann map[string]string) string {
		b, _ := json.Marshal(Index{MediaType: MediaTypeImageIndex, Manifests: []Descriptor{
			{MediaType: MediaTypeImageIndex, Digest: digest.FromBytes(index), Size: int64(len(index)), Annotations: ann},
		}})
		return string(b)
	}
	tests := []struct {
		name string
		ann  map[string]string
		tags []string
	}{
		{"containerd name", map[string]string{AnnotationImageName: "docker.io/library/oci:1", AnnotationRefName: "1"}, []string{"docker.io/library/oci:1"}},
		{"full ref.name", map[string]string{AnnotationRefName: "example.com/oci:2"}, []string{"example.com/oci:2"}},
		{"bare tag", map[string]string{AnnotationRefName: "latest"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			archive := makeTar(t,
				tarFile{name: "oci-layout", data: `{"imageLayoutVersion":"1.0.0"}`},
				tarFile{name: "index.json", data: top(tc.ann)},
				blob(index), blob(manifest), blob(cfg), blob(l1gz))
			s := newTestStore(t)
			loaded, err := s.Load(ctx, bytes.NewReader(archive))
			if err != nil {
				t.Fatal(err)
			}
			if len(loaded) != 1 || loaded[0].ID != digest.FromBytes(cfg) || !slices.Equal(loaded[0].RepoTags, tc.tags) {
				t.Fatalf("loaded %+v, want tags %v", loaded, tc.tags)
			}
			img, err := s.Resolve(ctx, loaded[0].ID.String())
			if err != nil {
				t.Fatal(err)
			}
			// Kept as it came: the gzip blob and the archive's manifest.
			if img.Layers[0].Blob != digest.FromBytes(l1gz) || img.ManifestDigest != digest.FromBytes(manifest) {
				t.Errorf("record %+v", img.Record)
			}
		})
	}
}

func TestArchiveLoadInvalid(t *testing.T) {
	tests := []struct {
		name    string
		archive []byte
		class   error
	}{
		{"not a tar", []byte(strings.Repeat("garbage ", 200)), errdefs.ErrInvalidArgument},
		{"empty tar", makeTar(t), errdefs.ErrInvalidArgument},
		{"pre-1.10 layout", makeTar(t, tarFile{name: "repositories", data: "{}"}), errdefs.ErrNotImplemented},
		{"bad tag", makeTar(t, tarFile{name: "c.json", data: `{"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`},
			tarFile{name: "manifest.json", data: `[{"Config":"c.json","RepoTags":["Bad Tag"],"Layers":[]}]`}), errdefs.ErrInvalidArgument},
		{"layer count", makeTar(t, tarFile{name: "c.json", data: `{"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`},
			tarFile{name: "manifest.json", data: `[{"Config":"c.json","Layers":["x/layer.tar"]}]`}), errdefs.ErrInvalidArgument},
		{"symlink loop", makeTar(t, tarFile{name: "manifest.json", link: "manifest.json"}), errdefs.ErrInvalidArgument},
		{"malformed digest in index", makeTar(t, tarFile{name: "index.json", data: `{"schemaVersion":2,"manifests":[{"mediaType":"` + MediaTypeImageManifest + `","digest":"sha256:ABC","size":2}]}`}), errdefs.ErrInvalidArgument},
		{"sha512 digest in index", makeTar(t, tarFile{name: "index.json", data: `{"schemaVersion":2,"manifests":[{"mediaType":"` + MediaTypeImageManifest + `","digest":"sha512:` + strings.Repeat("ab", 64) + `","size":2}]}`}), errdefs.ErrNotImplemented},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t)
			_, err := s.Load(context.Background(), bytes.NewReader(tc.archive))
			if !errors.Is(err, tc.class) {
				t.Fatalf("err = %v, want class %v", err, tc.class)
			}
		})
	}
}
