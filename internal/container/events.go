package container

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Event is one entry of `berth events`, in the Docker API's message shape.
type Event struct {
	Type       string            `json:"Type"`
	Action     string            `json:"Action"`
	ID         string            `json:"id,omitempty"`
	Attributes map[string]string `json:"Attributes"`
	Scope      string            `json:"scope"`
	Time       int64             `json:"time"`
	TimeNano   int64             `json:"timeNano"`
}

// maxEventsFile is where the journal rolls over to events.log.1.
const maxEventsFile = 1 << 20

func (s *Service) eventsPath() string { return filepath.Join(s.opts.RunRoot, "events.log") }

// Emit appends ev to the event journal. Events are kept in the runroot (they
// do not survive a reboot, like docker's in-memory ones); a write is one
// O_APPEND line, cheap enough for the container start path.
func (s *Service) Emit(_ context.Context, ev Event) {
	now := time.Now()
	ev.Time, ev.TimeNano = now.Unix(), now.UnixNano()
	if ev.Scope == "" {
		ev.Scope = "local"
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		return
	}
	path := s.eventsPath()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > maxEventsFile {
		// Roll over under an exclusive lock so two writers do not both rename.
		if unix.Flock(int(f.Fd()), unix.LOCK_EX) == nil {
			if fi2, err := os.Stat(path); err == nil && os.SameFile(fi, fi2) {
				os.Rename(path, path+".1")
			}
			unix.Flock(int(f.Fd()), unix.LOCK_UN)
		}
		f.Close()
		if f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err != nil {
			return
		}
	}
	f.Write(append(raw, '\n'))
}

// EventsOptions select events like `docker events`.
type EventsOptions struct {
	Since, Until time.Time // zero: no bound; with Until zero and Follow, stream on
	Follow       bool
	Filter       func(Event) bool
}

// Events calls fn for the recorded events in the window, then (with
// Follow) for new ones until ctx ends or Until passes.
func (s *Service) Events(ctx context.Context, opts EventsOptions, fn func(Event) error) error {
	path := s.eventsPath()
	accept := func(ev Event) (bool, bool) {
		t := time.Unix(0, ev.TimeNano)
		if !opts.Since.IsZero() && t.Before(opts.Since) {
			return false, false
		}
		if !opts.Until.IsZero() && t.After(opts.Until) {
			return false, true
		}
		return opts.Filter == nil || opts.Filter(ev), false
	}
	var offset int64
	readFrom := func(p string, from int64) (int64, bool, error) {
		f, err := os.Open(p)
		if err != nil {
			return from, false, nil
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.Size() < from {
			from = 0 // rolled over
		}
		f.Seek(from, 0)
		r := bufio.NewReader(f)
		pos := from
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return pos, false, nil // a partial line waits for its end
			}
			pos += int64(len(line))
			var ev Event
			if json.Unmarshal([]byte(strings.TrimSpace(line)), &ev) != nil {
				continue
			}
			ok, past := accept(ev)
			if past {
				return pos, true, nil
			}
			if ok {
				if err := fn(ev); err != nil {
					return pos, true, err
				}
			}
		}
	}
	if !opts.Since.IsZero() || !opts.Follow {
		if _, stop, err := readFrom(path+".1", 0); stop || err != nil {
			return err
		}
		var stop bool
		var err error
		offset, stop, err = readFrom(path, 0)
		if stop || err != nil {
			return err
		}
	} else if fi, err := os.Stat(path); err == nil {
		offset = fi.Size()
	}
	if !opts.Follow && opts.Until.IsZero() {
		return nil
	}
	if !opts.Until.IsZero() && !time.Now().Before(opts.Until) {
		return nil
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		var stop bool
		var err error
		offset, stop, err = readFrom(path, offset)
		if stop || err != nil {
			return err
		}
		if !opts.Until.IsZero() && time.Now().After(opts.Until) {
			return nil
		}
	}
}
