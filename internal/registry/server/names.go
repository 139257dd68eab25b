package server

import (
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"net/http"
	"strings"
)

// Repository names, tags and digests are checked by hand against the
// spec's grammar before any path is built from them: the only bytes that
// ever reach a path are [a-z0-9._-/] in the spec's shape (so no "..", no
// empty component, no leading dot) and lowercase hex. Hand-written rather
// than regexps so that no regexp is compiled in every berth process.

// maxNameLen bounds a repository name: the spec's clients limit the whole
// reference to 255 bytes.
const maxNameLen = 255

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// validComponent: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
func validComponent(c string) bool {
	i := 0
	for {
		start := i
		for i < len(c) && isAlnum(c[i]) {
			i++
		}
		if i == start {
			return false
		}
		if i == len(c) {
			return true
		}
		switch c[i] {
		case '.':
			i++
		case '_':
			i++
			if i < len(c) && c[i] == '_' {
				i++
			}
		case '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return false
		}
	}
}

// validName: components joined by single slashes.
func validName(name string) bool {
	if name == "" || len(name) > maxNameLen {
		return false
	}
	for _, c := range strings.Split(name, "/") {
		if !validComponent(c) {
			return false
		}
	}
	return true
}

// validTag: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
func validTag(t string) bool {
	if t == "" || len(t) > 128 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || (i > 0 && (c == '.' || c == '-'))
		if !ok {
			return false
		}
	}
	return true
}

// digest is a validated "algorithm:hex" of one of the algorithms the
// server stores: sha256 or sha512.
type digest struct{ alg, hex string }

func (d digest) String() string { return d.alg + ":" + d.hex }

func (d digest) isZero() bool { return d.alg == "" }

func hexLen(alg string) int {
	switch alg {
	case "sha256":
		return 64
	case "sha512":
		return 128
	}
	return 0
}

func newHash(alg string) hash.Hash {
	if alg == "sha512" {
		return sha512.New()
	}
	return sha256.New()
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// parseDigest validates s; the error is the spec's DIGEST_INVALID (400),
// or UNSUPPORTED for a well-formed digest of another algorithm.
func parseDigest(s string) (digest, error) {
	alg, enc, ok := strings.Cut(s, ":")
	if !ok || alg == "" || enc == "" {
		return digest{}, errorf(http.StatusBadRequest, codeDigestInvalid, "invalid digest %q: want algorithm:hex", s)
	}
	n := hexLen(alg)
	if n == 0 {
		return digest{}, errorf(http.StatusBadRequest, codeDigestInvalid, "unsupported digest algorithm in %q: sha256 and sha512 are supported", s)
	}
	if len(enc) != n || !isLowerHex(enc) {
		return digest{}, errorf(http.StatusBadRequest, codeDigestInvalid, "invalid digest %q: %s takes %d lowercase hex digits", s, alg, n)
	}
	return digest{alg, enc}, nil
}

func digestOf(alg string, b []byte) digest {
	h := newHash(alg)
	h.Write(b)
	return digest{alg, hexString(h.Sum(nil))}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(out)
}

// validUploadID: the session ids the server makes, 32 lowercase hex digits.
func validUploadID(id string) bool { return len(id) == 32 && isLowerHex(id) }
