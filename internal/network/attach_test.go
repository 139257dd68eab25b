package network

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/metadata"
	"github.com/berth-dev/berth/internal/network/dataplane"
	"github.com/berth-dev/berth/internal/network/dns"
)

// fakeDataplane records what the attacher asks of the dataplane.
type fakeDataplane struct {
	mu        sync.Mutex
	networks  map[string]dataplane.Network
	endpoints map[string]dataplane.Endpoint // container/network
	reserved  map[string]bool               // "proto/port" held
	calls     []string
	failAdd   error
	taken     map[uint16]bool // host ports another process holds
	removed   []dataplane.Endpoint
}

func newFakeDataplane() *fakeDataplane {
	return &fakeDataplane{networks: map[string]dataplane.Network{}, endpoints: map[string]dataplane.Endpoint{}, reserved: map[string]bool{}, taken: map[uint16]bool{}}
}

func (f *fakeDataplane) log(s string) { f.calls = append(f.calls, s) }

func (f *fakeDataplane) EnsureNetwork(_ context.Context, n dataplane.Network) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log("ensure " + n.Bridge)
	f.networks[n.ID] = n
	return nil
}
func (f *fakeDataplane) RemoveNetwork(_ context.Context, n dataplane.Network) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log("rmnet " + n.Bridge)
	delete(f.networks, n.ID)
	return nil
}
func (f *fakeDataplane) AddEndpoint(_ context.Context, n dataplane.Network, ep dataplane.Endpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log("add " + ep.IfName + " " + ep.HostIfName)
	if f.failAdd != nil {
		return f.failAdd
	}
	f.endpoints[ep.ContainerID+"/"+n.ID] = ep
	return nil
}
func (f *fakeDataplane) RemoveEndpoint(_ context.Context, n dataplane.Network, ep dataplane.Endpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log("remove " + ep.HostIfName)
	if ep.IfName == "" || len(ep.Addresses) == 0 {
		return fmt.Errorf("endpoint without its interface or addresses: %+v", ep) // the dataplane refuses these
	}
	f.removed = append(f.removed, ep)
	delete(f.endpoints, ep.ContainerID+"/"+n.ID)
	return nil
}

func (f *fakeDataplane) ReleaseEndpoint(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint) error {
	f.mu.Lock()
	f.log("release " + ep.HostIfName)
	f.mu.Unlock()
	return f.RemoveEndpoint(ctx, n, ep)
}

type closerFunc func() error

func (c closerFunc) Close() error { return c() }

func (f *fakeDataplane) ReservePorts(_ context.Context, ports []dataplane.PortMapping) (io.Closer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var keys []string
	for i, p := range ports {
		if p.HostPort == 0 { // the kernel's pick, as the dataplane writes it back
			ports[i].HostPort = uint16(40000 + len(f.reserved) + i)
			p = ports[i]
		}
		k := fmt.Sprintf("%s/%d", p.Proto, p.HostPort)
		if f.taken[p.HostPort] || f.reserved[k] {
			return nil, fmt.Errorf("Bind for %s:%d failed: port is already allocated", p.HostIP, p.HostPort)
		}
		keys = append(keys, k)
	}
	for _, k := range keys {
		f.reserved[k] = true
	}
	return closerFunc(func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, k := range keys {
			delete(f.reserved, k)
		}
		return nil
	}), nil
}
func (f *fakeDataplane) Reconcile(_ context.Context, nets []dataplane.Network, eps []dataplane.Endpoint) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log(fmt.Sprintf("reconcile %d %d", len(nets), len(eps)))
	keep := map[string]bool{}
	for _, ep := range eps {
		keep[ep.ContainerID+"/"+ep.NetworkID] = true
	}
	for k := range f.endpoints {
		if !keep[k] {
			delete(f.endpoints, k)
		}
	}
	return nil
}

type fakeNames struct {
	mu      sync.Mutex
	entries map[string]dns.Entry
}

func (n *fakeNames) Add(_ context.Context, e dns.Entry) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.entries[e.Network+"/"+e.ContainerID] = e
	return nil
}
func (n *fakeNames) Remove(_ context.Context, nid, cid string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.entries, nid+"/"+cid)
	return nil
}

type fakeServer struct {
	mu     sync.Mutex
	cfg    dns.Config
	closed bool
}

func (s *fakeServer) SetNetworks(n []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.Networks = n
}
func (s *fakeServer) Close() error { s.closed = true; return nil }
func (s *fakeServer) networks() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.cfg.Networks)
}

type eventLog struct {
	mu      sync.Mutex
	actions []string
}

func (l *eventLog) Emit(_ context.Context, ev container.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.actions = append(l.actions, ev.Type+" "+ev.Action+" "+ev.Attributes["name"])
}

type fixture struct {
	svc     *Service
	att     *Attacher
	dp      *fakeDataplane
	names   *fakeNames
	servers []*fakeServer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	meta, err := metadata.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{svc: NewService(meta, ""), dp: newFakeDataplane(), names: &fakeNames{entries: map[string]dns.Entry{}}}
	f.svc.hostRoutes = func() []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix("172.17.0.0/16")} }
	f.att = NewAttacher(f.svc, f.dp, f.names, func(_ context.Context, cfg dns.Config) (DNSServer, error) {
		s := &fakeServer{cfg: cfg}
		f.servers = append(f.servers, s)
		return s, nil
	})
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(rc, []byte("nameserver 127.0.0.53\nnameserver 10.0.0.2\n"), 0o644)
	f.att.resolvConf = rc
	f.att.lockPath = filepath.Join(t.TempDir(), "attach.lock")
	f.att.notifyDir = filepath.Join(t.TempDir(), "changed")
	return f
}

func testID(name string) string {
	h := sha256.Sum256([]byte(name))
	return hex.EncodeToString(h[:])
}

func ctr(name, mode string) *container.Container {
	return &container.Container{ID: testID(name), Name: "/" + name, HostConfig: container.HostConfig{NetworkMode: mode},
		NetworkSettings: container.NetworkSettings{Networks: map[string]*container.EndpointSettings{mode: {}}}}
}

func ep(c *container.Container) *container.Endpoint {
	return &container.Endpoint{ID: c.ID, Name: c.ShortName(), NetworkMode: c.HostConfig.NetworkMode, NetNSPath: "/run/test/netns/" + c.ID[:12], Container: c}
}

func (f *fixture) allocations(t *testing.T) []string {
	t.Helper()
	var out []string
	f.svc.meta.View(context.Background(), func(tx *metadata.Tx) error {
		return tx.ForEach(metadata.BucketIPAM, func(k string, _ []byte) error {
			out = append(out, k)
			return nil
		})
	})
	return out
}

// TestAttachDefaultBridge: the default bridge (berth0, beside a host
// route on 172.17.0.0/16), a first address, Docker's MAC, a gateway,
// published ports held until Detach, no DNS; Detach undoes it all, twice.
func TestAttachDefaultBridge(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	events := &eventLog{}
	f.att.SetEvents(events)
	c := ctr("web", "bridge")
	c.HostConfig.PortBindings = container.PortMap{"80/tcp": {{HostPort: "8080"}}, "82/udp": {{HostIP: "127.0.0.1"}}}
	c.Config.ExposedPorts = map[string]struct{}{"80/tcp": {}, "81/tcp": {}, "82/udp": {}}
	att, err := f.att.Attach(ctx, ep(c))
	if err != nil {
		t.Fatal(err)
	}
	es := att.Settings.Networks["bridge"]
	if es.IPAddress != "172.18.0.2" || es.IPPrefixLen != 16 || es.Gateway != "172.18.0.1" || es.MacAddress != "02:42:ac:12:00:02" || es.EndpointID == "" {
		t.Fatalf("settings %+v", es)
	}
	if att.EmbeddedDNS || att.HostGateway != "172.18.0.1" || !slices.Equal(att.Addresses, []string{"172.18.0.2"}) {
		t.Fatalf("attachment %+v", att)
	}
	if got := att.Settings.Ports; len(got["80/tcp"]) != 1 || got["80/tcp"][0] != (container.PortBinding{HostIP: "0.0.0.0", HostPort: "8080"}) || got["81/tcp"] != nil ||
		len(got["82/udp"]) != 1 || got["82/udp"][0].HostIP != "127.0.0.1" || got["82/udp"][0].HostPort == "0" {
		t.Fatalf("ports %v", got)
	}
	dep := f.dp.endpoints[c.ID+"/"+es.NetworkID]
	if dep.IfName != "eth0" || len(dep.Gateways) != 1 || len(dep.Ports) != 2 || dep.Ports[0].ContainerPort != 80 || dep.Ports[0].HostIP.IsValid() || dep.NetNSPath == "" {
		t.Fatalf("endpoint %+v", dep)
	}
	if n := f.dp.networks[es.NetworkID]; n.Bridge != "berth0" || !n.Masquerade || !n.ICC {
		t.Fatalf("network %+v", n)
	}
	if len(f.names.entries) != 0 || len(f.servers) != 0 {
		t.Fatal("names or a DNS server for the default bridge")
	}
	if !f.dp.reserved["tcp/8080"] {
		t.Fatal("port 8080 not reserved")
	}
	for i := 0; i < 2; i++ {
		if err := f.att.Detach(ctx, ep(c)); err != nil {
			t.Fatal(err)
		}
		if len(f.dp.endpoints) != 0 || len(f.dp.reserved) != 0 || len(f.allocations(t)) != 0 {
			t.Fatalf("detach %d left %v %v %v", i, f.dp.endpoints, f.dp.reserved, f.allocations(t))
		}
	}
	// Docker's events: one connect as the endpoint joined, one disconnect
	// as it left (the second Detach found nothing to undo).
	if !slices.Equal(events.actions, []string{"network connect bridge", "network disconnect bridge"}) {
		t.Fatalf("events %v", events.actions)
	}
}

// TestAttachUserNetwork: names (container name, aliases, short ID) on a
// user network, an embedded DNS server in the container's namespace that
// forwards to the host's resolvers, and a second network as eth1 without
// a gateway.
func TestAttachUserNetwork(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	app, err := f.svc.Create(ctx, CreateOptions{Name: "appnet"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := f.svc.Create(ctx, CreateOptions{Name: "other", IPAM: IPAM{Config: []IPAMConfig{{Subnet: "10.9.0.0/24"}}}})
	if err != nil {
		t.Fatal(err)
	}
	c := ctr("db", "appnet")
	c.NetworkSettings.Networks["appnet"].Aliases = []string{"database"}
	c.NetworkSettings.Networks["other"] = &container.EndpointSettings{IPAMConfig: &container.EndpointIPAMConfig{IPv4Address: "10.9.0.77"}}
	c.HostConfig.ExtraHosts = []string{"gw:host-gateway"}
	att, err := f.att.Attach(ctx, ep(c))
	if err != nil {
		t.Fatal(err)
	}
	// host-gateway: the default bridge's address, its bridge made though
	// no container of it runs.
	var bridged bool
	for _, n := range f.dp.networks {
		bridged = bridged || n.Bridge == "berth0" && len(n.Gateways) == 1 && n.Gateways[0].String() == att.HostGateway
	}
	if !bridged {
		t.Fatalf("host-gateway %q without the default bridge: %v", att.HostGateway, f.dp.networks)
	}
	if !att.EmbeddedDNS || len(att.Addresses) != 2 {
		t.Fatalf("attachment %+v", att)
	}
	e := f.names.entries[app.ID+"/"+c.ID]
	if !slices.Equal(e.Names, []string{"db", "database", c.ID[:12]}) || !e.IPv4.IsValid() {
		t.Fatalf("entry %+v", e)
	}
	if len(f.servers) != 1 || !slices.Equal(f.servers[0].cfg.Networks, []string{app.ID, other.ID}) ||
		len(f.servers[0].cfg.Upstream) != 2 || f.servers[0].cfg.NetNSPath != ep(c).NetNSPath {
		t.Fatalf("dns config %+v", f.servers)
	}
	o := f.dp.endpoints[c.ID+"/"+other.ID]
	if o.IfName != "eth1" || len(o.Gateways) != 0 || o.Addresses[0].String() != "10.9.0.77/24" {
		t.Fatalf("second endpoint %+v", o)
	}
	es := att.Settings.Networks["appnet"]
	if !slices.Equal(es.Aliases, []string{"database", c.ID[:12]}) || !slices.Equal(es.DNSNames, []string{"db", "database", c.ID[:12]}) {
		t.Fatalf("appnet settings %+v", es)
	}
	if err := f.att.Detach(ctx, ep(c)); err != nil {
		t.Fatal(err)
	}
	if !f.servers[0].closed || len(f.names.entries) != 0 || len(f.allocations(t)) != 0 {
		t.Fatal("detach left the server, names or addresses")
	}
}

// TestAttachFailureLeavesNothing: a port already taken, a static address
// in use, or a dataplane failure leave no address, endpoint, name or
// reservation behind.
func TestAttachFailureLeavesNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.svc.Create(ctx, CreateOptions{Name: "appnet", IPAM: IPAM{Config: []IPAMConfig{{Subnet: "10.8.0.0/24"}}}}); err != nil {
		t.Fatal(err)
	}
	first := ctr("first", "appnet")
	first.HostConfig.PortBindings = container.PortMap{"80/tcp": {{HostPort: "8080"}}}
	if _, err := f.att.Attach(ctx, ep(first)); err != nil {
		t.Fatal(err)
	}
	before := len(f.allocations(t))
	cases := map[string]func(c *container.Container){
		"port taken": func(c *container.Container) {
			c.HostConfig.PortBindings = container.PortMap{"80/tcp": {{HostPort: "8080"}}}
		},
		"ip in use": func(c *container.Container) {
			c.NetworkSettings.Networks["appnet"].IPAMConfig = &container.EndpointIPAMConfig{IPv4Address: "10.8.0.2"}
		},
		"ip outside": func(c *container.Container) {
			c.NetworkSettings.Networks["appnet"].IPAMConfig = &container.EndpointIPAMConfig{IPv4Address: "10.7.0.2"}
		},
		"dataplane": func(*container.Container) { f.dp.failAdd = errors.New("boom") },
		"no network": func(c *container.Container) {
			c.NetworkSettings.Networks["gone"] = &container.EndpointSettings{}
		},
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			c := ctr("second-"+strings.ReplaceAll(name, " ", "-"), "appnet")
			setup(c)
			defer func() { f.dp.failAdd = nil }()
			if _, err := f.att.Attach(ctx, ep(c)); err == nil {
				t.Fatal("attached")
			} else if name == "port taken" && !strings.Contains(err.Error(), "port is already allocated") {
				t.Fatalf("error %v", err)
			}
			if got := len(f.allocations(t)); got != before {
				t.Fatalf("%d allocations, want %d", got, before)
			}
			if len(f.dp.endpoints) != 1 || len(f.names.entries) != 1 || len(f.dp.reserved) != 1 {
				t.Fatalf("left %v %v %v", f.dp.endpoints, f.names.entries, f.dp.reserved)
			}
		})
	}
}

// TestAddressReuseAfterDetach: a released address is handed out again.
func TestAddressReuseAfterDetach(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a, b := ctr("a", "bridge"), ctr("b", "bridge")
	attA, err := f.att.Attach(ctx, ep(a))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.att.Detach(ctx, ep(a)); err != nil {
		t.Fatal(err)
	}
	attB, err := f.att.Attach(ctx, ep(b))
	if err != nil {
		t.Fatal(err)
	}
	if attA.Addresses[0] != attB.Addresses[0] {
		t.Fatalf("%v then %v", attA.Addresses, attB.Addresses)
	}
}

// TestSweepReleasesDeadContainers: addresses of containers that do not
// run and whose attaching process is gone are released; the dataplane
// is reconciled to what is left.
func TestSweepReleasesDeadContainers(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	live, dead := ctr("live", "bridge"), ctr("dead", "bridge")
	for _, c := range []*container.Container{live, dead} {
		if _, err := f.att.Attach(ctx, ep(c)); err != nil {
			t.Fatal(err)
		}
	}
	// The dead one's allocation names a process that is gone.
	markOwnerGone(t, f, dead.ID)
	if err := f.att.Sweep(ctx, func(id string) bool { return id == live.ID }); err != nil {
		t.Fatal(err)
	}
	allocs := f.allocations(t)
	if len(allocs) != 1 {
		t.Fatalf("allocations after the sweep: %v", allocs)
	}
	if _, ok := f.dp.endpoints[dead.ID+"/"+live.NetworkSettings.Networks["bridge"].NetworkID]; ok {
		t.Fatal("dead endpoint kept")
	}
	if f.dp.calls[len(f.dp.calls)-1] != "reconcile 1 1" {
		t.Fatalf("calls %v", f.dp.calls)
	}
}

func markOwnerGone(t *testing.T, f *fixture, id string) {
	t.Helper()
	err := f.svc.meta.Update(context.Background(), func(tx *metadata.Tx) error {
		var keys []string
		var vals []Allocation
		tx.ForEach(metadata.BucketIPAM, func(k string, raw []byte) error {
			var al Allocation
			if err := jsonUnmarshal(raw, &al); err == nil && al.ContainerID == id {
				al.OwnerPid, al.OwnerStart = 1<<30, 1
				keys, vals = append(keys, k), append(vals, al)
			}
			return nil
		})
		for i, k := range keys {
			if err := tx.Put(metadata.BucketIPAM, k, vals[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentAllocation: containers attached at once from several
// goroutines, each with its own service over the store (as separate
// berth processes have), and from several processes, get distinct
// addresses.
func TestConcurrentAllocation(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	meta, err := metadata.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	svc := NewService(meta, "")
	if _, err := svc.Create(ctx, CreateOptions{Name: "appnet", IPAM: IPAM{Config: []IPAMConfig{{Subnet: "10.6.0.0/24"}}}}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- attachOne(ctx, dir, fmt.Sprintf("g%d", i))
		}()
	}
	var procs []*exec.Cmd
	for p := 0; p < 3; p++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAllocateHelperProcess$")
		cmd.Env = append(os.Environ(), "BERTH_IPAM_HELPER="+dir, "BERTH_IPAM_PREFIX=p"+strconv.Itoa(p))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, cmd)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range procs {
		if err := p.Wait(); err != nil {
			t.Fatalf("helper process: %v", err)
		}
	}
	seen := map[string]string{}
	err = meta.View(ctx, func(tx *metadata.Tx) error {
		return tx.ForEach(metadata.BucketIPAM, func(k string, raw []byte) error {
			var al Allocation
			if err := jsonUnmarshal(raw, &al); err != nil {
				return err
			}
			if prev, ok := seen[al.Address]; ok {
				return fmt.Errorf("%s given to %s and %s", al.Address, prev, al.Name)
			}
			seen[al.Address] = al.Name
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 10+3*10 {
		t.Fatalf("%d addresses, want 40", len(seen))
	}
}

// TestAllocateHelperProcess attaches 10 containers when run by
// TestConcurrentAllocation.
func TestAllocateHelperProcess(t *testing.T) {
	dir := os.Getenv("BERTH_IPAM_HELPER")
	if dir == "" {
		return // only a helper of TestConcurrentAllocation
	}
	for i := 0; i < 10; i++ {
		if err := attachOne(context.Background(), dir, fmt.Sprintf("%s-%d", os.Getenv("BERTH_IPAM_PREFIX"), i)); err != nil {
			t.Fatal(err)
		}
	}
}

func attachOne(ctx context.Context, dir, name string) error {
	meta, err := metadata.Open(ctx, dir)
	if err != nil {
		return err
	}
	att := NewAttacher(NewService(meta, ""), newFakeDataplane(), nil, nil)
	_, err = att.Attach(ctx, ep(ctr(name, "appnet")))
	return err
}

func jsonUnmarshal(raw []byte, v any) error { return json.Unmarshal(raw, v) }

// TestDetachFromAnotherProcess: a process that did not attach the
// container (the CLI after its monitor died) removes its endpoint with
// everything the dataplane needs: interface, namespace, addresses and
// published ports, from the records; ReleaseEndpoint when the namespace
// goes.
func TestDetachFromAnotherProcess(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := ctr("web", "bridge")
	c.HostConfig.PortBindings = container.PortMap{"80/tcp": {{HostPort: "8080"}}}
	if _, err := f.att.Attach(ctx, ep(c)); err != nil {
		t.Fatal(err)
	}
	var added dataplane.Endpoint
	for _, v := range f.dp.endpoints { // the only one
		added = v
	}
	other := NewAttacher(f.svc, f.dp, f.names, nil)
	e := ep(c)
	e.Container, e.NetNSPath, e.Final = nil, "", true
	if err := other.Detach(ctx, e); err != nil {
		t.Fatal(err)
	}
	if len(f.dp.removed) != 1 {
		t.Fatalf("removed %v", f.dp.removed)
	}
	got := f.dp.removed[0]
	if got.IfName != "eth0" || got.NetNSPath != added.NetNSPath || len(got.Ports) != 1 || got.Ports[0].HostPort != 8080 ||
		len(got.Addresses) != 1 || got.Addresses[0] != added.Addresses[0] || len(got.Gateways) != 1 {
		t.Fatalf("removed %+v, attached %+v", got, added)
	}
	if f.dp.calls[len(f.dp.calls)-2] != "release "+added.HostIfName {
		t.Fatalf("calls %v: want ReleaseEndpoint for a namespace that goes", f.dp.calls)
	}
	if len(f.allocations(t)) != 0 {
		t.Fatal("addresses left")
	}
}

// TestLiveConnectReachesTheDNSServer: connect and disconnect of a running
// container, made by another process, change the networks of the DNS
// server its monitor holds.
func TestLiveConnectReachesTheDNSServer(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	app, err := f.svc.Create(ctx, CreateOptions{Name: "appnet"})
	if err != nil {
		t.Fatal(err)
	}
	more, err := f.svc.Create(ctx, CreateOptions{Name: "more"})
	if err != nil {
		t.Fatal(err)
	}
	c := ctr("web", "appnet")
	if _, err := f.att.Attach(ctx, ep(c)); err != nil {
		t.Fatal(err)
	}
	cli := NewAttacher(f.svc, f.dp, f.names, nil) // the CLI's
	cli.notifyDir, cli.lockPath = f.att.notifyDir, f.att.lockPath
	es := &container.EndpointSettings{}
	c.NetworkSettings.Networks["more"] = es
	if _, err := cli.ConnectLive(ctx, c, ep(c), more, es); err != nil {
		t.Fatal(err)
	}
	waitNetworks := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !slices.Equal(f.servers[0].networks(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("server networks %v, want %v", f.servers[0].networks(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	want := []string{app.ID, more.ID}
	slices.Sort(want)
	waitNetworks(want...)
	if ep := f.dp.endpoints[c.ID+"/"+more.ID]; ep.IfName != "eth1" || len(ep.Gateways) != 0 {
		t.Fatalf("live endpoint %+v", ep)
	}
	if err := cli.DisconnectLive(ctx, ep(c), more); err != nil {
		t.Fatal(err)
	}
	waitNetworks(app.ID)
	if err := f.att.Detach(ctx, ep(c)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.att.notifyPath(c.ID)); !os.IsNotExist(err) {
		t.Fatalf("notify file after detach: %v", err)
	}
}
