package server

import (
	"errors"
	"io/fs"
	"net/http"
)

func blobUnknown(name string, d digest) *apiError {
	return errorf(http.StatusNotFound, codeBlobUnknown, "blob %s is not in repository %s", d, name).withDetail(map[string]string{"digest": d.String()})
}

// getBlob answers GET and HEAD of a blob the repository holds. The file
// goes out through http.ServeContent: Range requests, conditional
// requests and sendfile come with it.
func (s *Server) getBlob(w http.ResponseWriter, r *http.Request, name, ref string) error {
	d, err := parseDigest(ref)
	if err != nil {
		return err
	}
	if s.proxy != nil {
		if err := s.proxyBlob(r, name, d); err != nil {
			return err
		}
	}
	if r.Method == http.MethodHead {
		// A client that asks whether a blob exists is about to name it in
		// a manifest: spare it from a collection running meanwhile (the
		// check and the mark under the collector's shared lock).
		s.gcMu.RLock()
		ok := s.store.exists(s.store.blobLinkPath(name, d))
		if ok {
			s.touch(d)
		}
		s.gcMu.RUnlock()
		if !ok {
			return blobUnknown(name, d)
		}
	} else if !s.store.exists(s.store.blobLinkPath(name, d)) {
		return blobUnknown(name, d)
	}
	f, err := s.store.open(s.store.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return blobUnknown(name, d)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Etag", `"`+d.String()+`"`)
	h.Set("Cache-Control", "max-age=31536000")
	http.ServeContent(w, r, "", fi.ModTime(), f)
	return nil
}

// deleteBlob unlinks the blob from the repository; the collector removes
// its content once nothing links or references it.
func (s *Server) deleteBlob(w http.ResponseWriter, r *http.Request, name, ref string) error {
	d, err := parseDigest(ref)
	if err != nil {
		return err
	}
	err = s.store.remove(s.store.blobLinkPath(name, d))
	if errors.Is(err, fs.ErrNotExist) {
		return blobUnknown(name, d)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// linkBlob records that repository name holds d, under the collector's
// shared lock; the caller has just committed or checked d's content.
func (s *Server) linkBlob(name string, d digest) error {
	return s.store.link(s.store.blobLinkPath(name, d), nil)
}
