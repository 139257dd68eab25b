package logfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
)

// logFile is one open file of a log: the live one or a rotated one.
type logFile struct {
	f    *os.File
	name string
	info os.FileInfo // taken right after opening; identifies the inode
}

func (lf logFile) size() int64 { return lf.info.Size() }

func closeFiles(files []logFile) {
	for _, lf := range files {
		lf.f.Close()
	}
}

// logNames returns the names of the files of the log at path, oldest first:
// path.N, ..., path.1, path. Names that look rotated but are not (path.gz,
// path.01, path.rotating) are left out. A missing directory yields just path.
func logNames(path string) ([]string, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list container log files: %w", err)
	}
	var nums []int
	for _, de := range ents {
		suffix, ok := strings.CutPrefix(de.Name(), base+".")
		if !ok || suffix == "" || suffix[0] == '0' {
			continue
		}
		n, err := strconv.Atoi(suffix)
		if err != nil || n < 1 || strconv.Itoa(n) != suffix {
			continue
		}
		nums = append(nums, n)
	}
	slices.Sort(nums)
	names := make([]string, 0, len(nums)+1)
	for i := len(nums) - 1; i >= 0; i-- {
		names = append(names, path+"."+strconv.Itoa(nums[i]))
	}
	return append(names, path), nil
}

// maxSnapshotAttempts bounds openSet's retries. Rotation takes a few renames,
// so a retry is rarely needed; only a writer that rotates continuously (a
// max-size of a few entries) could starve a reader this long.
const maxSnapshotAttempts = 200

// openSet opens every file of the log at path and returns them oldest first.
// The set is consistent: it is what the directory held at one instant. The
// writer may rename files at any time, so the set is opened optimistically
// and validated afterwards: while our descriptors pin the inodes (no inode we
// hold can be freed and reused), the names are listed and stat'ed again; any
// rename since we opened a name shows up as a name now bound to a different
// inode, and then we start over. Every state the writer passes through while
// rotating is itself a valid ordered set (see Writer.rotateLocked), so a
// snapshot taken mid-rotation is fine.
//
// A log without any file yields an empty set.
func openSet(ctx context.Context, path string) ([]logFile, error) {
	for attempt := 0; ; attempt++ {
		files, ok, err := tryOpenSet(path)
		if err != nil || ok {
			return files, err
		}
		if attempt == maxSnapshotAttempts {
			return nil, errdefs.Unavailable("container log %s keeps rotating; could not open a consistent set of files", path)
		}
		// Back off a little: the writer is in the middle of a rotation.
		d := time.Duration(min(attempt+1, 20)) * 100 * time.Microsecond
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func tryOpenSet(path string) ([]logFile, bool, error) {
	names, err := logNames(path)
	if err != nil {
		return nil, false, err
	}
	var files []logFile
	for _, name := range names {
		f, err := os.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			closeFiles(files)
			return nil, false, fmt.Errorf("open container log: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			closeFiles(files)
			return nil, false, fmt.Errorf("open container log: %w", err)
		}
		files = append(files, logFile{f: f, name: name, info: fi})
	}
	// Validate.
	names, err = logNames(path)
	if err != nil {
		closeFiles(files)
		return nil, false, err
	}
	i := 0
	for _, name := range names {
		fi, err := os.Stat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			closeFiles(files)
			return nil, false, fmt.Errorf("open container log: %w", err)
		}
		if i >= len(files) || files[i].name != name || !os.SameFile(files[i].info, fi) {
			closeFiles(files)
			return nil, false, nil
		}
		i++
	}
	if i != len(files) {
		closeFiles(files)
		return nil, false, nil
	}
	return files, true, nil
}

// tailBlock is how much of a file the tail scan reads at a time.
const tailBlock = 64 * 1024

// tailStart finds where the last n lines of files begin: the index of the
// file and the offset in it. Files are scanned backwards block by block, so
// the cost depends on n, not on the size of the log. Only complete lines
// count: an unterminated line at the end of the live file is being written
// (or was torn by a crash) and is not one of the last n.
func tailStart(files []logFile, n int) (int, int64, error) {
	buf := make([]byte, tailBlock)
	last := len(files) - 1
	for i := last; i >= 0; i-- {
		end := files[i].size()
		if i == last {
			p, err := lastIndexNewline(files[i].f, end, buf)
			if err != nil {
				return 0, 0, err
			}
			end = p + 1 // 0 when the file holds no complete line
			if n == 0 {
				return i, end, nil
			}
		}
		if end == 0 {
			continue
		}
		// The last line of this file ends at end-1; every newline before
		// that starts a line. The start of the file starts one too.
		need := n
		pos := end - 1
		for pos > 0 {
			lo := max(pos-tailBlock, 0)
			b := buf[:pos-lo]
			if _, err := files[i].f.ReadAt(b, lo); err != nil && !errors.Is(err, io.EOF) {
				return 0, 0, fmt.Errorf("read container log: %w", err)
			}
			for {
				j := bytes.LastIndexByte(b, '\n')
				if j < 0 {
					break
				}
				if need--; need == 0 {
					return i, lo + int64(j) + 1, nil
				}
				b = b[:j]
			}
			pos = lo
		}
		if need--; need == 0 {
			return i, 0, nil
		}
		n = need
	}
	return 0, 0, nil
}

// lastIndexNewline returns the offset of the last '\n' in f[:end], or -1.
func lastIndexNewline(f *os.File, end int64, buf []byte) (int64, error) {
	for pos := end; pos > 0; {
		lo := max(pos-int64(len(buf)), 0)
		b := buf[:pos-lo]
		if _, err := f.ReadAt(b, lo); err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("read container log: %w", err)
		}
		if j := bytes.LastIndexByte(b, '\n'); j >= 0 {
			return lo + int64(j), nil
		}
		pos = lo
	}
	return -1, nil
}

const (
	readChunk = 64 * 1024
	// maxLineLen bounds one line of the file. Our lines are at most
	// MaxLineBytes of log, escaped (up to 6 bytes each), plus the other
	// fields; anything longer is garbage and is skipped up to its newline.
	maxLineLen = 6*MaxLineBytes + 4096
)

// lineReader reads lines from a file by offset (pread), so that a follower
// can tell how far it got and pick up what is appended later.
type lineReader struct {
	f     *os.File
	off   int64 // file offset of the byte after buf's data
	limit int64 // do not read at or past this offset; <0: no limit
	buf   []byte
	r     int  // buf[r:] is not consumed yet
	skip  bool // dropping an over-long line up to its newline
}

func newLineReader(f *os.File, off, limit int64) *lineReader {
	return &lineReader{f: f, off: off, limit: limit}
}

// next returns the next complete line, without its newline, valid until the
// next call. ok is false when no complete line is available (yet); the bytes
// of an unterminated line stay buffered.
func (lr *lineReader) next() (line []byte, ok bool, err error) {
	for {
		if i := bytes.IndexByte(lr.buf[lr.r:], '\n'); i >= 0 {
			line = lr.buf[lr.r : lr.r+i]
			lr.r += i + 1
			if lr.skip {
				lr.skip = false
				continue
			}
			return line, true, nil
		}
		if lr.skip || len(lr.buf)-lr.r > maxLineLen {
			lr.skip = true
			lr.buf, lr.r = lr.buf[:0], 0
		}
		n, err := lr.fill()
		if n == 0 || err != nil {
			return nil, false, err
		}
	}
}

// fill reads more of the file into buf and reports how many bytes it got;
// 0 with a nil error means EOF (or the limit).
func (lr *lineReader) fill() (int, error) {
	if lr.r > 0 {
		lr.buf = lr.buf[:copy(lr.buf, lr.buf[lr.r:])]
		lr.r = 0
	}
	want := int64(readChunk)
	if lr.limit >= 0 {
		want = min(want, lr.limit-lr.off)
		if want <= 0 {
			return 0, nil
		}
	}
	l := len(lr.buf)
	lr.buf = slices.Grow(lr.buf, int(want))
	n, err := lr.f.ReadAt(lr.buf[l:l+int(want)], lr.off)
	lr.buf = lr.buf[:l+n]
	lr.off += int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, fmt.Errorf("read container log: %w", err)
	}
	return n, nil
}

// rest returns and forgets the buffered bytes of an unterminated line.
func (lr *lineReader) rest() []byte {
	b := lr.buf[lr.r:]
	if lr.skip {
		b = nil
	}
	lr.buf, lr.r, lr.skip = lr.buf[:0], 0, false
	return b
}

// reset starts over at offset 0 (the file was truncated in place).
func (lr *lineReader) reset() {
	lr.buf, lr.r, lr.skip, lr.off = lr.buf[:0], 0, false, 0
}
