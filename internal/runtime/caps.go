package runtime

import (
	"slices"
	"strings"

	"github.com/moby/sys/capability"

	"github.com/berth-dev/berth/internal/errdefs"
)

// DefaultCapabilities is Docker's default capability set for containers, in
// Docker's order.
func DefaultCapabilities() []string {
	return []string{
		"CAP_CHOWN",
		"CAP_DAC_OVERRIDE",
		"CAP_FSETID",
		"CAP_FOWNER",
		"CAP_MKNOD",
		"CAP_NET_RAW",
		"CAP_SETGID",
		"CAP_SETUID",
		"CAP_SETFCAP",
		"CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE",
		"CAP_SYS_CHROOT",
		"CAP_KILL",
		"CAP_AUDIT_WRITE",
	}
}

func capName(c capability.Cap) string { return "CAP_" + strings.ToUpper(c.String()) }

// knownCapabilities lists every capability the capability library knows, in
// kernel number order.
func knownCapabilities() []string {
	known := capability.ListKnown()
	out := make([]string, len(known))
	for i, c := range known {
		out[i] = capName(c)
	}
	return out
}

// supportedCapabilities lists the capabilities the running kernel has; it is
// what "ALL" and --privileged mean.
func supportedCapabilities() []string {
	sup, err := capability.ListSupported()
	if err != nil { // no /proc: assume the library's list
		return knownCapabilities()
	}
	out := make([]string, len(sup))
	for i, c := range sup {
		out[i] = capName(c)
	}
	return out
}

// normalizeCaps upper-cases names and adds the CAP_ prefix ("net_admin" ->
// "CAP_NET_ADMIN"); "ALL" stays "ALL". An unknown name is an error naming it
// and the flag it came from.
func normalizeCaps(list []string, flag string, known []string) ([]string, error) {
	out := make([]string, 0, len(list))
	for _, raw := range list {
		c := strings.ToUpper(strings.TrimSpace(raw))
		if c == "ALL" || c == "CAP_ALL" {
			out = append(out, "ALL")
			continue
		}
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if !slices.Contains(known, c) {
			return nil, errdefs.InvalidArgument("unknown capability %q in %s: use a name from capabilities(7) such as NET_ADMIN (the CAP_ prefix is optional), or ALL", raw, flag)
		}
		out = append(out, c)
	}
	return out, nil
}

// capabilitySet computes a container's capabilities the way Docker does:
// privileged gets every capability of the kernel; --cap-add ALL gets every
// capability except those dropped; --cap-drop ALL keeps only those added;
// otherwise the default set minus the drops plus the adds.
//
// Unlike Docker, it also respects berth's own bounding set (as Podman
// does): "every capability" means every one berth holds, default
// capabilities berth lacks are left out quietly, and adding one it lacks is
// an error here rather than an obscure failure of the runtime.
func capabilitySet(add, drop []string, privileged bool, h hostInfo) ([]string, error) {
	known := knownCapabilities()
	add, err := normalizeCaps(add, "--cap-add", known)
	if err != nil {
		return nil, err
	}
	drop, err = normalizeCaps(drop, "--cap-drop", known)
	if err != nil {
		return nil, err
	}
	own, _, err := h.ownCapabilities()
	if err != nil {
		own = nil // unknown: assume berth holds everything
	}
	held := func(c string) bool { return own == nil || slices.Contains(own, c) }
	all := slices.DeleteFunc(supportedCapabilities(), func(c string) bool { return !held(c) })

	var caps []string
	switch {
	case privileged:
		return all, nil
	case slices.Contains(add, "ALL"):
		for _, c := range all {
			if !slices.Contains(drop, c) {
				caps = append(caps, c)
			}
		}
	case slices.Contains(drop, "ALL"):
		caps = add
	default:
		for _, c := range DefaultCapabilities() {
			if !slices.Contains(drop, c) && held(c) {
				caps = append(caps, c)
			}
		}
		caps = append(caps, add...)
	}
	// Drop duplicates, keeping the first occurrence.
	out := make([]string, 0, len(caps))
	for _, c := range caps {
		if c == "ALL" || slices.Contains(out, c) {
			continue
		}
		if !held(c) {
			return nil, errdefs.InvalidArgument("cannot add capability %s: berth itself does not hold it (it is missing from berth's bounding set), so no container it starts can", c)
		}
		out = append(out, c)
	}
	return out, nil
}
