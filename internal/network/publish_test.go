package network

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/errdefs"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "daemon.json")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadPublishPolicy(t *testing.T) {
	cases := []struct {
		name, file, flag string
		wantIP           string
		wantOnly         string
		wantErr          string
	}{
		{name: "no file"},
		{name: "empty", file: `{}`},
		{name: "other keys", file: `{"insecure-registries": ["r:5000"]}`},
		{name: "ip", file: `{"ip": "127.0.0.1"}`, wantIP: "127.0.0.1"},
		{name: "ip unspecified is every address", file: `{"ip": "0.0.0.0"}`},
		{name: "flag wins", file: `{"ip": "127.0.0.1"}`, flag: "192.0.2.1", wantIP: "192.0.2.1"},
		{name: "bad ip", file: `{"ip": "localhost"}`, wantErr: `"ip" "localhost" is not an IP address`},
		{name: "bad flag", flag: "nope", wantErr: `--default-bind-ip "nope" is not an IP address`},
		{name: "list", file: `{"publish-addresses": ["127.0.0.1", "192.0.2.10", "127.0.0.1", "2001:db8::5"]}`, wantOnly: "127.0.0.1, 192.0.2.10, 2001:db8::5"},
		{name: "list mapped", file: `{"publish-addresses": ["::ffff:192.0.2.10"]}`, wantOnly: "192.0.2.10"},
		{name: "list bad", file: `{"publish-addresses": ["192.0.2.0/24"]}`, wantErr: `publish-addresses: "192.0.2.0/24" is not an IP address`},
		{name: "list any", file: `{"publish-addresses": ["0.0.0.0"]}`, wantErr: "0.0.0.0 means every address"},
		{name: "list ::1", file: `{"publish-addresses": ["::1"]}`, wantErr: "cannot be published on ::1"},
		{name: "bad json", file: `{"publish-addresses": "127.0.0.1"}`, wantErr: "cannot unmarshal"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := PublishConfig{File: filepath.Join(t.TempDir(), "absent.json"), IP: tc.flag}
			if tc.file != "" {
				c.File = writeConfig(t, tc.file)
			}
			p, err := loadPublishPolicy(c)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("error %v, want an invalid argument with %q", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), c.File) {
					t.Errorf("error %q does not name the file", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			gotIP := ""
			if p.defaultIP.IsValid() {
				gotIP = p.defaultIP.String()
			}
			if gotIP != tc.wantIP || joinAddrs(p.only) != tc.wantOnly {
				t.Errorf("ip %q only %q, want %q %q", gotIP, joinAddrs(p.only), tc.wantIP, tc.wantOnly)
			}
		})
	}
}

func TestHostAddrs(t *testing.T) {
	bridge := &Network{Name: BridgeName, Driver: "bridge", Options: map[string]string{OptHostBinding: "0.0.0.0"}}
	user := &Network{Name: "appnet", Driver: "bridge", Options: map[string]string{}}
	dual := &Network{Name: "dualnet", Driver: "bridge", EnableIPv6: true, Options: map[string]string{},
		IPAM: IPAM{Config: []IPAMConfig{{Subnet: "10.1.0.0/24"}, {Subnet: "fd00:1::/64"}}}}
	bound := &Network{Name: "boundnet", Driver: "bridge", Options: map[string]string{OptHostBinding: "192.0.2.20"}}
	loop := netip.MustParseAddr("127.0.0.1")
	pub := netip.MustParseAddr("192.0.2.10")
	v6 := netip.MustParseAddr("2001:db8::5")
	cases := []struct {
		name      string
		defaultIP netip.Addr
		only      []netip.Addr
		binding   string
		net       *Network
		want      string // addresses, "*" for every address
		wantErr   string
	}{
		{name: "every address", net: bridge, want: "*"},
		{name: "explicit", binding: "192.0.2.7", net: bridge, want: "192.0.2.7"},
		{name: "explicit any", binding: "0.0.0.0", net: bridge, want: "0.0.0.0"},
		{name: "daemon ip on the default bridge", defaultIP: loop, net: bridge, want: "127.0.0.1"},
		{name: "daemon ip not on user networks", defaultIP: loop, net: user, want: "*"},
		{name: "explicit beats daemon ip", defaultIP: loop, binding: "0.0.0.0", net: bridge, want: "0.0.0.0"},
		{name: "network option", net: bound, want: "192.0.2.20"},
		{name: "network option beats daemon ip", defaultIP: loop, net: bound, want: "192.0.2.20"},
		{name: "explicit beats network option", binding: "127.0.0.1", net: bound, want: "127.0.0.1"},
		{name: "unknown network", net: nil, want: "*"},
		{name: "only: every address is the list", only: []netip.Addr{loop, pub, v6}, net: dual, want: "127.0.0.1, 192.0.2.10, 2001:db8::5"},
		{name: "only: no IPv6 ones without IPv6", only: []netip.Addr{loop, pub, v6}, net: bridge, want: "127.0.0.1, 192.0.2.10"},
		{name: "only: an IPv6 list without IPv6", only: []netip.Addr{v6}, net: bridge, wantErr: "lists no address of that family"},
		{name: "only: 0.0.0.0 is the IPv4 ones", only: []netip.Addr{loop, pub, v6}, binding: "0.0.0.0", net: bridge, want: "127.0.0.1, 192.0.2.10"},
		{name: "only: :: is the IPv6 ones", only: []netip.Addr{loop, v6}, binding: "::", net: bridge, want: "2001:db8::5"},
		{name: "only: :: without IPv6", only: []netip.Addr{loop}, binding: "::", net: bridge, wantErr: "lists no address of that family"},
		{name: "only: listed", only: []netip.Addr{loop, pub}, binding: "192.0.2.10", net: bridge, want: "192.0.2.10"},
		{name: "only: not listed", only: []netip.Addr{loop, pub}, binding: "192.0.2.99", net: bridge,
			wantErr: "cannot publish port 80/tcp on 192.0.2.99: publish-addresses in CFG allows only 127.0.0.1, 192.0.2.10; publish on one of those (-p 127.0.0.1:HOSTPORT:CONTAINERPORT) or add 192.0.2.99 to the list"},
		{name: "only: network option not listed", only: []netip.Addr{loop}, net: bound, wantErr: "on 192.0.2.20 (network boundnet's com.docker.network.bridge.host_binding_ipv4)"},
		{name: "only: daemon ip not listed", defaultIP: pub, only: []netip.Addr{loop}, net: bridge, wantErr: `(the default host address, "ip" or --default-bind-ip)`},
		{name: "only: daemon ip listed", defaultIP: loop, only: []netip.Addr{loop, pub}, net: bridge, want: "127.0.0.1"},
		{name: "bad binding", binding: "nope", net: bridge, wantErr: `invalid host IP "nope" for port 80/tcp`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := publishPolicy{source: "CFG", defaultIP: tc.defaultIP, only: tc.only}
			got, err := p.hostAddrs(tc.binding, "80/tcp", tc.net)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Fatalf("error %v, want an invalid argument with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s := joinAddrs(got)
			if len(got) == 1 && !got[0].IsValid() {
				s = "*"
			}
			if s != tc.want {
				t.Errorf("got %s, want %s", s, tc.want)
			}
		})
	}
}

// The default bridge shows the daemon's "ip" as its host_binding_ipv4,
// as Docker's does; other networks keep their own.
func TestWithDefaultIP(t *testing.T) {
	s := &Service{publish: PublishConfig{File: writeConfig(t, `{"ip": "127.0.0.1"}`)}}
	br := &Network{Name: BridgeName, Options: map[string]string{OptHostBinding: "0.0.0.0"}}
	got := s.withDefaultIP(br)
	if got.Options[OptHostBinding] != "127.0.0.1" || br.Options[OptHostBinding] != "0.0.0.0" {
		t.Errorf("shown %q, record %q", got.Options[OptHostBinding], br.Options[OptHostBinding])
	}
	user := &Network{Name: "appnet", Options: map[string]string{}}
	if s.withDefaultIP(user) != user {
		t.Error("a user network changed")
	}
}
