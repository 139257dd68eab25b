package cgroups

import (
	"reflect"
	"testing"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	layouts := []layout{
		{mode: Hybrid, v2: "/sys/fs/cgroup/unified", v1: []hierarchy{
			{[]string{"cpu", "cpuacct"}, "/sys/fs/cgroup/cpu,cpuacct"},
			{[]string{"name=systemd"}, "/sys/fs/cgroup/systemd"},
		}},
		{mode: Legacy, v1: []hierarchy{{[]string{"memory"}, "/srv/cg root/memory"}}},
		{mode: Unified, v2: "/sys/fs/cgroup"},
	}
	for _, l := range layouts {
		m, err := newManager("/berth/abc", l)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(m.Encode())
		if err != nil {
			t.Fatalf("%v: %v", l.mode, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%v: round trip gave %+v, want %+v", l.mode, got, m)
		}
	}
}

func TestDecodeRefusesMalformed(t *testing.T) {
	for _, s := range []string{
		"",
		"/berth/x",          // no layout
		"/berth/x\x009\x00", // unknown mode
		"/berth/x\x001\x00\x00/sys/fs/cgroup/cpu\x00",    // hierarchy without controllers
		"/berth/x\x001\x00",                              // no hierarchy at all
		"relative\x001\x00\x00/sys/fs/cgroup/cpu\x00cpu", // bad cgroup path
	} {
		if _, err := Decode(s); err == nil {
			t.Errorf("Decode(%q) accepted it", s)
		}
	}
}
