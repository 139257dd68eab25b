package dataplane

import (
	"context"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestKernelListsTheModel: what nft lists of the table berth wrote is,
// chain for chain and element for element, the text the model renders
// (and the golden files hold), so the expressions sent to the kernel mean
// what the golden files say.
func TestKernelListsTheModel(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	dual := p.network("x", true)
	internal := p.network("y", false)
	internal.Internal, internal.ICC, internal.Masquerade = true, false, false
	plain := p.network("z", false)
	plain.Masquerade = false
	plain.HostBinding = netip.MustParseAddr("127.0.0.1")
	nets := []Network{dual, internal, plain}
	for _, n := range nets {
		if err := p.EnsureNetwork(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	eps := []Endpoint{
		p.endpoint(dual, newNS(t), "1", 2, tcp("", 8080, 80), udp("127.0.0.1", 5353, 53), tcp(dual.Gateways[1].String(), 8443, 443)),
		p.endpoint(internal, newNS(t), "2", 2, tcp("", 8081, 80)),
		p.endpoint(plain, newNS(t), "3", 2, tcp("", 8082, 80), PortMapping{Proto: "sctp", HostPort: 9999, ContainerPort: 9}),
	}
	for i, ep := range eps {
		if err := p.AddEndpoint(ctx, nets[i], ep); err != nil {
			t.Fatal(err)
		}
	}
	model, err := Render(p.Table(), nets, eps)
	if err != nil {
		t.Fatal(err)
	}
	want, wantBridge, ok := strings.Cut(model, "\ntable bridge ")
	if !ok {
		t.Fatalf("the model has no bridge table:\n%s", model)
	}
	got := nftList(t, p.Table())
	g, w := parseListing(got), parseListing(want)
	if len(w) < 20 || len(w["chain to-"+dual.Bridge]) == 0 || len(w["map dnat4-ip"]) < 4 {
		t.Fatalf("the model's listing did not parse: %v", w)
	}
	compareListings(t, g, w)
	// The bridge table (antispoof.go): the same, chain for chain.
	gb, wb := parseListing(nftListFamily(t, "bridge", p.Table())), parseListing("table bridge "+wantBridge)
	if len(wb) < 9 || len(wb["chain net-"+dual.Bridge]) != 3 || len(wb["set port-ip6"]) != 5 {
		t.Fatalf("the model's bridge table did not parse: %v", wb)
	}
	compareListings(t, gb, wb)
}

func compareListings(t *testing.T, g, w map[string][]string) {
	t.Helper()
	if !reflect.DeepEqual(g, w) {
		for k := range w {
			if !reflect.DeepEqual(g[k], w[k]) {
				t.Errorf("%s:\nkernel: %q\nmodel:  %q", k, g[k], w[k])
			}
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				t.Errorf("%s is in the kernel only: %q", k, g[k])
			}
		}
	}
}

// parseListing splits an nft listing into its sets and chains: the lines
// of each (a set's elements one per line, sorted), whatever the layout.
func parseListing(s string) map[string][]string {
	out := map[string][]string{}
	var cur string
	var inElements bool
	var elems string
	for _, line := range strings.Split(s, "\n") {
		l := strings.TrimSpace(line)
		switch {
		case l == "":
		case cur == "" && strings.HasSuffix(l, "{") && (strings.HasPrefix(l, "set ") || strings.HasPrefix(l, "map ") || strings.HasPrefix(l, "chain ")):
			cur = strings.TrimSuffix(l, " {")
			out[cur] = []string{}
		case cur == "":
		case strings.HasPrefix(l, "elements = {"):
			inElements, elems = true, strings.TrimPrefix(l, "elements = {")
			if strings.HasSuffix(elems, "}") {
				inElements, elems = false, strings.TrimSuffix(elems, "}")
				out[cur] = append(out[cur], splitElements(elems)...)
			}
		case inElements:
			if strings.HasSuffix(l, "}") {
				inElements = false
				elems += strings.TrimSuffix(l, "}")
				out[cur] = append(out[cur], splitElements(elems)...)
			} else {
				elems += l
			}
		case l == "}":
			if strings.HasPrefix(cur, "set ") || strings.HasPrefix(cur, "map ") {
				slices.Sort(out[cur])
			}
			cur = ""
		default:
			out[cur] = append(out[cur], l)
		}
	}
	return out
}

func splitElements(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}
