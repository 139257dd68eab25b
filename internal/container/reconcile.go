package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/fsutil"
	"github.com/berth-dev/berth/internal/metadata"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/snapshot"
)

// Reconciliation is the one place where berth repairs what a process that
// died (a monitor, or a CLI killed with -9 in the middle of a transition)
// left: the records of containers whose monitor is gone, rootfs mounts of
// containers that do not run, half-removed containers, --rm containers
// whose run died before starting them, and container directories that no
// record owns. Reads (Get, List) never repair: they show what
// reconciliation would record. Every transition reconciles its container
// first (under its lock), the next create, start or remove sweeps what
// crashed transitions left (sweepCrashed), and prune and `system restore`
// sweep everything (Sweep).

// markMonitorDead applies to c what reconciliation records for a
// container whose monitor died.
func markMonitorDead(c *Container, now time.Time) {
	if c.Internal.MonitorPid == 0 {
		// Died while starting: the record never said it ran.
		if c.State.Status == "created" {
			c.State.Error = "the container's monitor process died while starting it"
		}
		return
	}
	wasRunning := c.State.Running || c.State.Restarting
	c.Internal.MonitorPid, c.Internal.MonitorStart = 0, 0
	c.State.Running, c.State.Paused, c.State.Restarting = false, false, false
	c.State.Pid = 0
	if wasRunning {
		c.State.Status = "exited"
		c.State.ExitCode = 137
		c.State.Error = "the container's monitor process died; the container was stopped"
		c.State.FinishedAt = FormatTime(now)
		c.Internal.ExitedAt = now
	}
	endExecs(c) // they died with the container
}

// observe is the state of c as reconciliation would record it.
func (s *Service) observe(c *Container) *Container {
	if s.stale(c) {
		markMonitorDead(c, time.Now())
	}
	return c
}

// Reconcile repairs container ref's record and files (see above) and
// returns the record.
func (s *Service) Reconcile(ctx context.Context, ref string) (*Container, error) {
	_, l, err := s.lockRef(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer l.unlock()
	return s.reconcileLocked(ctx, l.id())
}

// lockRef resolves ref, takes its container's lock and returns the
// container's record read under the lock, reconciled. A full ID (what
// run and scripts pass) is locked without resolving it first.
func (s *Service) lockRef(ctx context.Context, ref string) (*Container, *ctrLock, error) {
	if validID(ref) {
		l, err := s.lock(ctx, ref)
		if err != nil {
			return nil, nil, err
		}
		c, err := s.reconcileLocked(ctx, ref)
		if err == nil {
			return c, l, nil
		}
		l.unlock()
		if !errdefs.IsNotFound(err) {
			return nil, nil, err
		}
		// Maybe a name or prefix that looks like an ID: resolve it.
	}
	var c *Container
	err := s.meta.View(ctx, func(tx *metadata.Tx) error {
		var err error
		c, err = resolveTx(tx, ref)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	l, err := s.lock(ctx, c.ID)
	if err != nil {
		return nil, nil, err
	}
	c, err = s.reconcileLocked(ctx, c.ID)
	if err != nil {
		l.unlock()
		if errdefs.IsNotFound(err) {
			return nil, nil, ErrNoSuchContainer(ref) // removed meanwhile
		}
		return nil, nil, err
	}
	return c, l, nil
}

func (l *ctrLock) id() string { return filepath.Base(l.path) }

// monitorAlive reports whether a monitor process of id runs: the one the
// record names, or one that has not recorded itself yet (its pid file).
func (s *Service) monitorAlive(c *Container) bool {
	if c.Internal.MonitorPid != 0 && processAlive(c.Internal.MonitorPid, c.Internal.MonitorStart) {
		return true
	}
	pid, start := readMonitorPid(filepath.Join(s.BundleDir(c.ID), "monitor.pid"))
	return pid != 0 && processAlive(pid, start)
}

// reconcileLocked repairs container id; the caller holds its lock. It
// returns the record (NotFound once it is removed).
func (s *Service) reconcileLocked(ctx context.Context, id string) (*Container, error) {
	c, err := s.lockedGet(ctx, id)
	if err != nil {
		return nil, err
	}
	if s.stale(c) {
		rt := s.runtimeFor(c)
		if st, err := rt.State(ctx, id); err == nil && st != nil {
			rt.Kill(ctx, id, syscall.SIGKILL, true)
			waitGone(ctx, rt, id, 5*time.Second)
		}
		rt.Delete(ctx, id, true)
		snapshot.Unmount(s.RootfsDir(id))
		var held []Event // the network's, after die as in Docker
		s.detachNetworkHolding(ctx, c, true, &held)
		died := false
		c, err = s.update(ctx, id, func(c *Container) error {
			died = false
			if !s.stale(c) {
				return nil // a new monitor took over meanwhile
			}
			died = c.Internal.MonitorPid != 0 && (c.State.Running || c.State.Restarting)
			markMonitorDead(c, time.Now())
			return nil
		})
		if err != nil {
			return nil, err
		}
		if died {
			// Its monitor died with it, before it could tell (kill -9):
			// the die Docker emits for every end of a run.
			s.Emit(ctx, ContainerEvent(c, "die", "exitCode", strconv.Itoa(c.State.ExitCode)))
		}
		for _, ev := range held {
			s.Emit(ctx, ev)
		}
	}
	if s.monitorAlive(c) {
		return c, nil // the monitor owns the container's files
	}
	// No monitor: nothing of a run may be left.
	if mounted, _ := snapshot.IsMountPoint(s.RootfsDir(id)); mounted {
		if err := snapshot.Unmount(s.RootfsDir(id)); err != nil {
			return nil, err
		}
	}
	if err := releaseNetNS(s.netnsPath(id)); err != nil {
		return nil, err
	}
	switch {
	case c.State.Status == "removing":
		// A removal that died half-way (its remover, CLI or monitor, is gone).
		if err := s.removeStopped(ctx, c, c.HostConfig.AutoRemove); err != nil {
			return nil, err
		}
		return nil, ErrNoSuchContainer(id)
	case c.State.Status == "created" && c.HostConfig.AutoRemove && c.Internal.StartPendingBy != nil &&
		!processAlive(c.Internal.StartPendingBy.Pid, c.Internal.StartPendingBy.Start):
		// `run --rm` died before the container ran: finish what it
		// would have done.
		if err := s.removeStopped(ctx, c, true); err != nil {
			return nil, err
		}
		return nil, ErrNoSuchContainer(id)
	}
	return c, nil
}

// needsReconcile tells cheaply (no lock, no write) whether c has anything
// for reconcileLocked to do.
func (s *Service) needsReconcile(c *Container) bool {
	if s.stale(c) {
		return true
	}
	if c.State.Running || c.State.Restarting || c.State.Paused || s.monitorAlive(c) {
		return false
	}
	if c.State.Status == "removing" {
		return true
	}
	if p := c.Internal.StartPendingBy; c.State.Status == "created" && c.HostConfig.AutoRemove && p != nil && !processAlive(p.Pid, p.Start) {
		return true
	}
	mounted, _ := snapshot.IsMountPoint(s.RootfsDir(c.ID))
	return mounted
}

// sweepMemo makes the transitions of one process share their sweep of
// crashed transitions: `rm -f` of 50 containers runs 50 removals at once,
// and each would otherwise try every lock file the others hold.
type sweepMemo struct {
	mu   sync.Mutex
	last time.Time
}

// sweepInterval is how long a sweep stands for the transitions that
// follow it in the same process: a crash it could not see is one of a
// process that died since, and the next sweep finds it.
const sweepInterval = time.Second

// sweepCrashed reconciles the containers whose transition died: their
// lock file is left without a holder. skip is a container the caller is
// working on. It costs one directory read when nothing crashed, and
// nothing when this process swept less than sweepInterval ago (callers
// meanwhile wait for the sweep under way, so that none acts before it).
func (s *Service) sweepCrashed(ctx context.Context, skip string) error {
	if s.swept != nil {
		s.swept.mu.Lock()
		defer s.swept.mu.Unlock()
		if time.Since(s.swept.last) < sweepInterval {
			return nil
		}
		defer func() { s.swept.last = time.Now() }()
	}
	return s.sweepAll(ctx, skip)
}

// sweepAll is sweepCrashed without the memo: every lock file is tried.
func (s *Service) sweepAll(ctx context.Context, skip string) error {
	entries, err := os.ReadDir(s.lockDir())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range entries {
		id := e.Name()
		if id == skip || !validID(id) {
			continue
		}
		l, ok, err := s.tryLock(id)
		if err != nil || !ok {
			continue // its transition still runs
		}
		errs = append(errs, s.reconcileAbandoned(ctx, l))
	}
	return errors.Join(errs...)
}

// reconcileAbandoned reconciles the container of lock l, which was found
// without a holder, and lets go of it.
func (s *Service) reconcileAbandoned(ctx context.Context, l *ctrLock) error {
	id := l.id()
	c, err := s.reconcileLocked(ctx, id)
	switch {
	case errdefs.IsNotFound(err) && s.orphanMonitorAlive(id):
		// Its monitor removes the files (rm -f whose remover died after
		// deleting the record); the lock file stays for a later sweep,
		// should the monitor die before it is done.
		l.release()
		return nil
	case errdefs.IsNotFound(err):
		// No record (never written, or removed): no file of it may stay.
		err = s.removeOrphan(ctx, id)
	case err == nil && c.Internal.StartPendingBy != nil && c.State.Status == "created" &&
		processAlive(c.Internal.StartPendingBy.Pid, c.Internal.StartPendingBy.Start):
		// A run between its create and its start: its mark stays.
		l.release()
		return nil
	}
	l.unlock()
	if err != nil {
		return fmt.Errorf("reconcile container %s: %w", shortID(id), err)
	}
	return nil
}

// removeOrphan removes what container id left without a record: runtime
// state, rootfs mount, bundle and layer directories. The caller holds id's
// lock, so no create of it is in flight.
func (s *Service) removeOrphan(ctx context.Context, id string) error {
	if s.orphanMonitorAlive(id) {
		// Still taking it down, its runtime state maybe gone already
		// (removeForRemover): the files are its to remove.
		return nil
	}
	if rt := s.orphanRuntime(id); rt != nil {
		rt.Kill(ctx, id, syscall.SIGKILL, true)
		waitGone(ctx, rt, id, 5*time.Second)
		rt.Delete(ctx, id, true)
	}
	if err := snapshot.Unmount(s.RootfsDir(id)); err != nil {
		return err
	}
	if err := releaseNetNS(s.netnsPath(id)); err != nil {
		return err
	}
	if err := s.removeNotedVolumes(ctx, id); err != nil {
		return err
	}
	if err := fsutil.RemoveAll(s.BundleDir(id)); err != nil {
		return err
	}
	return s.snaps.RemoveContainerLayer(id)
}

// orphanMonitorAlive tells whether a monitor of container id, which has
// no record, still runs.
func (s *Service) orphanMonitorAlive(id string) bool {
	pid, start := readMonitorPid(filepath.Join(s.BundleDir(id), "monitor.pid"))
	return pid != 0 && processAlive(pid, start)
}

// orphanRuntime is the runtime that holds state of container id, which
// has no record to name it: the built-in runtime, or an OCI runtime
// binary (they share one state root; the configured one, else runc).
func (s *Service) orphanRuntime(id string) runtime.Runtime {
	if rt := s.opts.NewRuntime(runtime.BuiltinName); rt.HasState(id) {
		return rt
	}
	name := s.opts.Runtime
	if name == runtime.BuiltinName {
		name = "runc"
	}
	if rt := s.opts.NewRuntime(name); rt.HasState(id) {
		return rt
	}
	return nil
}

// Sweep reconciles every container and removes container files that no
// record owns. prune and `system restore` run it; it waits for
// transitions in progress only as long as ctx allows.
func (s *Service) Sweep(ctx context.Context) error {
	errs := []error{s.sweepAll(ctx, "")}
	ids := map[string]bool{}
	err := s.meta.View(ctx, func(tx *metadata.Tx) error {
		return tx.ForEach(metadata.BucketContainers, func(k string, _ []byte) error {
			ids[k] = true
			return nil
		})
	})
	if err != nil {
		return err
	}
	ctrs, err := s.List(ctx)
	if err != nil {
		return err
	}
	for _, c := range ctrs {
		if !s.needsReconcile(c) {
			continue
		}
		if _, err := s.Reconcile(ctx, c.ID); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	// Files without a record: a create or removal that died.
	orphans := map[string]bool{}
	for _, dir := range []string{filepath.Dir(s.StateDir("x")), filepath.Dir(s.BundleDir("x")), s.runtimeRoot(),
		filepath.Join(s.runtimeRoot(), runtime.BuiltinName)} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if id := e.Name(); validID(id) && !ids[id] {
				orphans[id] = true
			}
		}
	}
	for id := range orphans {
		l, ok, err := s.tryLock(id)
		if err != nil || !ok {
			continue // being created now
		}
		errs = append(errs, s.reconcileAbandoned(ctx, l))
	}
	return errors.Join(errs...)
}

// waitMonitorGone waits until no monitor of c runs any more: the one of
// its last run may still be finishing after recording the exit.
func (s *Service) waitMonitorGone(ctx context.Context, c *Container) error {
	for s.monitorAlive(c) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
		fresh, err := s.lockedGet(ctx, c.ID)
		if err != nil {
			return err
		}
		*c = *fresh
	}
	return nil
}
