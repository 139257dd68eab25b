package digest

import (
	"errors"
	"io"
	"strings"
	"testing"
)

// The sha256 of no bytes, a well-known value.
const emptySHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func TestValidate(t *testing.T) {
	hex64 := strings.Repeat("0123456789abcdef", 4)
	for _, tc := range []struct {
		name string
		d    Digest
		want error // nil, ErrInvalid or ErrUnsupported
	}{
		{"valid", Digest("sha256:" + hex64), nil},
		{"valid empty content", emptySHA256, nil},
		{"empty", "", ErrInvalid},
		{"missing colon", Digest("sha256" + hex64), ErrInvalid},
		{"bare hex", Digest(hex64), ErrInvalid},
		{"empty algorithm", Digest(":" + hex64), ErrInvalid},
		{"empty encoded", "sha256:", ErrInvalid},
		{"too short", Digest("sha256:" + hex64[:63]), ErrInvalid},
		{"too long", Digest("sha256:" + hex64 + "0"), ErrInvalid},
		{"uppercase hex", Digest("sha256:" + strings.ToUpper(hex64)), ErrInvalid},
		{"not hex", Digest("sha256:" + hex64[:63] + "g"), ErrInvalid},
		{"uppercase algorithm", Digest("SHA256:" + hex64), ErrInvalid},
		{"two colons", Digest("sha256:" + hex64 + ":x"), ErrInvalid},
		{"space", Digest(" sha256:" + hex64), ErrInvalid},
		{"sha512", Digest("sha512:" + hex64 + hex64), ErrUnsupported},
		{"unknown algorithm", "md5:d41d8cd98f00b204e9800998ecf8427e", ErrUnsupported},
		{"multi-part algorithm", "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", ErrUnsupported},
		{"bad algorithm separator", Digest("sha256+:" + hex64), ErrInvalid},
		{"bad encoded character", "md5:d41d8cd9/f00b204", ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.d.Validate()
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("Validate(%q) = %v, want nil", tc.d, err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("Validate(%q) = %v, want an error matching %v", tc.d, err, tc.want)
			case err != nil && !strings.Contains(err.Error(), string(tc.d)):
				t.Fatalf("Validate(%q) = %v: the message should quote the digest", tc.d, err)
			}
		})
	}
}

func TestValidateMessage(t *testing.T) {
	if got, want := Digest("x").Validate().Error(), `invalid digest "x": want sha256:<64 lowercase hex digits>`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := Digest("sha512:abcd").Validate().Error(); !strings.HasPrefix(got, `unsupported digest algorithm "sha512"`) {
		t.Errorf("got %q", got)
	}
}

func TestParts(t *testing.T) {
	for _, tc := range []struct {
		d        Digest
		alg      Algorithm
		encoded  string
		validHex bool
	}{
		{emptySHA256, SHA256, emptySHA256[len("sha256:"):], true},
		{"sha512:ab", "sha512", "ab", false},
		{"nocolon", "", "", false},
		{"", "", "", false},
	} {
		if got := tc.d.Algorithm(); got != tc.alg {
			t.Errorf("%q.Algorithm() = %q, want %q", tc.d, got, tc.alg)
		}
		if got := tc.d.Encoded(); got != tc.encoded {
			t.Errorf("%q.Encoded() = %q, want %q", tc.d, got, tc.encoded)
		}
		if tc.validHex && NewDigestFromEncoded(tc.alg, tc.encoded) != tc.d {
			t.Errorf("NewDigestFromEncoded(%q, %q) != %q", tc.alg, tc.encoded, tc.d)
		}
	}
}

func TestFrom(t *testing.T) {
	if got := FromBytes(nil); got != emptySHA256 {
		t.Errorf("FromBytes(nil) = %s", got)
	}
	// sha256("abc"), from FIPS 180-2.
	const abc = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := FromString("abc"); got != abc {
		t.Errorf(`FromString("abc") = %s`, got)
	}
	g := NewDigester()
	io.WriteString(g, "a")
	io.WriteString(g, "bc")
	if got := g.Digest(); got != abc {
		t.Errorf("Digester = %s", got)
	}
	if err := FromString("x").Validate(); err != nil {
		t.Errorf("FromString result does not validate: %v", err)
	}
}

func TestVerifier(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    Digest
		data string
		want bool
	}{
		{"match", FromString("hello"), "hello", true},
		{"mismatch", FromString("hello"), "hellO", false},
		{"partial", FromString("hello"), "hell", false},
		{"uppercase want", Digest(strings.ToUpper(string(FromString("hello")))), "hello", false},
		{"unsupported algorithm", Digest("sha512:" + FromString("hello").Encoded()), "hello", false},
		{"empty want", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.d.Verifier()
			io.WriteString(v, tc.data)
			if got := v.Verified(); got != tc.want {
				t.Errorf("Verified() = %v, want %v", got, tc.want)
			}
		})
	}
}
