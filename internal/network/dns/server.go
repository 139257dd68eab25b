package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// ServerIP is the address the server answers on (port 53, UDP and TCP)
// inside the container's network namespace, as Docker's embedded server
// does: the nameserver of the container's resolv.conf.
const ServerIP = "127.0.0.11"

const (
	// upstreamTimeout bounds one exchange with one upstream resolver
	// (Docker's is 4 s too).
	upstreamTimeout = 4 * time.Second
	// maxForwards bounds the queries being forwarded at once (Docker's
	// limit is 100 as well); a query over it is dropped and the client
	// asks again.
	maxForwards = 100
	// maxTCPConns bounds the client TCP connections served at once.
	maxTCPConns = 64
	// tcpIdle is how long a client TCP connection may stay idle.
	tcpIdle = 10 * time.Second
)

// Server is one container's name server. It answers from the registry's
// tables of the container's networks and forwards the rest upstream from
// the calling process's own network namespace.
type Server struct {
	reg      *Registry
	upstream []netip.AddrPort
	timeout  time.Duration

	networks atomic.Pointer[[]string]
	links    map[string]string // canonical alias -> canonical name; read-only
	rotate4  atomic.Uint32     // round-robin counts, see resolver
	rotate6  atomic.Uint32
	forwards chan struct{} // semaphore of forwards in flight
	tcpConns chan struct{} // semaphore of client TCP connections

	udp *net.UDPConn
	tcp *net.TCPListener
	wg  sync.WaitGroup

	mu     sync.Mutex
	closed bool
	conns  map[io.Closer]struct{} // client and upstream connections to close on Close
}

// Start opens UDP and TCP sockets on 127.0.0.11 inside the network
// namespace at cfg.NetNSPath and serves them from the calling process
// until Close. ctx bounds the start only.
//
// Without cfg.Redirect the sockets are on port 53. With it they are on
// cfg.Ports if free, else on ports the kernel picks (Server.Ports), and
// cfg.Redirect installs the redirect of 127.0.0.11:53 to them before
// Start returns (replacing the one of an earlier server in the
// namespace). Close leaves the redirect: it goes with the namespace, the
// next Start replaces it, and the dataplane's RemoveDNSRedirect removes
// it from a namespace that lives on.
func Start(ctx context.Context, cfg Config, reg *Registry) (*Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ports := Ports{UDP: 53, TCP: 53}
	if cfg.Redirect != nil {
		ports = cfg.Ports
	}
	udp, tcp, err := listenInNetNS(cfg.NetNSPath, ports, cfg.Redirect != nil)
	if err != nil {
		return nil, err
	}
	s := serve(cfg, reg, udp, tcp, upstreamTimeout)
	if cfg.Redirect != nil {
		p := s.Ports()
		if err := cfg.Redirect.RedirectDNS(ctx, cfg.NetNSPath, p.UDP, p.TCP); err != nil {
			s.Close()
			return nil, fmt.Errorf("DNS server in %s: %w", cfg.NetNSPath, err)
		}
	}
	return s, nil
}

// Ports are the ports the server listens on at 127.0.0.11: 53 and 53
// unless Config.Redirect was set.
func (s *Server) Ports() Ports {
	return Ports{UDP: s.udp.LocalAddr().(*net.UDPAddr).AddrPort().Port(), TCP: s.tcp.Addr().(*net.TCPAddr).AddrPort().Port()}
}

// serve starts serving on sockets already open.
func serve(cfg Config, reg *Registry, udp *net.UDPConn, tcp *net.TCPListener, timeout time.Duration) *Server {
	s := &Server{
		reg:      reg,
		upstream: slices.Clone(cfg.Upstream),
		timeout:  timeout,
		forwards: make(chan struct{}, maxForwards),
		tcpConns: make(chan struct{}, maxTCPConns),
		udp:      udp,
		tcp:      tcp,
		conns:    map[io.Closer]struct{}{},
		links:    map[string]string{},
	}
	for alias, name := range cfg.Links {
		s.links[canonicalName(alias)] = canonicalName(name)
	}
	s.SetNetworks(cfg.Networks)
	s.wg.Add(2)
	go s.serveUDP()
	go s.serveTCP()
	return s
}

// SetNetworks changes the networks whose names the container sees
// (network connect and disconnect while it runs).
func (s *Server) SetNetworks(networks []string) {
	n := slices.Clone(networks)
	s.networks.Store(&n)
}

// Close stops serving, closes the sockets and waits until nothing of the
// server runs.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := errors.Join(s.udp.Close(), s.tcp.Close())
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// track registers c to be closed by Close; false when the server is
// closed already (c is then closed).
func (s *Server) track(c io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c io.Closer) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// goTracked runs f on a goroutine Close waits for, unless the server is
// closed.
func (s *Server) goTracked(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

func (s *Server) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, maxMsgSize)
	for {
		n, client, err := s.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // a transient error (an ICMP error reported late)
		}
		d := s.decide(buf[:n], false)
		switch {
		case d.forward && len(s.upstream) == 0:
			s.udp.WriteToUDPAddrPort(s.forward(nil, d.q, false), client)
		case d.forward:
			raw := slices.Clone(buf[:n])
			select {
			case s.forwards <- struct{}{}:
			default:
				continue // too many in flight: drop, the client asks again
			}
			if !s.goTracked(func() {
				defer func() { <-s.forwards }()
				if resp := s.forward(raw, d.q, false); resp != nil {
					s.udp.WriteToUDPAddrPort(resp, client)
				}
			}) {
				<-s.forwards
			}
		case d.resp != nil:
			s.udp.WriteToUDPAddrPort(d.resp, client)
		}
	}
}

func (s *Server) serveTCP() {
	defer s.wg.Done()
	for {
		c, err := s.tcp.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// EMFILE and the like: wait a little rather than spin.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		select {
		case s.tcpConns <- struct{}{}:
		default:
			c.Close() // too many connections
			continue
		}
		if !s.track(c) || !s.goTracked(func() {
			defer func() { <-s.tcpConns }()
			defer s.untrack(c)
			s.serveConn(c)
		}) {
			c.Close()
			<-s.tcpConns
		}
	}
}

// serveConn answers the length-prefixed queries of one TCP connection in
// turn until it is closed or idle.
func (s *Server) serveConn(c *net.TCPConn) {
	buf := make([]byte, maxMsgSize)
	for {
		c.SetDeadline(time.Now().Add(tcpIdle))
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, buf[:n]); err != nil {
			return
		}
		d := s.decide(buf[:n], true)
		resp := d.resp
		if d.forward {
			select {
			case s.forwards <- struct{}{}:
				resp = s.forward(buf[:n], d.q, true)
				<-s.forwards
			default:
				return
			}
		}
		if resp == nil {
			continue
		}
		c.SetDeadline(time.Now().Add(s.timeout))
		if _, err := c.Write(lengthPrefixed(resp)); err != nil {
			return
		}
	}
}

func lengthPrefixed(msg []byte) []byte {
	out := make([]byte, 2+len(msg))
	binary.BigEndian.PutUint16(out, uint16(len(msg)))
	copy(out[2:], msg)
	return out
}

// decide answers raw from the tables; a panic in parsing (there should
// be none) costs the query a SERVFAIL, never the server.
func (s *Server) decide(raw []byte, tcp bool) (d decision) {
	defer func() {
		if recover() != nil {
			d = decision{resp: rawError(raw, 2 /* SERVFAIL */)}
		}
	}()
	return decide(raw, tcp, s)
}

// rotation implements resolver.
func (s *Server) rotation(v6 bool) uint32 {
	if v6 {
		return s.rotate6.Add(1)
	}
	return s.rotate4.Add(1)
}

// addrs implements resolver over the registry: the first of the
// container's networks that has addresses of the family for name answers,
// as Docker's answers from the first network that knows the name.
func (s *Server) addrs(name string, v6 bool) ([]netip.Addr, bool, error) {
	if target, ok := s.links[name]; ok {
		name = target // a --link alias of this container, as Docker's
	}
	known := false
	for _, id := range *s.networks.Load() {
		t, err := s.reg.current(id)
		if err != nil {
			return nil, false, err
		}
		idx := t.byName[name]
		if len(idx) == 0 {
			continue
		}
		known = true
		var out []netip.Addr
		for _, i := range idx {
			a := t.entries[i].IPv4
			if v6 {
				a = t.entries[i].IPv6
			}
			if a.IsValid() {
				out = append(out, a)
			}
		}
		if len(out) > 0 {
			return out, true, nil
		}
	}
	return nil, known, nil
}

// ptr implements resolver: the container name (the first of an entry's
// names) of the address, on the container's networks only.
func (s *Server) ptr(a netip.Addr) (string, bool, error) {
	for _, id := range *s.networks.Load() {
		t, err := s.reg.current(id)
		if err != nil {
			return "", false, err
		}
		if i, ok := t.byAddr[a]; ok {
			return t.entries[i].Names[0], true, nil
		}
	}
	return "", false, nil
}

// listenInNetNS opens the server's sockets on ServerIP and ports inside
// the network namespace at nsPath; with fallback, on ports the kernel
// picks where those are taken. A goroutine locked to its thread enters
// the namespace, opens them and goes back; should it fail to go back, it
// stays locked and Go ends the thread with the goroutine instead of
// reusing it elsewhere.
func listenInNetNS(nsPath string, ports Ports, fallback bool) (*net.UDPConn, *net.TCPListener, error) {
	ns, err := os.Open(nsPath)
	if err != nil {
		return nil, nil, fmt.Errorf("open the network namespace for the DNS server: %w", err)
	}
	defer ns.Close()
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(ns.Fd()), &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
		return nil, nil, fmt.Errorf("%s is not a network namespace", nsPath)
	}
	type result struct {
		udp *net.UDPConn
		tcp *net.TCPListener
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		back, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("open this thread's network namespace: %w", err)}
			return
		}
		defer unix.Close(back)
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("enter the network namespace %s: %w", nsPath, err)}
			return
		}
		udp, tcp, err := listen(ports, fallback)
		if serr := unix.Setns(back, unix.CLONE_NEWNET); serr != nil {
			if err == nil {
				udp.Close()
				tcp.Close()
			}
			done <- result{err: fmt.Errorf("return to the host's network namespace: %w", serr)}
			return // the thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
		done <- result{udp, tcp, err}
	}()
	r := <-done
	if r.err != nil {
		return nil, nil, fmt.Errorf("DNS server in %s: %w", nsPath, r.err)
	}
	return r.udp, r.tcp, nil
}

// listen opens the UDP socket and the TCP listener on ServerIP, in the
// calling thread's network namespace.
func listen(ports Ports, fallback bool) (*net.UDPConn, *net.TCPListener, error) {
	ip := netip.MustParseAddr(ServerIP)
	udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, ports.UDP)))
	if errors.Is(err, unix.EADDRINUSE) && fallback && ports.UDP != 0 {
		udp, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	}
	if err != nil {
		return nil, nil, err
	}
	tcp, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, ports.TCP)))
	if errors.Is(err, unix.EADDRINUSE) && fallback && ports.TCP != 0 {
		tcp, err = net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	}
	if err != nil {
		udp.Close()
		return nil, nil, err
	}
	return udp, tcp, nil
}
