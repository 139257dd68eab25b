package cli

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
)

// createFlags are the flags `create` and `run` share, as docker names them.
type createFlags struct {
	name, hostname, workdir, user, entrypoint string
	entrypointSet                             bool
	env, envFiles, labels, labelFiles         []string
	volumes, mounts, tmpfs, volumesFrom       []string
	readOnly, privileged, init, interactive   bool
	tty, rm                                   bool
	memory, memorySwap, memoryReservation     string
	shmSize                                   string
	cpus                                      float64
	cpuShares, cpuQuota, cpuPeriod            int64
	cpusetCpus                                string
	pidsLimit                                 int64
	ulimits, capAdd, capDrop, securityOpt     []string
	restart, stopSignal                       string
	stopTimeout                               int
	logDriver                                 string
	logOpts                                   []string
	network                                   string
	publish, expose                           []string
	publishAll                                bool
	healthCmd                                 string
	healthInterval, healthTimeout             time.Duration
	healthStartPeriod, healthStartInterval    time.Duration
	healthRetries                             int
	noHealthcheck                             bool
	addHosts, dns, dnsSearch, dnsOptions      []string
	groupAdd, sysctls                         []string
	oomKillDisable                            bool
	oomScoreAdj                               int
	cidfile, platform, pull, runtimeName      string
	attach                                    []string
	ipc, pid, uts                             string
	ip, ip6, macAddress                       string
	networkAliases, links                     []string
}

func (f *createFlags) register(fl *pflag.FlagSet) {
	fl.SetInterspersed(false)             // flags after the image belong to the command
	fl.Bool("help", false, "Print usage") // -h is --hostname here, as in docker
	fl.StringVar(&f.name, "name", "", "Assign a name to the container")
	fl.StringVarP(&f.hostname, "hostname", "h", "", "Container host name")
	fl.StringVarP(&f.workdir, "workdir", "w", "", "Working directory inside the container")
	fl.StringVarP(&f.user, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	fl.StringVar(&f.entrypoint, "entrypoint", "", "Overwrite the default ENTRYPOINT of the image")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "Set environment variables")
	fl.StringArrayVar(&f.envFiles, "env-file", nil, "Read in a file of environment variables")
	fl.StringArrayVarP(&f.labels, "label", "l", nil, "Set meta data on a container")
	fl.StringArrayVar(&f.labelFiles, "label-file", nil, "Read in a line delimited file of labels")
	fl.StringArrayVarP(&f.volumes, "volume", "v", nil, "Bind mount a volume")
	fl.StringArrayVar(&f.mounts, "mount", nil, "Attach a filesystem mount to the container")
	fl.StringArrayVar(&f.volumesFrom, "volumes-from", nil, "Mount volumes from the specified container(s)")
	fl.StringArrayVar(&f.tmpfs, "tmpfs", nil, "Mount a tmpfs directory")
	fl.BoolVar(&f.readOnly, "read-only", false, "Mount the container's root filesystem as read only")
	fl.BoolVar(&f.privileged, "privileged", false, "Give extended privileges to this container")
	fl.BoolVar(&f.init, "init", false, "Run an init inside the container that forwards signals and reaps processes")
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	fl.BoolVarP(&f.tty, "tty", "t", false, "Allocate a pseudo-TTY")
	fl.BoolVar(&f.rm, "rm", false, "Automatically remove the container when it exits")
	fl.StringVarP(&f.memory, "memory", "m", "", "Memory limit")
	fl.StringVar(&f.memorySwap, "memory-swap", "", "Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
	fl.StringVar(&f.memoryReservation, "memory-reservation", "", "Memory soft limit")
	fl.StringVar(&f.shmSize, "shm-size", "", "Size of /dev/shm")
	fl.Float64Var(&f.cpus, "cpus", 0, "Number of CPUs")
	fl.Int64VarP(&f.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	fl.Int64Var(&f.cpuQuota, "cpu-quota", 0, "Limit CPU CFS (Completely Fair Scheduler) quota")
	fl.Int64Var(&f.cpuPeriod, "cpu-period", 0, "Limit CPU CFS (Completely Fair Scheduler) period")
	fl.StringVar(&f.cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	fl.Int64Var(&f.pidsLimit, "pids-limit", 0, "Tune container pids limit (set -1 for unlimited)")
	fl.StringArrayVar(&f.ulimits, "ulimit", nil, "Ulimit options")
	fl.StringArrayVar(&f.capAdd, "cap-add", nil, "Add Linux capabilities")
	fl.StringArrayVar(&f.capDrop, "cap-drop", nil, "Drop Linux capabilities")
	fl.StringArrayVar(&f.securityOpt, "security-opt", nil, "Security Options")
	fl.StringVar(&f.restart, "restart", "no", "Restart policy to apply when a container exits")
	fl.StringVar(&f.stopSignal, "stop-signal", "", "Signal to stop the container")
	fl.IntVar(&f.stopTimeout, "stop-timeout", 0, "Timeout (in seconds) to stop a container")
	fl.StringVar(&f.logDriver, "log-driver", "", "Logging driver for the container")
	fl.StringArrayVar(&f.logOpts, "log-opt", nil, "Log driver options")
	fl.StringVar(&f.network, "network", "", "Connect a container to a network")
	fl.StringVar(&f.network, "net", "", "Connect a container to a network")
	fl.MarkHidden("net")
	fl.StringArrayVarP(&f.publish, "publish", "p", nil, "Publish a container's port(s) to the host")
	fl.BoolVarP(&f.publishAll, "publish-all", "P", false, "Publish all exposed ports to random ports")
	fl.StringArrayVar(&f.expose, "expose", nil, "Expose a port or a range of ports")
	fl.StringVar(&f.ip, "ip", "", "IPv4 address (e.g., 172.30.100.104)")
	fl.StringVar(&f.ip6, "ip6", "", "IPv6 address (e.g., 2001:db8::33)")
	fl.StringVar(&f.macAddress, "mac-address", "", "Container MAC address (e.g., 92:d0:c6:0a:29:33)")
	fl.StringArrayVar(&f.networkAliases, "network-alias", nil, "Add network-scoped alias for the container")
	fl.StringArrayVar(&f.networkAliases, "net-alias", nil, "Add network-scoped alias for the container")
	fl.MarkHidden("net-alias")
	fl.StringArrayVar(&f.links, "link", nil, "Add link to another container")
	fl.StringVar(&f.healthCmd, "health-cmd", "", "Command to run to check health")
	fl.DurationVar(&f.healthInterval, "health-interval", 0, "Time between running the check (ms|s|m|h) (default 0s)")
	fl.DurationVar(&f.healthTimeout, "health-timeout", 0, "Maximum time to allow one check to run (ms|s|m|h) (default 0s)")
	fl.DurationVar(&f.healthStartPeriod, "health-start-period", 0, "Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)")
	fl.DurationVar(&f.healthStartInterval, "health-start-interval", 0, "Time between running the check during the start period (ms|s|m|h) (default 0s)")
	fl.IntVar(&f.healthRetries, "health-retries", 0, "Consecutive failures needed to report unhealthy")
	fl.BoolVar(&f.noHealthcheck, "no-healthcheck", false, "Disable any container-specified HEALTHCHECK")
	fl.StringArrayVar(&f.addHosts, "add-host", nil, "Add a custom host-to-IP mapping (host:ip)")
	fl.StringArrayVar(&f.dns, "dns", nil, "Set custom DNS servers")
	fl.StringArrayVar(&f.dnsSearch, "dns-search", nil, "Set custom DNS search domains")
	fl.StringArrayVar(&f.dnsOptions, "dns-option", nil, "Set DNS options")
	fl.StringArrayVar(&f.groupAdd, "group-add", nil, "Add additional groups to join")
	fl.StringArrayVar(&f.sysctls, "sysctl", nil, "Sysctl options")
	fl.BoolVar(&f.oomKillDisable, "oom-kill-disable", false, "Disable OOM Killer")
	fl.IntVar(&f.oomScoreAdj, "oom-score-adj", 0, "Tune host's OOM preferences (-1000 to 1000)")
	fl.StringVar(&f.cidfile, "cidfile", "", "Write the container ID to the file")
	fl.StringVar(&f.platform, "platform", "", "Set platform if server is multi-platform capable")
	fl.StringVar(&f.pull, "pull", "missing", "Pull image before running (\"always\", \"missing\", \"never\")")
	fl.StringVar(&f.runtimeName, "runtime", "", "Runtime to use for this container")
	fl.StringArrayVarP(&f.attach, "attach", "a", nil, "Attach to STDIN, STDOUT or STDERR")
	fl.StringVar(&f.ipc, "ipc", "", "IPC mode to use")
	fl.StringVar(&f.pid, "pid", "", "PID namespace to use")
	fl.StringVar(&f.uts, "uts", "", "UTS namespace to use")
}

// request turns the flags and the IMAGE [COMMAND] [ARG...] arguments into
// a create request. It refuses only what docker's CLI refuses (values that
// do not parse, flags that conflict); the engine judges the request.
func (f *createFlags) request(fl *pflag.FlagSet, args []string) (engine.ContainerCreateRequest, error) {
	req, err := f.buildRequest(fl, args)
	var ue usageError
	if err != nil && !errors.As(err, &ue) {
		err = parseError{err}
	}
	return req, err
}

func (f *createFlags) buildRequest(fl *pflag.FlagSet, args []string) (engine.ContainerCreateRequest, error) {
	var o engine.ContainerCreateRequest
	o.Name = f.name
	o.Platform = f.platform
	cfg := &o.Config
	hc := &o.HostConfig
	cfg.Image = args[0]
	if _, err := engine.ParseReference(args[0]); err != nil && !isHexID(args[0]) {
		return o, err
	}
	if len(args) > 1 {
		cfg.Cmd = args[1:]
	}
	if fl.Changed("entrypoint") {
		cfg.Entrypoint = []string{f.entrypoint}
		if f.entrypoint == "" {
			cfg.Entrypoint = []string{""}
		}
	}
	cfg.Hostname = f.hostname
	cfg.WorkingDir = f.workdir
	cfg.User = f.user
	cfg.Tty = f.tty
	cfg.OpenStdin = f.interactive
	cfg.StdinOnce = f.interactive
	cfg.AttachStdin = f.interactive
	cfg.AttachStdout, cfg.AttachStderr = true, true
	env, err := readEnv(f.envFiles, f.env)
	if err != nil {
		return o, err
	}
	cfg.Env = env
	labels, err := readLabels(f.labelFiles, f.labels)
	if err != nil {
		return o, err
	}
	cfg.Labels = labels
	cfg.StopSignal = f.stopSignal
	if fl.Changed("stop-timeout") {
		t := f.stopTimeout
		cfg.StopTimeout = &t
	}
	for _, p := range f.expose {
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		if !strings.Contains(p, "/") {
			p += "/tcp"
		}
		cfg.ExposedPorts[p] = struct{}{}
	}
	if f.noHealthcheck {
		if f.healthCmd != "" || f.healthInterval != 0 || f.healthTimeout != 0 || f.healthRetries != 0 || f.healthStartPeriod != 0 || f.healthStartInterval != 0 {
			return o, errdefs.InvalidArgument("--no-healthcheck conflicts with --health-* options")
		}
		cfg.Healthcheck = &engine.CreateHealthConfig{Test: []string{"NONE"}}
	} else if f.healthCmd != "" || f.healthInterval != 0 || f.healthTimeout != 0 || f.healthRetries != 0 || f.healthStartPeriod != 0 || f.healthStartInterval != 0 {
		for _, d := range []struct {
			flag string
			v    time.Duration
		}{{"--health-interval", f.healthInterval}, {"--health-timeout", f.healthTimeout}, {"--health-start-period", f.healthStartPeriod}, {"--health-start-interval", f.healthStartInterval}} {
			if d.v < 0 {
				return o, errdefs.InvalidArgument("%s cannot be negative", d.flag)
			}
		}
		if f.healthRetries < 0 {
			return o, errdefs.InvalidArgument("--health-retries cannot be negative")
		}
		hcfg := &engine.CreateHealthConfig{Interval: f.healthInterval, Timeout: f.healthTimeout, StartPeriod: f.healthStartPeriod, StartInterval: f.healthStartInterval, Retries: f.healthRetries}
		if f.healthCmd != "" {
			hcfg.Test = []string{"CMD-SHELL", f.healthCmd}
		}
		cfg.Healthcheck = hcfg
	}

	hc.AutoRemove = f.rm
	hc.ReadonlyRootfs = f.readOnly
	hc.Privileged = f.privileged
	hc.CapAdd, hc.CapDrop = f.capAdd, f.capDrop
	hc.GroupAdd = f.groupAdd
	hc.DNS, hc.DNSSearch, hc.DNSOptions = f.dns, f.dnsSearch, f.dnsOptions
	hc.ExtraHosts = f.addHosts
	hc.OomKillDisable = f.oomKillDisable
	hc.OomScoreAdj = f.oomScoreAdj
	hc.Runtime = f.runtimeName
	hc.SecurityOpt = f.securityOpt
	hc.VolumesFrom = f.volumesFrom
	if f.init {
		t := true
		hc.Init = &t
	}
	hc.NetworkMode = f.network
	if err := f.networking(&o); err != nil {
		return o, err
	}
	hc.IpcMode, hc.PidMode, hc.UTSMode = f.ipc, f.pid, f.uts
	switch f.pull {
	case "always", "missing", "never":
	default:
		return o, parseError{fmt.Errorf("invalid pull option: '%s': must be one of \"always\", \"missing\" or \"never\"", f.pull)}
	}

	// Resources: sizes parse here, as docker's flags do; their limits are
	// the engine's to judge.
	if f.memory != "" {
		n, err := engine.ParseBytes(f.memory)
		if err != nil {
			return o, usageError{fmt.Errorf("invalid argument %q for \"-m, --memory\" flag: %v", f.memory, err)}
		}
		hc.Memory = n
	}
	if f.memorySwap != "" {
		if f.memorySwap == "-1" {
			hc.MemorySwap = -1
		} else {
			n, err := engine.ParseBytes(f.memorySwap)
			if err != nil {
				return o, usageError{fmt.Errorf("invalid argument %q for \"--memory-swap\" flag: %v", f.memorySwap, err)}
			}
			hc.MemorySwap = n
		}
	}
	if f.memoryReservation != "" {
		n, err := engine.ParseBytes(f.memoryReservation)
		if err != nil {
			return o, usageError{fmt.Errorf("invalid argument %q for \"--memory-reservation\" flag: %v", f.memoryReservation, err)}
		}
		hc.MemoryReservation = n
	}
	if f.shmSize != "" {
		n, err := engine.ParseBytes(f.shmSize)
		if err != nil || n <= 0 {
			return o, usageError{fmt.Errorf("invalid argument %q for \"--shm-size\" flag: invalid size", f.shmSize)}
		}
		hc.ShmSize = n
	}
	if f.cpus != 0 {
		hc.NanoCPUs = int64(f.cpus * 1e9)
		if hc.NanoCPUs == 0 {
			hc.NanoCPUs = -1 // below 1e-9: still a (refused) request, not "unset"
		}
	}
	hc.CPUShares, hc.CPUQuota, hc.CPUPeriod, hc.CpusetCpus = f.cpuShares, f.cpuQuota, f.cpuPeriod, f.cpusetCpus
	if fl.Changed("pids-limit") {
		p := f.pidsLimit
		hc.PidsLimit = &p
	}
	for _, u := range f.ulimits {
		ul, err := parseUlimit(u)
		if err != nil {
			return o, usageError{fmt.Errorf("invalid argument %q for \"--ulimit\" flag: %v", u, err)}
		}
		hc.Ulimits = append(hc.Ulimits, ul)
	}
	for _, s := range f.sysctls {
		k, v, ok := strings.Cut(s, "=")
		if !ok || !engine.ValidSysctl(k, v) {
			return o, usageError{fmt.Errorf("invalid argument %q for \"--sysctl\" flag: sysctl '%s' is not allowed", s, s)}
		}
		if hc.Sysctls == nil {
			hc.Sysctls = map[string]string{}
		}
		hc.Sysctls[k] = v
	}

	// Mounts: --mount's syntax is the CLI's; -v is judged by the engine.
	hc.Binds = f.volumes
	for _, m := range f.mounts {
		ms, err := engine.ParseMountFlag(m)
		if err != nil {
			return o, err
		}
		hc.Mounts = append(hc.Mounts, ms)
	}
	for _, t := range f.tmpfs {
		target, opts, _ := strings.Cut(t, ":")
		if hc.Tmpfs == nil {
			hc.Tmpfs = map[string]string{}
		}
		hc.Tmpfs[target] = opts
	}

	// Restart and logging.
	rp, err := parseRestartPolicy(f.restart)
	if err != nil {
		return o, err
	}
	hc.RestartPolicy = rp
	if f.rm && rp.Name != "no" {
		return o, errdefs.InvalidArgument("conflicting options: cannot specify both --restart and --rm")
	}
	hc.LogConfig.Type = f.logDriver
	if len(f.logOpts) > 0 {
		hc.LogConfig.Config = map[string]string{}
		for _, lo := range f.logOpts {
			k, v, ok := strings.Cut(lo, "=")
			if !ok {
				return o, errdefs.InvalidArgument("invalid key value pair format in log options: %s", lo)
			}
			hc.LogConfig.Config[k] = v
		}
	}
	return o, nil
}

func isHexID(s string) bool {
	s = strings.TrimPrefix(s, "sha256:")
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return s != ""
}

func parseRestartPolicy(s string) (engine.CreateRestartPolicy, error) {
	name, count, hasCount := strings.Cut(s, ":")
	rp := engine.CreateRestartPolicy{Name: name}
	switch name {
	case "", "no":
		rp.Name = "no"
		if hasCount {
			return rp, errdefs.InvalidArgument("invalid restart policy format: maximum retry count cannot be used with restart policy 'no'")
		}
	case "always", "unless-stopped":
		if hasCount {
			return rp, errdefs.InvalidArgument("invalid restart policy format: maximum retry count cannot be used with restart policy '%s'", name)
		}
	case "on-failure":
		if hasCount {
			n, err := strconv.Atoi(count)
			if err != nil || n < 0 {
				return rp, errdefs.InvalidArgument("invalid restart policy format: maximum retry count must be a positive integer")
			}
			rp.MaximumRetryCount = n
		}
	default:
		return rp, errdefs.InvalidArgument("invalid restart policy format: unknown policy '%s'; use no, always, unless-stopped or on-failure[:max-retries]", name)
	}
	return rp, nil
}

// parseUlimit reads "nofile=1024:2048" or "nproc=512".
func parseUlimit(s string) (*engine.CreateUlimit, error) {
	name, val, ok := strings.Cut(s, "=")
	if !ok {
		return nil, fmt.Errorf("invalid ulimit argument: %s", s)
	}
	known := map[string]bool{"core": true, "cpu": true, "data": true, "fsize": true, "locks": true, "memlock": true, "msgqueue": true, "nice": true, "nofile": true, "nproc": true, "rss": true, "rtprio": true, "rttime": true, "sigpending": true, "stack": true, "as": true}
	if !known[name] {
		return nil, fmt.Errorf("invalid ulimit type: %s", name)
	}
	softS, hardS, hasHard := strings.Cut(val, ":")
	soft, err := strconv.ParseInt(softS, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("invalid ulimit argument: %s", s)
	}
	hard := soft
	if hasHard {
		if hard, err = strconv.ParseInt(hardS, 10, 64); err != nil {
			return nil, fmt.Errorf("invalid ulimit argument: %s", s)
		}
	}
	if soft > hard && hard != -1 {
		return nil, fmt.Errorf("ulimit soft limit must be less than or equal to hard limit: %d > %d", soft, hard)
	}
	return &engine.CreateUlimit{Name: name, Soft: soft, Hard: hard}, nil
}

// readEnv merges --env-file files and -e values; "KEY" alone takes the
// value from berth's own environment, or is dropped when unset.
func readEnv(files, vals []string) ([]string, error) {
	var out []string
	add := func(kv, where string) error {
		k, _, hasValue := strings.Cut(kv, "=")
		if k == "" {
			// docker refuses only a missing name: "BAD NAME=1" is taken as it is.
			return errdefs.InvalidArgument("invalid environment variable: %s%s", kv, where)
		}
		if !hasValue {
			v, ok := os.LookupEnv(k)
			if !ok {
				return nil
			}
			kv = k + "=" + v
		}
		out = append(out, kv)
		return nil
	}
	for _, path := range files {
		if err := readLines(path, func(line string, n int) error {
			return add(strings.TrimLeft(line, " \t"), fmt.Sprintf(" (%s line %d)", path, n))
		}); err != nil {
			return nil, err
		}
	}
	for _, v := range vals {
		if err := add(v, ""); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func readLabels(files, vals []string) (map[string]string, error) {
	labels := map[string]string{}
	for _, path := range files {
		if err := readLines(path, func(line string, _ int) error {
			k, v, _ := strings.Cut(line, "=")
			labels[k] = v
			return nil
		}); err != nil {
			return nil, err
		}
	}
	for _, l := range vals {
		k, v, _ := strings.Cut(l, "=")
		if k == "" {
			return nil, errdefs.InvalidArgument("invalid label %q: no key", l)
		}
		labels[k] = v
	}
	return labels, nil
}

// readLines calls fn for each non-empty, non-comment line of a file.
func readLines(path string, fn func(line string, n int) error) error {
	f, err := os.Open(path)
	if err != nil {
		return errdefs.InvalidArgument("open %s: %v", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if err := fn(line, n); err != nil {
			return err
		}
	}
	return sc.Err()
}

// networking fills the request's ports (-p, -P), links, MAC address and
// the endpoint settings of its network (--ip, --ip6, --network-alias), as
// docker's CLI does.
func (f *createFlags) networking(o *engine.ContainerCreateRequest) error {
	exposed, bindings, err := engine.ParsePortSpecs(f.publish)
	if err != nil {
		return err
	}
	if len(bindings) > 0 {
		if o.Config.ExposedPorts == nil {
			o.Config.ExposedPorts = map[string]struct{}{}
		}
		for p := range exposed {
			o.Config.ExposedPorts[p] = struct{}{}
		}
		o.HostConfig.PortBindings = bindings
	}
	o.HostConfig.PublishAllPorts = f.publishAll
	o.Config.MacAddress = f.macAddress
	// As docker's CLI: links are legacy links (HostConfig) on the default
	// bridge, endpoint settings on a user-defined network.
	userNet := f.network != "" && f.network != "default" && f.network != "bridge" && f.network != "host" &&
		f.network != "none" && !strings.HasPrefix(f.network, "container:")
	var epLinks []string
	if userNet {
		epLinks = f.links
	} else {
		o.HostConfig.Links = f.links
	}
	if f.ip != "" || f.ip6 != "" || len(f.networkAliases) > 0 || len(epLinks) > 0 {
		mode := f.network
		if mode == "" {
			mode = "default"
		}
		es := &engine.EndpointSettingsRequest{Aliases: f.networkAliases, Links: epLinks}
		if f.ip != "" || f.ip6 != "" {
			es.IPAMConfig = &engine.EndpointIPAMConfig{IPv4Address: f.ip, IPv6Address: f.ip6}
		}
		o.NetworkingConfig.EndpointsConfig = map[string]*engine.EndpointSettingsRequest{mode: es}
	}
	return nil
}
