// Package container runs containers: their records, the per-container
// monitor process that holds their stdio, logs and exit status, and the
// lifecycle operations (create, start, stop, kill, remove, wait, attach).
package container

import (
	"time"

	"github.com/berth-dev/berth/internal/image"
)

// Container is a container's record as berth stores it. Its JSON names
// follow Docker's (the stored format predates the split and is kept, so no
// migration is needed), but it is not the wire format: the inspect
// document and the API's come only from internal/engine's mapping.
// Internal holds what only berth needs.
type Container struct {
	ID              string      `json:"Id"`
	Created         time.Time   `json:"Created"`
	Path            string      `json:"Path"`
	Args            []string    `json:"Args"`
	State           State       `json:"State"`
	Image           string      `json:"Image"` // image ID
	ResolvConfPath  string      `json:"ResolvConfPath"`
	HostnamePath    string      `json:"HostnamePath"`
	HostsPath       string      `json:"HostsPath"`
	LogPath         string      `json:"LogPath"`
	Name            string      `json:"Name"` // with docker's leading "/"
	RestartCount    int         `json:"RestartCount"`
	Driver          string      `json:"Driver"`
	Platform        string      `json:"Platform"`
	MountLabel      string      `json:"MountLabel"`
	ProcessLabel    string      `json:"ProcessLabel"`
	AppArmorProfile string      `json:"AppArmorProfile"`
	ExecIDs         []string    `json:"ExecIDs"`
	HostConfig      HostConfig  `json:"HostConfig"`
	Mounts          []MountInfo `json:"Mounts"`
	Config          Config      `json:"Config"`
	// NetworkSettings are the networks the container is connected to and
	// what its running attachment gave (netsettings.go).
	NetworkSettings NetworkSettings `json:"NetworkSettings"`
	Internal        Internal        `json:"BerthInternal"`
}

// ShortName is the name without docker's leading slash.
func (c *Container) ShortName() string {
	if len(c.Name) > 0 && c.Name[0] == '/' {
		return c.Name[1:]
	}
	return c.Name
}

// State is docker's container state.
type State struct {
	Status     string  `json:"Status"` // created, running, paused, restarting, removing, exited, dead
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
	Status        string      `json:"Status"` // starting, healthy, unhealthy
	FailingStreak int         `json:"FailingStreak"`
	Log           []HealthLog `json:"Log"`
}

// HealthLog is one health probe's result.
type HealthLog struct {
	Start    time.Time `json:"Start"`
	End      time.Time `json:"End"`
	ExitCode int       `json:"ExitCode"`
	Output   string    `json:"Output"`
}

// ZeroTime is how docker prints a time that has not happened.
const ZeroTime = "0001-01-01T00:00:00Z"

// FormatTime prints t as docker does in inspect.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ZeroTime
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// ParseTime reads a time printed by FormatTime.
func ParseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// Config is docker's container Config.
type Config struct {
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
	Healthcheck  *image.Healthcheck  `json:"Healthcheck,omitempty"`
	Image        string              `json:"Image"` // as the user named it
	Volumes      map[string]struct{} `json:"Volumes"`
	WorkingDir   string              `json:"WorkingDir"`
	Entrypoint   []string            `json:"Entrypoint"`
	OnBuild      []string            `json:"OnBuild"`
	Labels       map[string]string   `json:"Labels"`
	StopSignal   string              `json:"StopSignal,omitempty"`
	StopTimeout  *int                `json:"StopTimeout,omitempty"`
	MacAddress   string              `json:"MacAddress,omitempty"`
}

// HostConfig is docker's container HostConfig (the parts berth implements).
type HostConfig struct {
	Binds           []string          `json:"Binds"`
	ContainerIDFile string            `json:"ContainerIDFile"`
	LogConfig       LogConfig         `json:"LogConfig"`
	NetworkMode     string            `json:"NetworkMode"`
	PortBindings    PortMap           `json:"PortBindings"`
	PublishAllPorts bool              `json:"PublishAllPorts,omitempty"`
	Links           []string          `json:"Links,omitempty"`
	RestartPolicy   RestartPolicy     `json:"RestartPolicy"`
	AutoRemove      bool              `json:"AutoRemove"`
	VolumeDriver    string            `json:"VolumeDriver"`
	VolumesFrom     []string          `json:"VolumesFrom"`
	CapAdd          []string          `json:"CapAdd"`
	CapDrop         []string          `json:"CapDrop"`
	GroupAdd        []string          `json:"GroupAdd"`
	DNS             []string          `json:"Dns"`
	DNSOptions      []string          `json:"DnsOptions"`
	DNSSearch       []string          `json:"DnsSearch"`
	ExtraHosts      []string          `json:"ExtraHosts"`
	IpcMode         string            `json:"IpcMode"`
	OomScoreAdj     int               `json:"OomScoreAdj"`
	PidMode         string            `json:"PidMode"`
	Privileged      bool              `json:"Privileged"`
	ReadonlyRootfs  bool              `json:"ReadonlyRootfs"`
	SecurityOpt     []string          `json:"SecurityOpt"`
	Tmpfs           map[string]string `json:"Tmpfs,omitempty"`
	UTSMode         string            `json:"UTSMode"`
	ShmSize         int64             `json:"ShmSize"`
	Runtime         string            `json:"Runtime"`
	Init            *bool             `json:"Init,omitempty"`
	Sysctls         map[string]string `json:"Sysctls,omitempty"`
	Resources
	Mounts []MountSpec `json:"Mounts,omitempty"`
}

// Resources are docker's HostConfig resource fields.
type Resources struct {
	CPUShares         int64     `json:"CpuShares"`
	Memory            int64     `json:"Memory"`
	NanoCPUs          int64     `json:"NanoCpus"`
	BlkioWeight       uint16    `json:"BlkioWeight"`
	CPUPeriod         int64     `json:"CpuPeriod"`
	CPUQuota          int64     `json:"CpuQuota"`
	CpusetCpus        string    `json:"CpusetCpus"`
	CpusetMems        string    `json:"CpusetMems"`
	MemoryReservation int64     `json:"MemoryReservation"`
	MemorySwap        int64     `json:"MemorySwap"`
	OomKillDisable    bool      `json:"OomKillDisable"`
	PidsLimit         *int64    `json:"PidsLimit"`
	Ulimits           []*Ulimit `json:"Ulimits"`
}

// PortMap maps a container port ("80/tcp") to the host addresses it is
// published on.
type PortMap map[string][]PortBinding

// PortBinding is one host address a container port is published on.
type PortBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string `json:"HostPort"`
}

// Ulimit is docker's ulimit entry.
type Ulimit struct {
	Name string `json:"Name"`
	Hard int64  `json:"Hard"`
	Soft int64  `json:"Soft"`
}

// LogConfig is docker's log driver configuration.
type LogConfig struct {
	Type   string            `json:"Type"`
	Config map[string]string `json:"Config"`
}

// RestartPolicy is docker's restart policy.
type RestartPolicy struct {
	Name              string `json:"Name"` // "no", "always", "unless-stopped", "on-failure"
	MaximumRetryCount int    `json:"MaximumRetryCount"`
}

// MountSpec is one --mount / -v / --tmpfs request, in docker's HostConfig.Mounts shape.
type MountSpec struct {
	Type     string `json:"Type"` // bind, volume, tmpfs
	Source   string `json:"Source,omitempty"`
	Target   string `json:"Target"`
	ReadOnly bool   `json:"ReadOnly,omitempty"`
	// TmpfsSize in bytes and TmpfsMode for tmpfs mounts.
	TmpfsSize int64  `json:"TmpfsSize,omitempty"`
	TmpfsMode uint32 `json:"TmpfsMode,omitempty"`
	// Propagation for binds ("rprivate" default).
	Propagation string `json:"Propagation,omitempty"`
	// NoCopy disables copying image content into a new named volume.
	NoCopy bool `json:"NoCopy,omitempty"`
	// Anonymous marks volumes made for this container (removed by rm -v).
	Anonymous bool `json:"Anonymous,omitempty"`
}

// MountInfo is docker's inspect Mounts entry.
type MountInfo struct {
	Type        string `json:"Type"`
	Name        string `json:"Name,omitempty"`
	Source      string `json:"Source"`
	Destination string `json:"Destination"`
	Driver      string `json:"Driver,omitempty"`
	Mode        string `json:"Mode"`
	RW          bool   `json:"RW"`
	Propagation string `json:"Propagation"`
}

// Internal is what berth keeps beside docker's fields.
type Internal struct {
	ChainIDs      []string `json:"chainIDs"`
	MonitorPid    int      `json:"monitorPid,omitempty"`
	MonitorStart  uint64   `json:"monitorStart,omitempty"` // /proc start time, guards against pid reuse
	ManualStop    bool     `json:"manualStop,omitempty"`
	RuntimeBinary string   `json:"runtimeBinary,omitempty"`
	// AnonymousVolumes were made for this container: `rm -v` and --rm remove them.
	AnonymousVolumes []string `json:"anonymousVolumes,omitempty"`
	NoCopyVolumes    []string `json:"noCopyVolumes,omitempty"`
	// ExitedAt backs docker's `--filter exited` and restart back-off.
	ExitedAt time.Time `json:"exitedAt,omitzero"`
	// Execs are the container's exec sessions (see exec.go).
	Execs map[string]*ExecSession `json:"execs,omitempty"`
	// StartPendingBy is the process that created the container to start
	// it at once (run); the monitor clears it once the container runs. If
	// that process dies first, a --rm container is removed by
	// reconciliation, as its run would have done.
	StartPendingBy *Owner `json:"startPendingBy,omitempty"`
}

// Owner names a process by pid and start time (so that a reused pid is
// not taken for it).
type Owner struct {
	Pid   int    `json:"pid"`
	Start uint64 `json:"start"`
}
