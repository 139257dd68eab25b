package container

import (
	"testing"
	"time"
)

func TestDecodeMessage(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       Message
		ok         bool
	}{
		{
			name: "docker shape",
			line: `{"status":"die","id":"abc","from":"busybox","Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":{"exitCode":"0","name":"x"}},"scope":"local","time":1,"timeNano":1000000001}`,
			want: Message{Status: "die", ID: "abc", From: "busybox", Type: "container", Action: "die",
				Actor: Actor{ID: "abc", Attributes: map[string]string{"exitCode": "0", "name": "x"}}, Scope: "local", Time: 1, TimeNano: 1000000001},
			ok: true,
		},
		{
			name: "legacy berth line: attributes at the top level",
			line: `{"Type":"container","Action":"start","id":"abc","Attributes":{"name":"x","image":"busybox"},"scope":"local","time":1,"timeNano":1000000001}`,
			want: Message{Status: "start", ID: "abc", From: "busybox", Type: "container", Action: "start",
				Actor: Actor{ID: "abc", Attributes: map[string]string{"name": "x", "image": "busybox"}}, Scope: "local", Time: 1, TimeNano: 1000000001},
			ok: true,
		},
		{
			name: "legacy volume line",
			line: `{"Type":"volume","Action":"create","id":"v","Attributes":{"driver":"local"},"scope":"local","time":2,"timeNano":2000000000}`,
			want: Message{Type: "volume", Action: "create", Actor: Actor{ID: "v", Attributes: map[string]string{"driver": "local"}},
				Scope: "local", Time: 2, TimeNano: 2000000000},
			ok: true,
		},
		{name: "garbage", line: `{"Type":`, ok: false},
		{name: "not an event", line: `{}`, ok: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := decodeMessage([]byte(tc.line))
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if got.Status != tc.want.Status || got.ID != tc.want.ID || got.From != tc.want.From || got.Type != tc.want.Type ||
				got.Action != tc.want.Action || got.Actor.ID != tc.want.Actor.ID || got.Scope != tc.want.Scope ||
				got.Time != tc.want.Time || got.TimeNano != tc.want.TimeNano || len(got.Actor.Attributes) != len(tc.want.Actor.Attributes) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
			for k, v := range tc.want.Actor.Attributes {
				if got.Actor.Attributes[k] != v {
					t.Fatalf("attribute %s = %q, want %q", k, got.Actor.Attributes[k], v)
				}
			}
		})
	}
}

func TestEventMessageLabels(t *testing.T) {
	c := &Container{ID: "abc", Name: "/web"}
	c.Config.Image = "busybox"
	c.Config.Labels = map[string]string{"team": "blue", "name": "label-loses"}
	m := ContainerEvent(c, "kill", "signal", "15").message(time.Unix(5, 6))
	want := map[string]string{"team": "blue", "name": "web", "image": "busybox", "signal": "15"}
	for k, v := range want {
		if m.Actor.Attributes[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, m.Actor.Attributes[k], v)
		}
	}
	if m.Status != "kill" || m.ID != "abc" || m.From != "busybox" || m.Scope != "local" || m.TimeNano != 5000000006 {
		t.Errorf("message %+v", m)
	}
}
