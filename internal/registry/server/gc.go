package server

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"
)

// GCStats counts what one collection removed.
type GCStats struct {
	Manifests    int // manifest revisions read (the roots)
	Marked       int // digests reachable from them
	LinksRemoved int // repository blob links removed
	BlobsRemoved int // blob files removed
	BytesFreed   int64
	Uploads      int // abandoned upload sessions removed
}

// uploadTTL is how long an upload session may stay untouched before the
// collector removes it as abandoned.
const uploadTTL = 24 * time.Hour

// GC collects garbage while the server keeps serving. It marks every
// digest reachable from a manifest revision of any repository (tags and
// referrers point at revisions, which are themselves kept), then removes
// repository blob links and blob files that nothing marked, sparing
// whatever is younger than the grace window or was touched lately (a
// push uploads its blobs before the manifest that names them) and every
// upload in progress. Each removal re-checks its file under the
// exclusive side of gcMu, which every write holds shared while it checks
// and links content, so a write and a removal of the same digest never
// interleave.
func (s *Server) GC(ctx context.Context) (GCStats, error) {
	var st GCStats
	// The collection's start is taken under the exclusive lock: a write
	// in flight (holding it shared) has finished, so the listing below
	// sees what it wrote, and a later write touches its digests after
	// start, which spares them. Taken without the lock, a manifest push
	// could touch its blobs before start and link itself after the
	// listing: neither marked nor spared, its blobs were collected.
	s.gcMu.Lock()
	start := time.Now()
	s.gcMu.Unlock()
	repos, err := s.store.repositories()
	if err != nil {
		return st, err
	}
	marked := map[digest]bool{}                // in any repository
	repoMarked := map[string]map[digest]bool{} // per repository, for its links
	for _, name := range repos {
		mine := map[digest]bool{}
		repoMarked[name] = mine
		revs, err := s.store.linkedDigests(filepath.Join(s.store.repoPath(name), "_manifests"))
		if err != nil {
			return st, err
		}
		for _, d := range revs {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			st.Manifests++
			marked[d], mine[d] = true, true
			body, err := s.store.readFile(s.store.blobPath(d))
			if err != nil {
				continue
			}
			var m manifest
			if json.Unmarshal(body, &m) != nil {
				continue
			}
			refs := append([]descriptor{}, m.Layers...)
			refs = append(refs, m.Manifests...)
			if m.Config != nil {
				refs = append(refs, *m.Config)
			}
			for _, r := range refs {
				if rd, err := parseDigest(r.Digest); err == nil {
					marked[rd], mine[rd] = true, true
				}
			}
		}
	}
	st.Marked = len(marked)
	cutoff := start.Add(-s.cfg.GCGrace)
	spared := func(d digest, path string) bool {
		s.recentMu.Lock()
		t, ok := s.recent[d]
		s.recentMu.Unlock()
		if ok && t.After(cutoff) {
			return true
		}
		mt, ok := s.store.modTime(path)
		return !ok || mt.After(cutoff)
	}
	// Links first, by what each repository's own manifests reference; a
	// blob still linked from a young link is kept below.
	linked := map[digest]bool{}
	for _, name := range repos {
		links, err := s.store.linkedDigests(filepath.Join(s.store.repoPath(name), "_blobs"))
		if err != nil {
			return st, err
		}
		for _, d := range links {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			p := s.store.blobLinkPath(name, d)
			if repoMarked[name][d] || spared(d, p) {
				linked[d] = true
				continue
			}
			s.gcMu.Lock()
			if !spared(d, p) && s.store.remove(p) == nil {
				st.LinksRemoved++
			} else {
				linked[d] = true
			}
			s.gcMu.Unlock()
		}
	}
	blobs, err := s.allBlobs()
	if err != nil {
		return st, err
	}
	for _, d := range blobs {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		p := s.store.blobPath(d)
		if marked[d] || linked[d] || spared(d, p) {
			continue
		}
		s.gcMu.Lock()
		if !spared(d, p) && !s.linkedAnywhere(repos, d) {
			if fi, err := s.store.stat(p); err == nil && s.store.remove(p) == nil {
				st.BlobsRemoved++
				st.BytesFreed += fi.Size()
			}
		}
		s.gcMu.Unlock()
	}
	st.Uploads = s.sweepUploads(start)
	s.recentMu.Lock()
	for d, t := range s.recent {
		if !t.After(cutoff) {
			delete(s.recent, d)
		}
	}
	s.recentMu.Unlock()
	return st, nil
}

// linkedAnywhere re-checks, under the exclusive lock, that no repository
// known at the start links d (a mount may have linked it since).
func (s *Server) linkedAnywhere(repos []string, d digest) bool {
	for _, name := range repos {
		if s.store.exists(s.store.blobLinkPath(name, d)) {
			return true
		}
	}
	return false
}

// allBlobs lists blobs/<alg>/<xx>/<hex>.
func (s *Server) allBlobs() ([]digest, error) {
	var out []digest
	base := filepath.Join("blobs")
	algs, err := s.store.listDir(base)
	if err != nil {
		return nil, err
	}
	for _, alg := range algs {
		if hexLen(alg) == 0 {
			continue
		}
		prefixes, err := s.store.listDir(filepath.Join(base, alg))
		if err != nil {
			return nil, err
		}
		for _, p := range prefixes {
			hexes, err := s.store.listDir(filepath.Join(base, alg, p))
			if err != nil {
				return nil, err
			}
			for _, h := range hexes {
				if len(h) == hexLen(alg) && isLowerHex(h) && h[:2] == p {
					out = append(out, digest{alg, h})
				}
			}
		}
	}
	return out, nil
}

// sweepUploads removes sessions untouched for uploadTTL that no request
// holds; a session in use is never removed.
func (s *Server) sweepUploads(now time.Time) int {
	ids, err := s.store.listDir(filepath.Join("uploads"))
	if err != nil {
		return 0
	}
	n := 0
	for _, id := range ids {
		if !validUploadID(id) {
			continue
		}
		// Untouched: the directory (made when the session began) and its
		// data (written by every chunk) are both old, or the data is not
		// there at all.
		if dt, ok := s.store.modTime(s.store.uploadDir(id)); !ok || now.Sub(dt) < uploadTTL {
			continue
		}
		if mt, ok := s.store.modTime(s.dataPath(id)); ok && now.Sub(mt) < uploadTTL {
			continue
		}
		s.sessMu.Lock()
		ss := s.sessions[id]
		s.sessMu.Unlock()
		if ss != nil {
			if !ss.mu.TryLock() {
				continue
			}
			s.endSession(ss)
			ss.mu.Unlock()
		} else {
			s.store.removeAll(s.store.uploadDir(id))
		}
		n++
	}
	// Temporary files left by a crash.
	if tmps, err := s.store.listDir(filepath.Join("tmp")); err == nil {
		for _, t := range tmps {
			if mt, ok := s.store.modTime(filepath.Join("tmp", t)); ok && now.Sub(mt) > uploadTTL {
				s.store.remove(filepath.Join("tmp", t))
			}
		}
	}
	return n
}

// RunGC collects every interval (if not zero) and whenever now delivers,
// until ctx ends, reporting each run.
func (s *Server) RunGC(ctx context.Context, interval time.Duration, now <-chan struct{}, report func(GCStats, error)) {
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		case <-now:
		}
		st, err := s.GC(ctx)
		if report != nil {
			report(st, err)
		}
	}
}

func (st GCStats) String() string {
	return fmt.Sprintf("%d manifests, %d digests in use; removed %d links, %d blobs (%d bytes), %d abandoned uploads",
		st.Manifests, st.Marked, st.LinksRemoved, st.BlobsRemoved, st.BytesFreed, st.Uploads)
}
