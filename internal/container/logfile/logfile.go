// Package logfile implements Docker's "json-file" container log format: the
// file a container's monitor process writes and `berth logs` reads.
//
// # Format
//
// Every entry is one JSON object on its own line, byte for byte as Docker's
// json-file driver writes it:
//
//	{"log":"hello\n","stream":"stdout","time":"2026-11-23T09:01:47.123456789Z"}
//
// Fields come in that order; "log" and "stream" are left out when empty;
// "time" is UTC in RFC 3339 with nanoseconds (trailing zeros trimmed, as
// time.RFC3339Nano does). Strings are escaped the way Docker escapes them:
// '"' and '\\' with a backslash, '\n' and '\r' as \n and \r, every other
// control byte and '<', '>', '&' as \u00XX, U+2028/U+2029 as \u2028/\u2029,
// and each byte of invalid UTF-8 as \ufffd.
//
// A stream is cut into entries at '\n', which stays at the end of "log". A
// line longer than [MaxLineBytes] is written as several entries, only the
// last of which ends in '\n' (Docker's "partial" messages); a partial line at
// the end of a stream is written without a newline.
//
// # Rotation
//
// With a size limit, the live file path is renamed to path.1, path.1 to
// path.2 and so on, keeping at most MaxFiles files. With MaxFiles <= 1 the
// file is replaced (a fresh file renamed over path) rather than truncated in
// place, so that a reader holding the old file can still finish it: the old
// and the new content never share one inode, and no reader ever sees a file
// shrink under it.
//
// # Reading
//
// Writer and readers are different processes (the container's monitor and
// any number of `berth logs`), so they share no locks. A reader opens the set
// of files optimistically and checks, with the descriptors still open, that
// no rename happened in between (see openSet); a follower finishes the file
// it holds to EOF before it moves on to that file's successor, which it finds
// by identity (device and inode), not by name. This is what keeps rotation
// from losing or repeating lines.
package logfile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/berth-dev/berth/internal/errdefs"
)

// MaxLineBytes is the largest "log" value of one entry, newline included. A
// longer line is split into several entries, as Docker does with its 16 KiB
// copy buffer.
const MaxLineBytes = 16 * 1024

// Entry is one record of a container log.
type Entry struct {
	// Stream is "stdout" or "stderr".
	Stream string
	// Log holds the bytes of the line, with its trailing '\n' unless the
	// entry is a partial line.
	Log []byte
	// Time is when the engine received the line.
	Time time.Time
}

// appendEntry appends the json-file encoding of e, newline included, to dst.
func appendEntry(dst []byte, e Entry) ([]byte, error) {
	t := e.Time.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return dst, errdefs.InvalidArgument("log entry time %v: year outside of range [0,9999]", e.Time)
	}
	dst = append(dst, '{')
	sep := false
	if len(e.Log) > 0 {
		dst = append(dst, `"log":`...)
		dst = appendString(dst, e.Log)
		sep = true
	}
	if e.Stream != "" {
		if sep {
			dst = append(dst, ',')
		}
		dst = append(dst, `"stream":`...)
		dst = appendString(dst, []byte(e.Stream))
		sep = true
	}
	if sep {
		dst = append(dst, ',')
	}
	dst = append(dst, `"time":"`...)
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"', '}', '\n')
	return dst, nil
}

// appendString appends s as a quoted JSON string with Docker's escaping.
func appendString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	done := 0 // s[:done] is already in dst
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[done:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			done = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[done:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[done:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		done = i
	}
	dst = append(dst, s[done:]...)
	return append(dst, '"')
}

// jsonLine is the decoded form of one line. "attrs", which Docker writes
// for --log-opt labels/env/tag, is ignored.
type jsonLine struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// parseLine decodes one line of a log file (without its newline). It
// reports false for anything that is not a complete entry: a blank line,
// a half-written line left by a crash, or garbage.
func parseLine(line []byte) (Entry, bool) {
	if len(line) == 0 || line[0] != '{' || line[len(line)-1] != '}' {
		return Entry{}, false
	}
	if e, ok := parseFast(line); ok {
		return e, true
	}
	var l jsonLine
	if err := json.Unmarshal(line, &l); err != nil || l.Time.IsZero() {
		return Entry{}, false
	}
	return Entry{Stream: l.Stream, Log: []byte(l.Log), Time: l.Time}, true
}

// parseFast decodes a line in exactly the shape Docker and Writer produce
// (fields log, stream, time in that order, no whitespace, no attrs), about
// ten times faster than encoding/json, which matters for `logs` on big
// files. Anything else, or anything it is unsure about, it leaves to
// encoding/json by reporting false; when it reports true its result is the
// one encoding/json would give (FuzzParseLine checks this).
func parseFast(line []byte) (Entry, bool) {
	var e Entry
	p, ok := bytes.CutPrefix(line, []byte(`{`))
	if !ok {
		return e, false
	}
	if rest, ok := bytes.CutPrefix(p, []byte(`"log":"`)); ok {
		e.Log, p, ok = unquoteFast(rest)
		if !ok {
			return e, false
		}
		if p, ok = bytes.CutPrefix(p, []byte(`,`)); !ok {
			return e, false
		}
	}
	if rest, ok := bytes.CutPrefix(p, []byte(`"stream":"`)); ok {
		i := bytes.IndexByte(rest, '"')
		if i < 0 {
			return e, false
		}
		for _, c := range rest[:i] {
			if c < 0x20 || c == '\\' || c >= utf8.RuneSelf {
				return e, false
			}
		}
		e.Stream = string(rest[:i])
		if p, ok = bytes.CutPrefix(rest[i+1:], []byte(`,`)); !ok {
			return e, false
		}
	}
	rest, ok := bytes.CutPrefix(p, []byte(`"time":"`))
	if !ok {
		return e, false
	}
	i := bytes.IndexByte(rest, '"')
	if i < 0 || string(rest[i+1:]) != "}" {
		return e, false
	}
	if err := e.Time.UnmarshalText(rest[:i]); err != nil || e.Time.IsZero() {
		return e, false
	}
	return e, true
}

// unquoteFast decodes the JSON string at the start of p (after its opening
// quote) and returns it and what follows its closing quote. It handles the
// escapes Docker writes; anything encoding/json might treat differently
// (raw control bytes, invalid UTF-8, unusual escapes) makes it give up.
func unquoteFast(p []byte) (s, rest []byte, ok bool) {
	i := 0
	for i < len(p) && p[i] != '"' && p[i] != '\\' && p[i] >= 0x20 {
		i++
	}
	if i < len(p) && p[i] == '"' {
		if !utf8.Valid(p[:i]) {
			return nil, nil, false
		}
		return bytes.Clone(p[:i]), p[i+1:], true
	}
	out := make([]byte, i, len(p))
	copy(out, p[:i])
	for i < len(p) {
		c := p[i]
		switch {
		case c == '"':
			if !utf8.Valid(out) {
				return nil, nil, false
			}
			return out, p[i+1:], true
		case c < 0x20:
			return nil, nil, false
		case c != '\\':
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(p) {
			return nil, nil, false
		}
		switch p[i+1] {
		case '"', '\\', '/':
			out = append(out, p[i+1])
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'u':
			r, ok := hex4(p[i+2:])
			if !ok || utf16.IsSurrogate(r) {
				// Surrogate pairs (Docker never writes them) are left
				// to encoding/json.
				return nil, nil, false
			}
			out = utf8.AppendRune(out, r)
			i += 6
			continue
		default:
			return nil, nil, false
		}
		i += 2
	}
	return nil, nil, false
}

func hex4(p []byte) (rune, bool) {
	if len(p) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// Marshal returns the json-file encoding of e, newline included. A zero
// e.Time is an error.
func Marshal(e Entry) ([]byte, error) {
	if e.Time.IsZero() {
		return nil, errdefs.InvalidArgument("log entry without time")
	}
	return appendEntry(nil, e)
}

// Unmarshal decodes one line of a json-file log (with or without its
// trailing newline).
func Unmarshal(line []byte) (Entry, error) {
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	e, ok := parseLine(line)
	if !ok {
		return Entry{}, errdefs.InvalidArgument("not a json-file log entry: %s", truncateForError(line))
	}
	return e, nil
}

func truncateForError(b []byte) string {
	const max = 80
	if len(b) > max {
		return fmt.Sprintf("%q...", b[:max])
	}
	return fmt.Sprintf("%q", b)
}
