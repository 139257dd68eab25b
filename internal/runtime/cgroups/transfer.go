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
// The form is the path, then the layout's encoding, NUL-separated.
func (m *Manager) Encode() string { return m.path + "\x00" + m.layout.encode() }

// Decode rebuilds a manager from Encode's output.
func Decode(s string) (*Manager, error) {
	path, rest, ok := strings.Cut(s, "\x00")
	if !ok {
		return nil, fmt.Errorf("cgroups: malformed manager description")
	}
	l, err := decodeLayout(rest)
	if err != nil {
		return nil, err
	}
	return newManager(path, l)
}

// encode writes l NUL-separated, as no path can hold a NUL: the mode, the
// v2 mount point, then a mount point and its comma-joined controllers per
// v1 hierarchy.
func (l layout) encode() string {
	parts := []string{strconv.Itoa(int(l.mode)), l.v2}
	for _, h := range l.v1 {
		parts = append(parts, h.mountpoint, strings.Join(h.controllers, ","))
	}
	return strings.Join(parts, "\x00")
}

// decodeLayout reads what layout.encode wrote.
func decodeLayout(s string) (layout, error) {
	parts := strings.Split(s, "\x00")
	if len(parts) < 2 || len(parts)%2 != 0 {
		return layout{}, fmt.Errorf("cgroups: malformed layout description")
	}
	mode, err := strconv.Atoi(parts[0])
	if err != nil || Mode(mode) < Legacy || Mode(mode) > Unified {
		return layout{}, fmt.Errorf("cgroups: malformed layout description: mode %q", parts[0])
	}
	l := layout{mode: Mode(mode), v2: parts[1]}
	for i := 2; i < len(parts); i += 2 {
		if parts[i] == "" || parts[i+1] == "" {
			return layout{}, fmt.Errorf("cgroups: malformed layout description: empty hierarchy")
		}
		l.v1 = append(l.v1, hierarchy{mountpoint: parts[i], controllers: strings.Split(parts[i+1], ",")})
	}
	if l.v2 == "" && len(l.v1) == 0 {
		return layout{}, fmt.Errorf("cgroups: malformed layout description: no hierarchy")
	}
	return l, nil
}

// mountpoints lists l's mount points: v2's first, if any, then v1's.
func (l layout) mountpoints() []string {
	var out []string
	if l.v2 != "" {
		out = append(out, l.v2)
	}
	for _, h := range l.v1 {
		out = append(out, h.mountpoint)
	}
	return out
}
