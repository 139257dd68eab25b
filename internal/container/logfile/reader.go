package logfile

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// ReadOptions select what Read returns, like the flags of `docker logs`.
type ReadOptions struct {
	// Tail is the number of lines to return from the end of the log; < 0
	// means all. Lines are entries (a split long line counts once per
	// entry), counted before Since and Until filter them, as Docker does.
	Tail int
	// Since and Until bound the entries by time; zero means unbounded.
	// Since is inclusive, Until exclusive. Reading stops at the first entry
	// at or after Until (the log is in time order), also when following.
	Since, Until time.Time
	// Follow keeps reading what is appended to the log, across rotations,
	// until ctx ends, Done closes or Until passes.
	Follow bool
	// Done is closed when the container has stopped. A follower then
	// returns once it has read everything written before Done closed. With
	// Done nil it follows until ctx ends.
	Done <-chan struct{}

	// waitHook, if set, is called each time a follower has read everything
	// and is about to wait, with how far it has read the current file (-1
	// without one); tests use it to know what the follower has seen.
	waitHook func(off int64)
	// noInotify makes a follower poll, to test the fallback.
	noInotify bool
}

// Intervals at which a follower re-checks the log without being told to.
// With inotify this is a safety net only (the watch can be lost, e.g. when
// its queue overflows or the directory is replaced); without it, it is how
// a follower notices new lines.
const (
	safetyPollInterval   = time.Second
	fallbackPollInterval = 200 * time.Millisecond
)

// errStop ends reading without error (Until was reached).
var errStop = errors.New("stop reading")

// Read calls fn for each entry of the log at path, oldest first, including
// the rotated files path.N ... path.1, as selected by opts. An error from fn
// stops reading and is returned. Lines that are not valid entries (a line
// torn by a crash, garbage) are skipped.
//
// With opts.Follow, Read then waits for new entries, following the log
// across rotations (it finishes the file it has open before it opens the
// next one, so no line is lost or repeated unless the writer deletes a file
// the reader has not reached yet). A missing log is waited for. It watches
// the directory with inotify where it can and polls otherwise. It returns
// nil when opts.Done closes (after reading what was written before) or
// Until passes, and ctx.Err() when ctx ends.
//
// Without Follow, a missing log reads as empty, and the live file is read
// up to its size when Read started.
func Read(ctx context.Context, path string, opts ReadOptions, fn func(Entry) error) error {
	r := &reader{path: path, opts: opts, fn: fn}
	var err error
	if opts.Follow {
		err = r.follow(ctx)
	} else {
		err = r.readOnce(ctx)
	}
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

type reader struct {
	path string
	opts ReadOptions
	fn   func(Entry) error
	n    int // lines seen, for periodic ctx checks
}

// emit decodes one line and hands it to fn if the options select it.
func (r *reader) emit(ctx context.Context, line []byte) error {
	if r.n++; r.n%512 == 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	e, ok := parseLine(line)
	if !ok {
		return nil
	}
	if !r.opts.Since.IsZero() && e.Time.Before(r.opts.Since) {
		return nil
	}
	if !r.opts.Until.IsZero() && !e.Time.Before(r.opts.Until) {
		return errStop
	}
	return r.fn(e)
}

// drain emits every complete line lr can read now.
func (r *reader) drain(ctx context.Context, lr *lineReader) error {
	for {
		line, ok, err := lr.next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if err := r.emit(ctx, line); err != nil {
			return err
		}
	}
}

// finish drains lr and emits the unterminated rest of the file, if it
// happens to be a whole entry (it is skipped otherwise); used when nothing
// more will be appended to the file.
func (r *reader) finish(ctx context.Context, lr *lineReader) error {
	if err := r.drain(ctx, lr); err != nil {
		return err
	}
	if rest := lr.rest(); len(rest) > 0 {
		return r.emit(ctx, rest)
	}
	return nil
}

// start opens the log's files and works out where reading begins.
func (r *reader) start(ctx context.Context) (files []logFile, idx int, off int64, err error) {
	files, err = openSet(ctx, r.path)
	if err != nil || len(files) == 0 || r.opts.Tail < 0 {
		return files, 0, 0, err
	}
	idx, off, err = tailStart(files, r.opts.Tail)
	if err != nil {
		closeFiles(files)
		return nil, 0, 0, err
	}
	return files, idx, off, nil
}

func (r *reader) readOnce(ctx context.Context) error {
	if r.opts.Tail == 0 {
		return nil
	}
	files, idx, off, err := r.start(ctx)
	if err != nil {
		return err
	}
	defer closeFiles(files)
	for i := idx; i < len(files); i++ {
		lr := newLineReader(files[i].f, off, files[i].size())
		off = 0
		if err := r.finish(ctx, lr); err != nil {
			return err
		}
	}
	return nil
}

func (r *reader) follow(ctx context.Context) error {
	// Watch before looking at the files, so that nothing written after the
	// first look goes unnoticed.
	var w *watcher
	if !r.opts.noInotify {
		w = newWatcher(filepath.Dir(r.path), filepath.Base(r.path))
	}
	var wake <-chan struct{}
	poll := fallbackPollInterval
	if w != nil {
		defer w.close()
		wake = w.c
		poll = safetyPollInterval
	}
	ticker := time.NewTicker(poll)
	defer ticker.Stop()

	done := r.opts.Done
	var until <-chan time.Time
	if !r.opts.Until.IsZero() {
		t := time.NewTimer(time.Until(r.opts.Until))
		defer t.Stop()
		until = t.C
	}

	var (
		cur     *logFile // the file being followed; nil until one exists
		lr      *lineReader
		stopped bool // Done closed or Until passed: drain and return
	)
	defer func() {
		if cur != nil {
			cur.f.Close()
		}
	}()
	// adopt reads all but the last of files (they are complete) from file
	// idx, offset off on, and makes the last one current.
	adopt := func(files []logFile, idx int, off int64) error {
		for i := range files[:len(files)-1] {
			if i >= idx {
				lr := newLineReader(files[i].f, off, -1)
				off = 0
				if err := r.finish(ctx, lr); err != nil {
					closeFiles(files[i:])
					return err
				}
			}
			files[i].f.Close()
		}
		last := files[len(files)-1]
		cur, lr = &last, newLineReader(last.f, off, -1)
		return nil
	}

	files, idx, off, err := r.start(ctx)
	if err != nil {
		return err
	}
	if len(files) > 0 {
		if err := adopt(files, idx, off); err != nil {
			return err
		}
	}

	for {
		if cur == nil {
			files, err := openSet(ctx, r.path)
			if err != nil {
				return err
			}
			if len(files) > 0 {
				// Everything in a log that appeared after we started is new.
				if err := adopt(files, 0, 0); err != nil {
					return err
				}
				continue
			}
		} else {
			if err := r.drain(ctx, lr); err != nil {
				return err
			}
			moved, err := r.rotated(cur)
			if err != nil {
				return err
			}
			if moved {
				// The writer renamed our file away and will not write to
				// it again; what it wrote before the rename is there now.
				if err := r.finish(ctx, lr); err != nil {
					return err
				}
				next, err := r.successor(ctx, cur)
				if err != nil {
					return err
				}
				if next != nil {
					cur.f.Close()
					cur, lr = next, newLineReader(next.f, 0, -1)
					continue
				}
				// The next file is not created yet: wait for it.
			} else if fi, err := cur.f.Stat(); err == nil && fi.Size() < lr.off {
				// Truncated in place (not by our Writer, which replaces
				// files): start over.
				lr.reset()
				continue
			}
		}
		if stopped {
			if cur != nil {
				return r.finish(ctx, lr)
			}
			return nil
		}
		if r.opts.waitHook != nil {
			off := int64(-1)
			if cur != nil {
				off = lr.off
			}
			r.opts.waitHook(off)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			stopped = true
		case <-until:
			stopped = true
		case <-wake:
		case <-ticker.C:
		}
	}
}

// rotated reports whether path no longer names cur.
func (r *reader) rotated(cur *logFile) (bool, error) {
	fi, err := os.Stat(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return !os.SameFile(fi, cur.info), nil
}

// successor returns the file written after cur, or nil if there is none
// yet. cur is found among the log's files by identity; if it is gone (it
// was the oldest and got deleted, or it was replaced with max-file 1) every
// remaining file is newer, so the oldest of them is next.
func (r *reader) successor(ctx context.Context, cur *logFile) (*logFile, error) {
	files, err := openSet(ctx, r.path)
	if err != nil {
		return nil, err
	}
	next := 0
	for i, lf := range files {
		if os.SameFile(lf.info, cur.info) {
			next = i + 1
			break
		}
	}
	var found *logFile
	for i := range files {
		if i == next {
			found = &files[i]
			continue
		}
		files[i].f.Close()
	}
	return found, nil
}
