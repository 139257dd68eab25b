package image

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/layer"
	"github.com/berth-dev/berth/internal/metadata"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// leftovers counts what the stores hold beyond the images' records.
func leftovers(t *testing.T, s *Store) (blobs, snaps, leases int) {
	t.Helper()
	s.content.Walk(func(digest.Digest, int64) error { blobs++; return nil })
	list, err := s.snaps.List()
	if err != nil {
		t.Fatal(err)
	}
	snaps = len(list)
	s.meta.View(context.Background(), func(tx *metadata.Tx) error {
		return tx.ForEach(metadata.BucketLeases, func(string, []byte) error { leases++; return nil })
	})
	return
}

func TestIngestKeepsBlobAsItCame(t *testing.T) {
	plain := makeTar(t, tarFile{name: "etc/", dir: true}, tarFile{name: "etc/motd", data: "hello\n"})
	diffID := digest.FromBytes(plain)
	tests := []struct {
		name string
		c    layer.Compression
		mt   string
	}{
		{"plain", layer.Uncompressed, MediaTypeImageLayer},
		{"gzip", layer.Gzip, MediaTypeImageLayerGzip},
		{"zstd", layer.Zstd, MediaTypeImageLayerZstd},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t)
			blob := compress(t, plain, tc.c)
			var l Layer
			err := s.WithLease(context.Background(), func(ctx context.Context) error {
				var err error
				l, err = s.IngestLayer(ctx, bytes.NewReader(blob), LayerSource{Blob: digest.FromBytes(blob), Size: int64(len(blob)), DiffID: diffID})
				if err != nil {
					return err
				}
				cfg := fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%q]}}`, diffID)
				_, err = s.CreateImage(ctx, CreateOptions{Config: cfg, Layers: []Layer{l}, Ref: "docker.io/library/t:1"})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if l.Blob != digest.FromBytes(blob) || l.BlobSize != int64(len(blob)) || l.DiffID != diffID || l.MediaType != tc.mt || l.Size != 6 {
				t.Fatalf("layer %+v", l)
			}
			got, err := s.content.ReadAll(l.Blob)
			if err != nil || !bytes.Equal(got, blob) {
				t.Fatalf("stored blob differs from what came (%v)", err)
			}
			if b, err := os.ReadFile(filepath.Join(s.snaps.Dir(l.ChainID), "etc/motd")); err != nil || string(b) != "hello\n" {
				t.Fatalf("not extracted: %q %v", b, err)
			}
			if _, _, leases := leftovers(t, s); leases != 0 {
				t.Fatalf("%d leases left", leases)
			}
		})
	}
}

func TestIngestRefusesBadLayers(t *testing.T) {
	plain := makeTar(t, tarFile{name: "a", data: strings.Repeat("x", 5000)})
	gz := compress(t, plain, layer.Gzip)
	tests := []struct {
		name string
		data []byte
		src  LayerSource
		want string
	}{
		{"diff ID mismatch", plain, LayerSource{DiffID: digest.FromString("other")}, "the image configuration says"},
		{"blob digest mismatch", gz, LayerSource{Blob: digest.FromString("other"), DiffID: digest.FromBytes(plain)}, "the manifest says"},
		{"blob size mismatch", gz, LayerSource{Size: int64(len(gz)) + 1}, "bytes, but the manifest says"},
		{"truncated gzip", gz[:len(gz)/2], LayerSource{}, "unexpected EOF"},
		{"truncated tar", plain[:700], LayerSource{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t)
			_, err := s.IngestLayer(context.Background(), bytes.NewReader(tc.data), tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
			if tc.want != "" && !errdefs.IsInvalidArgument(err) {
				t.Errorf("err = %v, want an invalid-argument error", err)
			}
			if blobs, snaps, leases := leftovers(t, s); blobs+snaps+leases != 0 {
				t.Fatalf("a refused layer left %d blobs, %d snapshots, %d leases", blobs, snaps, leases)
			}
			if ents, _ := os.ReadDir(s.ingestDir()); len(ents) != 0 {
				t.Fatalf("ingest area not empty: %v", ents)
			}
		})
	}
}

// TestSaveLoadSaveKeepsDigests loads an OCI layout with gzip and zstd
// layers, saves it, loads that into a fresh store and saves again: the
// manifest, config and layer blobs keep their digests, and both saves are
// the same bytes. The digests are pinned in testdata (go test -update).
func TestSaveLoadSaveKeepsDigests(t *testing.T) {
	ctx := context.Background()
	l1 := makeTar(t, tarFile{name: "etc/", dir: true}, tarFile{name: "etc/os-release", data: "ID=test\n"})
	l2 := makeTar(t, tarFile{name: "etc/", dir: true}, tarFile{name: "etc/motd", data: "hi\n"})
	l3 := makeTar(t, tarFile{name: "data", data: "plain\n"})
	blobs := [][]byte{compress(t, l1, layer.Gzip), compress(t, l2, layer.Zstd), l3}
	mts := []string{MediaTypeImageLayerGzip, MediaTypeImageLayerZstd, MediaTypeImageLayer}
	cfg := fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"]},"created":"2024-05-01T00:00:00Z","rootfs":{"type":"layers","diff_ids":[%q,%q,%q]}}`,
		digest.FromBytes(l1), digest.FromBytes(l2), digest.FromBytes(l3))
	m := Manifest{Versioned: Versioned{SchemaVersion: 2}, MediaType: MediaTypeImageManifest,
		Config: Descriptor{MediaType: MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}}
	files := []tarFile{{name: "oci-layout", data: `{"imageLayoutVersion":"1.0.0"}`}, {name: blobName(digest.FromBytes(cfg)), data: string(cfg)}}
	for i, b := range blobs {
		m.Layers = append(m.Layers, Descriptor{MediaType: mts[i], Digest: digest.FromBytes(b), Size: int64(len(b))})
		files = append(files, tarFile{name: blobName(digest.FromBytes(b)), data: string(b)})
	}
	mraw := []byte(mustJSON(t, m))
	files = append(files, tarFile{name: blobName(digest.FromBytes(mraw)), data: string(mraw)},
		tarFile{name: "index.json", data: fmt.Sprintf(`{"schemaVersion":2,"manifests":[{"mediaType":%q,"digest":%q,"size":%d,"annotations":{"io.containerd.image.name":"docker.io/library/golden:1","org.opencontainers.image.ref.name":"1"}}]}`,
			MediaTypeImageManifest, digest.FromBytes(mraw), len(mraw))})

	s1 := newTestStore(t)
	if _, err := s1.Load(ctx, bytes.NewReader(makeTar(t, files...))); err != nil {
		t.Fatal(err)
	}
	save1 := save(t, s1, "golden:1")
	s2 := newTestStore(t)
	if _, err := s2.Load(ctx, bytes.NewReader(save1)); err != nil {
		t.Fatal(err)
	}
	save2 := save(t, s2, "golden:1")
	if !bytes.Equal(save1, save2) {
		t.Error("save -> load -> save changed the archive")
	}
	var got strings.Builder
	for i, s := range []*Store{s1, s2} {
		img, err := s.Resolve(ctx, "golden:1")
		if err != nil {
			t.Fatal(err)
		}
		if img.ID != digest.FromBytes(cfg) || img.ManifestDigest != digest.FromBytes(mraw) {
			t.Errorf("store %d: image %s manifest %s, want %s %s", i+1, img.ID, img.ManifestDigest, digest.FromBytes(cfg), digest.FromBytes(mraw))
		}
		for j, l := range img.Layers {
			if l.Blob != m.Layers[j].Digest || l.MediaType != mts[j] {
				t.Errorf("store %d layer %d: %s %s, want %s %s", i+1, j, l.Blob, l.MediaType, m.Layers[j].Digest, mts[j])
			}
		}
		if i == 0 {
			fmt.Fprintf(&got, "config %s\nmanifest %s\n", img.ID, img.ManifestDigest)
			for _, l := range img.Layers {
				fmt.Fprintf(&got, "layer %s %s\n", l.Blob, l.MediaType)
			}
			fmt.Fprintf(&got, "archive %s\n", digest.FromBytes(save1))
		}
	}
	golden := filepath.Join("testdata", "save-load-save.golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(golden, []byte(got.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if got.String() != string(want) {
		t.Errorf("digests:\n%s\nwant (%s):\n%s", got.String(), golden, want)
	}
}

// TestLeaseProtectsFromCollect: what a live lease names survives a full
// collection; the lease of a dead process does not protect, and is
// collected with what it alone named.
func TestLeaseProtectsFromCollect(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	plain := makeTar(t, tarFile{name: "a", data: "a"})
	err := s.WithLease(ctx, func(ctx context.Context) error {
		if _, err := s.IngestLayer(ctx, bytes.NewReader(plain), LayerSource{}); err != nil {
			return err
		}
		if err := s.Collect(ctx); err != nil {
			return err
		}
		if blobs, snaps, _ := leftovers(t, s); blobs != 1 || snaps != 1 {
			t.Errorf("a collection under a live lease left %d blobs, %d snapshots; want 1 and 1", blobs, snaps)
		}
		// The process dies: its lease names a pid that is gone.
		return s.meta.Update(ctx, func(tx *metadata.Tx) error {
			return tx.ForEach(metadata.BucketLeases, func(k string, raw []byte) error {
				var rec leaseRecord
				if err := json.Unmarshal(raw, &rec); err != nil {
					return err
				}
				rec.PID, rec.Start = 1, 1 // pid 1, started at another time
				return tx.Put(metadata.BucketLeases, k, rec)
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	// endLease found its lease gone? No: it is there, with the wrong
	// process; ending it collected the layer. Check a crash too: a lease
	// left behind by a dead process is collected by the next collection.
	if blobs, snaps, leases := leftovers(t, s); blobs+snaps+leases != 0 {
		t.Fatalf("after the lease ended: %d blobs, %d snapshots, %d leases", blobs, snaps, leases)
	}
	l, err := s.startLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lctx := context.WithValue(ctx, leaseKey{}, l)
	if _, err := s.IngestLayer(lctx, bytes.NewReader(plain), LayerSource{}); err != nil {
		t.Fatal(err)
	}
	s.meta.Update(ctx, func(tx *metadata.Tx) error {
		var rec leaseRecord
		tx.Get(metadata.BucketLeases, l.id, &rec)
		rec.PID = 1 << 30 // no such process
		return tx.Put(metadata.BucketLeases, l.id, rec)
	})
	if err := s.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	if blobs, snaps, leases := leftovers(t, s); blobs+snaps+leases != 0 {
		t.Fatalf("a crashed ingest's leftovers survived a collection: %d blobs, %d snapshots, %d leases", blobs, snaps, leases)
	}
}

// TestCollectSweepsWhatCrashedProcessesLeft: half-extracted snapshots,
// unfinished blobs and trash of a dead process go with the next
// collection; a live process' are left alone.
func TestCollectSweepsWhatCrashedProcessesLeft(t *testing.T) {
	s := newTestStore(t)
	snapRoot := filepath.Dir(filepath.Dir(s.snaps.Dir(digest.FromString(""))))
	contentRoot := filepath.Dir(s.ingestDir())
	dead, live := "1073741824", fmt.Sprint(os.Getpid())
	paths := map[string]bool{ // path -> whether it must go
		filepath.Join(snapRoot, "tmp-"+dead+"-1"):               true,
		filepath.Join(snapRoot, "rm-"+dead+"-abc-1"):            true,
		filepath.Join(contentRoot, "ingest", "blob-"+dead+"-1"): true,
		filepath.Join(contentRoot, "trash", dead+"-abc-1"):      true,
		filepath.Join(snapRoot, "tmp-"+live+"-1"):               false,
		filepath.Join(contentRoot, "ingest", "blob-"+live+"-1"): false,
	}
	for p := range paths {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	for p, gone := range paths {
		if _, err := os.Stat(p); os.IsNotExist(err) != gone {
			t.Errorf("%s: exists=%v, want gone=%v", p, err == nil, gone)
		}
	}
}

// TestCreateImageFromGivenDocuments: an image is recorded with the
// manifest (and index) it came with, byte for byte; documents that do not
// describe its layers are refused and nothing is recorded.
func TestCreateImageFromGivenDocuments(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	plain := makeTar(t, tarFile{name: "f", data: "x"})
	gz := compress(t, plain, layer.Gzip)
	cfg := fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%q]}}`, digest.FromBytes(plain))
	m := Manifest{Versioned: Versioned{SchemaVersion: 2}, MediaType: "application/vnd.docker.distribution.manifest.v2+json",
		Config: Descriptor{MediaType: "application/vnd.docker.container.image.v1+json", Digest: digest.FromBytes(cfg), Size: int64(len(cfg))},
		Layers: []Descriptor{{MediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", Digest: digest.FromBytes(gz), Size: int64(len(gz))}}}
	mraw := []byte(mustJSON(t, m) + "\n") // formatting of its own: kept as is
	idx := fmt.Appendf(nil, `{"schemaVersion":2,"manifests":[{"mediaType":%q,"digest":%q,"size":%d,"platform":{"architecture":"amd64","os":"linux"}}]}`, m.MediaType, digest.FromBytes(mraw), len(mraw))
	repoDigest := "docker.io/library/given@" + digest.FromBytes(idx).String()
	var img *Image
	err := s.WithLease(ctx, func(ctx context.Context) error {
		l, err := s.IngestLayer(ctx, bytes.NewReader(gz), LayerSource{Blob: digest.FromBytes(gz), DiffID: digest.FromBytes(plain), MediaType: m.Layers[0].MediaType})
		if err != nil {
			return err
		}
		other := []byte(strings.Replace(string(mraw), digest.FromBytes(gz).String(), digest.FromString("x").String(), 1))
		if _, err := s.CreateImage(ctx, CreateOptions{Config: cfg, Manifest: other, Layers: []Layer{l}}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("a manifest of other layers: %v", err)
		}
		if _, err := s.CreateImage(ctx, CreateOptions{Config: cfg, Manifest: mraw, Index: []byte(`{"schemaVersion":2,"manifests":[]}`), Layers: []Layer{l}}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("an index without the manifest: %v", err)
		}
		img, err = s.CreateImage(ctx, CreateOptions{Config: cfg, Manifest: mraw, Index: idx, RepoDigests: []string{repoDigest}, Layers: []Layer{l}, Ref: "docker.io/library/given:1"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if img.ManifestDigest != digest.FromBytes(mraw) || img.IndexDigest != digest.FromBytes(idx) || len(img.RepoDigests) != 1 || img.RepoDigests[0] != repoDigest {
		t.Fatalf("record %+v", img.Record)
	}
	for _, b := range [][]byte{cfg, mraw, idx, gz} {
		if got, err := s.content.ReadAll(digest.FromBytes(b)); err != nil || !bytes.Equal(got, b) {
			t.Errorf("blob %s not kept byte for byte (%v)", digest.FromBytes(b), err)
		}
	}
	if got, err := s.Resolve(ctx, "given@"+digest.FromBytes(idx).String()); err != nil || got.ID != img.ID {
		t.Errorf("resolve by repo digest: %v", err)
	}
	// Everything the image holds survives a collection.
	if err := s.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	if blobs, snaps, leases := leftovers(t, s); blobs != 4 || snaps != 1 || leases != 0 {
		t.Fatalf("after a collection: %d blobs, %d snapshots, %d leases; want 4, 1, 0", blobs, snaps, leases)
	}
}
