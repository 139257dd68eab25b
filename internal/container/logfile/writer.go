package logfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
)

// fileMode is the mode of log files, as Docker creates them.
const fileMode = 0o640

// WriterOptions are the json-file --log-opt settings.
type WriterOptions struct {
	// MaxSize is the size in bytes a file may reach before it is rotated;
	// 0 means unlimited. A single entry larger than MaxSize still gets
	// written, alone in its file.
	MaxSize int64
	// MaxFiles is the number of files kept, the live one included. With
	// MaxFiles <= 1 a full file is replaced by an empty one.
	MaxFiles int
}

// Writer appends entries to a json-file log, rotating it by size. It is safe
// for concurrent use (the stdout and stderr copiers share one Writer); each
// entry goes to the file in a single write(2).
type Writer struct {
	path     string
	maxSize  int64
	maxFiles int

	mu   sync.Mutex
	f    *os.File // nil once closed
	size int64    // bytes in f
	// torn is set when a write failed part-way: the next write starts with
	// a newline so that the torn line does not swallow a good one.
	torn      bool
	buf       []byte
	rotations int // for tests
}

// NewWriter opens (creating it if needed) the log at path for appending. Its
// directory must exist. A file that does not end in a newline (its writer
// crashed in the middle of a line) is terminated first, so that the torn line
// stays one corrupt line that readers skip.
func NewWriter(path string, opts WriterOptions) (*Writer, error) {
	if opts.MaxSize < 0 {
		return nil, errdefs.InvalidArgument("log max-size must not be negative, got %d", opts.MaxSize)
	}
	if opts.MaxFiles < 0 {
		return nil, errdefs.InvalidArgument("log max-file must not be negative, got %d", opts.MaxFiles)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, fileMode)
	if err != nil {
		return nil, fmt.Errorf("open container log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open container log: %w", err)
	}
	w := &Writer{path: path, maxSize: opts.MaxSize, maxFiles: max(opts.MaxFiles, 1), f: f, size: fi.Size()}
	if w.size > 0 {
		var last [1]byte
		if _, err := f.ReadAt(last[:], w.size-1); err != nil {
			f.Close()
			return nil, fmt.Errorf("open container log: %w", err)
		}
		w.torn = last[0] != '\n'
	}
	return w, nil
}

// WriteEntry appends e to the log. A zero e.Time means now. If the file is
// full it is rotated first; should rotation fail, the entry is still written
// to the current file and the rotation error is returned.
func (w *Writer) WriteEntry(e Entry) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("write container log %s: %w", w.path, os.ErrClosed)
	}
	buf := w.buf[:0]
	if w.torn {
		buf = append(buf, '\n')
	}
	buf, err := appendEntry(buf, e)
	if err != nil {
		return err
	}
	w.buf = buf
	var rotErr error
	if w.maxSize > 0 && w.size > 0 && w.size+int64(len(buf)) > w.maxSize {
		if rotErr = w.rotateLocked(); rotErr == nil && w.torn {
			buf = buf[1:] // the new file has no torn line to end
		}
	}
	n, err := w.f.Write(buf)
	w.size += int64(n)
	if err != nil {
		w.torn = n > 0 || w.torn
		return fmt.Errorf("write container log %s: %w", w.path, err)
	}
	w.torn = false
	return rotErr
}

// rotateLocked moves the full file out of the way and starts an empty one.
//
// The order of operations keeps every intermediate state a valid,
// chronologically ordered set of files for a concurrent reader: shift
// path.N-1 -> path.N ... path.1 -> path.2 (each rename drops the oldest), then
// path -> path.1, then create path. A reader may see path missing for a
// moment, never two names for one file. Nothing is written to the old file
// after it is renamed.
func (w *Writer) rotateLocked() error {
	if w.maxFiles <= 1 {
		tmp := w.path + ".rotating"
		nf, err := os.OpenFile(tmp, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_TRUNC, fileMode)
		if err != nil {
			return fmt.Errorf("rotate container log: %w", err)
		}
		if err := os.Rename(tmp, w.path); err != nil {
			nf.Close()
			os.Remove(tmp)
			return fmt.Errorf("rotate container log: %w", err)
		}
		w.swap(nf)
		return nil
	}
	for i := w.maxFiles - 1; i > 1; i-- {
		err := os.Rename(w.rotated(i-1), w.rotated(i))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotate container log: %w", err)
		}
	}
	if err := os.Rename(w.path, w.rotated(1)); err != nil {
		return fmt.Errorf("rotate container log: %w", err)
	}
	nf, err := os.OpenFile(w.path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_TRUNC, fileMode)
	if err != nil {
		// Put the old file back so that it stays the live one; readers
		// treat it as never rotated.
		if rerr := os.Rename(w.rotated(1), w.path); rerr != nil {
			return fmt.Errorf("rotate container log: %w (and restoring %s: %v)", err, w.path, rerr)
		}
		return fmt.Errorf("rotate container log: %w", err)
	}
	w.swap(nf)
	return nil
}

func (w *Writer) swap(nf *os.File) {
	w.f.Close()
	w.f = nf
	w.size = 0
	w.rotations++
}

func (w *Writer) rotated(i int) string { return w.path + "." + strconv.Itoa(i) }

// CopyStream reads r until EOF and writes what it reads as entries of the
// given stream ("stdout" or "stderr"), each stamped with the time its last
// byte was read. Lines are cut at '\n' and at MaxLineBytes; a line without
// newline at EOF is written as is.
//
// A failing write does not stop the copy: r is drained to EOF regardless, so
// that a full disk never blocks the container on a full pipe. The first
// write error is returned at the end, or the read error if reading failed.
func (w *Writer) CopyStream(stream string, r io.Reader) error {
	buf := make([]byte, MaxLineBytes)
	var (
		n        int // buffered bytes
		scanned  int // buf[:scanned] holds no newline
		firstErr error
	)
	emit := func(b []byte, now time.Time) {
		if err := w.WriteEntry(Entry{Stream: stream, Log: b, Time: now}); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for {
		m, rerr := r.Read(buf[n:])
		if m > 0 {
			now := time.Now().UTC()
			n += m
			start := 0
			for {
				i := bytes.IndexByte(buf[scanned:n], '\n')
				if i < 0 {
					break
				}
				end := scanned + i + 1
				emit(buf[start:end], now)
				start, scanned = end, end
			}
			switch {
			case start > 0:
				n = copy(buf, buf[start:n])
			case n == len(buf):
				emit(buf, now) // a partial line filling the whole buffer
				n = 0
			}
			scanned = n
		}
		if rerr != nil {
			if n > 0 {
				emit(buf[:n], time.Now().UTC())
			}
			if errors.Is(rerr, io.EOF) {
				return firstErr
			}
			return fmt.Errorf("copy container %s: %w", stream, rerr)
		}
	}
}

// Close closes the log file. Later writes fail; Close is idempotent.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}
