package container

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/metadata"
)

// ParseSignal reads "TERM", "SIGTERM", "sigkill" or "9".
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, errdefs.InvalidArgument("invalid signal: %s", s)
		}
		return syscall.Signal(n), nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if sig, ok := signalsByName[name]; ok {
		return sig, nil
	}
	if strings.HasPrefix(name, "RTMIN+") || strings.HasPrefix(name, "RTMAX-") {
		n, err := strconv.Atoi(name[6:])
		if err == nil && n >= 0 && n <= 30 {
			if name[:5] == "RTMIN" {
				return syscall.Signal(34 + n), nil
			}
			return syscall.Signal(64 - n), nil
		}
	}
	return 0, errdefs.InvalidArgument("invalid signal: %s", s)
}

var signalsByName = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "BUS": syscall.SIGBUS, "CHLD": syscall.SIGCHLD,
	"CONT": syscall.SIGCONT, "FPE": syscall.SIGFPE, "HUP": syscall.SIGHUP, "ILL": syscall.SIGILL,
	"INT": syscall.SIGINT, "IO": syscall.SIGIO, "IOT": syscall.SIGIOT, "KILL": syscall.SIGKILL,
	"PIPE": syscall.SIGPIPE, "POLL": syscall.SIGPOLL, "PROF": syscall.SIGPROF, "PWR": syscall.SIGPWR,
	"QUIT": syscall.SIGQUIT, "SEGV": syscall.SIGSEGV, "STKFLT": syscall.SIGSTKFLT, "STOP": syscall.SIGSTOP,
	"SYS": syscall.SIGSYS, "TERM": syscall.SIGTERM, "TRAP": syscall.SIGTRAP, "TSTP": syscall.SIGTSTP,
	"TTIN": syscall.SIGTTIN, "TTOU": syscall.SIGTTOU, "URG": syscall.SIGURG, "USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2, "VTALRM": syscall.SIGVTALRM, "WINCH": syscall.SIGWINCH, "XCPU": syscall.SIGXCPU,
	"XFSZ": syscall.SIGXFSZ, "RTMIN": syscall.Signal(34), "RTMAX": syscall.Signal(64),
}

// Kill sends sig to a running container's main process.
func (s *Service) Kill(ctx context.Context, ref string, sig syscall.Signal) error {
	c, l, err := s.lockRef(ctx, ref)
	if err != nil {
		return err
	}
	defer l.unlock()
	if !c.State.Running {
		return errdefs.Conflict("Cannot kill container: %s: container %s is not running", ref, c.ID)
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM || sig == syscall.SIGINT {
		// docker kill is a manual stop for the restart policy.
		if c.HostConfig.RestartPolicy.Name != "no" {
			if _, err := s.update(ctx, c.ID, func(c *Container) error { c.Internal.ManualStop = true; return nil }); err != nil {
				return err
			}
		}
	}
	s.Emit(ctx, ContainerEvent(c, "kill", "signal", strconv.Itoa(int(sig))))
	if err := s.signal(ctx, c, sig); err != nil {
		// The runtime no longer knows it: it exited meanwhile, and its
		// monitor has not recorded that yet.
		if errdefs.IsNotFound(err) {
			return errdefs.Conflict("Cannot kill container: %s: container %s is not running", ref, c.ID)
		}
		if c2, gerr := s.lockedGet(ctx, c.ID); gerr == nil && !s.observe(c2).State.Running {
			return errdefs.Conflict("Cannot kill container: %s: container %s is not running", ref, c.ID)
		}
		return err
	}
	return nil
}

// signal sends sig to the container's main process through its monitor,
// which holds that process as its child (so its pid cannot have been
// reused); without a monitor, through the runtime. SIGKILL to the main
// process ends the whole container: it is the init of a pid namespace.
func (s *Service) signal(ctx context.Context, c *Container, sig syscall.Signal) error {
	if conn, err := s.dialMonitor(ctx, c.ID); err == nil {
		att := newAttachment(conn, false)
		defer att.Close()
		if att.fw.writeJSON(FrameHello, AttachOptions{}) == nil && att.Signal(sig) == nil {
			return nil
		}
	}
	return s.runtimeFor(c).Kill(ctx, c.ID, sig, sig == syscall.SIGKILL)
}

// Stop stops a container like `docker stop`: its stop signal, then SIGKILL
// after timeout (nil: the container's StopTimeout or 10 s).
func (s *Service) Stop(ctx context.Context, ref string, timeout *int, signal string) error {
	c, l, err := s.lockRef(ctx, ref)
	if err != nil {
		return err
	}
	defer l.unlock()
	return s.stopLocked(ctx, c, l, timeout, signal)
}

// stopLocked stops c; the caller holds its lock l, and holds it again on
// return. During the grace period the lock is let go, so that a `kill`
// or `rm -f` need not wait for it (as with docker); the SIGKILL after it
// goes only to the run that was asked to stop.
func (s *Service) stopLocked(ctx context.Context, c *Container, l *ctrLock, timeout *int, signal string) error {
	c, err := s.update(ctx, c.ID, func(c *Container) error { c.Internal.ManualStop = true; return nil })
	if err != nil {
		return err
	}
	if !c.State.Running && !c.State.Restarting {
		return nil // docker: stopping a stopped container succeeds
	}
	if c.State.Paused {
		s.runtimeFor(c).Resume(ctx, c.ID)
	}
	t := 10
	if c.Config.StopTimeout != nil {
		t = *c.Config.StopTimeout
	}
	if timeout != nil {
		t = *timeout
	}
	if signal == "" {
		signal = c.Config.StopSignal
	}
	sig := syscall.SIGTERM
	if signal != "" {
		if sig, err = ParseSignal(signal); err != nil {
			return err
		}
	}
	stopped := func() error {
		s.Emit(ctx, ContainerEvent(c, "stop"))
		return nil
	}
	if c.State.Running && t != 0 {
		s.Emit(ctx, ContainerEvent(c, "kill", "signal", strconv.Itoa(int(sig)))) // docker: kill, die, stop
		s.signal(ctx, c, sig)
		if t > 0 {
			run := c.State.StartedAt
			l.unlock()
			wctx, cancel := context.WithTimeout(ctx, time.Duration(t)*time.Second)
			werr := s.waitMonitor(wctx, c.ID)
			cancel()
			if err := s.relock(ctx, l); err != nil {
				return err
			}
			if werr == nil {
				return stopped()
			}
			now, err := s.reconcileLocked(ctx, c.ID)
			if errdefs.IsNotFound(err) {
				return stopped() // removed meanwhile
			}
			if err != nil {
				return err
			}
			if !now.State.Running && !now.State.Restarting || now.State.StartedAt != run {
				return stopped() // it stopped (and maybe was started again) meanwhile
			}
			c = now
		}
	}
	if c.State.Running {
		s.Emit(ctx, ContainerEvent(c, "kill", "signal", strconv.Itoa(int(syscall.SIGKILL))))
	}
	s.signal(ctx, c, syscall.SIGKILL)
	if err := s.waitMonitor(ctx, c.ID); err != nil {
		return err
	}
	return stopped()
}

// Restart stops then starts a container.
func (s *Service) Restart(ctx context.Context, ref string, timeout *int, signal string) error {
	c, l, err := s.lockRef(ctx, ref)
	if err != nil {
		return err
	}
	defer l.unlock()
	if err := s.stopLocked(ctx, c, l, timeout, signal); err != nil {
		return err
	}
	if c, err = s.reconcileLocked(ctx, c.ID); err != nil {
		return err
	}
	if _, err := s.startLocked(ctx, c, StartOptions{}); err != nil {
		return err
	}
	s.Emit(ctx, ContainerEvent(c, "restart"))
	return nil
}

// RemoveOptions are `rm` flags.
type RemoveOptions struct {
	Force   bool
	Volumes bool
}

// Remove deletes a container like `docker rm`.
func (s *Service) Remove(ctx context.Context, ref string, opts RemoveOptions) error {
	s.sweepCrashed(ctx, "")
	c, l, err := s.lockRef(ctx, ref)
	if err != nil {
		return err
	}
	defer l.unlock()
	if c.State.Status == "removing" {
		// Its monitor is removing it (reconciliation finishes a removal
		// whose remover died).
		return errdefs.Conflict("removal of container %s is already in progress", c.ShortName())
	}
	if c.State.Running || c.State.Restarting || c.State.Paused {
		if !opts.Force {
			// docker's words, which scripts match.
			procedure := "Stop the container before attempting removal or force remove"
			if c.State.Paused {
				procedure = "Unpause and then stop the container before attempting removal or force remove"
			}
			return errdefs.Conflict("You cannot remove a %s container %s. %s", c.State.Status, c.ID, procedure)
		}
		if c.State.Running {
			s.Emit(ctx, ContainerEvent(c, "kill", "signal", strconv.Itoa(int(syscall.SIGKILL)))) // docker: kill, die, destroy
		}
		if removed, err := s.removeThroughMonitor(ctx, c, opts.Volumes); err == nil && removed {
			return nil
		}
		if _, err := s.update(ctx, c.ID, func(c *Container) error {
			c.Internal.ManualStop = true
			c.HostConfig.AutoRemove = false // this call removes it; the monitor must not race us
			return nil
		}); err != nil {
			if errdefs.IsNotFound(err) {
				// Its monitor deleted the record and died, or failed,
				// before the files were gone (see removeForRemover).
				return s.removeOrphanLocked(ctx, l, c.ID)
			}
			return err
		}
		rt := s.runtimeFor(c)
		if c.State.Paused {
			rt.Resume(ctx, c.ID)
		}
		rt.Kill(ctx, c.ID, syscall.SIGKILL, true)
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := s.waitMonitor(wctx, c.ID)
		cancel()
		if err != nil {
			return fmt.Errorf("cannot remove container %q: it did not stop: %w", c.Name, err)
		}
		if c, err = s.reconcileLocked(ctx, c.ID); err != nil {
			if errdefs.IsNotFound(err) {
				return nil
			}
			return err
		}
	}
	return s.removeStopped(ctx, c, opts.Volumes)
}

// removeThroughMonitor has the running container's monitor remove it: the
// monitor kills the container and removes it once it has exited, and
// reports when it is gone. One process does the whole
// teardown, which is what makes `rm -f` of many containers fast.
func (s *Service) removeThroughMonitor(ctx context.Context, c *Container, volumes bool) (bool, error) {
	conn, err := s.dialMonitor(ctx, c.ID)
	if err != nil {
		return false, err
	}
	att := newAttachment(conn, false)
	defer att.Close()
	if err := att.fw.writeJSON(FrameHello, AttachOptions{}); err != nil {
		return false, err
	}
	if err := att.fw.writeJSON(FrameRemove, removeMsg{Volumes: volumes, Handover: true}); err != nil {
		return false, err
	}
	if c.State.Paused {
		s.runtimeFor(c).Resume(ctx, c.ID) // a frozen init would not die
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	exit, err := att.Stream(wctx, nil, nil, nil)
	if err == nil && exit.Stopped {
		if s.removalStep != nil {
			s.removalStep("stopped")
		}
		exit, err = s.deleteForMonitor(wctx, att, c, exit)
	}
	if err != nil {
		return false, err
	}
	if exit.Error != "" {
		return false, errors.New(exit.Error)
	}
	return exit.Removed, nil
}

// removeStopped deletes a container that no monitor runs any more: runtime
// state, mounts, bundle, writable layer, anonymous volumes (with volumes),
// record and name, in an order that a crash at any point leaves either the
// whole record or nothing a user would see.
func (s *Service) removeStopped(ctx context.Context, c *Container, volumes bool) error {
	if c.State.Status != "removing" {
		// Marked first, so that a crash half-way leaves a record that
		// says what it is; the monitor marks --rm containers itself.
		if _, err := s.update(ctx, c.ID, func(c *Container) error {
			c.State.Status = "removing"
			return nil
		}); err != nil {
			if errdefs.IsNotFound(err) {
				return nil
			}
			return err
		}
	}
	if err := s.tearDown(ctx, c); err != nil {
		return err
	}
	if err := s.removeDirs(c); err != nil {
		return err
	}
	if err := s.deleteRecord(ctx, c); err != nil {
		return err
	}
	if volumes {
		if err := s.removeAnonymousVolumes(ctx, c); err != nil {
			return err
		}
	}
	s.Emit(ctx, ContainerEvent(c, "destroy"))
	return nil
}

// Pause freezes a running container.
func (s *Service) Pause(ctx context.Context, ref string) error {
	c, l, err := s.lockRef(ctx, ref)
	if err != nil {
		return err
	}
	defer l.unlock()
	if !c.State.Running {
		return errdefs.Conflict("Container %s is not running", c.ID)
	}
	if c.State.Paused {
		return errdefs.Conflict("Container %s is already paused", c.ID)
	}
	if err := s.runtimeFor(c).Pause(ctx, c.ID); err != nil {
		if s.exitedMeanwhile(ctx, c) {
			return errdefs.Conflict("Container %s is not running", c.ID)
		}
		return err
	}
	_, err = s.update(ctx, c.ID, func(c *Container) error {
		if !c.State.Running {
			// It exited meanwhile (its monitor recorded that).
			return errdefs.Conflict("Container %s is not running", c.ID)
		}
		c.State.Paused, c.State.Status = true, "paused"
		return nil
	})
	if err != nil {
		return err
	}
	s.Emit(ctx, ContainerEvent(c, "pause"))
	return err
}

// Unpause thaws a paused container.
func (s *Service) Unpause(ctx context.Context, ref string) error {
	c, l, err := s.lockRef(ctx, ref)
	if err != nil {
		return err
	}
	defer l.unlock()
	if !c.State.Paused {
		return errdefs.Conflict("Container %s is not paused", c.ID)
	}
	if err := s.runtimeFor(c).Resume(ctx, c.ID); err != nil {
		if s.exitedMeanwhile(ctx, c) {
			return errdefs.Conflict("Container %s is not paused", c.ID)
		}
		return err
	}
	_, err = s.update(ctx, c.ID, func(c *Container) error {
		if !c.State.Paused {
			return nil
		}
		c.State.Paused = false
		if c.State.Running {
			c.State.Status = "running"
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.Emit(ctx, ContainerEvent(c, "unpause"))
	return err
}

// Rename gives a container a new name.
func (s *Service) Rename(ctx context.Context, ref, newName string) error {
	newName = strings.TrimPrefix(newName, "/")
	if !validName(newName) {
		return errdefs.InvalidArgument("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", newName)
	}
	return s.meta.Update(ctx, func(tx *metadata.Tx) error {
		c, err := resolveTx(tx, ref)
		if err != nil {
			return err
		}
		if c.ShortName() == newName {
			return errdefs.InvalidArgument("Renaming a container with the same name as its current name")
		}
		if owner := tx.GetRaw(metadata.BucketNames, newName); owner != nil {
			return errdefs.Conflict("Conflict. The container name \"/%s\" is already in use by container \"%s\". You have to remove (or rename) that container to be able to reuse that name.", newName, owner)
		}
		if err := tx.Delete(metadata.BucketNames, c.ShortName()); err != nil {
			return err
		}
		c.Name = "/" + newName
		if err := tx.PutRaw(metadata.BucketNames, newName, []byte(c.ID)); err != nil {
			return err
		}
		return tx.Put(metadata.BucketContainers, c.ID, c)
	})
}

// Restore brings back what a daemon's start brings back after a reboot or
// a crash: containers with restart policy "always", and "unless-stopped"
// ones that the user had not stopped. Records of containers whose monitor
// is gone, and whatever crashed transitions left, are reconciled first
// (Sweep). It returns the IDs it started, and the errors of those it
// could not.
func (s *Service) Restore(ctx context.Context) ([]string, error) {
	var errs []error
	if err := s.Sweep(ctx); err != nil {
		errs = append(errs, err)
	}
	ctrs, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	var started []string
	for _, c := range ctrs {
		if c.State.Running || c.State.Restarting || c.State.Status == "removing" {
			continue
		}
		switch p := c.HostConfig.RestartPolicy.Name; {
		case p == "always", p == "unless-stopped" && !c.Internal.ManualStop:
		default:
			continue
		}
		if _, err := s.Start(ctx, c.ID, StartOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", c.ShortName(), err))
			continue
		}
		started = append(started, c.ID)
	}
	return started, errors.Join(errs...)
}

// exitedMeanwhile reports whether c's run ended after its record was read
// (its monitor, which records that, may not have yet): a runtime call
// that failed on it gets docker's answer for a stopped container then.
func (s *Service) exitedMeanwhile(ctx context.Context, c *Container) bool {
	st, err := s.runtimeFor(c).State(ctx, c.ID)
	if err != nil || st == nil || st.Status == "stopped" {
		return true
	}
	now, err := s.lockedGet(ctx, c.ID)
	return err != nil || now.Internal.MonitorPid != c.Internal.MonitorPid || now.State.StartedAt != c.State.StartedAt
}
