package logfile

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkTail measures `logs --tail N` on a 50 MB log (five rotated files
// of 10 MB). It reports, besides ns/op, its speed-up over the anchor: one
// forward scan of all 50 MB that only counts lines, which is the least any
// reader that does not seek backwards must do.
func BenchmarkTail(b *testing.B) {
	const total = 50 << 20
	path := filepath.Join(b.TempDir(), "c-json.log")
	w, err := NewWriter(path, WriterOptions{MaxSize: 10 << 20, MaxFiles: 10})
	if err != nil {
		b.Fatal(err)
	}
	tm := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	var written int64
	for i := 0; written < total; i++ {
		e := Entry{Stream: "stdout", Log: fmt.Appendf(nil, "%08d the quick brown fox jumps over the lazy dog\n", i), Time: tm.Add(time.Duration(i) * time.Microsecond)}
		if err := w.WriteEntry(e); err != nil {
			b.Fatal(err)
		}
		written += int64(len(e.Log)) + 70
	}
	w.Close()

	anchor := fullScan(b, path)
	for _, tail := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("tail=%d", tail), func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				n := 0
				err := Read(ctx, path, ReadOptions{Tail: tail}, func(Entry) error { n++; return nil })
				if err != nil || n != tail {
					b.Fatalf("Read: %d entries, %v", n, err)
				}
			}
			perOp := time.Since(start) / time.Duration(b.N)
			b.ReportMetric(float64(anchor)/float64(perOp), "x-faster-than-scan")
		})
	}
}

// fullScan times the anchor: reading every file of the log once, counting
// lines.
func fullScan(b *testing.B, path string) time.Duration {
	b.Helper()
	names, err := logNames(path)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	lines := 0
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			b.Fatal(err)
		}
		r := bufio.NewReaderSize(f, 64<<10)
		buf := make([]byte, 64<<10)
		for {
			n, err := r.Read(buf)
			lines += bytes.Count(buf[:n], []byte{'\n'})
			if err != nil {
				break
			}
		}
		f.Close()
	}
	if lines == 0 {
		b.Fatal("empty log")
	}
	return time.Since(start)
}
