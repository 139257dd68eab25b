package testutil

import (
	"net"
	"os"
	"testing"
)

// TestNetNS: a new namespace has its own loopback, up; InNetNS runs in
// it and leaves no thread there.
func TestNetNS(t *testing.T) {
	ns := NewNetNS(t)
	host, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var inside string
	err = InNetNS(ns, func() error {
		var err error
		if inside, err = os.Readlink("/proc/thread-self/ns/net"); err != nil {
			return err
		}
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		if lo.Flags&net.FlagUp == 0 {
			t.Error("lo is down in the new namespace")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if inside == host {
		t.Fatalf("InNetNS ran in the host's namespace %s", host)
	}
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		if got, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/net"); err == nil && got == inside {
			t.Errorf("thread %s stayed in the namespace", task.Name())
		}
	}
}
