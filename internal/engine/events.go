package engine

import (
	"context"
	"io"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/filters"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/volume"
)

// EventMessage is one event in the Docker API's shape (Type, Action,
// Actor{ID, Attributes}, scope, time, timeNano, and the deprecated
// status, id, from of container and image events).
type EventMessage = container.Message

// EventsRequest is GET /events.
type EventsRequest struct {
	Since, Until string // Docker's timestamps or durations; "" for none
	Filters      filters.Args
}

var eventFilters = []string{"config", "container", "daemon", "event", "image", "label", "network", "node", "plugin", "scope", "secret", "service", "type", "volume"}

// Events streams the recorded events in the window that pass the
// filters, then (without Until) the new ones until ctx ends.
func (e *Engine) Events(ctx context.Context, req EventsRequest, fn func(EventMessage) error) error {
	f := req.Filters
	if err := f.Validate(eventFilters...); err != nil {
		return err
	}
	opts := container.EventsOptions{Follow: true}
	now := time.Now()
	var err error
	if req.Since != "" {
		if opts.Since, err = filters.ParseTime(req.Since, now); err != nil {
			return err
		}
	}
	if req.Until != "" {
		if opts.Until, err = filters.ParseTime(req.Until, now); err != nil {
			return err
		}
	}
	opts.Filter = func(m EventMessage) bool { return EventMatches(f, m) }
	return e.Containers.Events(ctx, opts, fn)
}

// EventMatches applies Docker's event filters to m.
func EventMatches(f filters.Args, m EventMessage) bool {
	attrs := m.Actor.Attributes
	// "health_status", "exec_start" and "exec_create" also match the
	// actions that carry a detail after a colon.
	fuzzy := false
	for _, v := range f.Get("event") {
		fuzzy = fuzzy || v == "health_status" || v == "exec_start" || v == "exec_create"
	}
	if fuzzy && !f.FuzzyMatch("event", m.Action) || !fuzzy && !f.ExactMatch("event", m.Action) {
		return false
	}
	if !f.ExactMatch("type", m.Type) || !f.ExactMatch("scope", m.Scope) || !f.MatchKVList("label", attrs) {
		return false
	}
	for _, kind := range []string{"container", "volume", "network", "plugin", "node", "service", "secret", "config"} {
		if !f.FuzzyMatch(kind, m.Actor.ID) && !f.FuzzyMatch(kind, attrs["name"]) {
			return false
		}
	}
	if f.Contains("daemon") && m.Type != "daemon" {
		return false
	}
	// image: the image's ID or name, with or without its tag; for other
	// objects the image they were made from.
	nameAttr := "image"
	if m.Type == "image" {
		nameAttr = "name"
	}
	name := attrs[nameAttr]
	return f.ExactMatch("image", m.Actor.ID) || f.ExactMatch("image", name) ||
		f.ExactMatch("image", stripTag(m.Actor.ID)) || f.ExactMatch("image", stripTag(name))
}

// stripTag turns "busybox:1" (or its full form) into "busybox".
func stripTag(ref string) string {
	if ref == "" || strings.HasPrefix(ref, "sha256:") {
		return ref
	}
	r, err := image.ParseReference(ref)
	if err != nil {
		return ref
	}
	repo, _ := image.FamiliarRepoTag(r.String())
	return repo
}

// Emit records an event; the services emit their own, this is for the
// use cases of this package.
func (e *Engine) Emit(ctx context.Context, ev container.Event) { e.Containers.Emit(ctx, ev) }

// imageEvent is an event about image id: name is the reference it
// concerns (Docker uses the ID where no reference does), and the image's
// labels come with it while the image exists.
func (e *Engine) imageEvent(action string, id digest.Digest, name string) container.Event {
	ev := container.Event{Type: "image", Action: action, ID: id.String(), Attributes: map[string]string{"name": name}}
	if action != "delete" {
		if cfg, err := e.Images.Config(id); err == nil {
			ev.Labels = cfg.Config.Labels
		}
	}
	return ev
}

// RemoveImage is `docker rmi`: it untags or deletes, and emits Docker's
// untag and delete events.
func (e *Engine) RemoveImage(ctx context.Context, ref string, force bool) (*image.RemoveResult, error) {
	img, err := e.Images.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	ev := e.imageEvent("untag", img.ID, img.ID.String()) // labels read while the image exists
	res, err := e.Images.Remove(ctx, ref, force)
	if err != nil {
		return nil, err
	}
	for range res.Untagged {
		e.Emit(ctx, ev)
	}
	for _, d := range res.Deleted {
		e.Emit(ctx, container.Event{Type: "image", Action: "delete", ID: d, Attributes: map[string]string{"name": d}})
	}
	return res, nil
}

// TagImage is `docker tag`; it returns the normalised target.
func (e *Engine) TagImage(ctx context.Context, source, target string) (string, error) {
	ref, err := e.Images.Tag(ctx, source, target)
	if err != nil {
		return "", err
	}
	if img, err := e.Images.Resolve(ctx, ref); err == nil {
		e.Emit(ctx, e.imageEvent("tag", img.ID, image.FamiliarString(ref)))
	}
	return ref, nil
}

// LoadImages is `docker load`, with a load event per image loaded.
func (e *Engine) LoadImages(ctx context.Context, r io.Reader) ([]image.LoadedImage, error) {
	imgs, err := e.Images.Load(ctx, r)
	for _, img := range imgs {
		names := img.RepoTags
		if len(names) == 0 {
			names = []string{img.ID.String()}
		}
		for _, t := range names {
			e.Emit(ctx, e.imageEvent("load", img.ID, image.FamiliarString(t)))
		}
	}
	return imgs, err
}

// CreateVolume is `docker volume create`.
func (e *Engine) CreateVolume(ctx context.Context, opts volume.CreateOptions) (*volume.Volume, error) {
	v, err := e.Volumes.Create(ctx, opts)
	if err == nil {
		e.Emit(ctx, volumeEvent("create", v.Name))
	}
	return v, err
}

// RemoveVolume is `docker volume rm`.
func (e *Engine) RemoveVolume(ctx context.Context, name string, force bool) error {
	existed := true
	if _, err := e.Volumes.Get(ctx, name); err != nil {
		existed = false
	}
	err := e.Volumes.Remove(ctx, name, force)
	if err == nil && existed {
		e.Emit(ctx, volumeEvent("destroy", name))
	}
	return err
}

func volumeEvent(action, name string) container.Event {
	return container.Event{Type: "volume", Action: action, ID: name, Attributes: map[string]string{"driver": "local"}}
}

// SaveImages is `docker save`, with a save event per image named.
func (e *Engine) SaveImages(ctx context.Context, w io.Writer, refs []string) error {
	if err := e.Images.Save(ctx, w, refs); err != nil {
		return err
	}
	for _, ref := range refs {
		if img, err := e.Images.Resolve(ctx, ref); err == nil {
			e.Emit(ctx, e.imageEvent("save", img.ID, ref))
		}
	}
	return nil
}
