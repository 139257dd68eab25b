package engine

import (
	"reflect"
	"testing"

	"github.com/berth-dev/berth/internal/container"
)

func TestParsePortSpecs(t *testing.T) {
	tests := []struct {
		spec string
		want container.PortMap
		err  string
	}{
		{"80", container.PortMap{"80/tcp": {{}}}, ""},
		{"8080:80", container.PortMap{"80/tcp": {{HostPort: "8080"}}}, ""},
		{"127.0.0.1:8080:80/udp", container.PortMap{"80/udp": {{HostIP: "127.0.0.1", HostPort: "8080"}}}, ""},
		{"127.0.0.1::80", container.PortMap{"80/tcp": {{HostIP: "127.0.0.1"}}}, ""},
		{"[::1]:8080:80", container.PortMap{"80/tcp": {{HostIP: "::1", HostPort: "8080"}}}, ""},
		{"8080-8081:80-81/sctp", container.PortMap{"80/sctp": {{HostPort: "8080"}}, "81/sctp": {{HostPort: "8081"}}}, ""},
		{"8000-8010:80", container.PortMap{"80/tcp": {{HostPort: "8000-8010"}}}, ""},
		{"7000-7001", container.PortMap{"7000/tcp": {{}}, "7001/tcp": {{}}}, ""},
		{"8080-8082:80-81", nil, "invalid ranges specified for container and host Ports: 80-81 and 8080-8082"},
		{"abc", nil, "invalid containerPort: abc"},
		{"x:80", nil, "invalid hostPort: x"},
		{"1.2.3:80:80", nil, "invalid IP address: 1.2.3"},
		{"80/icmp", nil, "invalid proto: icmp"},
		{"70000", nil, "invalid containerPort: 70000"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			exposed, got, err := ParsePortSpecs([]string{tc.spec})
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v %v, want %v", got, err, tc.want)
			}
			for k := range got {
				if _, ok := exposed[k]; !ok {
					t.Fatalf("%s not exposed", k)
				}
			}
		})
	}
}
