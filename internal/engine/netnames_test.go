package engine

import (
	"testing"

	"github.com/berth-dev/berth/internal/errdefs"
)

// TestHostsInjection: names berth writes into a container's /etc/hosts
// cannot add lines or names to it.
func TestHostsInjection(t *testing.T) {
	tests := []struct {
		name string
		req  func(r *ContainerCreateRequest)
		want string // "" = accepted
	}{
		{"hostname newline", func(r *ContainerCreateRequest) { r.Config.Hostname = "web\n6.6.6.6 victim" },
			`invalid hostname "web\n6.6.6.6 victim": it must not contain whitespace, control characters or '#'`},
		{"hostname space", func(r *ContainerCreateRequest) { r.Config.Hostname = "web victim" },
			`invalid hostname "web victim": it must not contain whitespace, control characters or '#'`},
		{"hostname ok", func(r *ContainerCreateRequest) { r.Config.Hostname = "web-1.example.org" }, ""},
		{"domainname tab", func(r *ContainerCreateRequest) { r.Config.Domainname = "a\tb" },
			`invalid domainname "a\tb": it must not contain whitespace, control characters or '#'`},
		{"add-host newline", func(r *ContainerCreateRequest) { r.HostConfig.ExtraHosts = []string{"evil\n6.6.6.6 victim:1.2.3.4"} },
			`invalid host name in add-host "evil\n6.6.6.6 victim": it must not contain whitespace, control characters or '#'`},
		{"add-host hash", func(r *ContainerCreateRequest) { r.HostConfig.ExtraHosts = []string{"a#b:1.2.3.4"} },
			`invalid host name in add-host "a#b": it must not contain whitespace, control characters or '#'`},
		{"alias space", func(r *ContainerCreateRequest) {
			r.HostConfig.NetworkMode = "appnet"
			r.NetworkingConfig.EndpointsConfig = map[string]*EndpointSettingsRequest{"appnet": {Aliases: []string{"db victim"}}}
		}, `invalid network alias "db victim": it must not contain whitespace, control characters or '#'`},
		{"alias ok", func(r *ContainerCreateRequest) {
			r.HostConfig.NetworkMode = "appnet"
			r.NetworkingConfig.EndpointsConfig = map[string]*EndpointSettingsRequest{"appnet": {Aliases: []string{"db_1.x"}}}
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := ContainerCreateRequest{Config: CreateContainerConfig{Image: "busybox"}}
			tc.req(&req)
			err := validateCreate(&req, host{cpus: 2})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "":
				return
			case err == nil:
				t.Fatalf("accepted, want %q", tc.want)
			case err.Error() != tc.want:
				t.Fatalf("got  %q\nwant %q", err, tc.want)
			case !errdefs.IsInvalidArgument(err):
				t.Fatalf("%v: class is not InvalidArgument", err)
			}
		})
	}
}
