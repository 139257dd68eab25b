package cgroups

import (
	"fmt"
	"strconv"
	"strings"
)

// Encode describes m (its path and the host's layout) for another process,
// which rebuilds it with Decode without reading mountinfo again. On a host
// running many containers mountinfo is long (every container adds its
// overlay mount), and the container's init would otherwise read it twice.
//
// The form is NUL-separated, as no path can hold a NUL: mode, path, v2
// mount point, then a mount point and its comma-joined controllers per v1
// hierarchy.
func (m *Manager) Encode() string {
	parts := []string{strconv.Itoa(int(m.layout.mode)), m.path, m.layout.v2}
	for _, h := range m.layout.v1 {
		parts = append(parts, h.mountpoint, strings.Join(h.controllers, ","))
	}
	return strings.Join(parts, "\x00")
}

// Decode rebuilds a manager from Encode's output.
func Decode(s string) (*Manager, error) {
	parts := strings.Split(s, "\x00")
	if len(parts) < 3 || len(parts)%2 != 1 {
		return nil, fmt.Errorf("cgroups: malformed manager description")
	}
	mode, err := strconv.Atoi(parts[0])
	if err != nil || Mode(mode) < Legacy || Mode(mode) > Unified {
		return nil, fmt.Errorf("cgroups: malformed manager description: mode %q", parts[0])
	}
	l := layout{mode: Mode(mode), v2: parts[2]}
	for i := 3; i < len(parts); i += 2 {
		if parts[i] == "" || parts[i+1] == "" {
			return nil, fmt.Errorf("cgroups: malformed manager description: empty hierarchy")
		}
		l.v1 = append(l.v1, hierarchy{mountpoint: parts[i], controllers: strings.Split(parts[i+1], ",")})
	}
	return newManager(parts[1], l)
}
