package logfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
)

var t0 = time.Date(2026, 11, 23, 9, 1, 47, 123456789, time.UTC)

func TestMarshal(t *testing.T) {
	tests := []struct {
		name string
		e    Entry
		want string
	}{
		{
			name: "docker example",
			e:    Entry{Stream: "stdout", Log: []byte("hello\n"), Time: t0},
			want: `{"log":"hello\n","stream":"stdout","time":"2026-11-23T09:01:47.123456789Z"}` + "\n",
		},
		{
			name: "time converted to UTC, trailing zeros trimmed",
			e:    Entry{Stream: "stderr", Log: []byte("x"), Time: time.Date(2026, 1, 2, 4, 4, 5, 120000000, time.FixedZone("CET", 3600))},
			want: `{"log":"x","stream":"stderr","time":"2026-01-02T03:04:05.12Z"}` + "\n",
		},
		{
			name: "whole second",
			e:    Entry{Stream: "stdout", Log: []byte("x\n"), Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
			want: `{"log":"x\n","stream":"stdout","time":"2026-01-02T03:04:05Z"}` + "\n",
		},
		{
			name: "escaping like docker",
			e:    Entry{Stream: "stdout", Log: []byte("a\"b\\c\td\re\x00f\x1b<g>&h\n"), Time: t0},
			want: `{"log":"a\"b\\c\u0009d\re\u0000f\u001b\u003cg\u003e\u0026h\n","stream":"stdout","time":"2026-11-23T09:01:47.123456789Z"}` + "\n",
		},
		{
			name: "utf-8 kept, invalid bytes and line separators escaped",
			e:    Entry{Stream: "stdout", Log: []byte("héllo \xff\xfe wörld \u2028\u2029 \U0001F600"), Time: t0},
			want: `{"log":"héllo \ufffd\ufffd wörld \u2028\u2029 ` + "\U0001F600" + `","stream":"stdout","time":"2026-11-23T09:01:47.123456789Z"}` + "\n",
		},
		{
			name: "empty log omitted",
			e:    Entry{Stream: "stdout", Time: t0},
			want: `{"stream":"stdout","time":"2026-11-23T09:01:47.123456789Z"}` + "\n",
		},
		{
			name: "empty stream omitted",
			e:    Entry{Log: []byte("x\n"), Time: t0},
			want: `{"log":"x\n","time":"2026-11-23T09:01:47.123456789Z"}` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Marshal(tt.e)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("Marshal:\n got %s\nwant %s", got, tt.want)
			}
			back, err := Unmarshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if back.Stream != tt.e.Stream || !back.Time.Equal(tt.e.Time) {
				t.Fatalf("round trip: got %+v, want %+v", back, tt.e)
			}
			if want := strings.ReplaceAll(string(tt.e.Log), "\xff\xfe", "\ufffd\ufffd"); string(back.Log) != want {
				t.Fatalf("round trip log: got %q, want %q", back.Log, want)
			}
		})
	}
}

func TestMarshalErrors(t *testing.T) {
	tests := []struct {
		name string
		e    Entry
	}{
		{"zero time", Entry{Stream: "stdout", Log: []byte("x")}},
		{"year 10000", Entry{Stream: "stdout", Log: []byte("x"), Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Marshal(tt.e); !errdefs.IsInvalidArgument(err) {
				t.Fatalf("Marshal: got %v, want an invalid-argument error", err)
			}
		})
	}
}

func TestUnmarshalRejects(t *testing.T) {
	tests := []struct {
		name string
		line string
	}{
		{"empty", ""},
		{"torn", `{"log":"hello\n","stream":"std`},
		{"garbage", "not json at all"},
		{"no time", `{"log":"x","stream":"stdout"}`},
		{"bad time", `{"log":"x","stream":"stdout","time":"yesterday"}`},
		{"two objects", `{"log":"x","time":"2026-11-23T09:01:47Z"}{"log":"y","time":"2026-11-23T09:01:47Z"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if e, err := Unmarshal([]byte(tt.line)); err == nil {
				t.Fatalf("Unmarshal(%q) = %+v, want error", tt.line, e)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "100", want: 100},
		{in: "100b", want: 100},
		{in: "100B", want: 100},
		{in: "10k", want: 10_000},
		{in: "10K", want: 10_000},
		{in: "10kb", want: 10_000},
		{in: "10KiB", want: 10_000},
		{in: "10 k", want: 10_000},
		{in: "10m", want: 10_000_000},
		{in: "10MB", want: 10_000_000},
		{in: "1g", want: 1_000_000_000},
		{in: "1G", want: 1_000_000_000},
		{in: "2t", want: 2_000_000_000_000},
		{in: "1p", want: 1_000_000_000_000_000},
		{in: "1.5m", want: 1_500_000},
		{in: "0.5k", want: 500},
		{in: " 7m ", want: 7_000_000},
		{in: "", wantErr: "empty value"},
		{in: "m", wantErr: "want a non-negative number"},
		{in: "-1", wantErr: "want a non-negative number"},
		{in: "0", wantErr: "must be a positive number"},
		{in: "0k", wantErr: "must be a positive number"},
		{in: "0.1", wantErr: "must be a positive number"},
		{in: "10x", wantErr: `unknown unit "x"`},
		{in: "10kx", wantErr: `unknown unit "kx"`},
		{in: "10kbb", wantErr: `unknown unit "kbb"`},
		{in: "10bk", wantErr: `unknown unit "bk"`},
		{in: "1.2.3k", wantErr: "bad number"},
		{in: "10  k", wantErr: "unknown unit"},
		{in: "99999999p", wantErr: "too large"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSize(%q) = %d, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("ParseSize(%q) error %v is not an invalid-argument error", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

// readAll returns every entry Read yields for opts.
func readAll(t *testing.T, path string, opts ReadOptions) []Entry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got []Entry
	err := Read(ctx, path, opts, func(e Entry) error {
		got = append(got, e)
		return nil
	})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return got
}

func logs(entries []Entry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = string(e.Log)
	}
	return out
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.r.Read(p)
}

func TestCopyStreamSplitting(t *testing.T) {
	long := func(n int, c byte) string { return strings.Repeat(string(c), n) }
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{name: "empty", input: "", want: nil},
		{name: "no newline", input: "hello", want: []string{"hello"}},
		{name: "one line", input: "hello\n", want: []string{"hello\n"}},
		{name: "multiple lines", input: "a\nbb\nccc\n", want: []string{"a\n", "bb\n", "ccc\n"}},
		{name: "empty lines", input: "\n\na\n\n", want: []string{"\n", "\n", "a\n", "\n"}},
		{name: "trailing partial", input: "a\nb", want: []string{"a\n", "b"}},
		{name: "carriage returns stay", input: "a\r\nb\r\n", want: []string{"a\r\n", "b\r\n"}},
		{
			name:  "line of max size",
			input: long(MaxLineBytes-1, 'x') + "\n",
			want:  []string{long(MaxLineBytes-1, 'x') + "\n"},
		},
		{
			name:  "line one byte too long",
			input: long(MaxLineBytes, 'x') + "\n",
			want:  []string{long(MaxLineBytes, 'x'), "\n"},
		},
		{
			name:  "line over 16KiB",
			input: long(40000, 'y') + "\nz\n",
			want:  []string{long(MaxLineBytes, 'y'), long(MaxLineBytes, 'y'), long(40000-2*MaxLineBytes, 'y') + "\n", "z\n"},
		},
		{
			name:  "long partial at end",
			input: "a\n" + long(MaxLineBytes+10, 'q'),
			want:  []string{"a\n", long(MaxLineBytes, 'q'), long(10, 'q')},
		},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"one byte reads", iotest.OneByteReader},
		{"1000 byte reads", func(r io.Reader) io.Reader { return chunkReader{r, 1000} }},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "c-json.log")
				w, err := NewWriter(path, WriterOptions{})
				if err != nil {
					t.Fatal(err)
				}
				before := time.Now()
				if err := w.CopyStream("stderr", rd.wrap(strings.NewReader(tt.input))); err != nil {
					t.Fatalf("CopyStream: %v", err)
				}
				after := time.Now()
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				got := readAll(t, path, ReadOptions{Tail: -1})
				if g := logs(got); !equalStrings(g, tt.want) {
					t.Fatalf("entries: got %d %.200q\nwant %d %.200q", len(g), g, len(tt.want), tt.want)
				}
				for _, e := range got {
					if e.Stream != "stderr" {
						t.Errorf("stream %q, want stderr", e.Stream)
					}
					if e.Time.Before(before.Add(-time.Second)) || e.Time.After(after.Add(time.Second)) || e.Time.Location() != time.UTC {
						t.Errorf("time %v not UTC within [%v, %v]", e.Time, before, after)
					}
				}
			})
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// errReader returns its data, then err.
type errReader struct {
	data string
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestCopyStreamErrors(t *testing.T) {
	t.Run("read error flushes and is returned", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "c-json.log")
		w, err := NewWriter(path, WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		boom := errors.New("boom")
		if err := w.CopyStream("stdout", &errReader{data: "a\nb", err: boom}); !errors.Is(err, boom) {
			t.Fatalf("CopyStream: got %v, want %v", err, boom)
		}
		if got, want := logs(readAll(t, path, ReadOptions{Tail: -1})), []string{"a\n", "b"}; !equalStrings(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
	t.Run("write error drains the stream", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "c-json.log")
		w, err := NewWriter(path, WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		r := strings.NewReader(strings.Repeat("line\n", 10000))
		if err := w.CopyStream("stdout", r); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("CopyStream on closed writer: got %v, want ErrClosed", err)
		}
		if r.Len() != 0 {
			t.Fatalf("CopyStream left %d bytes unread", r.Len())
		}
	})
}

func TestNewWriterEndsTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	good, _ := Marshal(Entry{Stream: "stdout", Log: []byte("before\n"), Time: t0})
	torn := []byte(`{"log":"torn by a cra`)
	if err := os.WriteFile(path, append(good, torn...), 0o640); err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(path, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteEntry(Entry{Stream: "stdout", Log: []byte("after\n"), Time: t0}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if got, want := logs(readAll(t, path, ReadOptions{Tail: -1})), []string{"before\n", "after\n"}; !equalStrings(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}
