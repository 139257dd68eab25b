package dataplane

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// elementsPerMessage bounds the elements of one set message: they travel
// in one nested netlink attribute, whose length is 16 bits, so a longer
// list (a 1,000-port range) would overflow it and the kernel would read
// garbage (ENOENT). 128 elements stay well under 64 KiB.
const elementsPerMessage = 128

// batchSendBuffer is the socket send buffer of a batch: the kernel
// refuses a sendmsg longer than it (EMSGSIZE) and a transaction is one
// sendmsg, so the default (about 208 KiB) would cap a port range at a
// few thousand elements. SO_SNDBUFFORCE needs CAP_NET_ADMIN, which
// changing nftables needs anyway.
const batchSendBuffer = 32 << 20

// batch queues one nftables transaction on a Conn: every method only
// queues, flush sends it all at once and the kernel applies all or
// nothing.
type batch struct {
	c     *nftables.Conn
	table *nftables.Table
	// bridge is the table of the same name, family bridge (antispoof.go).
	bridge *nftables.Table
	// sets of both tables: their names differ.
	sets map[string]*nftables.Set
}

func (d *Dataplane) newBatch() (*batch, error) {
	c, err := nftables.New(nftables.WithSockOptions(forceSendBuffer))
	if err != nil {
		return nil, err
	}
	b := &batch{c: c, table: &nftables.Table{Name: d.opts.table, Family: nftables.TableFamilyINet},
		bridge: &nftables.Table{Name: d.opts.table, Family: nftables.TableFamilyBridge}, sets: map[string]*nftables.Set{}}
	for _, t := range []struct {
		table *nftables.Table
		sets  []setSpec
	}{{b.table, staticSets()}, {b.bridge, guardSets()}} {
		for _, s := range t.sets {
			set := &nftables.Set{Table: t.table, Name: s.name, KeyType: s.key, DataType: s.data, IsMap: s.isMap,
				Concatenation: strings.Contains(s.key.Name, " . ")}
			if s.key == nftables.TypeIFName {
				// Only said for nft's listing: interface names are
				// strings, which nft keeps in host byte order.
				set.KeyByteOrder = binaryutil.NativeEndian
			}
			b.sets[s.name] = set
		}
	}
	return b, nil
}

// ensureStatic (re)writes the table, its sets and its static chains, of
// the given version. Every object is added without NLM_F_EXCL, so this is
// a no-op for what exists; the static chains are flushed and refilled so
// that a newer berth replaces an older berth's rules, whose markers
// (older) go. The users' chain is never flushed.
func (b *batch) ensureStatic(version int, older []string) error {
	b.c.AddTable(b.table)
	for _, s := range staticSets() {
		if err := b.c.AddSet(b.sets[s.name], nil); err != nil {
			return err
		}
	}
	b.addChains(staticChainsAt(version))
	for _, m := range older {
		b.delChains([]chainSpec{{name: m}})
	}
	return nil
}

func (b *batch) addChains(chains []chainSpec) { b.addChainsIn(b.table, chains) }

func (b *batch) addChainsIn(table *nftables.Table, chains []chainSpec) {
	// All chains first: rules jump to chains defined after them.
	objs := make([]*nftables.Chain, len(chains))
	for i, cs := range chains {
		ch := &nftables.Chain{Name: cs.name, Table: table}
		if cs.hook != nil {
			accept := nftables.ChainPolicyAccept
			ch.Type, ch.Hooknum, ch.Priority, ch.Policy = cs.typ, cs.hook, cs.prio, &accept
		}
		objs[i] = b.c.AddChain(ch)
		if !cs.keep {
			b.c.FlushChain(ch)
		}
	}
	for i, cs := range chains {
		for _, r := range cs.rules {
			b.c.AddRule(&nftables.Rule{Table: table, Chain: objs[i], Exprs: r.exprs})
		}
	}
}

// delChains deletes chains, idempotently: add (a no-op if present), flush,
// delete. Elements that jump to them must be deleted first.
func (b *batch) delChains(chains []chainSpec) { b.delChainsIn(b.table, chains) }

func (b *batch) delChainsIn(table *nftables.Table, chains []chainSpec) {
	for _, cs := range chains {
		ch := &nftables.Chain{Name: cs.name, Table: table}
		b.c.AddChain(ch)
		b.c.FlushChain(ch)
		b.c.DelChain(ch)
	}
}

func groupElements(els []element) (order []string, by map[string][]nftables.SetElement) {
	by = map[string][]nftables.SetElement{}
	for _, e := range els {
		if _, ok := by[e.set]; !ok {
			order = append(order, e.set)
		}
		by[e.set] = append(by[e.set], nftables.SetElement{Key: e.key, Val: e.val, VerdictData: e.verdict, Comment: e.comment})
	}
	return order, by
}

func forceSendBuffer(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) {
		// Without the privilege the default buffer still carries
		// ordinary transactions: the error is not fatal.
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, batchSendBuffer)
	})
}

// chunks splits a set's elements into messages of elementsPerMessage.
func chunks(els []nftables.SetElement) [][]nftables.SetElement {
	var out [][]nftables.SetElement
	for len(els) > elementsPerMessage {
		out = append(out, els[:elementsPerMessage])
		els = els[elementsPerMessage:]
	}
	return append(out, els)
}

func (b *batch) addElements(els []element) error {
	order, by := groupElements(els)
	for _, s := range order {
		for _, part := range chunks(by[s]) {
			if err := b.c.SetAddElements(b.sets[s], part); err != nil {
				return err
			}
		}
	}
	return nil
}

// delElements deletes elements; with idempotent, each is added first (a
// no-op if it is there with the same value), so that a missing one does
// not fail the transaction.
func (b *batch) delElements(els []element, idempotent bool) error {
	order, by := groupElements(els)
	for _, s := range order {
		for _, part := range chunks(by[s]) {
			if idempotent {
				if err := b.c.SetAddElements(b.sets[s], part); err != nil {
					return err
				}
			}
			if err := b.c.SetDeleteElements(b.sets[s], part); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *batch) flush() error { return b.c.Flush() }

func isNotExist(err error) bool { return errors.Is(err, unix.ENOENT) }
func isExist(err error) bool    { return errors.Is(err, unix.EEXIST) }

// Render writes the ruleset berth generates for these networks and
// endpoints as nft-like text: the model, not what the kernel lists. It is
// what the golden files hold: table inet <table>, then table bridge
// <table> (antispoof.go).
func Render(table string, nets []Network, eps []Endpoint) (string, error) {
	chains := staticChains()
	var els []element
	var guards []guardEndpoint
	byID := map[string]Network{}
	for _, n := range nets {
		if err := validateNetwork(n); err != nil {
			return "", err
		}
		c, e := networkObjects(n)
		chains = append(chains, c...)
		els = append(els, e...)
		byID[n.ID] = n
	}
	for _, ep := range eps {
		n, ok := byID[ep.NetworkID]
		if !ok {
			return "", fmt.Errorf("endpoint %s: unknown network %s", ep.ContainerID, ep.NetworkID)
		}
		e, err := endpointElements(n, ep)
		if err != nil {
			return "", err
		}
		els = append(els, e...)
		guards = append(guards, guardEndpoint{n, ep})
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "table inet %s {\n", table)
	for _, s := range staticSets() {
		kind := "set"
		if s.isMap {
			kind = "map"
		}
		fmt.Fprintf(&sb, "\t%s %s {\n\t\ttype %s\n", kind, s.name, s.typeText)
		var lines []string
		for _, e := range els {
			if e.set == s.name {
				lines = append(lines, e.text)
			}
		}
		if s.name != setBridges && !strings.HasPrefix(s.typeText, "ifname") {
			sort.Strings(lines) // DNAT elements: stable whatever the endpoint order
		}
		if len(lines) > 0 {
			fmt.Fprintf(&sb, "\t\telements = {\n\t\t\t%s\n\t\t}\n", strings.Join(lines, ",\n\t\t\t"))
		}
		sb.WriteString("\t}\n")
	}
	writeChains(&sb, chains)
	sb.WriteString("}\n")
	bridge, err := renderGuards(table, nets, guards)
	if err != nil {
		return "", err
	}
	return sb.String() + "\n" + bridge, nil
}

func writeChains(sb *strings.Builder, chains []chainSpec) {
	for _, c := range chains {
		fmt.Fprintf(sb, "\n\tchain %s {\n", c.name)
		if c.hookText != "" {
			fmt.Fprintf(sb, "\t\t%s\n", c.hookText)
		}
		for _, r := range c.rules {
			fmt.Fprintf(sb, "\t\t%s\n", r)
		}
		sb.WriteString("\t}\n")
	}
}
