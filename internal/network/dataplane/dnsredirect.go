package dataplane

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"runtime"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// The embedded name server's redirect. The server (internal/network/dns)
// listens on 127.0.0.11 at ports the kernel picks, inside the container's
// network namespace; a table of berth's own in that namespace sends the
// container's queries to 127.0.0.11:53 there, so that port 53 of the
// wildcard address stays free for the container's own processes (as
// Docker does with iptables rules in the container's namespace):
//
//	table ip <table>-dns {
//		chain output {
//			type nat hook output priority -100; policy accept;
//			ip daddr 127.0.0.11 udp dport 53 dnat to 127.0.0.11:<udp port>
//			ip daddr 127.0.0.11 tcp dport 53 dnat to 127.0.0.11:<tcp port>
//		}
//	}
//
// Only the output hook: the queries come from the namespace's own
// processes, and nothing from outside can address 127.0.0.11. Conntrack
// undoes the translation on the replies, which so come from port 53.

// dnsServerIP is the embedded server's address (dns.ServerIP; not
// imported, the dns package must not depend on this one).
var dnsServerIP = [4]byte{127, 0, 0, 11}

const dnsChain = "output"

// DNSTable is the name of the table (family ip) RedirectDNS writes inside
// a container's network namespace: "<table>-dns", "berth-dns" by default.
func (d *Dataplane) DNSTable() string { return d.opts.table + "-dns" }

// dnsRedirectChain is the redirect's one chain.
func dnsRedirectChain(udpPort, tcpPort uint16) chainSpec {
	r := func(proto byte, word string, port uint16) *rule {
		return newRule().
			add("ip daddr "+netip.AddrFrom4(dnsServerIP).String(),
				&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
				&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: dnsServerIP[:]}).
			add(word+" dport 53",
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{proto}},
				&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
				&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.BigEndian.PutUint16(53)}).
			add(fmt.Sprintf("dnat to %s:%d", netip.AddrFrom4(dnsServerIP), port),
				&expr.Immediate{Register: reg1, Data: dnsServerIP[:]},
				&expr.Immediate{Register: unix.NFT_REG_2, Data: binaryutil.BigEndian.PutUint16(port)},
				&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg1, RegProtoMin: unix.NFT_REG_2})
	}
	return chainSpec{
		name: dnsChain, typ: nftables.ChainTypeNAT, hook: nftables.ChainHookOutput, prio: nftables.ChainPriorityNATDest,
		hookText: "type nat hook output priority -100; policy accept;", // as nft prints it
		rules: []*rule{
			r(unix.IPPROTO_UDP, "udp", udpPort),
			r(unix.IPPROTO_TCP, "tcp", tcpPort),
		},
	}
}

// RenderDNSRedirect is the table RedirectDNS writes, as nft-like text
// (what the golden file holds).
func RenderDNSRedirect(table string, udpPort, tcpPort uint16) string {
	c := dnsRedirectChain(udpPort, tcpPort)
	var sb strings.Builder
	fmt.Fprintf(&sb, "table ip %s {\n\tchain %s {\n\t\t%s\n", table, c.name, c.hookText)
	for _, r := range c.rules {
		fmt.Fprintf(&sb, "\t\t%s\n", r)
	}
	sb.WriteString("\t}\n}\n")
	return sb.String()
}

// RedirectDNS has the container's queries to 127.0.0.11:53 (UDP and TCP)
// go to the embedded server's ports inside the network namespace at
// netnsPath. The table goes with the namespace; RemoveDNSRedirect
// removes it from one that lives on.
//
// In a new namespace (every start of a container) it is one nftables
// transaction. Where a redirect exists (a server restarted in the same
// namespace) it is left alone if it has the same ports; otherwise it is
// replaced in one transaction and the connections conntrack still sends
// to other ports are forgotten, so that a client keeping its socket
// reaches the new server at once. That path costs ~15 ms (deleting
// rules waits for RCU grace periods, and the conntrack dump walks the
// host's whole table): a restarted server should ask for its former
// ports first (dns.Config.Ports).
//
// It takes no dataplane lock: it touches nothing outside the namespace.
func (d *Dataplane) RedirectDNS(ctx context.Context, netnsPath string, udpPort, tcpPort uint16) error {
	if udpPort == 0 || tcpPort == 0 {
		return errdefs.InvalidArgument("DNS redirect in %s: ports %d/udp and %d/tcp must not be 0", netnsPath, udpPort, tcpPort)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	want := dnsFlows{unix.IPPROTO_UDP: udpPort, unix.IPPROTO_TCP: tcpPort}
	t := &nftables.Table{Name: d.DNSTable(), Family: nftables.TableFamilyIPv4}
	chain := dnsRedirectChain(udpPort, tcpPort)
	err := inNetNS(netnsPath, func() error {
		c, err := nftables.New(nftables.AsLasting())
		if err != nil {
			return err
		}
		defer c.CloseLasting()
		// Look first: a transaction that fails (an exclusive create of
		// a table that exists) waits for an RCU grace period as it
		// aborts, ~13 ms.
		_, err = c.ListTableOfFamily(t.Name, t.Family)
		switch {
		case isNotExist(err):
			c.AddTable(t)
			(&batch{c: c, table: t}).addChains([]chainSpec{chain})
			return c.Flush()
		case err != nil:
			return err
		}
		rules, err := c.GetRules(t, &nftables.Chain{Name: dnsChain, Table: t})
		if err == nil && maps.Equal(dnsRulePorts(rules), want) {
			return nil
		}
		// Add, delete, add: whatever shape the table had, it is new,
		// and the kernel applies all of it or nothing.
		c.AddTable(t)
		c.DelTable(t)
		c.AddTable(t)
		(&batch{c: c, table: t}).addChains([]chainSpec{chain})
		if err := c.Flush(); err != nil {
			return err
		}
		return forgetDNSFlows(want)
	})
	if err != nil {
		return fmt.Errorf("DNS redirect in %s: nftables table ip %s: %w", netnsPath, t.Name, err)
	}
	return nil
}

// dnsRulePorts are the protocols and ports the rules of
// dnsRedirectChain translate to.
func dnsRulePorts(rules []*nftables.Rule) dnsFlows {
	out := dnsFlows{}
	for _, r := range rules {
		var proto, port int = -1, -1
		for i, e := range r.Exprs {
			switch e := e.(type) {
			case *expr.Meta:
				if c, ok := next[*expr.Cmp](r.Exprs, i); ok && e.Key == expr.MetaKeyL4PROTO && len(c.Data) == 1 {
					proto = int(c.Data[0])
				}
			case *expr.Immediate:
				if e.Register == unix.NFT_REG_2 && len(e.Data) == 2 {
					port = int(binaryutil.BigEndian.Uint16(e.Data))
				}
			}
		}
		if proto < 0 || port < 0 {
			return nil
		}
		out[uint8(proto)] = uint16(port)
	}
	return out
}

func next[T expr.Any](exprs []expr.Any, i int) (T, bool) {
	var zero T
	if i+1 >= len(exprs) {
		return zero, false
	}
	v, ok := exprs[i+1].(T)
	return v, ok
}

// RemoveDNSRedirect removes RedirectDNS's table from the network
// namespace at netnsPath (a disconnect from the last user network while
// the container runs). Idempotent; a namespace that is gone has nothing
// to remove. Conntrack is left alone: the kernel stops translating the
// connections the table translated once it is gone (even beside other
// NAT rules in the namespace; TestRedirectedServer checks it), and
// clearing it would cost ~7 ms.
func (d *Dataplane) RemoveDNSRedirect(ctx context.Context, netnsPath string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := inNetNS(netnsPath, func() error {
		c, err := nftables.New()
		if err != nil {
			return err
		}
		t := &nftables.Table{Name: d.DNSTable(), Family: nftables.TableFamilyIPv4}
		c.AddTable(t)
		c.DelTable(t)
		if err := c.Flush(); err != nil {
			return fmt.Errorf("nftables table ip %s: %w", t.Name, err)
		}
		return nil
	})
	if errors.Is(err, errNoNetNS) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("removing the DNS redirect in %s: %w", netnsPath, err)
	}
	return nil
}

// dnsFlows matches the conntrack entries of connections to
// 127.0.0.11:53, of the protocols it has a port for, that do not reach
// that port: those NAT sent to a former server (a UDP client keeping its
// source port would be sent there until the entry times out, 30 s to
// minutes) or that went untranslated.
type dnsFlows map[uint8]uint16

func (f dnsFlows) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	if !flow.Forward.DstIP.Equal(net.IP(dnsServerIP[:])) || flow.Forward.DstPort != 53 {
		return false
	}
	port, ok := f[flow.Forward.Protocol]
	return ok && flow.Reverse.SrcPort != port
}

// forgetDNSFlows deletes the connections dnsFlows(ports) matches, in the
// calling thread's network namespace. The kernel walks its whole
// conntrack table (all namespaces share it) for the dump: ~7 ms here.
func forgetDNSFlows(ports dnsFlows) error {
	h, err := netlink.NewHandle(unix.NETLINK_NETFILTER)
	if err != nil {
		return err
	}
	defer h.Close()
	if _, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, ports); err != nil {
		return fmt.Errorf("conntrack: %w", err)
	}
	return nil
}

var errNoNetNS = errors.New("no network namespace")

// inNetNS runs fn on a thread inside the network namespace at path:
// sockets fn opens belong to that namespace for good, whichever thread
// uses them later. The thread goes back before it is released; should it
// fail to, it stays locked and Go ends it with the goroutine.
func inNetNS(path string, fn func() error) error {
	ns, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("%w: %s: %w", errNoNetNS, path, err)
		}
		return err
	}
	defer unix.Close(ns)
	var fs unix.Statfs_t
	if err := unix.Fstatfs(ns, &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("%w: %s is not a network namespace", errNoNetNS, path)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		back, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(back)
		if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter the network namespace: %w", err)
			return
		}
		ferr := fn()
		if err := unix.Setns(back, unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("return to the original network namespace: %w", err))
			return // locked: the thread ends with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
