package dataplane

import (
	"context"
	"strings"
	"testing"
)

// TestLargePortRange publishes and removes a 3,000-port range (TCP and
// UDP: 6,000 mappings) in one transaction: the elements must be split
// over several messages (a nested attribute's length is 16 bits) and the
// transaction must fit the socket's send buffer.
func TestLargePortRange(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("r", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	var ports []PortMapping
	for i := range 3000 {
		for _, proto := range []string{"tcp", "udp"} {
			ports = append(ports, PortMapping{Proto: proto, HostPort: uint16(20000 + i), ContainerPort: uint16(20000 + i)})
		}
	}
	ep := p.endpoint(n, newNS(t), "r", 2, ports...)
	if err := p.AddEndpoint(ctx, n, ep); err != nil {
		t.Fatalf("AddEndpoint with %d ports: %v", len(ports), err)
	}
	list := nftList(t, p.Table())
	for _, want := range []string{"20000", "22999"} {
		if !strings.Contains(list, want) {
			t.Errorf("port %s is not in the ruleset", want)
		}
	}
	if err := p.RemoveEndpoint(ctx, n, ep); err != nil {
		t.Fatalf("RemoveEndpoint with %d ports: %v", len(ports), err)
	}
	if list := nftList(t, p.Table()); strings.Contains(list, "22999") {
		t.Errorf("port elements remain after RemoveEndpoint")
	}
}
