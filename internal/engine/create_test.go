package engine

import (
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/errdefs"
)

// TestValidateCreate: each bad request is refused, before anything exists,
// with Docker's message and class InvalidArgument.
func TestValidateCreate(t *testing.T) {
	tests := []struct {
		name string
		req  func(r *ContainerCreateRequest)
		want string // "" = accepted
	}{
		{"plain", func(r *ContainerCreateRequest) {}, ""},
		{"bad name", func(r *ContainerCreateRequest) { r.Name = "-x" }, "Invalid container name (-x), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"},
		{"slash name", func(r *ContainerCreateRequest) { r.Name = "/web" }, ""},
		{"platform", func(r *ContainerCreateRequest) { r.Platform = "windows/amd64" }, `platform "windows/amd64" is not supported on this host: berth runs linux containers`},
		{"no image", func(r *ContainerCreateRequest) { r.Config.Image = "" }, "config cannot be empty in order to create a container: no image"},
		{"env without name", func(r *ContainerCreateRequest) { r.Config.Env = []string{"=1"} }, "invalid environment variable: =1"},
		{"env name with space", func(r *ContainerCreateRequest) { r.Config.Env = []string{"BAD NAME=1"} }, ""},
		{"relative workdir", func(r *ContainerCreateRequest) { r.Config.WorkingDir = "x" }, "the working directory 'x' is invalid, it needs to be an absolute path"},
		{"stop signal", func(r *ContainerCreateRequest) { r.Config.StopSignal = "BOGUS" }, "Invalid signal: BOGUS"},
		{"health interval", func(r *ContainerCreateRequest) {
			r.Config.Healthcheck = &CreateHealthConfig{Interval: time.Microsecond}
		}, "Interval in Healthcheck cannot be less than 1ms"},
		{"health timeout", func(r *ContainerCreateRequest) {
			r.Config.Healthcheck = &CreateHealthConfig{Timeout: time.Microsecond}
		}, "Timeout in Healthcheck cannot be less than 1ms"},
		{"health start period", func(r *ContainerCreateRequest) {
			r.Config.Healthcheck = &CreateHealthConfig{StartPeriod: time.Microsecond}
		}, "StartPeriod in Healthcheck cannot be less than 1ms"},
		{"health start interval", func(r *ContainerCreateRequest) {
			r.Config.Healthcheck = &CreateHealthConfig{StartInterval: time.Microsecond}
		}, "StartInterval in Healthcheck cannot be less than 1ms"},
		{"health retries", func(r *ContainerCreateRequest) { r.Config.Healthcheck = &CreateHealthConfig{Retries: -1} }, "Retries in Healthcheck cannot be negative"},
		{"restart unknown", func(r *ContainerCreateRequest) { r.HostConfig.RestartPolicy.Name = "sometimes" },
			"invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"},
		{"restart count", func(r *ContainerCreateRequest) {
			r.HostConfig.RestartPolicy = CreateRestartPolicy{Name: "always", MaximumRetryCount: 3}
		},
			"invalid restart policy: maximum retry count can only be used with 'on-failure'"},
		{"restart negative", func(r *ContainerCreateRequest) {
			r.HostConfig.RestartPolicy = CreateRestartPolicy{Name: "on-failure", MaximumRetryCount: -1}
		},
			"invalid restart policy: maximum retry count cannot be negative"},
		{"autoremove restart", func(r *ContainerCreateRequest) {
			r.HostConfig.AutoRemove = true
			r.HostConfig.RestartPolicy.Name = "always"
		}, "can't create 'AutoRemove' container with restart policy"},
		{"oom score adj", func(r *ContainerCreateRequest) { r.HostConfig.OomScoreAdj = 2000 }, "Invalid value 2000, range for oom score adj is [-1000, 1000]"},
		{"cap add", func(r *ContainerCreateRequest) { r.HostConfig.CapAdd = []string{"BOGUS"} }, `invalid CapAdd: unknown capability: "CAP_BOGUS"`},
		{"cap drop", func(r *ContainerCreateRequest) { r.HostConfig.CapDrop = []string{"cap_nope"} }, `invalid CapDrop: unknown capability: "CAP_NOPE"`},
		{"cap ok", func(r *ContainerCreateRequest) { r.HostConfig.CapAdd = []string{"net_admin", "ALL"} }, ""},
		{"memory", func(r *ContainerCreateRequest) { r.HostConfig.Memory = 1024 }, "Minimum memory limit allowed is 6MB"},
		{"swap without memory", func(r *ContainerCreateRequest) { r.HostConfig.MemorySwap = 1 << 30 },
			"You should always set the Memory limit when using Memoryswap limit, see usage"},
		{"swap below memory", func(r *ContainerCreateRequest) {
			r.HostConfig.Memory, r.HostConfig.MemorySwap = 1<<30, 512<<20
		}, "Minimum memoryswap limit should be larger than memory limit, see usage"},
		{"swap unlimited", func(r *ContainerCreateRequest) { r.HostConfig.Memory, r.HostConfig.MemorySwap = 1<<30, -1 }, ""},
		{"reservation", func(r *ContainerCreateRequest) { r.HostConfig.MemoryReservation = 1024 }, "Minimum memory reservation allowed is 6MB"},
		{"reservation above memory", func(r *ContainerCreateRequest) {
			r.HostConfig.Memory, r.HostConfig.MemoryReservation = 64<<20, 128<<20
		}, "Minimum memory limit can not be less than memory reservation limit, see usage"},
		{"cpus above host", func(r *ContainerCreateRequest) { r.HostConfig.NanoCPUs = 99e9 },
			"Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"},
		{"cpus too small", func(r *ContainerCreateRequest) { r.HostConfig.NanoCPUs = 1e6 },
			"Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"},
		{"cpus and period", func(r *ContainerCreateRequest) { r.HostConfig.NanoCPUs, r.HostConfig.CPUPeriod = 1e9, 100000 },
			"Conflicting options: Nano CPUs and CPU Period cannot both be set"},
		{"cpus and quota", func(r *ContainerCreateRequest) { r.HostConfig.NanoCPUs, r.HostConfig.CPUQuota = 1e9, 100000 },
			"Conflicting options: Nano CPUs and CPU Quota cannot both be set"},
		{"cpu period", func(r *ContainerCreateRequest) { r.HostConfig.CPUPeriod = 100 },
			"CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"},
		{"cpu quota", func(r *ContainerCreateRequest) { r.HostConfig.CPUQuota = 100 }, "CPU cfs quota can not be less than 1ms (i.e. 1000)"},
		{"cpuset", func(r *ContainerCreateRequest) { r.HostConfig.CpusetCpus = "0-x" }, "Invalid value 0-x for cpuset cpus: invalid format: 0-x"},
		{"sysctl", func(r *ContainerCreateRequest) { r.HostConfig.Sysctls = map[string]string{"kernel.foo": "1"} },
			`sysctl "kernel.foo" is not allowed: only namespaced sysctls (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.*, kernel.domainname) can be set per container`},
		{"sysctl net on host", func(r *ContainerCreateRequest) {
			r.HostConfig.NetworkMode = "host"
			r.HostConfig.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
		}, `sysctl "net.ipv4.ip_forward" cannot be set with --network host: it would change the host's network settings`},
		{"sysctl net", func(r *ContainerCreateRequest) { r.HostConfig.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"} }, ""},
		{"ulimit name", func(r *ContainerCreateRequest) {
			r.HostConfig.Ulimits = []*CreateUlimit{{Name: "bogus", Soft: 1, Hard: 1}}
		}, "invalid ulimit type: bogus"},
		{"ulimit order", func(r *ContainerCreateRequest) {
			r.HostConfig.Ulimits = []*CreateUlimit{{Name: "nofile", Soft: 5, Hard: 2}}
		},
			"ulimit soft limit must be less than or equal to hard limit: 5 > 2"},
		{"shm", func(r *ContainerCreateRequest) { r.HostConfig.ShmSize = -1 }, "SHM size can not be less than 0"},
		{"bridge", func(r *ContainerCreateRequest) { r.HostConfig.NetworkMode = "bridge" }, ""},
		{"ports", func(r *ContainerCreateRequest) { r.HostConfig.PortBindings = container.PortMap{"80/tcp": nil} }, ""},
		{"port proto", func(r *ContainerCreateRequest) { r.HostConfig.PortBindings = container.PortMap{"80/icmp": nil} },
			"invalid proto: icmp"},
		{"container mode empty", func(r *ContainerCreateRequest) { r.HostConfig.NetworkMode = "container:" },
			"Invalid network mode: invalid container format container:<name|id>"},
		{"container mode ports", func(r *ContainerCreateRequest) {
			r.HostConfig.NetworkMode = "container:web"
			r.HostConfig.PortBindings = container.PortMap{"80/tcp": nil}
		}, "conflicting options: port publishing and the container type network mode"},
		{"container mode hostname", func(r *ContainerCreateRequest) {
			r.HostConfig.NetworkMode = "container:web"
			r.Config.Hostname = "h"
		}, "conflicting options: hostname and the network mode"},
		{"container mode dns", func(r *ContainerCreateRequest) {
			r.HostConfig.NetworkMode = "container:web"
			r.HostConfig.DNS = []string{"1.1.1.1"}
		}, "conflicting options: dns and the network mode"},
		{"container mode links", func(r *ContainerCreateRequest) {
			r.HostConfig.NetworkMode = "container:web"
			r.HostConfig.Links = []string{"db"}
		}, "conflicting options: container type network can't be used with links. This would result in undefined behavior"},
		{"host links", func(r *ContainerCreateRequest) {
			r.HostConfig.NetworkMode = "host"
			r.HostConfig.Links = []string{"db"}
		}, "conflicting options: host type networking can't be used with links. This would result in undefined behavior"},
		{"mac", func(r *ContainerCreateRequest) { r.Config.MacAddress = "zz" }, "zz is not a valid mac address"},
		{"add-host ip", func(r *ContainerCreateRequest) { r.HostConfig.ExtraHosts = []string{"h:notanip"} },
			`invalid IP address in add-host: "notanip"`},
		{"add-host gateway", func(r *ContainerCreateRequest) { r.HostConfig.ExtraHosts = []string{"h:host-gateway", "v6:[::1]"} }, ""},
		{"ip on bridge", func(r *ContainerCreateRequest) {
			r.NetworkingConfig.EndpointsConfig = map[string]*EndpointSettingsRequest{"default": {IPAMConfig: &EndpointIPAMConfig{IPv4Address: "172.17.0.9"}}}
		}, "user specified IP address is supported on user defined networks only"},
		{"alias on bridge", func(r *ContainerCreateRequest) {
			r.HostConfig.NetworkMode = "bridge"
			r.NetworkingConfig.EndpointsConfig = map[string]*EndpointSettingsRequest{"bridge": {Aliases: []string{"a"}}}
		}, "network-scoped alias is supported only for containers in user defined networks"},
		{"bad ip", func(r *ContainerCreateRequest) {
			r.HostConfig.NetworkMode = "appnet"
			r.NetworkingConfig.EndpointsConfig = map[string]*EndpointSettingsRequest{"appnet": {IPAMConfig: &EndpointIPAMConfig{IPv4Address: "10.0.0.300"}}}
		}, "invalid IPv4 address: 10.0.0.300"},
		{"ip6 given as v4", func(r *ContainerCreateRequest) {
			r.HostConfig.NetworkMode = "appnet"
			r.NetworkingConfig.EndpointsConfig = map[string]*EndpointSettingsRequest{"appnet": {IPAMConfig: &EndpointIPAMConfig{IPv6Address: "10.0.0.3"}}}
		}, "invalid IPv6 address: 10.0.0.3"},
		{"ip on user network", func(r *ContainerCreateRequest) {
			r.HostConfig.NetworkMode = "appnet"
			r.NetworkingConfig.EndpointsConfig = map[string]*EndpointSettingsRequest{"appnet": {IPAMConfig: &EndpointIPAMConfig{IPv4Address: "10.0.0.3"}, Aliases: []string{"db"}}}
		}, ""},
		{"two endpoints", func(r *ContainerCreateRequest) {
			r.NetworkingConfig.EndpointsConfig = map[string]*EndpointSettingsRequest{"a": {}, "b": {}}
		}, "Container cannot be connected to network endpoints: a, b"},
		{"pid host", func(r *ContainerCreateRequest) { r.HostConfig.PidMode = "host" }, `PidMode "host" is not supported yet`},
		{"security opt", func(r *ContainerCreateRequest) { r.HostConfig.SecurityOpt = []string{"bogus"} }, `invalid --security-opt: "bogus"`},
		{"log driver", func(r *ContainerCreateRequest) { r.HostConfig.LogConfig.Type = "syslog" },
			"logger: no log driver named 'syslog' is registered (berth has json-file and none)"},
		{"log opt", func(r *ContainerCreateRequest) { r.HostConfig.LogConfig.Config = map[string]string{"bogus": "1"} },
			"unknown log opt 'bogus' for json-file log driver"},
		{"log opt none", func(r *ContainerCreateRequest) {
			r.HostConfig.LogConfig = CreateLogConfig{Type: "none", Config: map[string]string{"max-size": "1m"}}
		}, "unknown log opt 'max-size' for none log driver"},
		{"bind spec", func(r *ContainerCreateRequest) { r.HostConfig.Binds = []string{"/a:b"} },
			`invalid volume specification: "/a:b": mount path must be absolute`},
		{"mount bind missing", func(r *ContainerCreateRequest) {
			r.HostConfig.Mounts = []MountSpec{{Type: "bind", Source: "/nonexistent-berth-test", Target: "/x"}}
		}, `invalid mount config for type "bind": bind source path does not exist: /nonexistent-berth-test`},
		{"mount relative", func(r *ContainerCreateRequest) { r.HostConfig.Mounts = []MountSpec{{Type: "volume", Target: "x"}} },
			`invalid mount config for type "volume": invalid mount path: 'x' mount path must be absolute`},
		{"tmpfs relative", func(r *ContainerCreateRequest) { r.HostConfig.Tmpfs = map[string]string{"x": ""} },
			`invalid mount path: 'x' mount path must be absolute`},
		{"volumes-from mode", func(r *ContainerCreateRequest) { r.HostConfig.VolumesFrom = []string{"c:rx"} }, "invalid mode: rx"},
		{"volumes-from ok", func(r *ContainerCreateRequest) { r.HostConfig.VolumesFrom = []string{"c:ro", "d"} }, ""},
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

// TestValidateCreateDefaults: what Docker's daemon fills in.
func TestValidateCreateDefaults(t *testing.T) {
	req := ContainerCreateRequest{Config: CreateContainerConfig{Image: "busybox"}}
	if err := validateCreate(&req, host{cpus: 1}); err != nil {
		t.Fatal(err)
	}
	hc := req.HostConfig
	if hc.NetworkMode != "bridge" || hc.RestartPolicy.Name != "no" || hc.LogConfig.Type != "json-file" || hc.LogConfig.Config == nil {
		t.Fatalf("defaults: network %q restart %q log %q %v", hc.NetworkMode, hc.RestartPolicy.Name, hc.LogConfig.Type, hc.LogConfig.Config)
	}
	req.HostConfig.CpusetCpus = "0,3"
	offline := host{cpus: 2, unavailableCPU: func(string) (int, string, bool, bool) { return 3, "0-1", true, true }}
	if err := validateCreate(&req, offline); err == nil || err.Error() != "Requested CPUs are not available - requested 0,3, available: 0-1" {
		t.Fatalf("offline CPU: %v", err)
	}
}
