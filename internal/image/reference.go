package image

import (
	"strings"

	"github.com/distribution/reference"

	"github.com/berth-dev/berth/internal/errdefs"
)

// ParseReference normalises a user's image reference the way docker does:
// "busybox" is "docker.io/library/busybox:latest".
func ParseReference(s string) (reference.Named, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return nil, errdefs.InvalidArgument("invalid reference format: %q: %v", s, err)
	}
	return reference.TagNameOnly(named), nil
}

// ParseTag parses a target of `tag`/`import`/`commit`: a reference that may
// not carry a digest.
func ParseTag(s string) (reference.NamedTagged, error) {
	named, err := ParseReference(s)
	if err != nil {
		return nil, err
	}
	tagged, ok := named.(reference.NamedTagged)
	if !ok {
		return nil, errdefs.InvalidArgument("invalid reference format: %q: a tag cannot carry a digest", s)
	}
	if _, isDigested := named.(reference.Digested); isDigested {
		return nil, errdefs.InvalidArgument("invalid reference format: %q: a tag cannot carry a digest", s)
	}
	return tagged, nil
}

// FamiliarString is the short form docker shows: "busybox:latest",
// "myregistry:5000/app:1".
func FamiliarString(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ref
	}
	return reference.FamiliarString(named)
}

// FamiliarRepoTag splits a stored reference into docker's REPOSITORY and TAG
// columns.
func FamiliarRepoTag(ref string) (repo, tag string) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ref, ""
	}
	repo = reference.FamiliarName(named)
	if t, ok := named.(reference.Tagged); ok {
		tag = t.Tag()
	}
	return repo, tag
}

// ShortID is the 12-hex-digit form of an ID.
func ShortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
