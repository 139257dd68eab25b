package runtime

// SpecOptions is everything the engine knows about a container that the
// runtime spec needs: the image config merged with the user's flags. The
// engine resolves ENTRYPOINT/CMD and env before filling it in.
type SpecOptions struct {
	ID       string
	Hostname string
	// Rootfs is the absolute path of the container's mounted root filesystem.
	Rootfs         string
	ReadOnlyRootfs bool

	Args []string // final argv
	Env  []string // KEY=value, in order; PATH and HOSTNAME defaults added if missing
	Cwd  string   // absolute; "" means "/"
	// User as given to `--user` or the image's USER: "", "name", "uid",
	// "uid:gid", "name:group", "uid:group"... resolved against the
	// container's /etc/passwd and /etc/group like docker.
	User           string
	GroupAdd       []string
	Terminal       bool
	ConsoleWidth   uint
	ConsoleHeight  uint
	CapAdd         []string // "NET_ADMIN", "CAP_NET_ADMIN", "ALL" accepted
	CapDrop        []string
	Privileged     bool
	NoNewPrivs     bool
	SeccompProfile string // "" docker's default, "unconfined", or a JSON profile path
	MaskedPaths    []string
	ReadonlyPaths  []string

	Mounts []Mount // binds, named volumes and tmpfs, in the order given
	// ShmSize is the size of /dev/shm in bytes; 0 means docker's 64 MiB.
	ShmSize int64

	// Files that the engine writes per container and the spec bind-mounts.
	HostsPath      string // -> /etc/hosts
	HostnamePath   string // -> /etc/hostname
	ResolvConfPath string // -> /etc/resolv.conf

	// NetworkMode is "none" (a new, empty network namespace), "host" (share
	// the host's), or "ns:<path>" (join that namespace).
	NetworkMode string

	Resources Resources
	Ulimits   []Ulimit
	Sysctls   map[string]string
	// CgroupsPath for the runtime, e.g. "/berth/<id>".
	CgroupsPath string
	OOMScoreAdj *int

	// InitPath, when set, is bind-mounted read-only at /sbin/docker-init and
	// prepended to Args (docker's --init).
	InitPath string

	Annotations map[string]string
}

// Mount is one mount of SpecOptions.Mounts.
type Mount struct {
	Type        string // "bind", "tmpfs"
	Source      string
	Destination string
	Options     []string // e.g. "ro", "rprivate", "size=65536k", "mode=1777", "noexec"
}

// Resources are the cgroup limits of a container; zero values mean unlimited.
type Resources struct {
	Memory            int64 // bytes
	MemorySwap        int64 // bytes, memory+swap; -1 unlimited; 0 = twice Memory like docker
	MemoryReservation int64
	NanoCPUs          int64 // --cpus 0.5 = 5e8
	CPUShares         int64
	CPUQuota          int64
	CPUPeriod         int64
	CpusetCpus        string
	CpusetMems        string
	PidsLimit         int64 // <=0 unlimited
	BlkioWeight       uint16
	OOMKillDisable    bool
}

// Ulimit is one --ulimit value.
type Ulimit struct {
	Name string // "nofile", "nproc", ... (without RLIMIT_)
	Soft uint64
	Hard uint64
}
