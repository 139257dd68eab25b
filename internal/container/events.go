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

// Event is what a service emits: the object's type and ID, the action and
// its attributes. Emit stores it as a Message, Docker's shape.
type Event struct {
	Type       string
	Action     string
	ID         string
	Attributes map[string]string
	// Labels of the object, copied into the attributes as Docker does
	// (the attributes above win over a label of the same name).
	Labels map[string]string
	Scope  string
}

// Actor is the object an event is about, as in the Docker API.
type Actor struct {
	ID         string            `json:"ID"`
	Attributes map[string]string `json:"Attributes"`
}

// Message is one event as stored in the journal and streamed by
// `berth events`, field for field the Docker API's events message:
// status, id and from are its deprecated fields, filled for container
// and image events only, as Docker does.
type Message struct {
	Status   string `json:"status,omitempty"`
	ID       string `json:"id,omitempty"`
	From     string `json:"from,omitempty"`
	Type     string `json:"Type"`
	Action   string `json:"Action"`
	Actor    Actor  `json:"Actor"`
	Scope    string `json:"scope"`
	Time     int64  `json:"time"`
	TimeNano int64  `json:"timeNano"`
}

// message builds the stored form of ev at time now.
func (ev Event) message(now time.Time) Message {
	attrs := make(map[string]string, len(ev.Labels)+len(ev.Attributes))
	for k, v := range ev.Labels {
		attrs[k] = v
	}
	for k, v := range ev.Attributes {
		attrs[k] = v
	}
	m := Message{Type: ev.Type, Action: ev.Action, Actor: Actor{ID: ev.ID, Attributes: attrs},
		Scope: ev.Scope, Time: now.Unix(), TimeNano: now.UnixNano()}
	if m.Scope == "" {
		m.Scope = "local"
	}
	switch ev.Type {
	case "container":
		m.Status, m.ID, m.From = ev.Action, ev.ID, attrs["image"]
	case "image":
		m.Status, m.ID = ev.Action, ev.ID
	}
	return m
}

// legacyMessage is the journal line of berth before events carried an
// Actor: the attributes and id at the top level. Journals written then are
// read through it, so `events --since` still shows them in today's shape.
type legacyMessage struct {
	Type       string            `json:"Type"`
	Action     string            `json:"Action"`
	ID         string            `json:"id"`
	Attributes map[string]string `json:"Attributes"`
	Scope      string            `json:"scope"`
	TimeNano   int64             `json:"timeNano"`
}

// decodeMessage reads one journal line, in today's or the legacy shape.
func decodeMessage(line []byte) (Message, bool) {
	var probe struct {
		Actor *Actor `json:"Actor"`
	}
	if json.Unmarshal(line, &probe) != nil {
		return Message{}, false
	}
	if probe.Actor != nil {
		var m Message
		if json.Unmarshal(line, &m) != nil {
			return Message{}, false
		}
		return m, true
	}
	var old legacyMessage
	if json.Unmarshal(line, &old) != nil || old.Type == "" {
		return Message{}, false
	}
	m := Event{Type: old.Type, Action: old.Action, ID: old.ID, Attributes: old.Attributes, Scope: old.Scope}.message(time.Unix(0, old.TimeNano))
	return m, true
}

// ContainerEvent is ev about c: its name, image and labels, and extra
// attributes (k, v pairs).
func ContainerEvent(c *Container, action string, extra ...string) Event {
	attrs := map[string]string{"name": c.ShortName(), "image": c.Config.Image}
	for i := 0; i+1 < len(extra); i += 2 {
		attrs[extra[i]] = extra[i+1]
	}
	return Event{Type: "container", Action: action, ID: c.ID, Attributes: attrs, Labels: c.Config.Labels}
}

// maxEventsFile is where the journal rolls over to events.log.1.
const maxEventsFile = 1 << 20

func (s *Service) eventsPath() string { return filepath.Join(s.opts.RunRoot, "events.log") }

// Emit appends ev to the event journal. Events are kept in the runroot (they
// do not survive a reboot, like docker's in-memory ones); a write is one
// O_APPEND line, cheap enough for the container start path.
func (s *Service) Emit(_ context.Context, ev Event) {
	raw, err := json.Marshal(ev.message(time.Now()))
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
	Filter       func(Message) bool
}

// Events calls fn for the recorded events in the window, then (with
// Follow) for new ones until ctx ends or Until passes.
func (s *Service) Events(ctx context.Context, opts EventsOptions, fn func(Message) error) error {
	path := s.eventsPath()
	accept := func(ev Message) (bool, bool) {
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
			ev, ok := decodeMessage([]byte(strings.TrimSpace(line)))
			if !ok {
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
