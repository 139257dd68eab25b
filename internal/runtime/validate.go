package runtime

import (
	"slices"
	"strings"
)

// CapabilityName is the canonical name of a --cap-add/--cap-drop value
// ("net_admin" -> "CAP_NET_ADMIN", "all" -> "ALL"), and whether the
// capability library knows it. The engine checks a create request with it
// before anything of the container exists.
func CapabilityName(raw string) (string, bool) {
	c := strings.ToUpper(strings.TrimSpace(raw))
	if c == "ALL" || c == "CAP_ALL" {
		return "ALL", true
	}
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c, slices.Contains(knownCapabilities(), c)
}

// ValidateSysctls is the runtime's rule for per-container sysctls (only
// namespaced ones), for the engine to apply before a container exists.
func ValidateSysctls(sysctls map[string]string, hostNetwork bool) error {
	return validateSysctls(sysctls, hostNetwork)
}

// UnavailableCPU returns the first CPU of a cpuset list ("0-2,4") that is
// not online on this host, and the online list; ok is false when the
// list does not parse or the host cannot tell.
func UnavailableCPU(list string) (cpu int, online string, found bool, ok bool) {
	want, err := parseCPUList(list)
	if err != nil {
		return 0, "", false, false
	}
	online, err = liveHost{}.onlineCPUs()
	if err != nil {
		return 0, "", false, false
	}
	have, err := parseCPUList(online)
	if err != nil {
		return 0, online, false, false
	}
	for _, c := range want {
		if !slices.Contains(have, c) {
			return c, online, true, true
		}
	}
	return 0, online, false, true
}
