//go:build ignore

// mksyscalls writes zsyscalls.go: one name-to-number lookup function per
// syscall ABI the filter compiler knows (x86_64, x32, i386, aarch64, arm).
//
// The numbers come from golang.org/x/sys/unix (the zsysnum_linux_*.go files
// of the version in go.mod, read from the module cache), which are generated
// from the kernel's own headers, so the names are the kernel's (and
// libseccomp's). What x/sys leaves out is added here: the x32 ABI, and ARM's
// private syscalls.
//
// Run it with `go generate` in this directory.
package main

import (
	"bytes"
	"cmp"
	"flag"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// x32Bit is __X32_SYSCALL_BIT: every x32 syscall number has it set, which is
// how the kernel (and a filter) tells x32 from x86_64 under the same
// AUDIT_ARCH_X86_64.
const x32Bit = 0x40000000

// x32Renumbered are the syscalls whose x32 entry points differ from the
// x86_64 ones (they take compat structures), so x32 has its own numbers for
// them, 512 to 547 (arch/x86/entry/syscalls/syscall_64.tbl, ABI "x32").
var x32Renumbered = map[string]uint32{
	"rt_sigaction": 512, "rt_sigreturn": 513, "ioctl": 514, "readv": 515,
	"writev": 516, "recvfrom": 517, "sendmsg": 518, "recvmsg": 519,
	"execve": 520, "ptrace": 521, "rt_sigpending": 522, "rt_sigtimedwait": 523,
	"rt_sigqueueinfo": 524, "sigaltstack": 525, "timer_create": 526, "mq_notify": 527,
	"kexec_load": 528, "waitid": 529, "set_robust_list": 530, "get_robust_list": 531,
	"vmsplice": 532, "move_pages": 533, "preadv": 534, "pwritev": 535,
	"rt_tgsigqueueinfo": 536, "recvmmsg": 537, "sendmmsg": 538, "process_vm_readv": 539,
	"process_vm_writev": 540, "setsockopt": 541, "getsockopt": 542, "io_setup": 543,
	"io_submit": 544, "execveat": 545, "preadv2": 546, "pwritev2": 547,
}

// x86_64Only are the syscalls of ABI "64" in syscall_64.tbl that x32 lacks
// and that have no x32 number either: under x32 they do not exist.
var x86_64Only = []string{
	"uselib", "_sysctl", "create_module", "get_kernel_syms", "query_module",
	"nfsservctl", "set_thread_area", "get_thread_area", "epoll_ctl_old",
	"epoll_wait_old", "vserver",
}

// notSyscalls are constants of the zsysnum files that mark a range rather
// than name a syscall.
var notSyscalls = []string{"syscall_mask", "arch_specific_syscall"}

// armPrivate are ARM's private syscalls, numbered from __ARM_NR_BASE
// (0x0f0000) and missing from x/sys. glibc needs set_tls, and Docker's
// profile names breakpoint, cacheflush and set_tls.
var armPrivate = map[string]uint32{
	"breakpoint": 0x0f0001, "cacheflush": 0x0f0002, "usr26": 0x0f0003,
	"usr32": 0x0f0004, "set_tls": 0x0f0005, "get_tls": 0x0f0006,
}

type table struct {
	funcName string
	abi      string // for the doc comment
	numbers  map[string]uint32
}

func main() {
	xsys := flag.String("xsys", "", "directory of golang.org/x/sys (default: as `go list -m` finds it)")
	out := flag.String("o", "zsyscalls.go", "output file")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("mksyscalls: ")

	dir, version := *xsys, "(from -xsys)"
	if dir == "" {
		var err error
		if dir, version, err = findXSys(); err != nil {
			log.Fatal(err)
		}
	}
	read := func(goarch string) map[string]uint32 {
		m, err := readSysnums(filepath.Join(dir, "unix", "zsysnum_linux_"+goarch+".go"))
		if err != nil {
			log.Fatal(err)
		}
		return m
	}

	amd64 := read("amd64")
	x32 := make(map[string]uint32, len(amd64))
	for name, nr := range amd64 {
		if slices.Contains(x86_64Only, name) {
			continue
		}
		if renumbered, ok := x32Renumbered[name]; ok {
			nr = renumbered
		}
		x32[name] = nr | x32Bit
	}
	for name := range x32Renumbered {
		if _, ok := amd64[name]; !ok {
			log.Fatalf("x32 syscall %s is not an x86_64 syscall in x/sys", name)
		}
	}
	arm := read("arm")
	for name, nr := range armPrivate {
		arm[name] = nr
	}

	tables := []table{
		{"syscallX86_64", "x86_64", amd64},
		{"syscallX32", "x32", x32},
		{"syscallX86", "i386", read("386")},
		{"syscallAARCH64", "aarch64", read("arm64")},
		{"syscallARM", "arm (EABI)", arm},
	}
	src, err := render(tables, version)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		log.Fatal(err)
	}
}

// findXSys returns the directory and version of the golang.org/x/sys module
// that go.mod selects.
func findXSys() (dir, version string, err error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}} {{.Version}}", "golang.org/x/sys").Output()
	if err != nil {
		return "", "", fmt.Errorf("go list -m golang.org/x/sys: %w (run `go mod download golang.org/x/sys`, or pass -xsys)", err)
	}
	dir, version, ok := strings.Cut(strings.TrimSpace(string(out)), " ")
	if !ok || dir == "" {
		return "", "", fmt.Errorf("golang.org/x/sys is not in the module cache; run `go mod download golang.org/x/sys`")
	}
	return dir, version, nil
}

// readSysnums parses a zsysnum_linux_*.go file: every `SYS_FOO_BAR = N`
// constant becomes "foo_bar" -> N (SYS__LLSEEK becomes "_llseek").
func readSysnums(path string) (map[string]uint32, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	m := map[string]uint32{}
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, ident := range vs.Names {
				rest, ok := strings.CutPrefix(ident.Name, "SYS_")
				if !ok || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.INT {
					return nil, fmt.Errorf("%s: %s is not an integer literal", path, ident.Name)
				}
				nr, err := strconv.ParseUint(lit.Value, 0, 32)
				if err != nil {
					return nil, fmt.Errorf("%s: %s: %w", path, ident.Name, err)
				}
				name := strings.ToLower(rest)
				if slices.Contains(notSyscalls, name) {
					continue
				}
				m[name] = uint32(nr)
			}
		}
	}
	if len(m) < 100 {
		return nil, fmt.Errorf("%s: only %d syscalls found; is it a zsysnum file?", path, len(m))
	}
	return m, nil
}

func render(tables []table, version string) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by mksyscalls.go from golang.org/x/sys %s; DO NOT EDIT.\n\n", version)
	b.WriteString("package seccompbpf\n")
	for _, t := range tables {
		type entry struct {
			name string
			nr   uint32
		}
		entries := make([]entry, 0, len(t.numbers))
		for name, nr := range t.numbers {
			entries = append(entries, entry{name, nr})
		}
		slices.SortFunc(entries, func(a, b entry) int { return cmp.Compare(a.name, b.name) })
		fmt.Fprintf(&b, "\n// %s returns the %s number of syscall name (%d syscalls).\n", t.funcName, t.abi, len(entries))
		fmt.Fprintf(&b, "func %s(name string) (uint32, bool) {\n\tswitch name {\n", t.funcName)
		for _, e := range entries {
			fmt.Fprintf(&b, "\tcase %q:\n\t\treturn %s, true\n", e.name, literal(e.nr))
		}
		b.WriteString("\t}\n\treturn 0, false\n}\n")
	}
	return format.Source(b.Bytes())
}

// literal writes nr as the kernel's tables do: x32 numbers as the x32 bit
// plus the table number, ARM's private ones in hex, the rest in decimal.
func literal(nr uint32) string {
	switch {
	case nr&x32Bit != 0:
		return fmt.Sprintf("%#x | %d", x32Bit, nr&^x32Bit)
	case nr >= 0x0f0000:
		return fmt.Sprintf("%#x", nr)
	}
	return strconv.FormatUint(uint64(nr), 10)
}
