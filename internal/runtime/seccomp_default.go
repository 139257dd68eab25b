package runtime

import specs "github.com/opencontainers/runtime-spec/specs-go"

// DefaultSeccompProfile returns Docker's default seccomp profile (the
// profiles/seccomp/default.json of moby, as of 2025) as Go data, freshly
// allocated so callers may change it.
//
// Unknown syscalls fail with EPERM. The first rule is the plain allow-list;
// the rules after it allow more only on some architectures, on recent
// kernels, or when the container holds a capability (CAP_SYS_ADMIN,
// CAP_SYS_PTRACE, ...), and restrict clone so that a container without
// CAP_SYS_ADMIN cannot create namespaces (clone3 then reports ENOSYS so that
// C libraries fall back to clone, whose flags seccomp can inspect).
//
// Syscall names that the runtime's libseccomp does not know are skipped by
// runc, so the list may name syscalls newer than the host.
func DefaultSeccompProfile() *SeccompProfile {
	return &SeccompProfile{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: uintp(1), // EPERM
		ArchMap:         defaultSeccompArchMap(),
		Syscalls:        defaultSeccompRules(),
	}
}

func uintp(v uint) *uint { return &v }

func defaultSeccompArchMap() []SeccompArchGroup {
	return []SeccompArchGroup{
		{Arch: "SCMP_ARCH_X86_64", SubArches: []specs.Arch{"SCMP_ARCH_X86", "SCMP_ARCH_X32"}},
		{Arch: "SCMP_ARCH_AARCH64", SubArches: []specs.Arch{"SCMP_ARCH_ARM"}},
		{Arch: "SCMP_ARCH_MIPS64", SubArches: []specs.Arch{"SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"}},
		{Arch: "SCMP_ARCH_MIPS64N32", SubArches: []specs.Arch{"SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"}},
		{Arch: "SCMP_ARCH_MIPSEL64", SubArches: []specs.Arch{"SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"}},
		{Arch: "SCMP_ARCH_MIPSEL64N32", SubArches: []specs.Arch{"SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64"}},
		{Arch: "SCMP_ARCH_S390X", SubArches: []specs.Arch{"SCMP_ARCH_S390"}},
		{Arch: "SCMP_ARCH_RISCV64", SubArches: nil},
		{Arch: "SCMP_ARCH_LOONGARCH64", SubArches: nil},
	}
}

// personality(2) personas a container may switch to: PER_LINUX (0),
// PER_LINUX32 (8), UNAME26 (0x20000), PER_LINUX32|UNAME26 (0x20008), and
// 0xffffffff, which only queries the current persona.
//
// The clone mask 0x7e020000 is CLONE_NEWNS|CLONE_NEWCGROUP|CLONE_NEWUTS|
// CLONE_NEWIPC|CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET: clone is allowed only
// if none of those flags is set.
//
// socket is allowed for every address family except AF_ALG (38) and
// AF_VSOCK (40).
func defaultSeccompRules() []SyscallRule {
	return []SyscallRule{
		{
			Names: []string{
				"accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat",
				"capget", "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime",
				"clock_adjtime64", "clock_getres", "clock_getres_time64", "clock_gettime",
				"clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range",
				"connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create",
				"epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2",
				"epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit",
				"exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
				"fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32",
				"fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock",
				"fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs",
				"fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex", "futex_requeue",
				"futex_time64", "futex_wait", "futex_waitv", "futex_wake", "futimesat", "getcpu",
				"getcwd", "getdents", "getdents64", "getegid", "getegid32", "geteuid", "geteuid32",
				"getgid", "getgid32", "getgroups", "getgroups32", "getitimer", "getpeername",
				"getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid",
				"getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage",
				"getsid", "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday",
				"getuid", "getuid32", "getxattr", "getxattrat", "inotify_add_watch", "inotify_init",
				"inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy",
				"io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set",
				"io_setup", "io_submit", "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset",
				"landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link", "linkat",
				"listen", "listmount", "listxattr", "listxattrat", "llistxattr", "_llseek",
				"lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise",
				"map_shadow_stack", "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir",
				"mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2",
				"mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
				"mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap",
				"mseal", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall",
				"munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open",
				"openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2",
				"pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl",
				"pread64", "preadv", "preadv2", "prlimit64", "process_mrelease", "pselect6",
				"pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink",
				"readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg",
				"remap_file_pages", "removexattr", "removexattrat", "rename", "renameat", "renameat2",
				"restart_syscall", "riscv_hwprobe", "rmdir", "rseq", "rt_sigaction", "rt_sigpending",
				"rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
				"rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity",
				"sched_getattr", "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
				"sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
				"sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler",
				"sched_yield", "seccomp", "select", "semctl", "semget", "semop", "semtimedop",
				"semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto",
				"setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups",
				"setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
				"setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32",
				"setrlimit", "set_robust_list", "setsid", "setsockopt", "set_thread_area",
				"set_tid_address", "setuid", "setuid32", "setxattr", "setxattrat", "shmat", "shmctl",
				"shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigprocmask",
				"sigreturn", "socketcall", "socketpair", "splice", "stat", "stat64", "statfs",
				"statfs64", "statmount", "statx", "symlink", "symlinkat", "sync", "sync_file_range",
				"syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete",
				"timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
				"timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
				"timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate", "truncate64",
				"ugetrlimit", "umask", "uname", "unlink", "unlinkat", "uretprobe", "utime",
				"utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid",
				"waitpid", "write", "writev",
			},
			Action: specs.ActAllow,
		},
		{
			Names: []string{
				"process_vm_readv", "process_vm_writev", "ptrace",
			},
			Action:   specs.ActAllow,
			Includes: &RuleFilter{MinKernel: "4.8"},
		},
		{
			Names: []string{
				"socket",
			},
			Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 38, Op: specs.OpLessThan},
			},
		},
		{
			Names: []string{
				"socket",
			},
			Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 39, Op: specs.OpEqualTo},
			},
		},
		{
			Names: []string{
				"socket",
			},
			Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 40, Op: specs.OpGreaterThan},
			},
		},
		{
			Names: []string{
				"personality",
			},
			Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 0, Op: specs.OpEqualTo},
			},
		},
		{
			Names: []string{
				"personality",
			},
			Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 8, Op: specs.OpEqualTo},
			},
		},
		{
			Names: []string{
				"personality",
			},
			Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 0x00020000, Op: specs.OpEqualTo},
			},
		},
		{
			Names: []string{
				"personality",
			},
			Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 0x00020008, Op: specs.OpEqualTo},
			},
		},
		{
			Names: []string{
				"personality",
			},
			Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 0xffffffff, Op: specs.OpEqualTo},
			},
		},
		{
			Names: []string{
				"sync_file_range2", "swapcontext",
			},
			Action:   specs.ActAllow,
			Includes: &RuleFilter{Arches: []string{"ppc64le"}},
		},
		{
			Names: []string{
				"arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint",
				"cacheflush", "set_tls",
			},
			Action:   specs.ActAllow,
			Includes: &RuleFilter{Arches: []string{"arm", "arm64"}},
		},
		{
			Names: []string{
				"arch_prctl",
			},
			Action:   specs.ActAllow,
			Includes: &RuleFilter{Arches: []string{"amd64", "x32"}},
		},
		{
			Names: []string{
				"modify_ldt",
			},
			Action:   specs.ActAllow,
			Includes: &RuleFilter{Arches: []string{"amd64", "x32", "x86"}},
		},
		{
			Names: []string{
				"s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr",
			},
			Action:   specs.ActAllow,
			Includes: &RuleFilter{Arches: []string{"s390", "s390x"}},
		},
		{
			Names: []string{
				"riscv_flush_icache",
			},
			Action:   specs.ActAllow,
			Includes: &RuleFilter{Arches: []string{"riscv64"}},
		},
		{
			Names: []string{
				"open_by_handle_at",
			},
			Action:   specs.ActAllow,
			Includes: &RuleFilter{Caps: []string{"CAP_DAC_READ_SEARCH"}},
		},
		{
			Names: []string{
				"bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
				"lookup_dcookie", "lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr",
				"mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open", "quotactl",
				"quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2",
				"unshare",
			},
			Action:   specs.ActAllow,
			Includes: &RuleFilter{Caps: []string{"CAP_SYS_ADMIN"}},
		},
		{
			Names: []string{
				"clone",
			},
			Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 0x7e020000, Op: specs.OpMaskedEqual},
			},
			Excludes: &RuleFilter{Caps: []string{"CAP_SYS_ADMIN"}, Arches: []string{"s390", "s390x"}},
		},
		{
			Comment: "s390 parameter ordering for clone is different",
			Names: []string{
				"clone",
			},
			Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{
				{Index: 1, Value: 0x7e020000, Op: specs.OpMaskedEqual},
			},
			Includes: &RuleFilter{Arches: []string{"s390", "s390x"}},
			Excludes: &RuleFilter{Caps: []string{"CAP_SYS_ADMIN"}},
		},
		{
			Names: []string{
				"clone3",
			},
			Action:   specs.ActErrno,
			ErrnoRet: uintp(38), // ENOSYS
			Excludes: &RuleFilter{Caps: []string{"CAP_SYS_ADMIN"}},
		},
		{
			Names: []string{
				"reboot",
			},
			Action:   specs.ActAllow,
			Includes: &RuleFilter{Caps: []string{"CAP_SYS_BOOT"}},
		},
		{
			Names: []string{
				"chroot",
			},
			Action:   specs.ActAllow,
			Includes: &RuleFilter{Caps: []string{"CAP_SYS_CHROOT"}},
		},
		{
			Names: []string{
				"delete_module", "init_module", "finit_module",
			},
			Action:   specs.ActAllow,
			Includes: &RuleFilter{Caps: []string{"CAP_SYS_MODULE"}},
		},
		{
			Names: []string{
				"acct",
			},
			Action:   specs.ActAllow,
			Includes: &RuleFilter{Caps: []string{"CAP_SYS_PACCT"}},
		},
		{
			Names: []string{
				"kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev",
				"ptrace",
			},
			Action:   specs.ActAllow,
			Includes: &RuleFilter{Caps: []string{"CAP_SYS_PTRACE"}},
		},
		{
			Names: []string{
				"iopl", "ioperm",
			},
			Action:   specs.ActAllow,
			Includes: &RuleFilter{Caps: []string{"CAP_SYS_RAWIO"}},
		},
		{
			Names: []string{
				"settimeofday", "stime", "clock_settime", "clock_settime64",
			},
			Action:   specs.ActAllow,
			Includes: &RuleFilter{Caps: []string{"CAP_SYS_TIME"}},
		},
		{
			Names: []string{
				"vhangup",
			},
			Action:   specs.ActAllow,
			Includes: &RuleFilter{Caps: []string{"CAP_SYS_TTY_CONFIG"}},
		},
		{
			Names: []string{
				"get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node",
			},
			Action:   specs.ActAllow,
			Includes: &RuleFilter{Caps: []string{"CAP_SYS_NICE"}},
		},
		{
			Names: []string{
				"syslog",
			},
			Action:   specs.ActAllow,
			Includes: &RuleFilter{Caps: []string{"CAP_SYSLOG"}},
		},
		{
			Names: []string{
				"bpf",
			},
			Action:   specs.ActAllow,
			Includes: &RuleFilter{Caps: []string{"CAP_BPF"}},
		},
		{
			Names: []string{
				"perf_event_open",
			},
			Action:   specs.ActAllow,
			Includes: &RuleFilter{Caps: []string{"CAP_PERFMON"}},
		},
	}
}
