package engine

// The inspect documents of Docker's Engine API, as berth serves them. They
// follow Docker Engine 20.10 (API 1.41), the engine the golden files of
// test/e2e/testdata/golden are taken from: the same fields in the same
// order, the same null / {} / [] and the same Go field names, because
// `inspect -f` templates run on these structs first (as docker's CLI runs
// them on its typed structs) and `{{.ID}}` must work where docker's does.
// berth keeps its own structs instead of github.com/moby/moby/api's: those
// follow a newer API (no KernelMemory, new Storage and descriptor fields),
// so their output would not match the reference engine field for field.

import "time"

// ContainerInspect is the document of `inspect CONTAINER` and of
// GET /containers/{id}/json.
type ContainerInspect struct {
	ID              string           `json:"Id"`
	Created         string           `json:"Created"`
	Path            string           `json:"Path"`
	Args            []string         `json:"Args"`
	State           *ContainerState  `json:"State"`
	Image           string           `json:"Image"`
	ResolvConfPath  string           `json:"ResolvConfPath"`
	HostnamePath    string           `json:"HostnamePath"`
	HostsPath       string           `json:"HostsPath"`
	LogPath         string           `json:"LogPath"`
	Name            string           `json:"Name"`
	RestartCount    int              `json:"RestartCount"`
	Driver          string           `json:"Driver"`
	Platform        string           `json:"Platform"`
	MountLabel      string           `json:"MountLabel"`
	ProcessLabel    string           `json:"ProcessLabel"`
	AppArmorProfile string           `json:"AppArmorProfile"`
	ExecIDs         []string         `json:"ExecIDs"`
	HostConfig      *HostConfig      `json:"HostConfig"`
	GraphDriver     GraphDriverData  `json:"GraphDriver"`
	SizeRw          *int64           `json:"SizeRw,omitempty"`
	SizeRootFs      *int64           `json:"SizeRootFs,omitempty"`
	Mounts          []MountPoint     `json:"Mounts"`
	Config          *ContainerConfig `json:"Config"`
	NetworkSettings *NetworkSettings `json:"NetworkSettings"`
}

// ContainerState is a container's State.
type ContainerState struct {
	Status     string  `json:"Status"`
	Running    bool    `json:"Running"`
	Paused     bool    `json:"Paused"`
	Restarting bool    `json:"Restarting"`
	OOMKilled  bool    `json:"OOMKilled"`
	Dead       bool    `json:"Dead"`
	Pid        int     `json:"Pid"`
	ExitCode   int     `json:"ExitCode"`
	Error      string  `json:"Error"`
	StartedAt  string  `json:"StartedAt"`
	FinishedAt string  `json:"FinishedAt"`
	Health     *Health `json:"Health,omitempty"`
}

// Health is the state of a container's health check.
type Health struct {
	Status        string               `json:"Status"`
	FailingStreak int                  `json:"FailingStreak"`
	Log           []*HealthcheckResult `json:"Log"`
}

// HealthcheckResult is one probe.
type HealthcheckResult struct {
	Start    time.Time `json:"Start"`
	End      time.Time `json:"End"`
	ExitCode int       `json:"ExitCode"`
	Output   string    `json:"Output"`
}

// GraphDriverData names the storage driver and its directories.
type GraphDriverData struct {
	Data map[string]string `json:"Data"`
	Name string            `json:"Name"`
}

// MountPoint is one entry of a container's Mounts.
type MountPoint struct {
	Type        string `json:"Type,omitempty"`
	Name        string `json:"Name,omitempty"`
	Source      string `json:"Source"`
	Destination string `json:"Destination"`
	Driver      string `json:"Driver,omitempty"`
	Mode        string `json:"Mode"`
	RW          bool   `json:"RW"`
	Propagation string `json:"Propagation"`
}

// HealthConfig is a container's or image's health check; durations in ns.
type HealthConfig struct {
	Test          []string      `json:"Test,omitempty"`
	Interval      time.Duration `json:"Interval,omitempty"`
	Timeout       time.Duration `json:"Timeout,omitempty"`
	StartPeriod   time.Duration `json:"StartPeriod,omitempty"`
	StartInterval time.Duration `json:"StartInterval,omitempty"`
	Retries       int           `json:"Retries,omitempty"`
}

// ContainerConfig is the portable configuration of a container (and of an
// image's defaults).
type ContainerConfig struct {
	Hostname     string              `json:"Hostname"`
	Domainname   string              `json:"Domainname"`
	User         string              `json:"User"`
	AttachStdin  bool                `json:"AttachStdin"`
	AttachStdout bool                `json:"AttachStdout"`
	AttachStderr bool                `json:"AttachStderr"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Tty          bool                `json:"Tty"`
	OpenStdin    bool                `json:"OpenStdin"`
	StdinOnce    bool                `json:"StdinOnce"`
	Env          []string            `json:"Env"`
	Cmd          []string            `json:"Cmd"`
	Healthcheck  *HealthConfig       `json:"Healthcheck,omitempty"`
	ArgsEscaped  bool                `json:"ArgsEscaped,omitempty"`
	Image        string              `json:"Image"`
	Volumes      map[string]struct{} `json:"Volumes"`
	WorkingDir   string              `json:"WorkingDir"`
	Entrypoint   []string            `json:"Entrypoint"`
	OnBuild      []string            `json:"OnBuild"`
	Labels       map[string]string   `json:"Labels"`
	StopSignal   string              `json:"StopSignal,omitempty"`
	StopTimeout  *int                `json:"StopTimeout,omitempty"`
	Shell        []string            `json:"Shell,omitempty"`
}

// LogConfig is a container's log driver and its options.
type LogConfig struct {
	Type   string            `json:"Type"`
	Config map[string]string `json:"Config"`
}

// RestartPolicy is a container's restart policy.
type RestartPolicy struct {
	Name              string `json:"Name"`
	MaximumRetryCount int    `json:"MaximumRetryCount"`
}

// PortBinding is one host address a container port is published on.
type PortBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string `json:"HostPort"`
}

// Ulimit is one resource limit.
type Ulimit struct {
	Name string `json:"Name"`
	Hard int64  `json:"Hard"`
	Soft int64  `json:"Soft"`
}

// WeightDevice and ThrottleDevice are the block I/O settings berth does
// not implement; they exist so the lists print as Docker prints them ([]).
type (
	WeightDevice struct {
		Path   string `json:"Path"`
		Weight uint16 `json:"Weight"`
	}
	ThrottleDevice struct {
		Path string `json:"Path"`
		Rate uint64 `json:"Rate"`
	}
	DeviceMapping struct {
		PathOnHost        string `json:"PathOnHost"`
		PathInContainer   string `json:"PathInContainer"`
		CgroupPermissions string `json:"CgroupPermissions"`
	}
)

// Mount is one entry of HostConfig.Mounts (--mount).
type Mount struct {
	Type          string         `json:"Type,omitempty"`
	Source        string         `json:"Source,omitempty"`
	Target        string         `json:"Target,omitempty"`
	ReadOnly      bool           `json:"ReadOnly,omitempty"`
	Consistency   string         `json:"Consistency,omitempty"`
	BindOptions   *BindOptions   `json:"BindOptions,omitempty"`
	VolumeOptions *VolumeOptions `json:"VolumeOptions,omitempty"`
	TmpfsOptions  *TmpfsOptions  `json:"TmpfsOptions,omitempty"`
}

// BindOptions, VolumeOptions and TmpfsOptions are the per-type options of a Mount.
type (
	BindOptions struct {
		Propagation  string `json:"Propagation,omitempty"`
		NonRecursive bool   `json:"NonRecursive,omitempty"`
	}
	VolumeOptions struct {
		NoCopy bool              `json:"NoCopy,omitempty"`
		Labels map[string]string `json:"Labels,omitempty"`
	}
	TmpfsOptions struct {
		SizeBytes int64  `json:"SizeBytes,omitempty"`
		Mode      uint32 `json:"Mode,omitempty"`
	}
)

// HostConfig is the non-portable configuration of a container.
type HostConfig struct {
	Binds           []string                 `json:"Binds"`
	ContainerIDFile string                   `json:"ContainerIDFile"`
	LogConfig       LogConfig                `json:"LogConfig"`
	NetworkMode     string                   `json:"NetworkMode"`
	PortBindings    map[string][]PortBinding `json:"PortBindings"`
	RestartPolicy   RestartPolicy            `json:"RestartPolicy"`
	AutoRemove      bool                     `json:"AutoRemove"`
	VolumeDriver    string                   `json:"VolumeDriver"`
	VolumesFrom     []string                 `json:"VolumesFrom"`
	CapAdd          []string                 `json:"CapAdd"`
	CapDrop         []string                 `json:"CapDrop"`
	CgroupnsMode    string                   `json:"CgroupnsMode"`
	DNS             []string                 `json:"Dns"`
	DNSOptions      []string                 `json:"DnsOptions"`
	DNSSearch       []string                 `json:"DnsSearch"`
	ExtraHosts      []string                 `json:"ExtraHosts"`
	GroupAdd        []string                 `json:"GroupAdd"`
	IpcMode         string                   `json:"IpcMode"`
	Cgroup          string                   `json:"Cgroup"`
	Links           []string                 `json:"Links"`
	OomScoreAdj     int                      `json:"OomScoreAdj"`
	PidMode         string                   `json:"PidMode"`
	Privileged      bool                     `json:"Privileged"`
	PublishAllPorts bool                     `json:"PublishAllPorts"`
	ReadonlyRootfs  bool                     `json:"ReadonlyRootfs"`
	SecurityOpt     []string                 `json:"SecurityOpt"`
	StorageOpt      map[string]string        `json:"StorageOpt,omitempty"`
	Tmpfs           map[string]string        `json:"Tmpfs,omitempty"`
	UTSMode         string                   `json:"UTSMode"`
	UsernsMode      string                   `json:"UsernsMode"`
	ShmSize         int64                    `json:"ShmSize"`
	Sysctls         map[string]string        `json:"Sysctls,omitempty"`
	Runtime         string                   `json:"Runtime,omitempty"`
	ConsoleSize     [2]uint                  `json:"ConsoleSize"`
	Isolation       string                   `json:"Isolation"`
	Resources
	Mounts        []Mount  `json:"Mounts,omitempty"`
	MaskedPaths   []string `json:"MaskedPaths"`
	ReadonlyPaths []string `json:"ReadonlyPaths"`
	Init          *bool    `json:"Init,omitempty"`
}

// Resources are a container's resource limits.
type Resources struct {
	CPUShares            int64             `json:"CpuShares"`
	Memory               int64             `json:"Memory"`
	NanoCPUs             int64             `json:"NanoCpus"`
	CgroupParent         string            `json:"CgroupParent"`
	BlkioWeight          uint16            `json:"BlkioWeight"`
	BlkioWeightDevice    []*WeightDevice   `json:"BlkioWeightDevice"`
	BlkioDeviceReadBps   []*ThrottleDevice `json:"BlkioDeviceReadBps"`
	BlkioDeviceWriteBps  []*ThrottleDevice `json:"BlkioDeviceWriteBps"`
	BlkioDeviceReadIOps  []*ThrottleDevice `json:"BlkioDeviceReadIOps"`
	BlkioDeviceWriteIOps []*ThrottleDevice `json:"BlkioDeviceWriteIOps"`
	CPUPeriod            int64             `json:"CpuPeriod"`
	CPUQuota             int64             `json:"CpuQuota"`
	CPURealtimePeriod    int64             `json:"CpuRealtimePeriod"`
	CPURealtimeRuntime   int64             `json:"CpuRealtimeRuntime"`
	CpusetCpus           string            `json:"CpusetCpus"`
	CpusetMems           string            `json:"CpusetMems"`
	Devices              []DeviceMapping   `json:"Devices"`
	DeviceCgroupRules    []string          `json:"DeviceCgroupRules"`
	DeviceRequests       []struct{}        `json:"DeviceRequests"`
	KernelMemory         int64             `json:"KernelMemory"`
	KernelMemoryTCP      int64             `json:"KernelMemoryTCP"`
	MemoryReservation    int64             `json:"MemoryReservation"`
	MemorySwap           int64             `json:"MemorySwap"`
	MemorySwappiness     *int64            `json:"MemorySwappiness"`
	OomKillDisable       bool              `json:"OomKillDisable"`
	PidsLimit            *int64            `json:"PidsLimit"`
	Ulimits              []*Ulimit         `json:"Ulimits"`
	CPUCount             int64             `json:"CpuCount"`
	CPUPercent           int64             `json:"CpuPercent"`
	IOMaximumIOps        uint64            `json:"IOMaximumIOps"`
	IOMaximumBandwidth   uint64            `json:"IOMaximumBandwidth"`
}

// NetworkSettings is a container's network state.
type NetworkSettings struct {
	Bridge                 string                   `json:"Bridge"`
	SandboxID              string                   `json:"SandboxID"`
	HairpinMode            bool                     `json:"HairpinMode"`
	LinkLocalIPv6Address   string                   `json:"LinkLocalIPv6Address"`
	LinkLocalIPv6PrefixLen int                      `json:"LinkLocalIPv6PrefixLen"`
	Ports                  map[string][]PortBinding `json:"Ports"`
	SandboxKey             string                   `json:"SandboxKey"`
	SecondaryIPAddresses   []string                 `json:"SecondaryIPAddresses"`
	SecondaryIPv6Addresses []string                 `json:"SecondaryIPv6Addresses"`
	EndpointInfo
	Networks map[string]*EndpointSettings `json:"Networks"`
}

// EndpointInfo is the default network's endpoint, repeated at the top of
// NetworkSettings for old clients.
type EndpointInfo struct {
	EndpointID          string `json:"EndpointID"`
	Gateway             string `json:"Gateway"`
	GlobalIPv6Address   string `json:"GlobalIPv6Address"`
	GlobalIPv6PrefixLen int    `json:"GlobalIPv6PrefixLen"`
	IPAddress           string `json:"IPAddress"`
	IPPrefixLen         int    `json:"IPPrefixLen"`
	IPv6Gateway         string `json:"IPv6Gateway"`
	MacAddress          string `json:"MacAddress"`
}

// EndpointSettings is a container's attachment to one network.
type EndpointSettings struct {
	IPAMConfig          *EndpointIPAMConfig `json:"IPAMConfig"`
	Links               []string            `json:"Links"`
	Aliases             []string            `json:"Aliases"`
	NetworkID           string              `json:"NetworkID"`
	EndpointID          string              `json:"EndpointID"`
	Gateway             string              `json:"Gateway"`
	IPAddress           string              `json:"IPAddress"`
	IPPrefixLen         int                 `json:"IPPrefixLen"`
	IPv6Gateway         string              `json:"IPv6Gateway"`
	GlobalIPv6Address   string              `json:"GlobalIPv6Address"`
	GlobalIPv6PrefixLen int                 `json:"GlobalIPv6PrefixLen"`
	MacAddress          string              `json:"MacAddress"`
	DriverOpts          map[string]string   `json:"DriverOpts"`
	// DNSNames (API 1.44) are the names the container answers to on a
	// user-defined network.
	DNSNames []string `json:"DNSNames,omitempty"`
}

// ImageInspect is the document of `image inspect` and GET /images/{name}/json.
type ImageInspect struct {
	ID              string           `json:"Id"`
	RepoTags        []string         `json:"RepoTags"`
	RepoDigests     []string         `json:"RepoDigests"`
	Parent          string           `json:"Parent"`
	Comment         string           `json:"Comment"`
	Created         string           `json:"Created"`
	Container       string           `json:"Container"`
	ContainerConfig *ContainerConfig `json:"ContainerConfig"`
	DockerVersion   string           `json:"DockerVersion"`
	Author          string           `json:"Author"`
	Config          *ContainerConfig `json:"Config"`
	Architecture    string           `json:"Architecture"`
	Variant         string           `json:"Variant,omitempty"`
	Os              string           `json:"Os"`
	OsVersion       string           `json:"OsVersion,omitempty"`
	Size            int64            `json:"Size"`
	VirtualSize     int64            `json:"VirtualSize"`
	GraphDriver     GraphDriverData  `json:"GraphDriver"`
	RootFS          ImageRootFS      `json:"RootFS"`
	Metadata        ImageMetadata    `json:"Metadata"`
}

// ImageRootFS lists an image's layers by diff ID.
type ImageRootFS struct {
	Type      string   `json:"Type"`
	Layers    []string `json:"Layers,omitempty"`
	BaseLayer string   `json:"BaseLayer,omitempty"`
}

// ImageMetadata is what the engine knows of an image beyond its config.
type ImageMetadata struct {
	LastTagTime time.Time `json:"LastTagTime,omitempty"`
}

// Volume is the document of `volume inspect` and GET /volumes/{name}.
type Volume struct {
	CreatedAt  string            `json:"CreatedAt,omitempty"`
	Driver     string            `json:"Driver"`
	Labels     map[string]string `json:"Labels"`
	Mountpoint string            `json:"Mountpoint"`
	Name       string            `json:"Name"`
	Options    map[string]string `json:"Options"`
	Scope      string            `json:"Scope"`
}
