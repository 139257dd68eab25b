package server

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// store is the registry's filesystem layout under its root:
//
//	blobs/<alg>/<hex[:2]>/<hex>          content, by digest (blobs and manifests)
//	uploads/<id>/data, uploads/<id>/repo upload sessions in progress
//	repositories/<name>/_blobs/<alg>/<hex>      link: the repository has the blob
//	repositories/<name>/_manifests/<alg>/<hex>  revision: holds its media type
//	repositories/<name>/_tags/<tag>             holds the tagged digest
//	repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex>  a referrer's descriptor
//	tmp/                                  temporary files, renamed into place
//
// Every file is written whole to tmp/, synced and renamed: a reader or a
// crash sees the old file or the new one, never a part. Repository
// directories begin with "_" where a name component cannot, so a name
// never collides with the layout. Paths are built only from validated
// names, tags and digests (names.go), relative to the root, and every
// file operation goes through an os.Root of it: a symbolic link planted
// in the tree (by a local user, a restored backup) that leads out of
// the root is refused, never followed, so the server reads and writes
// nothing outside its root.
type store struct {
	root string
	r    *os.Root
}

func newStore(root string) (*store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("create registry storage: %w", err)
	}
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("open registry storage: %w", err)
	}
	for _, d := range []string{"blobs", "uploads", "repositories", "tmp"} {
		if err := r.MkdirAll(d, 0o755); err != nil {
			r.Close()
			return nil, fmt.Errorf("create registry storage: %w", err)
		}
	}
	return &store{root: abs, r: r}, nil
}

func (s *store) blobPath(d digest) string {
	return filepath.Join("blobs", d.alg, d.hex[:2], d.hex)
}

func (s *store) repoPath(name string) string {
	return filepath.Join("repositories", filepath.FromSlash(name))
}

func (s *store) blobLinkPath(name string, d digest) string {
	return filepath.Join(s.repoPath(name), "_blobs", d.alg, d.hex)
}

func (s *store) manifestLinkPath(name string, d digest) string {
	return filepath.Join(s.repoPath(name), "_manifests", d.alg, d.hex)
}

func (s *store) tagPath(name, tag string) string {
	return filepath.Join(s.repoPath(name), "_tags", tag)
}

func (s *store) referrersDir(name string, subject digest) string {
	return filepath.Join(s.repoPath(name), "_referrers", subject.alg, subject.hex)
}

func (s *store) uploadDir(id string) string { return filepath.Join("uploads", id) }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hexString(b)
}

// tempFile opens a new file under tmp/ for writing; name is its path in
// the root.
func (s *store) tempFile() (f *os.File, name string, err error) {
	name = filepath.Join("tmp", randomHex(16))
	f, err = s.r.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	return f, name, err
}

// writeFile replaces path with data atomically (temp file, fsync, rename).
func (s *store) writeFile(path string, data []byte) error {
	f, tmp, err := s.tempFile()
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.renameInto(tmp, path)
	}
	if err != nil {
		s.r.Remove(tmp)
	}
	return err
}

// renameInto renames tmp to path, making path's directory first.
func (s *store) renameInto(tmp, path string) error {
	err := s.r.Rename(tmp, path)
	if errors.Is(err, fs.ErrNotExist) {
		if err = s.r.MkdirAll(filepath.Dir(path), 0o755); err == nil {
			err = s.r.Rename(tmp, path)
		}
	}
	return err
}

// putBlob stores data under its digest d (already verified by the caller).
func (s *store) putBlob(d digest, data []byte) error {
	return s.writeFile(s.blobPath(d), data)
}

// commitBlobFile moves the verified, synced file tmp to d's place. A
// concurrent commit of the same digest renames identical bytes over it.
func (s *store) commitBlobFile(d digest, tmp string) error {
	return s.renameInto(tmp, s.blobPath(d))
}

func (s *store) open(path string) (*os.File, error) { return s.r.Open(path) }

func (s *store) readFile(path string) ([]byte, error) { return s.r.ReadFile(path) }

func (s *store) remove(path string) error { return s.r.Remove(path) }

func (s *store) removeAll(path string) error { return s.r.RemoveAll(path) }

func (s *store) stat(path string) (os.FileInfo, error) { return s.r.Stat(path) }

func (s *store) exists(path string) bool {
	_, err := s.r.Lstat(path)
	return err == nil
}

// link writes an empty (or small) link file; its mtime records when the
// repository last received it, which the garbage collector's grace
// window reads.
func (s *store) link(path string, content []byte) error {
	return s.writeFile(path, content)
}

// listDir lists the names in dir, sorted; a missing dir is empty.
func (s *store) listDir(dir string) ([]string, error) {
	ents, err := fs.ReadDir(s.r.FS(), filepath.ToSlash(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

// repoExists: the repository has received anything.
func (s *store) repoExists(name string) bool {
	p := s.repoPath(name)
	return s.exists(filepath.Join(p, "_blobs")) || s.exists(filepath.Join(p, "_manifests")) || s.exists(filepath.Join(p, "_tags"))
}

// repositories walks repositories/ for every repository name, sorted. A
// symbolic link is not a directory to the walk: it is not entered.
func (s *store) repositories() ([]string, error) {
	const base = "repositories"
	var names []string
	err := fs.WalkDir(s.r.FS(), base, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() || path == base {
			return nil
		}
		if strings.HasPrefix(d.Name(), "_") {
			return fs.SkipDir
		}
		if name := strings.TrimPrefix(path, base+"/"); s.repoExists(name) {
			names = append(names, name)
		}
		return nil
	})
	sort.Strings(names)
	return names, err
}

// linkedDigests lists the digests linked under dir/<alg>/<hex>.
func (s *store) linkedDigests(dir string) ([]digest, error) {
	var out []digest
	algs, err := s.listDir(dir)
	if err != nil {
		return nil, err
	}
	for _, alg := range algs {
		if hexLen(alg) == 0 {
			continue
		}
		hexes, err := s.listDir(filepath.Join(dir, alg))
		if err != nil {
			return nil, err
		}
		for _, h := range hexes {
			if len(h) == hexLen(alg) && isLowerHex(h) {
				out = append(out, digest{alg, h})
			}
		}
	}
	return out, nil
}

func (s *store) modTime(path string) (time.Time, bool) {
	fi, err := s.r.Lstat(path)
	if err != nil {
		return time.Time{}, false
	}
	return fi.ModTime(), true
}
