package engine

import (
	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/runtime"
)

// Parsers of Docker's value syntaxes that a front end needs to turn
// flags or query strings into requests (docker's CLI parses these before
// the daemon sees them). They are the engine's, so that every front end
// reads "512m", "busybox" or "type=bind,src=..." as the engine does.

// ParseBytes reads a size such as "512m" or "1g" (binary units).
func ParseBytes(s string) (int64, error) { return container.ParseBytes(s) }

// ParseMountFlag reads a --mount value ("type=bind,source=...,target=...").
func ParseMountFlag(v string) (MountSpec, error) { return container.ParseMountFlag(v) }

// ValidSysctl reports whether a container may set sysctl key (namespaced
// ones only, as Docker allows).
func ValidSysctl(key, value string) bool {
	return runtime.ValidateSysctls(map[string]string{key: value}, false) == nil
}

// ParseReference normalises an image reference ("busybox" is
// "docker.io/library/busybox:latest") or says why it is not one.
func ParseReference(ref string) (string, error) {
	r, err := image.ParseReference(ref)
	if err != nil {
		return "", err
	}
	return r.String(), nil
}

// FamiliarString is the short form of a normalised reference, as Docker
// prints it ("busybox:latest").
func FamiliarString(ref string) string { return image.FamiliarString(ref) }

// ShortID is the 12-hex-digit form of an image or container ID.
func ShortID(id string) string { return image.ShortID(id) }
