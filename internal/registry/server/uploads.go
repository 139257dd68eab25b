package server

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// session is an upload in progress. Its bytes are in uploads/<id>/data;
// the sha256 of what has been written so far is kept in memory so that
// finishing an upload does not read it again (after a restart, or for
// sha512, finishing hashes the file once).
type session struct {
	mu     sync.Mutex
	id     string
	repo   string
	size   int64
	h      hash.Hash // sha256 of data[:size], or nil when unknown
	closed bool
	used   time.Time // last looked up; under Server.sessMu
}

// Open upload sessions are bounded: each holds a directory, two files
// and memory, and a client may open them faster than the collector
// (which may not even run) removes the abandoned ones. At the bound, the
// sessions idle longest past sessionIdle are dropped to make room; when
// none is, a new upload is refused with 429 until one ends.
const (
	defaultMaxSessions = 4096
	sessionIdle        = 15 * time.Minute
)

// admitSession makes room for one more session, or refuses it.
func (s *Server) admitSession() error {
	now := time.Now()
	s.sessMu.Lock()
	full := len(s.sessions) >= s.maxSessions
	var idle []*session
	if full {
		for _, ss := range s.sessions {
			if now.Sub(ss.used) > sessionIdle {
				idle = append(idle, ss)
			}
		}
	}
	s.sessMu.Unlock()
	if !full {
		return nil
	}
	for _, ss := range idle {
		// A session a request holds is in use, however old its lookup.
		if ss.mu.TryLock() {
			if !ss.closed {
				s.endSession(ss)
			}
			ss.mu.Unlock()
		}
	}
	s.sessMu.Lock()
	full = len(s.sessions) >= s.maxSessions
	s.sessMu.Unlock()
	if full {
		return errorf(http.StatusTooManyRequests, codeTooManyRequests, "%d uploads are in progress, the most this registry keeps open: finish or cancel one, or retry later", s.maxSessions)
	}
	return nil
}

func uploadUnknown(id string) *apiError {
	return errorf(http.StatusNotFound, codeBlobUploadUnknown, "upload %q is unknown: start one with POST /v2/<name>/blobs/uploads/", id)
}

func (s *Server) dataPath(id string) string { return filepath.Join(s.store.uploadDir(id), "data") }

// newSession makes uploads/<id> with an empty data file.
func (s *Server) newSession(name string) (*session, error) {
	if err := s.admitSession(); err != nil {
		return nil, err
	}
	id := randomHex(16)
	dir := s.store.uploadDir(id)
	if err := s.store.r.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	if err := s.store.r.WriteFile(filepath.Join(dir, "repo"), []byte(name), 0o644); err != nil {
		s.store.removeAll(dir)
		return nil, err
	}
	f, err := s.store.r.OpenFile(s.dataPath(id), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		s.store.removeAll(dir)
		return nil, err
	}
	f.Close()
	ss := &session{id: id, repo: name, h: sha256.New(), used: time.Now()}
	s.sessMu.Lock()
	s.sessions[id] = ss
	s.sessMu.Unlock()
	return ss, nil
}

// session finds upload id of repository name, from memory or (after a
// restart) from disk, and returns it locked.
func (s *Server) session(name, id string) (*session, error) {
	if !validUploadID(id) {
		return nil, uploadUnknown(id)
	}
	s.sessMu.Lock()
	ss := s.sessions[id]
	if ss == nil {
		repo, err := s.store.readFile(filepath.Join(s.store.uploadDir(id), "repo"))
		fi, serr := s.store.stat(s.dataPath(id))
		if err == nil && serr == nil {
			ss = &session{id: id, repo: string(repo), size: fi.Size()}
			s.sessions[id] = ss
		}
	}
	if ss != nil && ss.repo == name {
		ss.used = time.Now()
	}
	s.sessMu.Unlock()
	if ss == nil || ss.repo != name {
		return nil, uploadUnknown(id)
	}
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		return nil, uploadUnknown(id)
	}
	return ss, nil
}

// endSession removes the session; ss is locked.
func (s *Server) endSession(ss *session) {
	ss.closed = true
	s.sessMu.Lock()
	delete(s.sessions, ss.id)
	s.sessMu.Unlock()
	s.store.removeAll(s.store.uploadDir(ss.id))
}

func (s *Server) sessionHeaders(w http.ResponseWriter, ss *session) {
	h := w.Header()
	h.Set("Location", "/v2/"+ss.repo+"/blobs/uploads/"+ss.id)
	h.Set("Docker-Upload-UUID", ss.id)
	end := ss.size - 1
	if end < 0 {
		end = 0
	}
	h.Set("Range", fmt.Sprintf("0-%d", end))
	h.Set("Content-Length", "0")
}

func (s *Server) startUpload(w http.ResponseWriter, r *http.Request, name string) error {
	q := r.URL.Query()
	if m := q.Get("mount"); m != "" {
		d, err := parseDigest(m)
		if err != nil {
			return err
		}
		if ok, err := s.mount(r, name, d, q.Get("from")); err != nil {
			return err
		} else if ok {
			w.Header().Set("Location", "/v2/"+name+"/blobs/"+d.String())
			w.Header().Set("Docker-Content-Digest", d.String())
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(http.StatusCreated)
			return nil
		}
		// Not mountable: an ordinary session, as the spec says.
	}
	var want digest
	if q.Has("digest") {
		d, err := parseDigest(q.Get("digest"))
		if err != nil {
			return err
		}
		want = d
	}
	ss, err := s.newSession(name)
	if err != nil {
		return err
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if want.isZero() {
		s.sessionHeaders(w, ss)
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	// Monolithic upload: the body is the whole blob.
	if err := s.appendBody(ss, r.Body); err != nil {
		s.endSession(ss)
		return err
	}
	return s.commit(w, ss, want)
}

// mount links d into name from repository from when the caller may pull
// from it and it holds d. Without from (the spec's anonymous mount) any
// stored copy serves: every user of this registry may pull every
// repository, so that reveals nothing a caller could not read anyway
// (per-repository permissions would have to restrict it).
func (s *Server) mount(r *http.Request, name string, d digest, from string) (bool, error) {
	if from != "" && (!validName(from) || !s.allowed(r, access{typ: "repository", name: from, action: "pull"})) {
		return false, nil
	}
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()
	if from != "" && !s.store.exists(s.store.blobLinkPath(from, d)) || !s.store.exists(s.store.blobPath(d)) {
		return false, nil
	}
	if err := s.linkBlob(name, d); err != nil {
		return false, err
	}
	s.touch(d)
	return true, nil
}

// parseContentRange reads "start-end" (also with a "bytes " or "bytes="
// prefix, as some clients send it).
func parseContentRange(v string) (start, end int64, ok bool) {
	v = strings.TrimPrefix(strings.TrimPrefix(v, "bytes="), "bytes ")
	a, b, found := strings.Cut(v, "-")
	if !found {
		return 0, 0, false
	}
	var err1, err2 error
	start, err1 = strconv.ParseInt(a, 10, 64)
	end, err2 = strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start-1 {
		return 0, 0, false
	}
	return start, end, true
}

// checkRange enforces in-order chunks: a Content-Range must start where
// the upload ends (416 otherwise, with the current Range).
func (s *Server) checkRange(w http.ResponseWriter, r *http.Request, ss *session) error {
	cr := r.Header.Get("Content-Range")
	if cr == "" {
		return nil
	}
	start, end, ok := parseContentRange(cr)
	if !ok {
		return errorf(http.StatusBadRequest, codeBlobUploadInvalid, "invalid Content-Range %q: want <start>-<end>", cr)
	}
	if start != ss.size {
		s.sessionHeaders(w, ss)
		return errorf(http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid, "chunk starts at %d but the upload has %d bytes: chunks must be sent in order", start, ss.size)
	}
	if r.ContentLength >= 0 && end-start+1 != r.ContentLength {
		return errorf(http.StatusBadRequest, codeBlobUploadInvalid, "Content-Range %q does not match Content-Length %d", cr, r.ContentLength)
	}
	return nil
}

// appendBody appends body to the session's data, hashing as it goes.
func (s *Server) appendBody(ss *session, body io.Reader) error {
	f, err := s.store.r.OpenFile(s.dataPath(ss.id), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	limit := s.cfg.MaxBlobSize
	if limit > 0 {
		// One byte past the limit tells a blob too large; no more is read.
		body = io.LimitReader(body, max(limit-ss.size+1, 0))
	}
	var src io.Reader = body
	if ss.h != nil {
		src = io.TeeReader(body, ss.h)
	}
	n, err := io.Copy(f, src)
	ss.size += n
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if limit > 0 && ss.size > limit {
		s.endSession(ss)
		return errorf(http.StatusRequestEntityTooLarge, codeSizeInvalid, "the blob exceeds this registry's limit of %d bytes (--max-blob-size): upload cancelled", limit)
	}
	if err != nil {
		// What was read and what was written may differ now: finishing
		// will hash the file. The size is what the file holds.
		ss.h = nil
		if fi, serr := s.store.stat(s.dataPath(ss.id)); serr == nil {
			ss.size = fi.Size()
		}
		return errorf(http.StatusBadRequest, codeBlobUploadInvalid, "reading the chunk failed after %d bytes: %v", n, err)
	}
	return nil
}

func (s *Server) patchUpload(w http.ResponseWriter, r *http.Request, name, id string) error {
	ss, err := s.session(name, id)
	if err != nil {
		return err
	}
	defer ss.mu.Unlock()
	if err := s.checkRange(w, r, ss); err != nil {
		return err
	}
	if err := s.appendBody(ss, r.Body); err != nil {
		return err
	}
	s.sessionHeaders(w, ss)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (s *Server) finishUpload(w http.ResponseWriter, r *http.Request, name, id string) error {
	ss, err := s.session(name, id)
	if err != nil {
		return err
	}
	defer ss.mu.Unlock()
	d, err := parseDigest(r.URL.Query().Get("digest"))
	if err != nil {
		return err
	}
	if err := s.checkRange(w, r, ss); err != nil {
		return err
	}
	if err := s.appendBody(ss, r.Body); err != nil {
		return err
	}
	return s.commit(w, ss, d)
}

// commit verifies the session's data against want and moves it into the
// blob store, linked to the session's repository.
func (s *Server) commit(w http.ResponseWriter, ss *session, want digest) error {
	path := s.dataPath(ss.id)
	f, err := s.store.open(path)
	if err != nil {
		return err
	}
	var got string
	if want.alg == "sha256" && ss.h != nil {
		got = hexString(ss.h.Sum(nil))
	} else {
		h := newHash(want.alg)
		if _, err := io.Copy(h, f); err != nil {
			f.Close()
			return err
		}
		got = hexString(h.Sum(nil))
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return err
	}
	if got != want.hex {
		s.endSession(ss)
		return errorf(http.StatusBadRequest, codeDigestInvalid, "the uploaded content's digest is %s:%s, not %s", want.alg, got, want).withDetail(map[string]string{"digest": want.String()})
	}
	s.gcMu.RLock()
	err = s.store.commitBlobFile(want, path)
	if err == nil {
		err = s.linkBlob(ss.repo, want)
	}
	s.touch(want)
	s.gcMu.RUnlock()
	if err != nil {
		return err
	}
	s.endSession(ss)
	w.Header().Set("Location", "/v2/"+ss.repo+"/blobs/"+want.String())
	w.Header().Set("Docker-Content-Digest", want.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (s *Server) uploadStatus(w http.ResponseWriter, r *http.Request, name, id string) error {
	ss, err := s.session(name, id)
	if err != nil {
		return err
	}
	defer ss.mu.Unlock()
	s.sessionHeaders(w, ss)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) cancelUpload(w http.ResponseWriter, r *http.Request, name, id string) error {
	ss, err := s.session(name, id)
	if err != nil {
		return err
	}
	defer ss.mu.Unlock()
	s.endSession(ss)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return nil
}
