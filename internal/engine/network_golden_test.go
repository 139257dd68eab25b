package engine

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/network"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/*.golden from berth's output")

// golden compares v, as indented JSON, with testdata/name.golden (-update
// rewrites it). The files were checked against a private dockerd 20.10's
// output for the same objects (IDs and times aside).
func golden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name+".golden")
	if *updateGolden {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if string(got) != string(want) {
		t.Fatalf("%s differs from %s:\n%s", name, path, got)
	}
}

const (
	goldenNetID = "a0b90274559d42c0aec9f503596a0eec35c54c1f879c463f6720ffe7889e9178"
	goldenCtrID = "313f65b3aa6a84f4f9545bf5ae5e4a23e79ecef43428f99cb1607bcc302ff368"
)

// TestNetworkInspectGolden: `network inspect` of a user network with one
// container, and of the predefined none network.
func TestNetworkInspectGolden(t *testing.T) {
	created := time.Date(2026, 12, 7, 7, 5, 12, 692756966, time.UTC)
	t.Setenv("TZ", "UTC")
	n := &network.Network{Name: "appnet", ID: goldenNetID, Created: created, Scope: "local", Driver: "bridge",
		IPAM:    network.IPAM{Driver: "default", Options: map[string]string{}, Config: []network.IPAMConfig{{Subnet: "172.17.0.0/16", Gateway: "172.17.0.1"}}},
		Options: map[string]string{}, Labels: map[string]string{}}
	eps := map[string][]network.Allocation{goldenCtrID: {{ContainerID: goldenCtrID, Name: "db",
		EndpointID: "e8e7fa0da675259fe2f9b863ab039325013c6999caa38bdf9a5073304a78b0ab", MacAddress: "02:42:ac:11:00:02", Address: "172.17.0.2/16"}}}
	golden(t, "network-inspect-user", []NetworkResource{networkDocument(n, eps)})
	none := &network.Network{Name: "none", ID: goldenNetID, Created: created, Scope: "local", Driver: "null",
		IPAM: network.IPAM{Driver: "default", Config: []network.IPAMConfig{}}, Options: map[string]string{}, Labels: map[string]string{}}
	golden(t, "network-inspect-none", []NetworkResource{networkDocument(none, nil)})
}

// TestContainerNetworkSettingsGolden: a container's NetworkSettings on a
// user network while it runs and once it stopped, and on the default
// bridge with published ports.
func TestContainerNetworkSettingsGolden(t *testing.T) {
	c := &container.Container{ID: goldenCtrID, HostConfig: container.HostConfig{NetworkMode: "appnet"},
		State: container.State{Running: true, Status: "running"},
		NetworkSettings: container.NetworkSettings{Ports: container.PortMap{}, Networks: map[string]*container.EndpointSettings{
			"appnet": {Aliases: []string{"database", goldenCtrID[:12]}, NetworkID: goldenNetID,
				EndpointID: "e8e7fa0da675259fe2f9b863ab039325013c6999caa38bdf9a5073304a78b0ab", Gateway: "172.17.0.1",
				IPAddress: "172.17.0.2", IPPrefixLen: 16, MacAddress: "02:42:ac:11:00:02", DNSNames: []string{"db", "database", goldenCtrID[:12]}},
		}}}
	golden(t, "networksettings-user-running", networkSettings(c))
	c.State = container.State{Status: "exited"}
	golden(t, "networksettings-user-exited", networkSettings(c))
	b := &container.Container{ID: goldenCtrID, HostConfig: container.HostConfig{NetworkMode: "bridge"},
		State: container.State{Running: true, Status: "running"},
		NetworkSettings: container.NetworkSettings{
			Ports: container.PortMap{"80/tcp": {{HostIP: "0.0.0.0", HostPort: "8080"}}, "81/tcp": nil},
			Networks: map[string]*container.EndpointSettings{"bridge": {NetworkID: goldenNetID,
				EndpointID: "e8e7fa0da675259fe2f9b863ab039325013c6999caa38bdf9a5073304a78b0ab", Gateway: "172.17.0.1",
				IPAddress: "172.17.0.2", IPPrefixLen: 16, MacAddress: "02:42:ac:11:00:02"}},
		}}
	golden(t, "networksettings-bridge-running", networkSettings(b))
}
