package runtime

import (
	"context"
	"os/exec"
	"path/filepath"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Runtime runs containers from runtime-spec bundles. It is the seam
// between berth and whatever creates the namespaces: an OCI runtime binary
// (Binary: runc, crun, ...) or berth's own (Builtin). Both pass the same
// conformance tests, and nothing outside this package knows which one runs
// a container.
type Runtime interface {
	// WriteBundle writes spec into the bundle directory dir in the form
	// the runtime reads (config.json for an OCI binary), creating dir if
	// needed. A spec the runtime cannot run may be refused here.
	WriteBundle(dir string, spec *specs.Spec) error
	// Run creates and starts container id from bundle with io as its
	// stdio and writes the init's host pid to pidFile. The init outlives
	// the caller; the caller should be a child subreaper (or its parent)
	// to reap it. A command that cannot be found or run is an
	// *errdefs.ExitStatus with code 127 or 126 and Docker's message.
	Run(ctx context.Context, id, bundle, pidFile string, io IO) error
	// Kill sends sig to the init, or with all to every process of the
	// container.
	Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error
	// Delete forgets the container; force kills what still runs. An
	// unknown container is not an error.
	Delete(ctx context.Context, id string, force bool) error
	// State reports the container's state; errdefs.ErrNotFound when the
	// runtime does not know it.
	State(ctx context.Context, id string) (*specs.State, error)
	// HasState tells cheaply (no process start) whether the runtime
	// keeps state for id, e.g. left by a crashed monitor.
	HasState(id string) bool
	Pause(ctx context.Context, id string) error
	Resume(ctx context.Context, id string) error
	// Ps lists the host pids of the container's processes.
	Ps(ctx context.Context, id string) ([]int, error)
	// Exec starts proc in the running container. Without detach it
	// returns a started process that stays proc's parent, relays signals
	// to it and exits with its status (128+n when killed by signal n);
	// the caller must Wait for it. With detach it returns (nil, nil) once
	// proc runs. The host pid goes to pidFile when set.
	Exec(ctx context.Context, id string, proc *specs.Process, pidFile string, io IO, detach bool) (*exec.Cmd, error)
	// Stats reads the counters of the container's cgroup (v1 or v2).
	Stats(ctx context.Context, id string) (*CgroupStats, error)
	// OOMKilled reports whether the kernel's OOM killer killed a process
	// of the container. It is asked once the init has exited, before
	// Delete.
	OOMKilled(ctx context.Context, id string) (bool, error)
	// Update changes the cgroup limits of a running container to those
	// set in res; limits res leaves unset stay as they are.
	Update(ctx context.Context, id string, res *specs.LinuxResources) error
}

// BuiltinName is the --runtime name of berth's own runtime.
const BuiltinName = "berth"

// DefaultName is the runtime containers get unless --runtime says
// otherwise: the built-in one, which passes the same conformance tests as
// runc and starts a container in a fraction of runc's time. runc (or any
// OCI runtime binary) stays one flag away.
const DefaultName = BuiltinName

// New returns the runtime called name: BuiltinName for berth's own, else
// an OCI runtime binary (a path or a name on PATH). stateRoot is berth's
// runtime state directory (under --runroot); each runtime keeps its own
// subdirectory. self is the berth binary, which the built-in runtime runs
// for the helper processes of exec.
func New(name, stateRoot, self string) Runtime {
	if name == BuiltinName {
		return &Builtin{Root: filepath.Join(stateRoot, BuiltinName), Self: self}
	}
	return &Binary{Binary: name, Root: stateRoot}
}

// HasState reports whether runc's state directory for id exists.
func (r *Binary) HasState(id string) bool {
	if r.Root == "" {
		return false
	}
	return exists(filepath.Join(r.Root, id))
}
