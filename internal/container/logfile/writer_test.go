package logfile

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// numbered is the entry for line i: fixed width, so every line of a file
// has the same length.
func numbered(i int, tm time.Time) Entry {
	return Entry{Stream: "stdout", Log: fmt.Appendf(nil, "line %06d\n", i), Time: tm}
}

// lineLen is the encoded length of a numbered entry at t0.
func lineLen(t *testing.T) int64 {
	t.Helper()
	b, err := Marshal(numbered(0, t0))
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(b))
}

func number(t *testing.T, e Entry) int {
	t.Helper()
	s, ok := strings.CutPrefix(strings.TrimSuffix(string(e.Log), "\n"), "line ")
	n, err := strconv.Atoi(s)
	if !ok || err != nil {
		t.Fatalf("not a numbered line: %q", e.Log)
	}
	return n
}

// fileNumbers returns the numbers of the lines in one file.
func fileNumbers(t *testing.T, name string) []int {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var nums []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		e, err := Unmarshal(sc.Bytes())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		nums = append(nums, number(t, e))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return nums
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func TestRotation(t *testing.T) {
	L := lineLen(t)
	tests := []struct {
		name     string
		maxSize  int64
		maxFiles int
		n        int
		// want holds, oldest file first, the line numbers of each file.
		want [][]int
	}{
		{name: "unlimited", maxSize: 0, maxFiles: 3, n: 100, want: [][]int{seq(0, 100)}},
		{name: "under the limit", maxSize: 10 * L, maxFiles: 3, n: 7, want: [][]int{seq(0, 7)}},
		{name: "file filled exactly", maxSize: 10 * L, maxFiles: 3, n: 10, want: [][]int{seq(0, 10)}},
		{name: "one rotation", maxSize: 10 * L, maxFiles: 3, n: 11, want: [][]int{seq(0, 10), {10}}},
		{name: "max-file 3 drops the oldest", maxSize: 10 * L, maxFiles: 3, n: 95, want: [][]int{seq(70, 80), seq(80, 90), seq(90, 95)}},
		{name: "max-file 5 not yet full", maxSize: 10 * L, maxFiles: 5, n: 25, want: [][]int{seq(0, 10), seq(10, 20), seq(20, 25)}},
		{name: "max-size not a multiple of the line", maxSize: 10*L + L/2, maxFiles: 2, n: 25, want: [][]int{seq(10, 20), seq(20, 25)}},
		{name: "max-file 1 replaces the file", maxSize: 10 * L, maxFiles: 1, n: 95, want: [][]int{seq(90, 95)}},
		{name: "max-file 0 acts as 1", maxSize: 10 * L, maxFiles: 0, n: 20, want: [][]int{seq(10, 20)}},
		{name: "entry larger than max-size", maxSize: L / 2, maxFiles: 4, n: 6, want: [][]int{{2}, {3}, {4}, {5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "c-json.log")
			w, err := NewWriter(path, WriterOptions{MaxSize: tt.maxSize, MaxFiles: tt.maxFiles})
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.n {
				if err := w.WriteEntry(numbered(i, t0)); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}

			var wantNames []string
			for i := len(tt.want) - 1; i >= 1; i-- {
				wantNames = append(wantNames, "c-json.log."+strconv.Itoa(i))
			}
			wantNames = append(wantNames, "c-json.log")
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, de := range ents {
				names = append(names, de.Name())
			}
			slices.Sort(names)
			sortedWant := slices.Clone(wantNames)
			slices.Sort(sortedWant)
			if !slices.Equal(names, sortedWant) {
				t.Fatalf("files: got %q, want %q", names, sortedWant)
			}
			for i, name := range wantNames {
				p := filepath.Join(dir, name)
				if got := fileNumbers(t, p); !slices.Equal(got, tt.want[i]) {
					t.Errorf("%s: lines %v, want %v", name, got, tt.want[i])
				}
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if tt.maxSize > 0 && fi.Size() > tt.maxSize && len(tt.want[i]) > 1 {
					t.Errorf("%s: %d bytes, over max-size %d", name, fi.Size(), tt.maxSize)
				}
				if fi.Mode().Perm() != fileMode {
					t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), os.FileMode(fileMode))
				}
			}
			// Read sees the same lines, oldest first.
			var all []int
			for _, ns := range tt.want {
				all = append(all, ns...)
			}
			var got []int
			for _, e := range readAll(t, path, ReadOptions{Tail: -1}) {
				got = append(got, number(t, e))
			}
			if !slices.Equal(got, all) {
				t.Errorf("Read: got %v, want %v", got, all)
			}
		})
	}
}

func TestWriterConcurrentStreams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	w, err := NewWriter(path, WriterOptions{MaxSize: 4096, MaxFiles: 100})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	var wg sync.WaitGroup
	for _, stream := range []string{"stdout", "stderr"} {
		wg.Go(func() {
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Error(err)
				return
			}
			go func() {
				bw := bufio.NewWriter(pw)
				for i := range n {
					fmt.Fprintf(bw, "%s %d\n", stream, i)
				}
				bw.Flush()
				pw.Close()
			}()
			if err := w.CopyStream(stream, pr); err != nil {
				t.Error(err)
			}
			pr.Close()
		})
	}
	wg.Wait()
	w.Close()
	next := map[string]int{}
	for _, e := range readAll(t, path, ReadOptions{Tail: -1}) {
		want := fmt.Sprintf("%s %d\n", e.Stream, next[e.Stream])
		if string(e.Log) != want {
			t.Fatalf("got %q, want %q", e.Log, want)
		}
		next[e.Stream]++
	}
	if next["stdout"] != n || next["stderr"] != n {
		t.Fatalf("got %v lines, want %d of each", next, n)
	}
}

func TestNewWriterOptions(t *testing.T) {
	tests := []struct {
		name string
		opts WriterOptions
	}{
		{"negative max-size", WriterOptions{MaxSize: -1}},
		{"negative max-file", WriterOptions{MaxFiles: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewWriter(filepath.Join(t.TempDir(), "log"), tt.opts); err == nil {
				t.Fatal("NewWriter succeeded")
			}
		})
	}
}
