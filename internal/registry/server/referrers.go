package server

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
)

// addReferrer records manifest d (of media type mt) as a referrer of
// subject: the descriptor the referrers API lists, with the artifact type
// the spec asks for (the manifest's, else its config's media type).
func (s *Server) addReferrer(name string, subject, d digest, mt string, m *manifest, size int64) error {
	desc := descriptor{MediaType: mt, Digest: d.String(), Size: size, ArtifactType: m.ArtifactType, Annotations: m.Annotations}
	if desc.ArtifactType == "" && m.Config != nil && !isIndexType(mt) {
		desc.ArtifactType = m.Config.MediaType
	}
	b, err := json.Marshal(desc)
	if err != nil {
		return err
	}
	return s.store.writeFile(filepath.Join(s.store.referrersDir(name, subject), d.alg+"-"+d.hex), b)
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

// referrers answers the referrers API: an image index of the manifests
// whose subject is the given digest, filtered by ?artifactType=.
func (s *Server) referrers(w http.ResponseWriter, r *http.Request, name, ref string) error {
	subject, err := parseDigest(ref)
	if err != nil {
		return err
	}
	filter := r.URL.Query().Get("artifactType")
	dir := s.store.referrersDir(name, subject)
	entries, err := s.store.listDir(dir)
	if err != nil {
		return err
	}
	out := index{SchemaVersion: 2, MediaType: mtOCIIndex, Manifests: []descriptor{}}
	for _, e := range entries {
		alg, hex, ok := strings.Cut(e, "-")
		if !ok || hexLen(alg) != len(hex) || !isLowerHex(hex) {
			continue
		}
		// A referrer deleted since (or half-written by a crash) is left out.
		if !s.store.exists(s.store.manifestLinkPath(name, digest{alg, hex})) {
			continue
		}
		b, err := s.store.readFile(filepath.Join(dir, e))
		if err != nil {
			continue
		}
		var desc descriptor
		if json.Unmarshal(b, &desc) != nil {
			continue
		}
		if filter != "" && desc.ArtifactType != filter {
			continue
		}
		out.Manifests = append(out.Manifests, desc)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	if filter != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.Header().Set("Content-Type", mtOCIIndex)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	return nil
}
