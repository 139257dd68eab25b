package container

import "testing"

// TestResolvConf: the container's resolv.conf as Docker writes it.
func TestResolvConf(t *testing.T) {
	host := "# comment\nnameserver 127.0.0.53\nsearch example.com\noptions edns0\n"
	hostPublic := "nameserver 10.0.0.2\nnameserver 127.0.0.1\n"
	tests := []struct {
		name     string
		host     string
		hc       HostConfig
		embedded bool
		want     string
	}{
		{"loopback only: public defaults", host, HostConfig{NetworkMode: "bridge"}, false,
			"search example.com\nnameserver 8.8.8.8\nnameserver 8.8.4.4\noptions edns0\n"},
		{"loopback dropped", hostPublic, HostConfig{NetworkMode: "bridge"}, false, "nameserver 10.0.0.2\n"},
		{"host mode keeps loopback", host, HostConfig{NetworkMode: "host"}, false,
			"search example.com\nnameserver 127.0.0.53\noptions edns0\n"},
		{"flags", host, HostConfig{NetworkMode: "bridge", DNS: []string{"1.1.1.1"}, DNSSearch: []string{"a.b"}, DNSOptions: []string{"ndots:2"}}, false,
			"search a.b\nnameserver 1.1.1.1\noptions ndots:2\n"},
		{"embedded", host, HostConfig{NetworkMode: "appnet"}, true,
			"nameserver 127.0.0.11\nsearch example.com\noptions ndots:0 edns0\n\n# ExtServers: [host(127.0.0.53)]\n"},
		{"embedded with --dns and ndots", hostPublic, HostConfig{NetworkMode: "appnet", DNS: []string{"9.9.9.9"}, DNSOptions: []string{"ndots:3"}}, true,
			"nameserver 127.0.0.11\noptions ndots:3\n\n# ExtServers: [9.9.9.9]\n"},
	}
	for _, tc := range tests {
		if got := string(resolvConf([]byte(tc.host), tc.hc, tc.embedded)); got != tc.want {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.name, got, tc.want)
		}
	}
}
