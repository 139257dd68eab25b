package engine

import (
	"testing"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/filters"
)

func TestEventMatches(t *testing.T) {
	ctr := container.Message{Type: "container", Action: "kill", Scope: "local", Actor: container.Actor{
		ID: "abcdef0123", Attributes: map[string]string{"name": "web", "image": "busybox:1.36", "team": "blue", "signal": "15"}}}
	exec := container.Message{Type: "container", Action: "exec_start: sh -c true", Scope: "local", Actor: container.Actor{
		ID: "abcdef0123", Attributes: map[string]string{"name": "web", "image": "busybox"}}}
	img := container.Message{Type: "image", Action: "tag", Scope: "local", Actor: container.Actor{
		ID: "sha256:1234", Attributes: map[string]string{"name": "busybox:latest"}}}
	vol := container.Message{Type: "volume", Action: "create", Scope: "local", Actor: container.Actor{
		ID: "data", Attributes: map[string]string{"driver": "local"}}}
	for _, tc := range []struct {
		name  string
		flags []string
		msg   container.Message
		want  bool
	}{
		{"no filters", nil, ctr, true},
		{"type", []string{"type=container"}, ctr, true},
		{"type other", []string{"type=image"}, ctr, false},
		{"types ORed", []string{"type=image", "type=container"}, ctr, true},
		{"event", []string{"event=kill"}, ctr, true},
		{"event other", []string{"event=die"}, ctr, false},
		{"exec_start without detail", []string{"event=exec_start"}, exec, true},
		{"kill is exact", []string{"event=ki"}, ctr, false},
		{"container by name", []string{"container=web"}, ctr, true},
		{"container by id prefix", []string{"container=abc"}, ctr, true},
		{"container other", []string{"container=db"}, ctr, false},
		{"container filter drops image events", []string{"container=web"}, img, false},
		{"image by name without tag", []string{"image=busybox"}, ctr, true},
		{"image by name with tag", []string{"image=busybox:1.36"}, ctr, true},
		{"image event by id", []string{"image=sha256:1234"}, img, true},
		{"image event by name", []string{"image=busybox"}, img, true},
		{"label", []string{"label=team=blue"}, ctr, true},
		{"label other value", []string{"label=team=red"}, ctr, false},
		{"volume", []string{"volume=data"}, vol, true},
		{"volume other", []string{"volume=logs"}, vol, false},
		{"keys ANDed", []string{"type=container", "event=die"}, ctr, false},
		{"scope", []string{"scope=swarm"}, ctr, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := filters.Parse(tc.flags)
			if err != nil {
				t.Fatal(err)
			}
			if got := EventMatches(f, tc.msg); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
