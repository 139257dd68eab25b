package image

// Image archives: `docker save` and `docker load`.
//
// Save writes one tar that holds two layouts over the same blobs:
//
//   - Docker's manifest.json (plus the informational `repositories` file),
//     which every `docker load` since Docker 1.10 reads. Its paths point into
//     blobs/sha256/, as Docker 25 writes them; older loaders take any path.
//   - An OCI image layout (oci-layout, index.json, blobs/sha256/<hex>), which
//     containerd, podman, skopeo and Docker 25+ read. index.json carries one
//     entry per tag, annotated with the tag (org.opencontainers.image.ref.name)
//     and the full name (io.containerd.image.name), as Docker 25 does.
//
// Configs are copied byte for byte, so image IDs survive the trip. Small
// metadata comes first and layers last, each written once however many saved
// images share it, so a streaming reader knows what the layers are before it
// meets them.
//
// Load reads archives of `docker save` from Docker 20.10 (<id>.json,
// <dir>/layer.tar, layers possibly symlinks to other layer dirs), Docker 25+
// and berth (manifest.json over an OCI layout), and plain OCI layouts
// (index.json only). Every digest the format states is checked: the
// config's against its file name, each layer's uncompressed digest against
// the config's rootfs.diff_ids, each OCI blob against its descriptor.
// Nothing is recorded unless every image of the archive checks out.

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/layer"
	"github.com/berth-dev/berth/internal/metadata"
)

// Names and media types of the archive formats.
const (
	archiveManifestFile     = "manifest.json"
	archiveRepositoriesFile = "repositories"

	// AnnotationImageName is containerd's (and Docker 25's) annotation for
	// an image's full name in an OCI layout's index.json.
	AnnotationImageName = "io.containerd.image.name"

	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
)

// archiveManifest is one entry of Docker's manifest.json.
type archiveManifest struct {
	Config       string
	RepoTags     []string
	Layers       []string
	Parent       digest.Digest                `json:",omitempty"`
	LayerSources map[digest.Digest]Descriptor `json:",omitempty"`
}

// Limits on what Load reads into memory: JSON documents, and small files
// that need no spooling.
const (
	maxArchiveJSON  = 32 << 20
	maxInMemoryFile = 1 << 20
	maxInMemoryAll  = 64 << 20
)

// archiveEpoch is the modification time of every entry Save writes, so that
// saving the same images twice gives the same bytes.
var archiveEpoch = time.Unix(0, 0).UTC()

// ---- save ----

// saveImage is one image of an archive being written.
type saveImage struct {
	rec       Record
	tags      []string // normalised tagged references
	config    []byte
	manifest  []byte
	mediaType string
	platform  *Platform
}

// Save writes the images refs name to w as one tar in both Docker's and the
// OCI layout (see the top of this file). A ref that is a repository name
// without a tag saves every tag of that repository, as docker does; a tag
// saves that tag; an ID or digest saves the image untagged.
func (s *Store) Save(ctx context.Context, w io.Writer, refs []string) error {
	if len(refs) == 0 {
		return errdefs.InvalidArgument("nothing to save: name at least one image")
	}
	imgs, err := s.resolveForSave(ctx, refs)
	if err != nil {
		return err
	}
	for _, si := range imgs {
		if err := s.prepareSave(si); err != nil {
			return err
		}
	}
	return s.writeArchive(ctx, w, imgs)
}

// resolveForSave finds the images and the tags to save, in the order named.
func (s *Store) resolveForSave(ctx context.Context, refs []string) ([]*saveImage, error) {
	var out []*saveImage
	byID := map[digest.Digest]*saveImage{}
	add := func(rec *Record, tag string) {
		si := byID[rec.ID]
		if si == nil {
			si = &saveImage{rec: *rec}
			byID[rec.ID] = si
			out = append(out, si)
		}
		if tag != "" && !slices.Contains(si.tags, tag) {
			si.tags = append(si.tags, tag)
		}
	}
	err := s.meta.View(ctx, func(tx *metadata.Tx) error {
		out, byID = nil, map[digest.Digest]*saveImage{}
		for _, ref := range refs {
			if named, err := ParseNormalized(ref); err == nil && named.NameOnly() {
				found := false
				err := tx.ForEachPrefix(metadata.BucketTags, named.Name()+":", func(k string, v []byte) error {
					rec, err := recordByID(tx, string(v))
					if err != nil {
						return fmt.Errorf("image %s: tag points at a missing record: %w", k, err)
					}
					add(rec, k)
					found = true
					return nil
				})
				if err != nil {
					return err
				}
				if found {
					continue
				}
			}
			rec, err := ResolveTx(tx, ref)
			if err != nil {
				return err
			}
			add(rec, savedTag(tx, rec, ref))
		}
		return nil
	})
	return out, err
}

// savedTag is the tag under which ref saves rec: ref normalised, when it is
// a tag that points at rec; "" for an ID or a digest reference.
func savedTag(tx *metadata.Tx, rec *Record, ref string) string {
	named, err := ParseReference(ref)
	if err != nil {
		return ""
	}
	if named.Digest != "" {
		return ""
	}
	if id := tx.GetRaw(metadata.BucketTags, named.String()); id != nil && string(id) == rec.ID.String() {
		return named.String()
	}
	return ""
}

// prepareSave reads the image's config and manifest and checks them against
// its record.
func (s *Store) prepareSave(si *saveImage) error {
	rec := &si.rec
	raw, err := s.content.ReadAll(rec.ID)
	if err != nil {
		return fmt.Errorf("image %s config: %w", ShortID(rec.ID.String()), err)
	}
	if digest.FromBytes(raw) != rec.ID {
		return fmt.Errorf("image %s: the stored configuration does not match its digest (store corrupt)", ShortID(rec.ID.String()))
	}
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("image %s config: %w", ShortID(rec.ID.String()), err)
	}
	if len(cfg.RootFS.DiffIDs) != len(rec.Layers) {
		return fmt.Errorf("image %s: its configuration lists %d layers, its record %d (store corrupt)", ShortID(rec.ID.String()), len(cfg.RootFS.DiffIDs), len(rec.Layers))
	}
	for i, d := range cfg.RootFS.DiffIDs {
		if rec.Layers[i].DiffID != d {
			return fmt.Errorf("image %s: layer %d is %s in the record but %s in the configuration (store corrupt)", ShortID(rec.ID.String()), i, rec.Layers[i].DiffID, d)
		}
	}
	si.config = raw
	si.platform = &Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	si.manifest, si.mediaType, err = s.manifestFor(rec, raw)
	return err
}

// manifestFor returns the image's stored manifest when it describes exactly
// the config and layer blobs berth holds, or else a new OCI manifest that
// does.
func (s *Store) manifestFor(rec *Record, rawConfig []byte) ([]byte, string, error) {
	if rec.ManifestDigest != "" {
		if raw, err := s.content.ReadAll(rec.ManifestDigest); err == nil && digest.FromBytes(raw) == rec.ManifestDigest {
			var m Manifest
			if json.Unmarshal(raw, &m) == nil && manifestDescribes(&m, rec.ID, rec.Layers) {
				mt := m.MediaType
				if mt == "" {
					mt = MediaTypeImageManifest
				}
				return raw, mt, nil
			}
		}
	}
	raw, err := buildManifest(rawConfig, rec.Layers)
	return raw, MediaTypeImageManifest, err
}

// manifestDescribes reports whether m is a manifest of config id over
// exactly these stored layer blobs.
func manifestDescribes(m *Manifest, id digest.Digest, layers []Layer) bool {
	switch m.MediaType {
	case "", MediaTypeImageManifest, mediaTypeDockerManifest:
	default:
		return false
	}
	if m.Config.Digest != id || len(m.Layers) != len(layers) {
		return false
	}
	for i, l := range m.Layers {
		if l.Digest != layers[i].Blob || l.Size != layers[i].BlobSize {
			return false
		}
	}
	return true
}

// buildManifest is the OCI manifest of a config and stored layers, as
// Create writes it.
func buildManifest(rawConfig []byte, layers []Layer) ([]byte, error) {
	m := Manifest{
		Versioned: Versioned{SchemaVersion: 2},
		MediaType: MediaTypeImageManifest,
		Config:    Descriptor{MediaType: MediaTypeImageConfig, Digest: digest.FromBytes(rawConfig), Size: int64(len(rawConfig))},
	}
	for _, l := range layers {
		m.Layers = append(m.Layers, Descriptor{MediaType: l.MediaType, Digest: l.Blob, Size: l.BlobSize})
	}
	return json.Marshal(m)
}

func blobName(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

// writeArchive writes the tar: directories, small metadata, then layers.
func (s *Store) writeArchive(ctx context.Context, w io.Writer, imgs []*saveImage) error {
	tw := tar.NewWriter(w)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		hdr := &tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: archiveEpoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
	}
	layout, _ := json.Marshal(ImageLayout{Version: ImageLayoutVersion})
	if err := writeTarFile(tw, ImageLayoutFile, layout); err != nil {
		return err
	}

	saved := map[digest.Digest]bool{}
	for _, si := range imgs {
		saved[si.rec.ID] = true
	}
	written := map[digest.Digest]bool{}
	var manifests []archiveManifest
	repos := map[string]map[string]string{}
	index := Index{Versioned: Versioned{SchemaVersion: 2}, MediaType: MediaTypeImageIndex, Manifests: []Descriptor{}}
	for _, si := range imgs {
		mdigest := digest.FromBytes(si.manifest)
		for _, b := range []struct {
			d    digest.Digest
			data []byte
		}{{si.rec.ID, si.config}, {mdigest, si.manifest}} {
			if written[b.d] {
				continue
			}
			if err := writeTarFile(tw, blobName(b.d), b.data); err != nil {
				return err
			}
			written[b.d] = true
		}

		m := archiveManifest{Config: blobName(si.rec.ID)}
		for _, l := range si.rec.Layers {
			m.Layers = append(m.Layers, blobName(l.Blob))
		}
		if si.rec.Parent != "" && saved[si.rec.Parent] {
			m.Parent = si.rec.Parent
		}
		desc := Descriptor{MediaType: si.mediaType, Digest: mdigest, Size: int64(len(si.manifest)), Platform: si.platform}
		if len(si.tags) == 0 {
			index.Manifests = append(index.Manifests, desc)
		}
		for _, t := range si.tags {
			tagged, err := ParseNormalized(t)
			if err != nil {
				return fmt.Errorf("image %s: stored tag %q: %w", ShortID(si.rec.ID.String()), t, err)
			}
			if tagged.Tag == "" {
				continue
			}
			m.RepoTags = append(m.RepoTags, tagged.Familiar())
			d := desc
			d.Annotations = map[string]string{AnnotationImageName: tagged.String(), AnnotationRefName: tagged.Tag}
			index.Manifests = append(index.Manifests, d)
			if n := len(si.rec.Layers); n > 0 {
				repo := tagged.FamiliarName()
				if repos[repo] == nil {
					repos[repo] = map[string]string{}
				}
				repos[repo][tagged.Tag] = si.rec.Layers[n-1].Blob.Encoded()
			}
		}
		manifests = append(manifests, m)
	}

	rawIndex, err := json.Marshal(index)
	if err != nil {
		return err
	}
	if err := writeTarFile(tw, ImageIndexFile, rawIndex); err != nil {
		return err
	}
	rawManifests, err := json.Marshal(manifests)
	if err != nil {
		return err
	}
	if err := writeTarFile(tw, archiveManifestFile, rawManifests); err != nil {
		return err
	}
	if len(repos) > 0 {
		rawRepos, err := json.Marshal(repos)
		if err != nil {
			return err
		}
		if err := writeTarFile(tw, archiveRepositoriesFile, rawRepos); err != nil {
			return err
		}
	}

	for _, si := range imgs {
		for _, l := range si.rec.Layers {
			if written[l.Blob] {
				continue
			}
			if err := s.writeBlob(ctx, tw, l.Blob); err != nil {
				return fmt.Errorf("image %s: %w", ShortID(si.rec.ID.String()), err)
			}
			written[l.Blob] = true
		}
	}
	return tw.Close()
}

func writeTarFile(tw *tar.Writer, name string, data []byte) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: archiveEpoch}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// writeBlob copies a stored blob into the tar, checking its digest on the
// way: a blob damaged on disk fails the save rather than the later load.
func (s *Store) writeBlob(ctx context.Context, tw *tar.Writer, d digest.Digest) error {
	f, err := s.content.Open(d)
	if err != nil {
		return fmt.Errorf("layer %s: %w", d, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: blobName(d), Mode: 0o644, Size: st.Size(), ModTime: archiveEpoch}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	v := d.Verifier()
	if _, err := io.CopyN(io.MultiWriter(tw, v), ctxReader{ctx, f}, st.Size()); err != nil {
		return fmt.Errorf("layer %s: %w", d, err)
	}
	if !v.Verified() {
		return fmt.Errorf("layer %s: the stored blob does not match its digest (store corrupt)", d)
	}
	return nil
}

// ctxReader stops a long copy once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// ---- load ----

// LoadedImage is one image Load recorded.
type LoadedImage struct {
	ID       digest.Digest
	RepoTags []string // normalised references, in archive order
	// Replaced maps each tag of RepoTags that pointed at another image
	// before the load to that image's ID.
	Replaced map[string]digest.Digest
}

// loadPlan is an image of an archive: what to check and record.
type loadPlan struct {
	name     string // how errors call it: its manifest.json entry or digest
	config   []byte
	id       digest.Digest
	diffIDs  []digest.Digest
	created  time.Time
	layers   []planLayer
	tags     []string // normalised tagged references
	manifest []byte   // the archive's manifest of this image, if it has one
	parent   digest.Digest

	stored []Layer     // filled in as the layers are stored
	staged stagedImage // its documents stored, ready to record
}

// planLayer is a layer file of the archive.
type planLayer struct {
	name string        // path in the archive
	blob digest.Digest // digest of the file's bytes, when the format states it
	size int64         // size of the file, when the format states it; else -1
	// mediaType is the manifest's, when the format has one; else the
	// stored layer is named after the compression found.
	mediaType string
}

// Load reads an image archive (see the top of this file) from r, which may
// be gzip- or zstd-compressed, and records its images and tags. An existing
// tag named in the archive moves to the loaded image, as with docker.
//
// The archive is indexed first, since manifest.json may come after the
// layers: a regular uncompressed file is read in place, anything else is
// spooled to a temporary directory in the store's ingest area (the store's
// file system, not /tmp, which may be small), removed when Load returns.
func (s *Store) Load(ctx context.Context, r io.Reader) ([]LoadedImage, error) {
	dir, err := s.spoolDir()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ar, err := readArchive(ctx, r, dir)
	if err != nil {
		return nil, err
	}
	plans, err := ar.plans()
	if err != nil {
		return nil, err
	}
	return s.loadPlans(ctx, ar, plans)
}

// spoolDir makes a fresh directory for Load beside the content store's
// in-progress blobs, and removes what interrupted loads left there.
func (s *Store) spoolDir() (string, error) {
	ingest := s.ingestDir()
	if ents, err := os.ReadDir(ingest); err == nil {
		for _, e := range ents {
			if info, err := e.Info(); err == nil && strings.HasPrefix(e.Name(), "load-") && time.Since(info.ModTime()) > 24*time.Hour {
				os.RemoveAll(filepath.Join(ingest, e.Name()))
			}
		}
	}
	dir, err := os.MkdirTemp(ingest, "load-")
	if err != nil {
		return "", fmt.Errorf("load: temporary directory: %w", err)
	}
	return dir, nil
}

// ingestDir is the content store's directory of blobs being written.
func (s *Store) ingestDir() string {
	// <content root>/blobs/sha256/<hex> -> <content root>/ingest
	contentRoot := filepath.Dir(filepath.Dir(filepath.Dir(s.content.Path(digest.FromString("")))))
	return filepath.Join(contentRoot, "ingest")
}

// archive is an indexed image archive.
type archive struct {
	files map[string]*archiveFile
	src   *os.File // the archive itself, when read in place
	dir   string   // where spooled files go
	mem   int64    // bytes held in memory
	nfile int
}

type archiveFile struct {
	symlink string // target, for a symlink
	isLink  bool
	size    int64
	data    []byte // small files
	spool   string // spooled files
	offset  int64  // files read in place: offset in archive.src
	inPlace bool
}

// archiveName is the clean slash path of a tar entry, relative to the
// archive's root: "./a/../b" is "b", "../../x" is "x".
func archiveName(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// readArchive indexes the tar r.
func readArchive(ctx context.Context, r io.Reader, dir string) (*archive, error) {
	ar := &archive{files: map[string]*archiveFile{}, dir: dir}
	var section *io.SectionReader // non-nil when reading a plain file in place
	var base int64
	if f, ok := r.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			if pos, err := f.Seek(0, io.SeekCurrent); err == nil && pos <= st.Size() {
				probe, c, err := layer.DecompressStream(io.NewSectionReader(f, pos, st.Size()-pos))
				if err == nil {
					probe.Close()
					if c == layer.Uncompressed {
						section, base, ar.src = io.NewSectionReader(f, pos, st.Size()-pos), pos, f
					}
				}
			}
		}
	}
	var tr *tar.Reader
	if section != nil {
		tr = tar.NewReader(section)
	} else {
		plain, _, err := layer.DecompressStream(r)
		if err != nil {
			return nil, errdefs.InvalidArgument("load: %v", err)
		}
		defer plain.Close()
		tr = tar.NewReader(plain)
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, errdefs.InvalidArgument("load: invalid archive: %v", err)
		}
		name := archiveName(hdr.Name)
		if name == "" {
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeSymlink:
			ar.files[name] = &archiveFile{isLink: true, symlink: hdr.Linkname}
		case tar.TypeLink:
			target := ar.files[archiveName(hdr.Linkname)]
			if target == nil {
				return nil, errdefs.InvalidArgument("load: invalid archive: %s is a hard link to %s, which comes nowhere before it", name, hdr.Linkname)
			}
			ar.files[name] = target
		case tar.TypeReg, tar.TypeGNUSparse:
			af, err := ar.add(ctx, tr, hdr, section, base)
			if err != nil {
				return nil, err
			}
			ar.files[name] = af
		}
	}
	return ar, nil
}

// add records a regular file: in place, in memory or spooled.
func (ar *archive) add(ctx context.Context, tr *tar.Reader, hdr *tar.Header, section *io.SectionReader, base int64) (*archiveFile, error) {
	if section != nil && !isSparse(hdr) {
		// archive/tar has read exactly the headers: the data starts here,
		// and the next call of Next seeks past it.
		pos, err := section.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		return &archiveFile{inPlace: true, offset: base + pos, size: hdr.Size}, nil
	}
	if hdr.Size <= maxInMemoryFile && ar.mem+hdr.Size <= maxInMemoryAll {
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, errdefs.InvalidArgument("load: invalid archive: %s: %v", hdr.Name, err)
		}
		ar.mem += int64(len(data))
		return &archiveFile{data: data, size: int64(len(data))}, nil
	}
	ar.nfile++
	p := filepath.Join(ar.dir, strconv.Itoa(ar.nfile))
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("load: spool: %w", err)
	}
	n, err := io.Copy(f, ctxReader{ctx, tr})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("load: reading %s from the archive: %w", hdr.Name, err)
	}
	return &archiveFile{spool: p, size: n}, nil
}

func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// resolve finds the regular file at name, following symlinks (relative ones
// from the link's directory, absolute ones from the archive's root) without
// ever leaving the archive.
func (ar *archive) resolve(name string) (*archiveFile, error) {
	want := name
	name = archiveName(name)
	for range 40 {
		parts := strings.Split(name, "/")
		followed := false
		for i := 1; i <= len(parts); i++ {
			p := strings.Join(parts[:i], "/")
			f := ar.files[p]
			if f == nil || !f.isLink {
				continue
			}
			target := f.symlink
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(p), target)
			}
			name = archiveName(path.Join(target, strings.Join(parts[i:], "/")))
			followed = true
			break
		}
		if !followed {
			f := ar.files[name]
			if f == nil {
				return nil, errdefs.InvalidArgument("load: invalid archive: %s is missing from it", want)
			}
			return f, nil
		}
	}
	return nil, errdefs.InvalidArgument("load: invalid archive: too many levels of symbolic links at %s", want)
}

func (ar *archive) has(name string) bool {
	_, err := ar.resolve(name)
	return err == nil
}

// open opens the file at name and returns its size.
func (ar *archive) open(name string) (io.ReadCloser, int64, error) {
	f, err := ar.resolve(name)
	if err != nil {
		return nil, 0, err
	}
	switch {
	case f.inPlace:
		return io.NopCloser(io.NewSectionReader(ar.src, f.offset, f.size)), f.size, nil
	case f.spool != "":
		fh, err := os.Open(f.spool)
		if err != nil {
			return nil, 0, err
		}
		return fh, f.size, nil
	}
	return io.NopCloser(bytes.NewReader(f.data)), f.size, nil
}

// readFile reads a small file of the archive (a JSON document).
func (ar *archive) readFile(name string) ([]byte, error) {
	rc, size, err := ar.open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > maxArchiveJSON {
		return nil, errdefs.InvalidArgument("load: invalid archive: %s is too large (%d bytes) for a JSON document", name, size)
	}
	return io.ReadAll(rc)
}

// readBlob reads a small OCI blob and checks it against its descriptor.
func (ar *archive) readBlob(d Descriptor) ([]byte, error) {
	if err := d.Digest.Validate(); errors.Is(err, digest.ErrUnsupported) {
		return nil, errdefs.NotImplemented("load: %w", err)
	} else if err != nil {
		return nil, errdefs.InvalidArgument("load: invalid archive: %w", err)
	}
	raw, err := ar.readFile(blobName(d.Digest))
	if err != nil {
		return nil, err
	}
	if got := digest.FromBytes(raw); got != d.Digest {
		return nil, errdefs.InvalidArgument("load: invalid archive: %s has digest %s", blobName(d.Digest), got)
	}
	if d.Size != 0 && int64(len(raw)) != d.Size {
		return nil, errdefs.InvalidArgument("load: invalid archive: %s is %d bytes, its descriptor says %d", blobName(d.Digest), len(raw), d.Size)
	}
	return raw, nil
}

// digestInName is the digest an archive path states: blobs/sha256/<hex> for
// any file, <hex>.json for a config of Docker's legacy layout.
func digestInName(name string, config bool) digest.Digest {
	name = archiveName(name)
	if hex, ok := strings.CutPrefix(name, "blobs/sha256/"); ok {
		if d := digest.NewDigestFromEncoded(digest.SHA256, hex); d.Validate() == nil {
			return d
		}
	}
	if hex, ok := strings.CutSuffix(name, ".json"); ok && config && !strings.Contains(hex, "/") {
		if d := digest.NewDigestFromEncoded(digest.SHA256, hex); d.Validate() == nil {
			return d
		}
	}
	return ""
}

// plans lists the archive's images: from manifest.json when there is one
// (Docker's archives and berth's), else from the OCI layout's index.json.
func (ar *archive) plans() ([]*loadPlan, error) {
	if ar.has(archiveManifestFile) {
		return ar.plansFromManifest()
	}
	if ar.has(ImageIndexFile) {
		return ar.plansFromIndex()
	}
	if ar.has(archiveRepositoriesFile) {
		return nil, errdefs.NotImplemented("load: this archive has the pre-1.10 Docker layout (no manifest.json): it is not supported")
	}
	return nil, errdefs.InvalidArgument("load: invalid archive: it holds neither manifest.json nor index.json")
}

func (ar *archive) plansFromManifest() ([]*loadPlan, error) {
	raw, err := ar.readFile(archiveManifestFile)
	if err != nil {
		return nil, err
	}
	var entries []archiveManifest
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, errdefs.InvalidArgument("load: invalid archive: manifest.json: %v", err)
	}
	ociManifests := ar.indexManifests()
	var plans []*loadPlan
	for _, m := range entries {
		cfg, err := ar.readFile(m.Config)
		if err != nil {
			return nil, err
		}
		p := &loadPlan{name: m.Config, config: cfg, id: digest.FromBytes(cfg), parent: m.Parent}
		if want := digestInName(m.Config, true); want != "" && want != p.id {
			return nil, errdefs.InvalidArgument("load: invalid archive: configuration %s has digest %s (corrupt or tampered with)", m.Config, p.id)
		}
		if err := p.parseConfig(); err != nil {
			return nil, err
		}
		if len(m.Layers) != len(p.diffIDs) {
			return nil, errdefs.InvalidArgument("load: invalid archive: manifest.json lists %d layers for %s, its configuration %d", len(m.Layers), m.Config, len(p.diffIDs))
		}
		for _, l := range m.Layers {
			p.layers = append(p.layers, planLayer{name: l, blob: digestInName(l, false), size: -1})
		}
		for _, t := range m.RepoTags {
			tagged, err := ParseNormalized(t)
			if err != nil {
				return nil, errdefs.InvalidArgument("load: invalid tag %q in manifest.json: %v", t, err)
			}
			if tagged.Tag == "" || tagged.Digest != "" {
				return nil, errdefs.InvalidArgument("load: invalid tag %q in manifest.json", t)
			}
			p.tags = append(p.tags, tagged.String())
		}
		p.manifest = ociManifests[p.id]
		if p.manifest != nil {
			// The layers are the manifest's blobs: name them as it does.
			var om Manifest
			if json.Unmarshal(p.manifest, &om) == nil && len(om.Layers) == len(p.layers) {
				for i, d := range om.Layers {
					if d.Digest == p.layers[i].blob {
						p.layers[i].mediaType = d.MediaType
					}
				}
			}
		}
		plans = append(plans, p)
	}
	return plans, nil
}

// indexManifests maps config digests to the manifests of the OCI layout
// beside a manifest.json, so that a loaded image keeps its manifest when
// the store holds its layers as the archive did. Best effort: a manifest
// that cannot be read is simply not kept.
func (ar *archive) indexManifests() map[digest.Digest][]byte {
	out := map[digest.Digest][]byte{}
	raw, err := ar.readFile(ImageIndexFile)
	if err != nil {
		return out
	}
	var idx Index
	if json.Unmarshal(raw, &idx) != nil {
		return out
	}
	for _, d := range idx.Manifests {
		if d.MediaType != MediaTypeImageManifest && d.MediaType != mediaTypeDockerManifest {
			continue
		}
		mraw, err := ar.readBlob(d)
		if err != nil {
			continue
		}
		var m Manifest
		if json.Unmarshal(mraw, &m) == nil {
			out[m.Config.Digest] = mraw
		}
	}
	return out
}

func (ar *archive) plansFromIndex() ([]*loadPlan, error) {
	raw, err := ar.readFile(ImageIndexFile)
	if err != nil {
		return nil, err
	}
	var idx Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, errdefs.InvalidArgument("load: invalid archive: index.json: %v", err)
	}
	var plans []*loadPlan
	byManifest := map[digest.Digest]*loadPlan{}
	for _, d := range idx.Manifests {
		mraw, m, err := ar.imageManifest(d, 0)
		if err != nil {
			return nil, err
		}
		if m == nil {
			continue // not an image (an artifact, an attestation)
		}
		mdigest := digest.FromBytes(mraw)
		p := byManifest[mdigest]
		if p == nil {
			cfg, err := ar.readBlob(m.Config)
			if err != nil {
				return nil, err
			}
			p = &loadPlan{name: mdigest.String(), config: cfg, id: m.Config.Digest, manifest: mraw}
			if err := p.parseConfig(); err != nil {
				return nil, err
			}
			if len(m.Layers) != len(p.diffIDs) {
				return nil, errdefs.InvalidArgument("load: invalid archive: manifest %s lists %d layers, its configuration %d", mdigest, len(m.Layers), len(p.diffIDs))
			}
			for _, l := range m.Layers {
				if err := l.Digest.Validate(); err != nil {
					return nil, errdefs.InvalidArgument("load: invalid archive: manifest %s: unsupported layer digest %q", mdigest, l.Digest)
				}
				p.layers = append(p.layers, planLayer{name: blobName(l.Digest), blob: l.Digest, size: l.Size, mediaType: l.MediaType})
			}
			byManifest[mdigest] = p
			plans = append(plans, p)
		}
		if t := ociTag(d.Annotations); t != "" && !slices.Contains(p.tags, t) {
			p.tags = append(p.tags, t)
		}
	}
	if len(plans) == 0 && len(idx.Manifests) > 0 {
		return nil, errdefs.InvalidArgument("load: the archive holds no image for linux/%s", goruntime.GOARCH)
	}
	return plans, nil
}

// imageManifest reads the image manifest d names; for an index it picks the
// manifest for this machine. It returns a nil manifest for what is not an
// image.
func (ar *archive) imageManifest(d Descriptor, depth int) ([]byte, *Manifest, error) {
	if depth > 4 {
		return nil, nil, errdefs.InvalidArgument("load: invalid archive: indexes nested too deep")
	}
	raw, err := ar.readBlob(d)
	if err != nil {
		return nil, nil, err
	}
	mt := d.MediaType
	if mt == "" {
		var probe struct {
			MediaType string            `json:"mediaType"`
			Manifests []json.RawMessage `json:"manifests"`
		}
		json.Unmarshal(raw, &probe)
		mt = probe.MediaType
		if mt == "" && probe.Manifests != nil {
			mt = MediaTypeImageIndex
		} else if mt == "" {
			mt = MediaTypeImageManifest
		}
	}
	switch mt {
	case MediaTypeImageManifest, mediaTypeDockerManifest:
		var m Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, nil, errdefs.InvalidArgument("load: invalid archive: manifest %s: %v", d.Digest, err)
		}
		switch m.Config.MediaType {
		case MediaTypeImageConfig, mediaTypeDockerConfig:
			return raw, &m, nil
		}
		return nil, nil, nil
	case MediaTypeImageIndex, mediaTypeDockerManifestList:
		var idx Index
		if err := json.Unmarshal(raw, &idx); err != nil {
			return nil, nil, errdefs.InvalidArgument("load: invalid archive: index %s: %v", d.Digest, err)
		}
		for _, c := range idx.Manifests {
			if c.Platform != nil && (c.Platform.OS != "linux" || c.Platform.Architecture != goruntime.GOARCH) {
				continue
			}
			if !ar.has(blobName(c.Digest)) {
				continue // a multi-platform index saved with one platform's blobs
			}
			mraw, m, err := ar.imageManifest(c, depth+1)
			if err != nil || m != nil {
				return mraw, m, err
			}
		}
		return nil, nil, nil
	}
	return nil, nil, nil
}

// ociTag is the tag an index.json entry's annotations give: the full name
// of io.containerd.image.name, or org.opencontainers.image.ref.name when
// that is a full reference rather than a bare tag (a bare tag names no
// repository, and such an image loads untagged).
func ociTag(ann map[string]string) string {
	for _, n := range []string{ann[AnnotationImageName], ann[AnnotationRefName]} {
		if n == "" || (!strings.Contains(n, ":") && !strings.Contains(n, "/")) {
			continue
		}
		if tagged, err := ParseTag(n); err == nil {
			return tagged.String()
		}
	}
	return ""
}

// parseConfig reads what Load needs from the config.
func (p *loadPlan) parseConfig() error {
	var cfg Config
	if err := json.Unmarshal(p.config, &cfg); err != nil {
		return errdefs.InvalidArgument("load: invalid archive: configuration %s: %v", p.name, err)
	}
	if cfg.OS != "" && cfg.OS != "linux" {
		return errdefs.InvalidArgument("load: image %s is for %s: only linux images can be used here", ShortID(p.id.String()), cfg.OS)
	}
	for _, d := range cfg.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return errdefs.InvalidArgument("load: invalid archive: configuration %s: invalid diff ID %q", p.name, d)
		}
	}
	p.diffIDs = cfg.RootFS.DiffIDs
	p.created = time.Now().UTC()
	if cfg.Created != nil {
		p.created = *cfg.Created
	}
	return nil
}

// loadPlans stores every layer, config and manifest under one lease, then
// records all the images and their tags in one transaction. Whatever the
// load stored and no image ends up using (all of it after a failure) is
// collected when the lease ends.
func (s *Store) loadPlans(ctx context.Context, ar *archive, plans []*loadPlan) ([]LoadedImage, error) {
	var loaded []LoadedImage
	err := s.WithLease(ctx, func(ctx context.Context) error {
		var err error
		loaded, err = s.loadPlansLeased(ctx, ar, plans)
		return err
	})
	return loaded, err
}

func (s *Store) loadPlansLeased(ctx context.Context, ar *archive, plans []*loadPlan) ([]LoadedImage, error) {
	known, err := s.knownLayers(ctx)
	if err != nil {
		return nil, err
	}
	// Everything the archive states is named in the lease at once (one
	// transaction rather than one a layer), before anything is looked at.
	var chains, blobs []digest.Digest
	for _, p := range plans {
		chains = append(chains, ChainIDs(p.diffIDs)...)
		blobs = append(blobs, p.id)
		for _, l := range p.layers {
			blobs = append(blobs, l.blob)
		}
		for _, ch := range ChainIDs(p.diffIDs) {
			if l, ok := known[ch]; ok {
				blobs = append(blobs, l.Blob)
			}
		}
	}
	if err := s.protect(ctx, chains, blobs); err != nil {
		return nil, err
	}

	done := map[digest.Digest]Layer{} // by chain ID
	for _, p := range plans {
		chains := ChainIDs(p.diffIDs)
		p.stored = make([]Layer, len(chains))
		for i, chain := range chains {
			if l, ok := done[chain]; ok && (p.layers[i].blob == "" || p.layers[i].blob == l.Blob) {
				p.stored[i] = l
				continue
			}
			if l, ok := known[chain]; ok && (p.layers[i].blob == "" || p.layers[i].blob == l.Blob) && s.snaps.Exists(chain) && s.content.Exists(l.Blob) {
				// Already here, blob and all: docker does not even read it again.
				p.stored[i], done[chain] = l, l
				continue
			}
			var parent digest.Digest
			if i > 0 {
				parent = chains[i-1]
			}
			l, err := s.loadLayer(ctx, ar, parent, p.diffIDs[i], p.layers[i])
			if err != nil {
				return nil, fmt.Errorf("load: image %s: layer %s: %w", ShortID(p.id.String()), p.layers[i].name, err)
			}
			p.stored[i], done[chain] = l, l
		}
		// The archive's manifest when it describes the layers as stored
		// (it does, unless a layer was already here with another blob).
		mraw := p.manifest
		var m Manifest
		if mraw != nil && (json.Unmarshal(mraw, &m) != nil || !manifestDescribes(&m, p.id, p.stored)) {
			mraw = nil
		}
		st, err := s.stageImage(ctx, CreateOptions{Config: p.config, Manifest: mraw, Layers: p.stored})
		if err != nil {
			return nil, fmt.Errorf("load: image %s: %w", ShortID(p.id.String()), err)
		}
		st.rec.Created = p.created
		p.staged = st
	}
	return s.recordLoaded(ctx, plans)
}

// knownLayers maps chain IDs to the layers of the images already recorded.
func (s *Store) knownLayers(ctx context.Context) (map[digest.Digest]Layer, error) {
	out := map[digest.Digest]Layer{}
	err := s.meta.View(ctx, func(tx *metadata.Tx) error {
		return tx.ForEach(metadata.BucketImages, func(_ string, raw []byte) error {
			var r Record
			if json.Unmarshal(raw, &r) == nil {
				for _, l := range r.Layers {
					out[l.ChainID] = l
				}
			}
			return nil
		})
	})
	return out, err
}

// loadLayer stores one layer file of the archive on parent, as it is in
// the archive, checking it against diffID (and against the digest and size
// the format states for the file) before anything is committed.
func (s *Store) loadLayer(ctx context.Context, ar *archive, parent, diffID digest.Digest, pl planLayer) (Layer, error) {
	rc, size, err := ar.open(pl.name)
	if err != nil {
		return Layer{}, err
	}
	defer rc.Close()
	if pl.size >= 0 && size != pl.size {
		return Layer{}, errdefs.InvalidArgument("the file is %d bytes, the manifest says %d (corrupt or tampered with)", size, pl.size)
	}
	return s.IngestLayer(ctx, rc, LayerSource{Parent: parent, Blob: pl.blob, DiffID: diffID, MediaType: pl.mediaType})
}

// recordLoaded records the images and moves their tags, all at once.
func (s *Store) recordLoaded(ctx context.Context, plans []*loadPlan) ([]LoadedImage, error) {
	var loaded []LoadedImage
	inArchive := map[digest.Digest]bool{}
	for _, p := range plans {
		inArchive[p.id] = true
	}
	err := s.meta.Update(ctx, func(tx *metadata.Tx) error {
		loaded = nil
		for _, p := range plans {
			st := p.staged
			if p.parent != "" && (inArchive[p.parent] || tx.Has(metadata.BucketImages, p.parent.String())) {
				st.rec.Parent = p.parent
			}
			// A new image; an existing one keeps its record (manifest,
			// repo digests) and only gains tags, as with docker.
			rec, err := s.putImageTx(tx, st, true)
			if err != nil {
				return fmt.Errorf("load: %w", err)
			}
			li := LoadedImage{ID: p.id}
			for _, t := range p.tags {
				if old := tx.GetRaw(metadata.BucketTags, t); old != nil && string(old) != p.id.String() {
					if li.Replaced == nil {
						li.Replaced = map[string]digest.Digest{}
					}
					li.Replaced[t] = digest.Digest(old)
				}
				if err := setTag(tx, t, &rec); err != nil {
					return err
				}
				li.RepoTags = append(li.RepoTags, t)
			}
			loaded = append(loaded, li)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return loaded, nil
}
