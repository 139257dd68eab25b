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
