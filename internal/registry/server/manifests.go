package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
)

// Manifest media types the server accepts.
const (
	mtOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mtOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

func isIndexType(mt string) bool { return mt == mtOCIIndex || mt == mtDockerList }

func knownManifestType(mt string) bool {
	switch mt {
	case mtOCIManifest, mtOCIIndex, mtDockerManifest, mtDockerList:
		return true
	}
	return false
}

// descriptor is the part of an OCI descriptor the server reads or writes.
type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// manifest is the union of an image manifest and an index, as far as the
// server needs it: what it references, its subject, its artifact type.
type manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *descriptor       `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Manifests     []descriptor      `json:"manifests"`
	Subject       *descriptor       `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

func manifestUnknown(name, ref string) *apiError {
	return errorf(http.StatusNotFound, codeManifestUnknown, "manifest %s is not in repository %s", ref, name)
}

func manifestInvalid(format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, codeManifestInvalid, format, args...)
}

// resolve turns a tag or digest reference into the digest of a manifest
// revision of name.
func (s *Server) resolve(name, ref string) (digest, error) {
	if strings.Contains(ref, ":") {
		d, err := parseDigest(ref)
		if err != nil {
			return digest{}, err
		}
		if !s.store.exists(s.store.manifestLinkPath(name, d)) {
			return digest{}, manifestUnknown(name, ref)
		}
		return d, nil
	}
	if !validTag(ref) {
		return digest{}, manifestInvalid("invalid tag %q: want [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", ref)
	}
	b, err := s.store.readFile(s.store.tagPath(name, ref))
	if errors.Is(err, fs.ErrNotExist) {
		return digest{}, manifestUnknown(name, ref)
	}
	if err != nil {
		return digest{}, err
	}
	d, err := parseDigest(string(b))
	if err != nil || !s.store.exists(s.store.manifestLinkPath(name, d)) {
		return digest{}, manifestUnknown(name, ref)
	}
	return d, nil
}

func (s *Server) getManifest(w http.ResponseWriter, r *http.Request, name, ref string) error {
	if s.proxy != nil {
		if err := s.proxyManifest(r, name, ref); err != nil {
			return err
		}
	}
	d, err := s.resolve(name, ref)
	if err != nil {
		return err
	}
	mt, err := s.store.readFile(s.store.manifestLinkPath(name, d))
	if err != nil {
		return manifestUnknown(name, ref)
	}
	body, err := s.store.readFile(s.store.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return manifestUnknown(name, ref)
	}
	if err != nil {
		return err
	}
	h := w.Header()
	ct := string(mt)
	if ct == "" {
		ct = mtOCIManifest
	}
	h.Set("Content-Type", ct)
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Etag", `"`+d.String()+`"`)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if inm := r.Header.Get("If-None-Match"); inm != "" && strings.Contains(inm, d.String()) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
	return nil
}

// readManifest reads a request body of at most maxManifestSize bytes.
func readManifest(r *http.Request) ([]byte, error) {
	if r.ContentLength > maxManifestSize {
		return nil, errorf(http.StatusRequestEntityTooLarge, codeSizeInvalid, "manifest of %d bytes exceeds the limit of %d bytes", r.ContentLength, maxManifestSize)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxManifestSize+1))
	if err != nil {
		return nil, errorf(http.StatusBadRequest, codeManifestInvalid, "reading the manifest: %v", err)
	}
	if len(body) > maxManifestSize {
		return nil, errorf(http.StatusRequestEntityTooLarge, codeSizeInvalid, "manifest exceeds the limit of %d bytes", maxManifestSize)
	}
	return body, nil
}

// nondistributable layers are not pushed to registries (OCI's
// nondistributable media types, Docker's foreign layers, layers with
// URLs); a manifest may name them without the blob.
func nondistributable(d descriptor) bool {
	return len(d.URLs) > 0 || strings.Contains(d.MediaType, "nondistributable") || strings.Contains(d.MediaType, ".foreign.")
}

func (s *Server) putManifest(w http.ResponseWriter, r *http.Request, name, ref string) error {
	var want digest
	tag := ""
	if strings.Contains(ref, ":") {
		d, err := parseDigest(ref)
		if err != nil {
			return err
		}
		want = d
	} else if !validTag(ref) {
		return manifestInvalid("invalid tag %q: want [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", ref)
	} else {
		tag = ref
	}
	body, err := readManifest(r)
	if err != nil {
		return err
	}
	alg := "sha256"
	if !want.isZero() {
		alg = want.alg
	}
	d := digestOf(alg, body)
	if !want.isZero() && d != want {
		return errorf(http.StatusBadRequest, codeDigestInvalid, "the manifest's digest is %s, not %s", d, want).withDetail(map[string]string{"digest": want.String()})
	}
	var m manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return manifestInvalid("the manifest is not valid JSON: %v", err)
	}
	if m.SchemaVersion != 2 {
		return manifestInvalid("schemaVersion %d is not supported: want 2 (Docker schema2 or OCI)", m.SchemaVersion)
	}
	mt := m.MediaType
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); knownManifestType(ct) {
		if mt != "" && mt != ct {
			return manifestInvalid("Content-Type %s does not match the manifest's mediaType %s", ct, mt)
		}
		mt = ct
	} else if ct != "" && ct != "application/json" && ct != "application/octet-stream" {
		return manifestInvalid("unsupported manifest media type %q", ct)
	}
	if mt == "" {
		if m.Manifests != nil && m.Config == nil {
			mt = mtOCIIndex
		} else {
			mt = mtOCIManifest
		}
	}
	if !knownManifestType(mt) {
		return manifestInvalid("unsupported manifest media type %q", mt)
	}
	var blobs, children []digest
	if isIndexType(mt) {
		for _, c := range m.Manifests {
			cd, err := parseDigest(c.Digest)
			if err != nil {
				return manifestInvalid("manifests[] names an invalid digest %q", c.Digest)
			}
			children = append(children, cd)
		}
	} else {
		if m.Config == nil {
			return manifestInvalid("an image manifest needs a config descriptor")
		}
		for _, l := range append([]descriptor{*m.Config}, m.Layers...) {
			ld, err := parseDigest(l.Digest)
			if err != nil {
				return manifestInvalid("the manifest names an invalid digest %q", l.Digest)
			}
			if !nondistributable(l) {
				blobs = append(blobs, ld)
			}
		}
	}
	var subject digest
	if m.Subject != nil {
		if subject, err = parseDigest(m.Subject.Digest); err != nil {
			return manifestInvalid("subject names an invalid digest %q", m.Subject.Digest)
		}
	}

	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	for _, b := range blobs {
		if !s.store.exists(s.store.blobLinkPath(name, b)) || !s.store.exists(s.store.blobPath(b)) {
			return errorf(http.StatusBadRequest, codeManifestBlobUnknown, "the manifest references blob %s, which repository %s does not have: push it first", b, name).withDetail(map[string]string{"digest": b.String()})
		}
	}
	for _, c := range children {
		if !s.store.exists(s.store.manifestLinkPath(name, c)) {
			return errorf(http.StatusBadRequest, codeManifestBlobUnknown, "the index references manifest %s, which repository %s does not have: push it first", c, name).withDetail(map[string]string{"digest": c.String()})
		}
	}
	// Spare what it references from a collection running meanwhile.
	s.touch(append(append(blobs, children...), d)...)
	if err := s.store.putBlob(d, body); err != nil {
		return err
	}
	if err := s.store.link(s.store.manifestLinkPath(name, d), []byte(mt)); err != nil {
		return err
	}
	if !subject.isZero() {
		if err := s.addReferrer(name, subject, d, mt, &m, int64(len(body))); err != nil {
			return err
		}
		w.Header().Set("OCI-Subject", subject.String())
	}
	if tag != "" {
		if err := s.store.writeFile(s.store.tagPath(name, tag), []byte(d.String())); err != nil {
			return err
		}
	}
	w.Header().Set("Location", "/v2/"+name+"/manifests/"+d.String())
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (s *Server) deleteManifest(w http.ResponseWriter, r *http.Request, name, ref string) error {
	if !strings.Contains(ref, ":") {
		if !validTag(ref) {
			return manifestInvalid("invalid tag %q", ref)
		}
		err := s.store.remove(s.store.tagPath(name, ref))
		if errors.Is(err, fs.ErrNotExist) {
			return manifestUnknown(name, ref)
		}
		if err != nil {
			return err
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	d, err := s.resolve(name, ref)
	if err != nil {
		return err
	}
	if body, err := s.store.readFile(s.store.blobPath(d)); err == nil {
		var m manifest
		if json.Unmarshal(body, &m) == nil && m.Subject != nil {
			if subj, err := parseDigest(m.Subject.Digest); err == nil {
				s.store.remove(filepath.Join(s.store.referrersDir(name, subj), d.alg+"-"+d.hex))
			}
		}
	}
	tags, err := s.store.listDir(filepath.Join(s.store.repoPath(name), "_tags"))
	if err != nil {
		return err
	}
	for _, t := range tags {
		if b, err := s.store.readFile(s.store.tagPath(name, t)); err == nil && bytes.Equal(b, []byte(d.String())) {
			s.store.remove(s.store.tagPath(name, t))
		}
	}
	if err := s.store.remove(s.store.manifestLinkPath(name, d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}
