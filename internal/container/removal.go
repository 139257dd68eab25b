package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/fsutil"
	"github.com/berth-dev/berth/internal/metadata"
	"github.com/berth-dev/berth/internal/snapshot"
)

// The removal of a running container by `rm -f` is done by its monitor
// (removeThroughMonitor) while the remover holds the container's lock,
// with one metadata commit instead of two: the monitor takes down what a
// reconciliation would also take down (the run, the rootfs mount, the
// network), then the record is deleted, and only then the files. A crash
// at any point leaves either the record of a container that no longer
// runs (reconciled as exited; a remover still alive finishes the removal
// itself) or files that no record owns, which the remover, or the sweep
// of its abandoned lock, removes (removeOrphan). --rm containers, which
// their monitor removes with nobody holding their lock, keep the
// "removing" mark that reconciliation finishes.
//
// The record is deleted by the remover when it asks for it (Handover):
// one process removing many containers deletes their records in shared
// commits (metadata.Store.Batch), where each monitor would commit alone.
// The monitor tells it when it has taken the container down
// (FrameStopped) and waits for its answer (FrameRecordGone); a remover
// that says no, or goes away, leaves the deletion to the monitor. Who
// deletes the record emits die; a monitor that dies after the remover's
// commit leaves the rest to the remover (deleteForMonitor). With -v the
// monitor notes the anonymous volumes in the bundle before the record
// goes, so that removeOrphan still removes them when both die.

// handover is a remover's offer to delete the record (removeMsg.Handover).
type handover struct {
	remover *monClient
	gone    chan bool // the remover's answer; false if it went away
}

// answerHandover passes on the answer of client cl, if cl is the remover.
func (m *monitor) answerHandover(cl *monClient, gone bool) {
	m.mu.Lock()
	h := m.handover
	m.mu.Unlock()
	if h == nil || h.remover != cl {
		return
	}
	select {
	case h.gone <- gone:
	default: // answered already
	}
}

// handoverTimeout bounds the wait for a remover's answer; it is only
// reached by a remover stuck on the store's lock, which the monitor would
// then wait for as well.
const handoverTimeout = 30 * time.Second

// removeForRemover is the monitor's removal for rm -f, once its
// container's last run has ended (exit is what the clients will be told;
// held are the network's events, emitted after die). It reports false when
// the record could not be deleted: the caller then records the exit and
// removes the container as a --rm one.
func (m *monitor) removeForRemover(ctx context.Context, exit *ExitMsg, held []Event, volumes bool) bool {
	s := m.s
	m.waitDeleted()
	if err := s.tearDown(ctx, m.c); err != nil {
		return false
	}
	if volumes && len(m.c.Internal.AnonymousVolumes) > 0 {
		// Once the record is gone, only this note names them, should
		// the remover and this monitor both die (removeOrphan).
		if err := writeRemoveVolumes(s.BundleDir(m.c.ID), m.c.Internal.AnonymousVolumes); err != nil {
			return false
		}
	}
	m.mu.Lock()
	h := m.handover
	m.mu.Unlock()
	gone := false
	if h != nil && h.remover.fw.writeJSON(FrameStopped, exit) == nil {
		select {
		case gone = <-h.gone:
		case <-time.After(handoverTimeout):
		}
	}
	if !gone {
		if err := s.deleteRecord(ctx, m.c); err != nil {
			return false
		}
		m.emit("die", exit.ExitCode) // else the remover's (deleteForMonitor)
	}
	m.emitHeld(held)
	// The volumes first: the note that names them goes with the bundle.
	// The files go even if a volume cannot: no record names them now.
	var err error
	if volumes {
		err = s.removeAnonymousVolumes(ctx, m.c)
	}
	if err = errors.Join(err, s.removeDirs(m.c)); err != nil {
		exit.Error = err.Error()
		return true
	}
	s.Emit(ctx, ContainerEvent(m.c, "destroy"))
	exit.Removed = true
	return true
}

// deleteForMonitor is the remover's side of the handover: the monitor of
// c reported it stopped (FrameStopped, stopped); delete the record, in a
// commit shared with the other removals of this process, tell the
// monitor, and wait for its final report. The one who deletes the record
// emits die: the remover here, the monitor when the remover says no. A
// monitor that dies after the commit leaves the files (and the anonymous
// volumes of -v) to the remover, which no record now names to anyone
// else.
func (s *Service) deleteForMonitor(ctx context.Context, att *Attachment, c *Container, stopped *ExitMsg) (*ExitMsg, error) {
	var deleted bool
	if err := s.meta.Batch(ctx, deleteRecordTx(c, &deleted)); err != nil {
		if err := att.fw.writeJSON(FrameRecordGone, false); err != nil {
			return nil, err
		}
		return att.Stream(ctx, nil, nil, nil)
	}
	if deleted { // else the monitor did, having waited for us too long
		s.Emit(ctx, ContainerEvent(c, "die", "exitCode", strconv.Itoa(stopped.ExitCode)))
	}
	if s.removalStep != nil {
		s.removalStep("committed")
	}
	// A monitor that is done already (it gave up waiting) has closed the
	// connection, but its final report may still wait to be read.
	att.fw.writeJSON(FrameRecordGone, true)
	exit, err := att.Stream(ctx, nil, nil, nil)
	if err == nil {
		return exit, nil
	}
	if ctx.Err() != nil || s.monitorAlive(c) {
		return nil, err // still at work: its files are its own
	}
	// The volumes too, with -v: the monitor noted them (removeForRemover).
	if err := s.removeOrphan(ctx, c.ID); err != nil {
		return nil, err
	}
	s.Emit(ctx, ContainerEvent(c, "destroy"))
	return &ExitMsg{ExitCode: stopped.ExitCode, Removed: true}, nil
}

// removeOrphanLocked removes what container id, whose record its monitor
// deleted, left; the caller holds its lock l. It waits for the monitor to
// be done first. Files that stay (an error, a monitor that does not end)
// keep the lock file, for a later sweep to retry.
func (s *Service) removeOrphanLocked(ctx context.Context, l *ctrLock, id string) error {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for s.orphanMonitorAlive(id) && wctx.Err() == nil {
		select {
		case <-wctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
	err := wctx.Err()
	if err == nil {
		err = s.removeOrphan(ctx, id)
	}
	if err != nil {
		l.release()
		return fmt.Errorf("remove the files of container %s: %w", shortID(id), err)
	}
	return nil
}

// tearDown undoes what a run of c left: its runtime state, its network
// and the namespace kept for it, its rootfs mount. All of it is repeated
// safely.
func (s *Service) tearDown(ctx context.Context, c *Container) error {
	if rt := s.runtimeFor(c); rt.HasState(c.ID) {
		rt.Delete(ctx, c.ID, true)
	}
	if err := s.detachNetwork(ctx, c, true); err != nil {
		return err
	}
	return snapshot.Unmount(s.RootfsDir(c.ID))
}

// deleteRecord deletes c's record and frees its name.
func (s *Service) deleteRecord(ctx context.Context, c *Container) error {
	return s.meta.Update(ctx, deleteRecordTx(c, nil))
}

// deleteRecordTx is deleteRecord's transaction; it may run again. It
// sets *deleted (when not nil) to whether there was a record to delete.
func deleteRecordTx(c *Container, deleted *bool) func(*metadata.Tx) error {
	return func(tx *metadata.Tx) error {
		if deleted != nil {
			*deleted = tx.Has(metadata.BucketContainers, c.ID)
		}
		if owner := tx.GetRaw(metadata.BucketNames, c.ShortName()); string(owner) == c.ID {
			if err := tx.Delete(metadata.BucketNames, c.ShortName()); err != nil {
				return err
			}
		}
		return tx.Delete(metadata.BucketContainers, c.ID)
	}
}

// removeDirs removes the bundle and the writable layer of c.
func (s *Service) removeDirs(c *Container) error {
	if err := fsutil.RemoveAll(s.BundleDir(c.ID)); err != nil {
		return fmt.Errorf("remove bundle of %s: %w", c.ShortName(), err)
	}
	if err := s.snaps.RemoveContainerLayer(c.ID); err != nil {
		return fmt.Errorf("remove layer of %s: %w", c.ShortName(), err)
	}
	return nil
}

// removeAnonymousVolumes removes the anonymous volumes of c (rm -v, --rm)
// that no other container uses.
func (s *Service) removeAnonymousVolumes(ctx context.Context, c *Container) error {
	if s.volumes == nil {
		return nil
	}
	for _, name := range c.Internal.AnonymousVolumes {
		if err := s.volumes.Remove(ctx, name, true); err != nil && !errdefs.IsConflict(err) {
			return err
		}
	}
	return nil
}

// removeVolumesFile is the note, in the bundle of a container whose
// record rm -f -v deletes, of the anonymous volumes to remove with it.
const removeVolumesFile = "remove-volumes"

func writeRemoveVolumes(bundle string, names []string) error {
	raw, err := json.Marshal(names)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundle, removeVolumesFile), raw, 0o600)
}

// removeNotedVolumes removes the anonymous volumes that the removal of
// container id, which has no record any more, noted in its bundle and
// that no other container uses.
func (s *Service) removeNotedVolumes(ctx context.Context, id string) error {
	raw, err := os.ReadFile(filepath.Join(s.BundleDir(id), removeVolumesFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	c := &Container{ID: id}
	if err := json.Unmarshal(raw, &c.Internal.AnonymousVolumes); err != nil {
		return nil // torn by a crash while written: the record still named them then
	}
	return s.removeAnonymousVolumes(ctx, c)
}
