package logfile

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParseLine checks that the fast decoder agrees with encoding/json
// whenever it accepts a line.
func FuzzParseLine(f *testing.F) {
	for _, e := range []Entry{
		{Stream: "stdout", Log: []byte("hello\n"), Time: t0},
		{Stream: "stderr", Log: []byte("a\"b\\c\td\re\x00f<g>&h\xff\u2028 é\n"), Time: t0},
		{Log: []byte("x"), Time: t0},
		{Stream: "stdout", Time: t0},
	} {
		b, _ := Marshal(e)
		f.Add(bytes.TrimSuffix(b, []byte("\n")))
	}
	f.Add([]byte(`{"log":"\ud83d\ude00 \/ \b\f \u00e9","stream":"stdout","time":"2026-11-23T09:01:47+02:00"}`))
	f.Add([]byte(`{"log":"x","stream":"stdout","time":"2026-11-23T09:01:47Z","attrs":{"a":"b"}}`))
	f.Add([]byte(`{"log":"x","stream":"std`))
	f.Fuzz(func(t *testing.T, line []byte) {
		fast, ok := parseFast(line)
		if !ok {
			return
		}
		var l jsonLine
		if err := json.Unmarshal(line, &l); err != nil {
			t.Fatalf("fast decoder accepted %q, encoding/json: %v", line, err)
		}
		if string(fast.Log) != l.Log || fast.Stream != l.Stream || !fast.Time.Equal(l.Time) ||
			fast.Time.Format(time.RFC3339Nano) != l.Time.Format(time.RFC3339Nano) {
			t.Fatalf("%q: fast %+v, encoding/json %+v", line, fast, l)
		}
	})
}

// FuzzRoundTrip checks that whatever Writer encodes, Read decodes.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("hello\n"), "stdout", int64(0))
	f.Add([]byte("\x00\x1f\"\\<>&\u2028\xff\xfe é"), "stderr", int64(123456789))
	f.Fuzz(func(t *testing.T, log []byte, stream string, ns int64) {
		e := Entry{Stream: stream, Log: log, Time: t0.Add(time.Duration(ns))}
		b, err := Marshal(e)
		if err != nil {
			return
		}
		if bytes.Count(b, []byte("\n")) != 1 {
			t.Fatalf("encoding of %+v spans lines: %q", e, b)
		}
		got, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("Unmarshal(%q): %v", b, err)
		}
		if want := sanitize(log); string(got.Log) != want {
			t.Fatalf("log: got %q, want %q", got.Log, want)
		}
		if want := sanitize([]byte(stream)); got.Stream != want {
			t.Fatalf("stream: got %q, want %q", got.Stream, want)
		}
		if !got.Time.Equal(e.Time) {
			t.Fatalf("time: got %v, want %v", got.Time, e.Time)
		}
	})
}

// sanitize replaces each byte of invalid UTF-8 with U+FFFD, as the encoder
// does.
func sanitize(b []byte) string {
	var out []byte
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		out = utf8.AppendRune(out, r) // RuneError for an invalid byte
		b = b[size:]
	}
	return string(out)
}
