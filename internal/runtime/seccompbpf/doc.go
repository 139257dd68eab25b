// Package seccompbpf compiles a runtime-spec seccomp configuration into a
// classic-BPF program for seccomp(2) and loads it, without libseccomp (berth
// is built with CGO_ENABLED=0).
//
// The filter behaves as runc with libseccomp does for the same
// configuration, which is what users of Docker's default profile expect:
//
//   - the architecture is checked first; a syscall of an architecture the
//     configuration does not list kills the process;
//   - syscall names are resolved per architecture, and a name an
//     architecture lacks is skipped there (profiles name syscalls of many
//     architectures); on i386, a rule for a socket or SysV IPC syscall
//     also applies to socketcall(2) or ipc(2) with its call number;
//   - a syscall's rules are tried in profile order and the first whose
//     argument conditions all hold decides; when none does, the default
//     action applies;
//   - argument values are compared as 64-bit numbers, except on 32-bit
//     ABIs (i386, arm, x32), where only the low 32 bits count;
//   - like runc, a syscall number above the largest one the profile names
//     fails with ENOSYS instead of the default action, so that C libraries
//     fall back from syscalls newer than the profile instead of failing
//     with EPERM;
//   - seccomp notify (SCMP_ACT_NOTIFY) is not supported: it needs a
//     listener that only an external runtime provides.
//
// Syscalls are found by a binary search over ranges of numbers with the
// same outcome, so a syscall costs a few instructions whatever the size of
// the profile.
//
// The syscall tables (zsyscalls.go) are generated from golang.org/x/sys by
// mksyscalls.go.
package seccompbpf

//go:generate go run mksyscalls.go
