package logfile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor polls cond until it holds, failing the test after a generous
// deadline (the machine may be loaded).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func appendRaw(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func numbers(t *testing.T, entries []Entry) []int {
	t.Helper()
	var out []int
	for _, e := range entries {
		out = append(out, number(t, e))
	}
	return out
}

// writeNumbered writes lines [from, to) stamped t0 + i seconds.
func writeNumbered(t *testing.T, w *Writer, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := w.WriteEntry(numbered(i, t0.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTail(t *testing.T) {
	L := lineLen(t)
	// 100 lines in 10 files of 10 lines: path.9 (0-9) ... path (90-99).
	path := filepath.Join(t.TempDir(), "c-json.log")
	w, err := NewWriter(path, WriterOptions{MaxSize: 10 * L, MaxFiles: 20})
	if err != nil {
		t.Fatal(err)
	}
	writeNumbered(t, w, 0, 100)
	w.Close()

	// A second log, one file, whose last line was torn by a crash and
	// with garbage in the middle.
	torn := filepath.Join(t.TempDir(), "c-json.log")
	w, err = NewWriter(torn, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeNumbered(t, w, 0, 5)
	w.Close()
	appendRaw(t, torn, []byte("garbage\n"))
	w, err = NewWriter(torn, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeNumbered(t, w, 5, 10)
	w.Close()
	appendRaw(t, torn, []byte(`{"log":"line 000010\n","stream":"std`))

	tests := []struct {
		name string
		path string
		tail int
		want []int
	}{
		{name: "zero", path: path, tail: 0, want: nil},
		{name: "one", path: path, tail: 1, want: []int{99}},
		{name: "whole live file", path: path, tail: 10, want: seq(90, 100)},
		{name: "into the first rotated file", path: path, tail: 11, want: seq(89, 100)},
		{name: "across several files", path: path, tail: 35, want: seq(65, 100)},
		{name: "exactly all", path: path, tail: 100, want: seq(0, 100)},
		{name: "more than all", path: path, tail: 1000, want: seq(0, 100)},
		{name: "all", path: path, tail: -1, want: seq(0, 100)},
		{name: "torn last line is not counted", path: torn, tail: 2, want: []int{8, 9}},
		{name: "garbage counts as a line but is skipped", path: torn, tail: 6, want: seq(5, 10)},
		{name: "torn, all", path: torn, tail: -1, want: seq(0, 10)},
		{name: "missing log", path: filepath.Join(t.TempDir(), "nope.log"), tail: 5, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := numbers(t, readAll(t, tt.path, ReadOptions{Tail: tt.tail})); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTailBlocks(t *testing.T) {
	// Files larger than a tail block, with lines straddling block edges.
	L := lineLen(t)
	path := filepath.Join(t.TempDir(), "c-json.log")
	w, err := NewWriter(path, WriterOptions{MaxSize: 3*tailBlock + 17, MaxFiles: 10})
	if err != nil {
		t.Fatal(err)
	}
	n := int(4 * 3 * tailBlock / L)
	writeNumbered(t, w, 0, n)
	w.Close()
	for _, tail := range []int{1, 500, 2000, 2500, 5000, n - 1, n} {
		got := numbers(t, readAll(t, path, ReadOptions{Tail: tail}))
		if want := seq(n-tail, n); !slices.Equal(got, want) {
			t.Fatalf("tail %d: got %d lines [%v...], want %d [%v...]", tail, len(got), got[:min(3, len(got))], len(want), want[0])
		}
	}
}

func TestSinceUntil(t *testing.T) {
	L := lineLen(t)
	path := filepath.Join(t.TempDir(), "c-json.log")
	w, err := NewWriter(path, WriterOptions{MaxSize: 4 * L, MaxFiles: 10})
	if err != nil {
		t.Fatal(err)
	}
	writeNumbered(t, w, 0, 10) // line i at t0 + i s, over 3 files
	w.Close()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tests := []struct {
		name         string
		tail         int
		since, until time.Time
		want         []int
	}{
		{name: "since is inclusive", tail: -1, since: at(3), want: seq(3, 10)},
		{name: "since between lines", tail: -1, since: at(3).Add(time.Millisecond), want: seq(4, 10)},
		{name: "until is exclusive", tail: -1, until: at(3), want: seq(0, 3)},
		{name: "since and until", tail: -1, since: at(2), until: at(5), want: seq(2, 5)},
		{name: "since after everything", tail: -1, since: at(100), want: nil},
		{name: "until before everything", tail: -1, until: at(-1), want: nil},
		{name: "tail counts before since", tail: 3, since: at(8), want: []int{8, 9}},
		{name: "tail with until", tail: 4, until: at(8), want: []int{6, 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := numbers(t, readAll(t, path, ReadOptions{Tail: tt.tail, Since: tt.since, Until: tt.until}))
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReadCallbackError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	w, err := NewWriter(path, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeNumbered(t, w, 0, 10)
	w.Close()
	boom := errors.New("boom")
	calls := 0
	for _, follow := range []bool{false, true} {
		calls = 0
		err := Read(context.Background(), path, ReadOptions{Tail: -1, Follow: follow}, func(Entry) error {
			if calls++; calls == 3 {
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) || calls != 3 {
			t.Fatalf("follow=%v: got %v after %d calls, want %v after 3", follow, err, calls, boom)
		}
	}
}

// follower runs Read with Follow in the background and records what it
// receives.
type follower struct {
	mu      sync.Mutex
	got     []Entry
	count   atomic.Int64
	waits   atomic.Int64
	lastOff atomic.Int64 // read offset at the last wait
	result  chan error
}

func startFollower(t *testing.T, ctx context.Context, path string, opts ReadOptions) *follower {
	t.Helper()
	f := &follower{result: make(chan error, 1)}
	f.lastOff.Store(-2)
	opts.Follow = true
	opts.waitHook = func(off int64) {
		f.lastOff.Store(off)
		f.waits.Add(1)
	}
	go func() {
		f.result <- Read(ctx, path, opts, func(e Entry) error {
			f.mu.Lock()
			f.got = append(f.got, e)
			f.mu.Unlock()
			f.count.Add(1)
			return nil
		})
	}()
	return f
}

// wait returns Read's result, failing the test if it does not return.
func (f *follower) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-f.result:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("follower did not return")
		return nil
	}
}

func (f *follower) entries() []Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

// waitIdle waits until the follower has gone to sleep at least once more
// than before.
func (f *follower) waitIdle(t *testing.T, before int64) {
	t.Helper()
	waitFor(t, "the follower to wait", func() bool { return f.waits.Load() > before })
}

// followCase is one case of TestFollow.
type followCase struct {
	name     string
	maxSize  int64
	maxFiles int
	before   int  // lines written before the follower starts
	tail     int  // ReadOptions.Tail
	late     bool // the log file is created after the follower starts
	n        int  // lines written while following
	// lag > 0 paces the writer: it writes line i only once the follower
	// has received line i-lag, so that the follower is never so far behind
	// that rotation deletes a file it has not read.
	lag           int
	wantRotations int
	want          []int
}

func TestFollow(t *testing.T) {
	L := lineLen(t)
	tests := []followCase{
		{name: "lines written after start", before: 5, tail: 0, n: 50, want: seq(5, 55)},
		{name: "tail then follow", before: 10, tail: 3, n: 20, want: seq(7, 30)},
		{name: "all then follow", before: 10, tail: -1, n: 20, want: seq(0, 30)},
		{name: "log created later", late: true, tail: 0, n: 20, want: seq(0, 20)},
		{
			name: "rotations, all files kept", maxSize: 40 * L, maxFiles: 50,
			before: 30, tail: -1, n: 1000, wantRotations: 3, want: seq(0, 1030),
		},
		{
			name: "rotations, max-file 2", maxSize: 40 * L, maxFiles: 2,
			tail: 0, n: 300, lag: 5, wantRotations: 3, want: seq(0, 300),
		},
		{
			name: "rotations, max-file 1 replaces", maxSize: 40 * L, maxFiles: 1,
			tail: 0, n: 300, lag: 5, wantRotations: 3, want: seq(0, 300),
		},
		{
			name: "rotations, log created later", maxSize: 40 * L, maxFiles: 3, late: true,
			tail: -1, n: 300, lag: 5, wantRotations: 3, want: seq(0, 300),
		},
	}
	for _, mode := range []string{"inotify", "polling"} {
		for _, tt := range tests {
			if mode == "polling" && tt.lag > 0 {
				continue // one poll interval per paced line: too slow
			}
			t.Run(mode+"/"+tt.name, func(t *testing.T) { testFollow(t, tt, mode == "polling") })
		}
	}
}

func testFollow(t *testing.T, tt followCase, poll bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "c-json.log")
	opts := WriterOptions{MaxSize: tt.maxSize, MaxFiles: tt.maxFiles}
	var w *Writer
	if !tt.late {
		var err error
		if w, err = NewWriter(path, opts); err != nil {
			t.Fatal(err)
		}
		writeNumbered(t, w, 0, tt.before)
	}
	done := make(chan struct{})
	f := startFollower(t, ctx, path, ReadOptions{Tail: tt.tail, Done: done, noInotify: poll})
	// Lines written from here on are new to the follower.
	f.waitIdle(t, 0)
	if tt.late {
		var err error
		if w, err = NewWriter(path, opts); err != nil {
			t.Fatal(err)
		}
	}
	received0 := f.count.Load()
	for i := tt.before; i < tt.before+tt.n; i++ {
		if tt.lag > 0 {
			need := int64(i-tt.before-tt.lag) + received0
			waitFor(t, "the follower to catch up", func() bool { return f.count.Load() >= need })
		}
		if err := w.WriteEntry(numbered(i, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	close(done)
	if err := f.wait(t); err != nil {
		t.Fatalf("Read: %v", err)
	}
	if w.rotations < tt.wantRotations {
		t.Fatalf("only %d rotations, the test wants %d", w.rotations, tt.wantRotations)
	}
	got := numbers(t, f.entries())
	if !slices.Equal(got, tt.want) {
		t.Fatalf("got %d lines %v\nwant %d lines %v", len(got), got, len(tt.want), tt.want)
	}
}

// TestFollowConcurrentRotation lets the writer run flat out while several
// followers read, over a log that keeps every file.
func TestFollowConcurrentRotation(t *testing.T) {
	L := lineLen(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "c-json.log")
	const n = 3000
	w, err := NewWriter(path, WriterOptions{MaxSize: 100 * L, MaxFiles: n/100 + 2})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var fs []*follower
	for range 3 {
		f := startFollower(t, ctx, path, ReadOptions{Tail: -1, Done: done})
		f.waitIdle(t, 0)
		fs = append(fs, f)
	}
	// Another follower starts in the middle of the writing.
	for i := range n {
		if i == n/3 {
			fs = append(fs, startFollower(t, ctx, path, ReadOptions{Tail: -1, Done: done}))
		}
		if err := w.WriteEntry(numbered(i, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	close(done)
	for i, f := range fs {
		if err := f.wait(t); err != nil {
			t.Fatalf("follower %d: %v", i, err)
		}
		if got := numbers(t, f.entries()); !slices.Equal(got, seq(0, n)) {
			t.Fatalf("follower %d: got %d lines, want %d in order", i, len(got), n)
		}
	}
	if w.rotations < 3 {
		t.Fatalf("only %d rotations", w.rotations)
	}
}

func TestFollowPartialLine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "c-json.log")
	first, _ := Marshal(numbered(0, t0))
	second, _ := Marshal(numbered(1, t0))
	appendRaw(t, path, first)
	done := make(chan struct{})
	f := startFollower(t, ctx, path, ReadOptions{Tail: -1, Done: done})

	// Half a line: the follower must read it and wait for the rest.
	half := len(second) / 2
	appendRaw(t, path, second[:half])
	want := int64(len(first) + half)
	waitFor(t, "the follower to read the half line", func() bool { return f.lastOff.Load() == want })
	if got := f.count.Load(); got != 1 {
		t.Fatalf("follower emitted %d entries before the line was complete, want 1", got)
	}
	appendRaw(t, path, second[half:])
	waitFor(t, "the completed line", func() bool { return f.count.Load() == 2 })
	close(done)
	if err := f.wait(t); err != nil {
		t.Fatal(err)
	}
	if got := numbers(t, f.entries()); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("got %v, want [0 1]", got)
	}
}

func TestFollowTruncatedInPlace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "c-json.log")
	w, err := NewWriter(path, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeNumbered(t, w, 0, 5)
	w.Close()
	done := make(chan struct{})
	f := startFollower(t, ctx, path, ReadOptions{Tail: -1, Done: done})
	waitFor(t, "the first lines", func() bool { return f.count.Load() == 5 })
	f.waitIdle(t, 0)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	w, err = NewWriter(path, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waits := f.waits.Load()
	waitFor(t, "the follower to notice the truncation", func() bool {
		return f.waits.Load() > waits && f.lastOff.Load() == 0
	})
	writeNumbered(t, w, 5, 8)
	w.Close()
	close(done)
	if err := f.wait(t); err != nil {
		t.Fatal(err)
	}
	if got := numbers(t, f.entries()); !slices.Equal(got, seq(0, 8)) {
		t.Fatalf("got %v, want %v", got, seq(0, 8))
	}
}

func TestFollowStops(t *testing.T) {
	tests := []struct {
		name    string
		before  int                                        // lines in the log before Read starts
		noFile  bool                                       // no log at all
		done    func(t *testing.T, f *follower, w *Writer) // ends the follow
		doneCh  bool                                       // pass a Done channel that done closes
		until   time.Duration
		cancel  bool // done cancels ctx instead
		wantErr error
		want    []int
	}{
		{
			name: "done after writes drains them", before: 3, doneCh: true,
			done: func(t *testing.T, f *follower, w *Writer) { writeNumbered(t, w, 3, 50) },
			want: seq(0, 50),
		},
		{
			name: "done before start", before: 5, doneCh: true,
			want: seq(0, 5),
		},
		{
			name: "done while the log is missing", noFile: true, doneCh: true,
			done: func(t *testing.T, f *follower, w *Writer) { f.waitIdle(t, 0) },
			want: nil,
		},
		{
			name: "until passes", before: 2, until: 300 * time.Millisecond,
			want: seq(0, 2),
		},
		{
			name: "ctx canceled", before: 2, cancel: true,
			done:    func(t *testing.T, f *follower, w *Writer) { f.waitIdle(t, 0) },
			wantErr: context.Canceled,
			want:    seq(0, 2),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			path := filepath.Join(t.TempDir(), "c-json.log")
			var w *Writer
			if !tt.noFile {
				var err error
				if w, err = NewWriter(path, WriterOptions{}); err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				// Stamped now, so that Until (relative to now) keeps them.
				for i := range tt.before {
					if err := w.WriteEntry(numbered(i, time.Now())); err != nil {
						t.Fatal(err)
					}
				}
			}
			opts := ReadOptions{Tail: -1}
			var done chan struct{}
			if tt.doneCh {
				done = make(chan struct{})
				opts.Done = done
				if tt.done == nil {
					close(done)
				}
			}
			if tt.until > 0 {
				opts.Until = time.Now().Add(tt.until)
			}
			rctx, rcancel := context.WithCancel(ctx)
			defer rcancel()
			f := startFollower(t, rctx, path, opts)
			if tt.done != nil {
				tt.done(t, f, w)
				if tt.cancel {
					rcancel()
				} else {
					close(done)
				}
			}
			err := f.wait(t)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Read: got %v, want %v", err, tt.wantErr)
			}
			if got := numbers(t, f.entries()); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}
