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

// ImageRemove is DELETE /images/{name} (`docker rmi`): it untags or
// deletes, emits Docker's untag and delete events, and reports what it
// did as Docker does: the untagged references, then the deleted IDs.
func (e *Engine) ImageRemove(ctx context.Context, ref string, req ImageRemoveRequest) ([]ImageDeleteResponseItem, error) {
	res, err := e.removeImage(ctx, ref, req.Force)
	if err != nil {
		return nil, err
	}
	items := []ImageDeleteResponseItem{}
	for _, u := range res.Untagged {
		items = append(items, ImageDeleteResponseItem{Untagged: u})
	}
	for _, d := range res.Deleted {
		items = append(items, ImageDeleteResponseItem{Deleted: d})
	}
	return items, nil
}

// ImageRemoveRequest is the query of DELETE /images/{name}. (berth never
// deletes untagged parents: its images have none, so noprune changes
// nothing.)
type ImageRemoveRequest struct {
	Force   bool
	NoPrune bool
}

// removeImage untags or deletes ref and emits the events of it.
func (e *Engine) removeImage(ctx context.Context, ref string, force bool) (*image.RemoveResult, error) {
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

// ImageTag is POST /images/{name}/tag (`docker tag`); it returns the
// normalised target.
func (e *Engine) ImageTag(ctx context.Context, source, target string) (string, error) {
	ref, err := e.Images.Tag(ctx, source, target)
	if err != nil {
		return "", err
	}
	if img, err := e.Images.Resolve(ctx, ref); err == nil {
		e.Emit(ctx, e.imageEvent("tag", img.ID, image.FamiliarString(ref)))
	}
	return ref, nil
}

// LoadedImage is an image that ImageLoad stored: Docker's "Loaded
// image: NAME" for each of its RepoTags (familiar references, in the
// archive's order), "Loaded image ID: ID" when it has none.
type LoadedImage struct {
	ID       string
	RepoTags []string
	// Replaced maps each tag of RepoTags that pointed at another image
	// before the load to that image's ID (Docker's "renaming the old one").
	Replaced map[string]string
}

// ImageLoad is POST /images/load (`docker load`), with a load event per
// image loaded. On failure nothing is reported as loaded.
func (e *Engine) ImageLoad(ctx context.Context, r io.Reader) ([]LoadedImage, error) {
	imgs, err := e.Images.Load(ctx, r)
	out := make([]LoadedImage, 0, len(imgs))
	for _, img := range imgs {
		names := img.RepoTags
		if len(names) == 0 {
			names = []string{img.ID.String()}
		}
		for _, t := range names {
			e.Emit(ctx, e.imageEvent("load", img.ID, image.FamiliarString(t)))
		}
		li := LoadedImage{ID: img.ID.String()}
		for _, t := range img.RepoTags {
			ft := image.FamiliarString(t)
			li.RepoTags = append(li.RepoTags, ft)
			if old, ok := img.Replaced[t]; ok {
				if li.Replaced == nil {
					li.Replaced = map[string]string{}
				}
				li.Replaced[ft] = old.String()
			}
		}
		out = append(out, li)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// VolumeCreateRequest is the body of POST /volumes/create.
type VolumeCreateRequest struct {
	Name       string            `json:"Name"`
	Driver     string            `json:"Driver"`
	DriverOpts map[string]string `json:"DriverOpts"`
	Labels     map[string]string `json:"Labels"`
}

// VolumeCreate is POST /volumes/create (`docker volume create`): it
// returns the new volume's inspect document.
func (e *Engine) VolumeCreate(ctx context.Context, req VolumeCreateRequest) (*Volume, error) {
	v, err := e.Volumes.Create(ctx, volume.CreateOptions{Name: req.Name, Driver: req.Driver, Opts: req.DriverOpts, Labels: req.Labels})
	if err != nil {
		return nil, err
	}
	e.Emit(ctx, volumeEvent("create", v.Name))
	return volumeDocument(v), nil
}

// VolumeRemove is DELETE /volumes/{name} (`docker volume rm`).
func (e *Engine) VolumeRemove(ctx context.Context, name string, force bool) error {
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

// ImageSave is GET /images/get (`docker save`): the images refs name, as
// one tar archive written to w, with a save event per image named.
func (e *Engine) ImageSave(ctx context.Context, w io.Writer, refs []string) error {
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
