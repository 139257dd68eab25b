package image

import (
	"strings"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
)

// Reference is a parsed, normalised image reference: "busybox" is
// docker.io/library/busybox:latest. Parsing follows the distribution
// reference grammar by hand, without regular expressions, so that no berth
// process pays to compile them at start-up.
type Reference struct {
	Domain string        // "docker.io", "localhost:5000"
	Path   string        // "library/busybox"
	Tag    string        // "" when absent
	Digest digest.Digest // "" when absent
}

const (
	defaultDomain = "docker.io"
	officialRepo  = "library/"
	maxNameLength = 255
)

// Name is the repository: domain and path.
func (r Reference) Name() string { return r.Domain + "/" + r.Path }

// String is the full normalised form.
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// NameOnly reports whether the reference has neither tag nor digest.
func (r Reference) NameOnly() bool { return r.Tag == "" && r.Digest == "" }

// FamiliarName is the repository as docker shows it: "busybox", "me/app",
// "localhost:5000/app".
func (r Reference) FamiliarName() string {
	if r.Domain != defaultDomain {
		return r.Name()
	}
	return strings.TrimPrefix(r.Path, officialRepo)
}

// Familiar is the short form docker shows: "busybox:latest".
func (r Reference) Familiar() string {
	s := r.FamiliarName()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// ParseNormalized parses s and normalises its domain and path, adding no
// tag.
func ParseNormalized(s string) (Reference, error) {
	bad := func(why string) (Reference, error) {
		return Reference{}, errdefs.InvalidArgument("invalid reference format: %q: %s", s, why)
	}
	if s == "" {
		return bad("empty reference")
	}
	if len(s) == 64 && isHex(s) {
		return bad("cannot specify 64-byte hexadecimal strings")
	}
	var r Reference
	rest := s
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		d := digest.Digest(rest[i+1:])
		if err := d.Validate(); err != nil {
			return bad(err.Error())
		}
		r.Digest, rest = d, rest[:i]
	}
	// A tag is after the last colon that follows the last slash (a colon
	// before a slash is a registry port).
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && i > strings.LastIndexByte(rest, '/') {
		r.Tag, rest = rest[i+1:], rest[:i]
		if !validTag(r.Tag) {
			return bad("invalid tag " + r.Tag)
		}
	}
	name := rest
	if name == "" {
		return bad("empty repository name")
	}
	domain, path := defaultDomain, name
	if i := strings.IndexByte(name, '/'); i >= 0 {
		first := name[:i]
		if strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first {
			domain, path = first, name[i+1:]
		}
	}
	if domain == "index.docker.io" {
		domain = defaultDomain
	}
	if !validDomain(domain) {
		return bad("invalid registry " + domain)
	}
	if strings.ToLower(path) != path {
		return bad("repository name must be lowercase")
	}
	if !validPath(path) {
		return bad("invalid repository name " + path)
	}
	if domain == defaultDomain && !strings.ContainsRune(path, '/') {
		path = officialRepo + path
	}
	r.Domain, r.Path = domain, path
	if len(r.Name()) > maxNameLength {
		return bad("repository name must not be more than 255 characters")
	}
	return r, nil
}

// ParseReference normalises a user's image reference the way docker does,
// adding the tag "latest" when there is neither tag nor digest.
func ParseReference(s string) (Reference, error) {
	r, err := ParseNormalized(s)
	if err != nil {
		return r, err
	}
	if r.NameOnly() {
		r.Tag = "latest"
	}
	return r, nil
}

// ParseTag parses a target of `tag`/`import`/`commit`: a reference that may
// not carry a digest.
func ParseTag(s string) (Reference, error) {
	r, err := ParseReference(s)
	if err != nil {
		return r, err
	}
	if r.Digest != "" {
		return Reference{}, errdefs.InvalidArgument("invalid reference format: %q: a tag cannot carry a digest", s)
	}
	return r, nil
}

// FamiliarString is the short form docker shows of a stored reference.
func FamiliarString(ref string) string {
	r, err := ParseNormalized(ref)
	if err != nil {
		return ref
	}
	return r.Familiar()
}

// FamiliarRepoTag splits a stored reference into docker's REPOSITORY and TAG
// columns.
func FamiliarRepoTag(ref string) (repo, tag string) {
	r, err := ParseNormalized(ref)
	if err != nil {
		return ref, ""
	}
	return r.FamiliarName(), r.Tag
}

// ShortID is the 12-hex-digit form of an ID.
func ShortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// validTag: [\w][\w.-]{0,127}
func validTag(t string) bool {
	if t == "" || len(t) > 128 || t[0] == '.' || t[0] == '-' {
		return false
	}
	for i := 0; i < len(t); i++ {
		if !isWord(t[i]) && t[i] != '.' && t[i] != '-' {
			return false
		}
	}
	return true
}

func isWord(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func isAlnumLower(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// validPath: components of [a-z0-9]+ joined by ".", "_", "__" or runs of
// "-", separated by "/".
func validPath(p string) bool {
	for _, comp := range strings.Split(p, "/") {
		if comp == "" || !isAlnumLower(comp[0]) || !isAlnumLower(comp[len(comp)-1]) {
			return false
		}
		for i := 0; i < len(comp); i++ {
			c := comp[i]
			if isAlnumLower(c) {
				continue
			}
			// A separator: ".", "_", "__" or dashes, between alphanumerics.
			j := i
			for j < len(comp) && !isAlnumLower(comp[j]) {
				j++
			}
			sep := comp[i:j]
			if sep != "." && sep != "_" && sep != "__" && strings.Trim(sep, "-") != "" {
				return false
			}
			i = j - 1
		}
	}
	return true
}

// validDomain: host[:port], the host being dot-separated labels of
// letters, digits and inner dashes, or a bracketed IPv6 address.
func validDomain(d string) bool {
	host, port := d, ""
	if strings.HasPrefix(d, "[") {
		end := strings.IndexByte(d, ']')
		if end < 0 {
			return false
		}
		host, port = d[:end+1], strings.TrimPrefix(d[end+1:], ":")
		if len(d) > end+1 && d[end+1] != ':' {
			return false
		}
		for _, c := range host[1 : len(host)-1] {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '.') {
				return false
			}
		}
	} else if i := strings.LastIndexByte(d, ':'); i >= 0 {
		host, port = d[:i], d[i+1:]
		if port == "" {
			return false
		}
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return false
		}
	}
	if strings.HasPrefix(host, "[") {
		return true
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(isWord(c) && c != '_' || c == '-') {
				return false
			}
		}
	}
	return true
}
