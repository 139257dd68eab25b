// Package digest is berth's content digest: the OCI form "algorithm:encoded",
// of which berth creates and accepts only sha256:<64 lowercase hex digits>.
// It is checked by hand rather than with regular expressions because every
// berth process links it, and compiling them at start-up costs each one time.
package digest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// Algorithm names a digest algorithm: the part of a digest before the colon.
type Algorithm string

// SHA256 is the only algorithm berth computes, and the one OCI and Docker use.
const SHA256 Algorithm = "sha256"

func (a Algorithm) String() string { return string(a) }

// Digest is a content digest such as "sha256:e3b0c442…". The zero value
// means "no digest".
type Digest string

// Errors of Validate, for errors.Is.
var (
	ErrInvalid     = errors.New("invalid digest")
	ErrUnsupported = errors.New("unsupported digest algorithm")
)

const sha256HexLen = 2 * sha256.Size

// FromBytes is the sha256 digest of b.
func FromBytes(b []byte) Digest {
	sum := sha256.Sum256(b)
	return NewDigestFromEncoded(SHA256, hex.EncodeToString(sum[:]))
}

// FromString is the sha256 digest of s.
func FromString(s string) Digest { return FromBytes([]byte(s)) }

// NewDigestFromEncoded joins an algorithm and its encoded (hex) value; it
// does not validate them.
func NewDigestFromEncoded(alg Algorithm, encoded string) Digest {
	return Digest(string(alg) + ":" + encoded)
}

func (d Digest) String() string { return string(d) }

// Algorithm is the part before the colon, or "" if there is none.
func (d Digest) Algorithm() Algorithm {
	alg, _, ok := strings.Cut(string(d), ":")
	if !ok {
		return ""
	}
	return Algorithm(alg)
}

// Encoded is the part after the colon, or "" if there is none.
func (d Digest) Encoded() string {
	_, enc, _ := strings.Cut(string(d), ":")
	return enc
}

// Validate checks that d is sha256:<64 lowercase hex digits>. A digest that
// is well formed by the OCI grammar but uses another algorithm (sha512, say)
// gets an error matching ErrUnsupported; anything else one matching
// ErrInvalid.
func (d Digest) Validate() error {
	alg, enc, ok := strings.Cut(string(d), ":")
	if ok && Algorithm(alg) == SHA256 {
		if len(enc) == sha256HexLen && isLowerHex(enc) {
			return nil
		}
	} else if ok && validAlgorithm(alg) && validEncoded(enc) {
		return fmt.Errorf("%w %q in %q: only sha256 is supported", ErrUnsupported, alg, string(d))
	}
	return fmt.Errorf("%w %q: want sha256:<64 lowercase hex digits>", ErrInvalid, string(d))
}

// Verifier returns a writer that checks what is written to it against d.
// For a digest that is not valid sha256 it never verifies.
func (d Digest) Verifier() *Verifier {
	return &Verifier{want: d, dig: NewDigester()}
}

// Verifier hashes what is written to it; see Digest.Verifier.
type Verifier struct {
	want Digest
	dig  *Digester
}

func (v *Verifier) Write(p []byte) (int, error) { return v.dig.Write(p) }

// Verified reports whether what was written so far has the expected digest.
func (v *Verifier) Verified() bool { return v.dig.Digest() == v.want }

// Digester computes the sha256 digest of what is written to it.
type Digester struct {
	h hash.Hash
}

// NewDigester returns a sha256 Digester.
func NewDigester() *Digester { return &Digester{h: sha256.New()} }

// Write never fails.
func (g *Digester) Write(p []byte) (int, error) { return g.h.Write(p) }

// Digest is the digest of what was written so far.
func (g *Digester) Digest() Digest {
	var sum [sha256.Size]byte
	return NewDigestFromEncoded(SHA256, hex.EncodeToString(g.h.Sum(sum[:0])))
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// validAlgorithm follows the OCI grammar: lowercase alphanumeric
// components joined by one of "+._-".
func validAlgorithm(s string) bool {
	if s == "" {
		return false
	}
	prevSep := true // no separator first
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			prevSep = false
		case c == '+' || c == '.' || c == '_' || c == '-':
			if prevSep {
				return false
			}
			prevSep = true
		default:
			return false
		}
	}
	return !prevSep
}

// validEncoded follows the OCI grammar for the encoded part: [a-zA-Z0-9=_-]+.
func validEncoded(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '=' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
