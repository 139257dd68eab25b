// Package content is berth's digest-addressed blob store: manifests, image
// configs and compressed layers live under <root>/blobs/sha256/<hex>, written
// once, verified against their digest, and never modified in place.
package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/fsutil"
)

// Store is a blob store rooted at a directory. It is safe for concurrent use
// by several processes: blobs appear by atomic rename of fully written,
// verified temporary files.
type Store struct {
	root string
}

// New returns a store rooted at root, creating its directories.
func New(root string) (*Store, error) {
	for _, d := range []string{filepath.Join(root, "blobs", "sha256"), filepath.Join(root, "ingest"), filepath.Join(root, "trash")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("content store: %w", err)
		}
	}
	return &Store{root: root}, nil
}

// Path is where the blob with digest d lives (whether or not it exists).
func (s *Store) Path(d digest.Digest) string {
	return filepath.Join(s.root, "blobs", d.Algorithm().String(), d.Encoded())
}

// Exists reports whether the blob is present.
func (s *Store) Exists(d digest.Digest) bool {
	if d.Validate() != nil {
		return false
	}
	_, err := os.Stat(s.Path(d))
	return err == nil
}

// Size returns the size of a stored blob.
func (s *Store) Size(d digest.Digest) (int64, error) {
	if err := d.Validate(); err != nil {
		return 0, errdefs.InvalidArgument("%w", err)
	}
	fi, err := os.Stat(s.Path(d))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, errdefs.NotFound("blob %s: not found", d)
		}
		return 0, err
	}
	return fi.Size(), nil
}

// Open opens the blob for reading.
func (s *Store) Open(d digest.Digest) (*os.File, error) {
	if err := d.Validate(); err != nil {
		return nil, errdefs.InvalidArgument("%w", err)
	}
	f, err := os.Open(s.Path(d))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errdefs.NotFound("blob %s: not found", d)
		}
		return nil, err
	}
	return f, nil
}

// ReadAll returns the content of a (small) blob.
func (s *Store) ReadAll(d digest.Digest) ([]byte, error) {
	f, err := s.Open(d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// Put stores everything r yields and returns its digest and size. When
// expected is not empty the content must match it, or nothing is stored.
func (s *Store) Put(ctx context.Context, r io.Reader, expected digest.Digest) (digest.Digest, int64, error) {
	w, err := s.Writer()
	if err != nil {
		return "", 0, err
	}
	defer w.Abort()
	if _, err := copyCtx(ctx, w, r); err != nil {
		return "", 0, err
	}
	return w.Commit(expected)
}

// PutBytes stores b.
func (s *Store) PutBytes(b []byte) (digest.Digest, error) {
	d := digest.FromBytes(b)
	if s.Exists(d) {
		return d, nil
	}
	w, err := s.Writer()
	if err != nil {
		return "", err
	}
	defer w.Abort()
	if _, err := w.Write(b); err != nil {
		return "", err
	}
	_, _, err = w.Commit(d)
	return d, err
}

// Delete removes a blob; a missing blob is not an error.
func (s *Store) Delete(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return errdefs.InvalidArgument("%w", err)
	}
	if err := os.Remove(s.Path(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Walk calls fn for every stored blob.
func (s *Store) Walk(fn func(d digest.Digest, size int64) error) error {
	dir := filepath.Join(s.root, "blobs", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if err := fn(d, info.Size()); err != nil {
			return err
		}
	}
	return nil
}

// Writer is an in-progress blob: written to a temporary file in the ingest
// directory while its digest is computed, then verified and renamed.
type Writer struct {
	s    *Store
	f    *os.File
	dig  *digest.Digester
	size int64
	done bool
}

// Writer starts a new blob.
func (s *Store) Writer() (*Writer, error) {
	f, err := os.CreateTemp(filepath.Join(s.root, "ingest"), fmt.Sprintf("blob-%d-", os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("content store: %w", err)
	}
	return &Writer{s: s, f: f, dig: digest.NewDigester()}, nil
}

func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.dig.Write(p[:n])
	w.size += int64(n)
	return n, err
}

// Size is how many bytes were written so far.
func (w *Writer) Size() int64 { return w.size }

// Digest is the digest of what was written so far.
func (w *Writer) Digest() digest.Digest { return w.dig.Digest() }

// Commit verifies the content against expected (when set), syncs it and
// moves it into place. Content already present is simply kept.
func (w *Writer) Commit(expected digest.Digest) (digest.Digest, int64, error) {
	d := w.dig.Digest()
	if expected != "" && expected != d {
		w.Abort()
		return "", 0, errdefs.InvalidArgument("content digest mismatch: expected %s, got %s", expected, d)
	}
	if err := w.f.Sync(); err != nil {
		w.Abort()
		return "", 0, err
	}
	if err := w.f.Close(); err != nil {
		w.Abort()
		return "", 0, err
	}
	w.done = true
	if err := os.Rename(w.f.Name(), w.s.Path(d)); err != nil {
		os.Remove(w.f.Name())
		return "", 0, fmt.Errorf("content store: %w", err)
	}
	return d, w.size, nil
}

// Abort discards the blob; it is a no-op after Commit.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.f.Name())
}

func copyCtx(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := src.Read(buf)
		if m > 0 {
			if _, err := dst.Write(buf[:m]); err != nil {
				return n, err
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// Trash moves a blob out of the store into its trash directory, where only
// Sweep looks. It is cheap (one rename), so that garbage collection can
// decide and move inside its metadata transaction and delete after it. It
// returns "" for a blob that is not there.
func (s *Store) Trash(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", errdefs.InvalidArgument("%w", err)
	}
	f, err := os.CreateTemp(filepath.Join(s.root, "trash"), fmt.Sprintf("%d-%s-", os.Getpid(), d.Encoded()))
	if err != nil {
		return "", fmt.Errorf("content store: %w", err)
	}
	name := f.Name()
	f.Close()
	if err := os.Rename(s.Path(d), name); err != nil {
		os.Remove(name)
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", err
	}
	return name, nil
}

// Sweep deletes trashed blobs: those named, or when names is nil what
// processes that died left: their trash and their unfinished blobs (the
// entries carry their pid).
func (s *Store) Sweep(names []string) error {
	if names == nil {
		for _, d := range []struct{ dir, prefix string }{{"trash", ""}, {"ingest", "blob-"}} {
			dir := filepath.Join(s.root, d.dir)
			ents, err := os.ReadDir(dir)
			if err != nil {
				return err
			}
			for _, e := range ents {
				if fsutil.OwnerDead(e.Name(), d.prefix) {
					names = append(names, filepath.Join(dir, e.Name()))
				}
			}
		}
	}
	var errs []error
	for _, n := range names {
		if err := os.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Restore puts a blob Trash moved back (its collection was called off).
func (s *Store) Restore(name string, d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return errdefs.InvalidArgument("%w", err)
	}
	return os.Rename(name, s.Path(d))
}
