package cli

import (
	"testing"

	"github.com/berth-dev/berth/internal/engine"
)

// TestDisplayPorts: docker's PORTS column.
func TestDisplayPorts(t *testing.T) {
	tests := []struct {
		name  string
		ports []engine.Port
		want  string
	}{
		{"none", nil, ""},
		{"exposed", []engine.Port{{PrivatePort: 80, Type: "tcp"}}, "80/tcp"},
		{"mapped", []engine.Port{{IP: "0.0.0.0", PrivatePort: 80, PublicPort: 8080, Type: "tcp"}, {IP: "::", PrivatePort: 80, PublicPort: 8080, Type: "tcp"}},
			"0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"},
		{"same numbers collapse", []engine.Port{{IP: "0.0.0.0", PrivatePort: 8080, PublicPort: 8080, Type: "tcp"}, {IP: "0.0.0.0", PrivatePort: 8081, PublicPort: 8081, Type: "tcp"}},
			"0.0.0.0:8080-8081->8080-8081/tcp"},
		{"exposed range and udp", []engine.Port{{PrivatePort: 53, Type: "udp"}, {PrivatePort: 7000, Type: "tcp"}, {PrivatePort: 7001, Type: "tcp"}},
			"53/udp, 7000-7001/tcp"},
	}
	for _, tc := range tests {
		if got := displayPorts(tc.ports); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
