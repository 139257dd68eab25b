package dataplane

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/lockfile"
	"golang.org/x/sys/unix"
)

// The socket redirect: connections from the host to a port published on
// its loopback are aimed at the container when they are made, instead of
// being translated packet by packet. A socket routed to 127.0.0.1 is sized
// by lo's 64 KiB GSO limit and each of its packets is DNATed and routed
// again; one connected straight to the container's address takes the
// bridge's route (256 KiB GSO, no NAT). Cgroup sock_addr programs do it,
// as Cilium's socket load balancer does:
//
//   - connect4/6 (TCP) and, for unconnected UDP, sendmsg4/6 (per
//     datagram) rewrite a destination 127.0.0.0/8:P (or [::1]:P) to the
//     container's
//     address and port from a hash map keyed by (protocol, family, host
//     address, port), where host address 0 stands for a port published
//     on every address;
//   - they note container address and port -> the original address in
//     the socket's own storage (a BPF_MAP_TYPE_SK_STORAGE map: it goes
//     with the socket, and no other socket can push it out, as any
//     host user could from a shared LRU map), and getpeername4/6 and
//     recvmsg4/6 put that original back, so the client still sees
//     127.0.0.1:P as its peer and as its datagrams' source. A socket
//     whose storage cannot be had, or whose slot for that destination
//     holds another (revSlot), is left to DNAT.
//
// Only sockets of the loader's network namespace (the host's) are
// touched: the programs compare bpf_get_netns_cookie with the cookie
// taken at load. Containers' own loopbacks stay theirs.
//
// The programs are attached with the legacy BPF_PROG_ATTACH and
// BPF_F_ALLOW_MULTI to the root of the cgroup2 hierarchy, which stays
// attached when the loader exits (no bpffs to pin in, nothing to mount
// and unmount under the runroot) and is found again with BPF_PROG_QUERY
// by name: "bsr<hook>_<tag>", the tag hashing the nftables table (one per
// berth root) and the namespace cookie, so that roots and test planes
// never see each other's programs. The maps hang off the programs:
// detaching the last program frees them.
//
// The map is kept in step with the DNAT map elements, from the same
// element list: added after them on publishing, removed before them on
// unpublishing, made to match them by Reconcile; when it becomes empty
// the programs are detached. Whatever the redirect does not cover goes
// through the nftables DNAT as before: SCTP, connected UDP sockets (their
// destination would outlive a change of the port's container; a DNAT
// flow is forgotten then), sockets bound to a loopback
// address (the source could not be kept: 127.0.0.1 cannot talk to a
// container), v4-mapped destinations, other local addresses, every
// packet from outside, and everything when there is no cgroup2 mount or
// the kernel refuses the programs.

const (
	redirectKeySize    = 24 // proto, family, port, pad, 16 address bytes
	redirectValSize    = 24 // family, pad, port, pad, 16 address bytes
	redirectMaxEntries = 1 << 17
)

// BPF helper numbers (include/uapi/linux/bpf.h).
const (
	fnMapLookupElem  = 1
	fnMapUpdateElem  = 2
	fnGetNetnsCookie = 122
	fnSkStorageGet   = 107
)

// Offsets in struct bpf_sock_addr and struct bpf_sock.
const (
	ctxUserIP4   = 4
	ctxUserIP6   = 8
	ctxUserPort  = 24
	ctxFamily    = 28 // the socket's, not the address's
	ctxProtocol  = 36
	ctxMsgSrcIP4 = 40
	ctxMsgSrcIP6 = 44
	ctxSk        = 64
	skSrcIP4     = 24
	skSrcIP6     = 28
)

// redirectHook is one sock_addr attach point and the program for it.
type redirectHook struct {
	kind   string // in the program's name
	attach uint32
	v6     bool
	send   bool // sendmsg: also check the message's source
	rev    bool // getpeername/recvmsg: put the original address back
}

func redirectHooks() []redirectHook {
	return []redirectHook{
		{kind: "c4", attach: unix.BPF_CGROUP_INET4_CONNECT},
		{kind: "c6", attach: unix.BPF_CGROUP_INET6_CONNECT, v6: true},
		{kind: "s4", attach: unix.BPF_CGROUP_UDP4_SENDMSG, send: true},
		{kind: "s6", attach: unix.BPF_CGROUP_UDP6_SENDMSG, v6: true, send: true},
		{kind: "r4", attach: unix.BPF_CGROUP_UDP4_RECVMSG, rev: true},
		{kind: "r6", attach: unix.BPF_CGROUP_UDP6_RECVMSG, v6: true, rev: true},
		{kind: "p4", attach: unix.BPF_CGROUP_INET4_GETPEERNAME, rev: true},
		{kind: "p6", attach: unix.BPF_CGROUP_INET6_GETPEERNAME, v6: true, rev: true},
	}
}

// redirectEntry is one key and value of the redirect map.
type redirectEntry struct {
	key [redirectKeySize]byte
	val [redirectValSize]byte
}

// redirectEntries are the redirect map entries of DNAT elements: ports
// published on a 127/8 address or on every address, TCP and UDP.
func redirectEntries(els []element) []redirectEntry {
	var out []redirectEntry
	for _, e := range els {
		var r redirectEntry
		var proto byte
		var port, addr []byte
		switch e.set {
		case mapDNAT4IP:
			if len(e.key) < 10 || e.key[0] != 127 {
				continue
			}
			addr, proto, port = e.key[0:4], e.key[4], e.key[8:10]
			r.key[1] = 4
		case mapDNAT4:
			proto, port = e.key[0], e.key[4:6]
			r.key[1] = 4
		case mapDNAT6:
			proto, port = e.key[0], e.key[4:6]
			r.key[1] = 6
		default:
			continue // dnat6-ip: ::1 cannot be published, other addresses are not loopback
		}
		if proto != unix.IPPROTO_TCP && proto != unix.IPPROTO_UDP {
			continue
		}
		r.key[0] = proto
		copy(r.key[2:4], port)
		copy(r.key[8:], addr)
		alen := 4
		if r.key[1] == 6 {
			alen = 16
		}
		if len(e.val) < alen+2 {
			continue
		}
		r.val[0] = r.key[1]
		copy(r.val[2:4], e.val[alen:alen+2])
		copy(r.val[8:], e.val[:alen])
		out = append(out, r)
	}
	return out
}

// redirectTag names one plane's programs and its redirect map: its
// table. redirectNSTag names its reverse map: the network namespace the
// programs serve (whose cookie they hold), so that a caller in another
// namespace (a test's stand-in for the host, berth run under nsenter)
// knows they are not its own, and the stale sweep knows which programs
// are its namespace's.
func redirectTag(table string) string { return hash8(table) }

func redirectNSTag(netnsCookie uint64) string {
	return hash8("netns/" + strconv.FormatUint(netnsCookie, 10))[:4]
}

func hash8(s string) string {
	h := fnv.New32a()
	h.Write([]byte(s))
	return fmt.Sprintf("%08x", h.Sum32())
}

func redirectProgName(kind, tag string) string { return "bsr" + kind + "_" + tag }
func redirectMapName(tag string) string        { return "bsrm_" + tag }

// redirectRevName names a plane's reverse map: "bsrr", six characters
// of its table's tag, "_", its namespace's tag (15 characters, the
// kernel's limit).
func redirectRevName(tag, nsTag string) string { return "bsrr" + tag[:6] + "_" + nsTag }

// netnsCookie is the cookie of the calling thread's network namespace.
func netnsCookie() (uint64, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
}

// cgroup2Root is the mount point of the cgroup2 hierarchy's root, or ""
// when none is mounted.
func cgroup2Root() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		// id parent maj:min root mountpoint opts [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(s.Text(), " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		f := strings.Fields(pre)
		if len(f) >= 5 && f[3] == "/" {
			return unescapeMountinfo(f[4]), nil
		}
	}
	return "", s.Err()
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// redirectPlane is one plane's redirect objects in the kernel, as found
// or made: fds to close.
type redirectPlane struct {
	cg     int
	tag    string
	nsTag  string
	cookie uint64
	// foreign: the programs serve another network namespace; this
	// caller leaves them alone (its ports go through DNAT).
	foreign bool
	mapFD   int
	revFD   int
	progs   map[string]int // hook kind -> program fd
	extra   map[int]uint32 // duplicate programs (fd -> attach type), to detach
}

func (p *redirectPlane) close() {
	for _, fd := range p.progs {
		unix.Close(fd)
	}
	for fd := range p.extra {
		unix.Close(fd)
	}
	for _, fd := range []int{p.mapFD, p.revFD, p.cg} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// errNoRedirect says the redirect cannot be used here (no cgroup2
// mount, no bpf(2), or turned off): the DNAT path serves alone. Its
// type is a comparable empty struct, not an errors.New value, so that
// the package's init still does nothing.
type noRedirectError struct{}

func (noRedirectError) Error() string { return "socket redirect unavailable" }

var errNoRedirect error = noRedirectError{}

func (d *Dataplane) redirectLockPath() string {
	return filepath.Join(d.opts.lockDir, d.opts.table+".redirect.lock")
}

// openRedirect takes the plane's redirect lock and finds its objects.
func (d *Dataplane) openRedirect(ctx context.Context) (*redirectPlane, func(), error) {
	if d.opts.noRedirect {
		return nil, nil, errNoRedirect
	}
	if err := os.MkdirAll(d.opts.lockDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("socket redirect lock: %w", err)
	}
	// OpenLocked: dropTableAndLock deletes this file with the table.
	lf, err := lockfile.OpenLocked(ctx, d.redirectLockPath(), unix.LOCK_EX, true)
	if err != nil {
		return nil, nil, fmt.Errorf("socket redirect lock %s: %w", d.redirectLockPath(), err)
	}
	p, err := d.findRedirect()
	if err != nil {
		lf.Close()
		return nil, nil, err
	}
	return p, func() { p.close(); lf.Close() }, nil
}

// openRedirectIfUsable is openRedirect with no plane and no error where
// the redirect cannot be used (errNoRedirect): callers then have nothing
// to do, the DNAT path serving alone.
func (d *Dataplane) openRedirectIfUsable(ctx context.Context) (*redirectPlane, func(), error) {
	p, unlock, err := d.openRedirect(ctx)
	if errors.Is(err, errNoRedirect) {
		return nil, nil, nil
	}
	return p, unlock, err
}

// findRedirect finds the plane's objects, without its lock: what it sees
// may change unless the caller holds it.
func (d *Dataplane) findRedirect() (*redirectPlane, error) {
	if d.opts.noRedirect {
		return nil, errNoRedirect
	}
	root := d.opts.cgroup2
	if root == "" {
		var err error
		if root, err = cgroup2Root(); err != nil {
			return nil, fmt.Errorf("socket redirect: finding the cgroup2 mount: %w", err)
		}
		if root == "" {
			return nil, errNoRedirect
		}
	}
	cookie, err := netnsCookie()
	if err != nil {
		return nil, fmt.Errorf("socket redirect: network namespace cookie: %w", err)
	}
	cg, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EACCES) {
			return nil, errNoRedirect
		}
		return nil, fmt.Errorf("socket redirect: %s: %w", root, err)
	}
	p := &redirectPlane{cg: cg, tag: redirectTag(d.opts.table), nsTag: redirectNSTag(cookie), cookie: cookie, mapFD: -1, revFD: -1, progs: map[string]int{}, extra: map[int]uint32{}}
	if err := p.find(); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// SocketRedirectPrograms counts the plane's programs attached to the
// cgroup2 root (for leak checks: none once the root publishes nothing).
// It takes no lock and changes nothing.
func (d *Dataplane) SocketRedirectPrograms() (int, error) {
	p, err := d.findRedirect()
	if errors.Is(err, errNoRedirect) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer p.close()
	return len(p.progs) + len(p.extra), nil
}

// bpfDenied says bpf(2) is not available to this process.
func bpfDenied(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP)
}

// find looks for the plane's programs on the cgroup and for its maps
// among theirs.
func (p *redirectPlane) find() error {
	for _, h := range redirectHooks() {
		ids, err := bpfProgQuery(p.cg, h.attach)
		if err != nil {
			if errors.Is(err, unix.EINVAL) {
				continue // a kernel without this hook
			}
			if bpfDenied(err) {
				// No bpf(2) for this process (a user namespace, a
				// seccomp filter): it can have attached nothing, and
				// its removals must not fail. (Every berth process of
				// a root runs with the same privileges, so none other
				// attached anything for this root either.)
				return errNoRedirect
			}
			return fmt.Errorf("socket redirect: querying the cgroup's programs: %w", err)
		}
		want := redirectProgName(h.kind, p.tag)
		for _, id := range ids {
			fd, err := bpfGetFDByID(unix.BPF_PROG_GET_FD_BY_ID, id)
			if errors.Is(err, unix.ENOENT) {
				continue // detached meanwhile
			}
			if err != nil {
				// Listed but not to be opened (CAP_NET_ADMIN without
				// CAP_SYS_ADMIN): one of them may be ours, with
				// entries a removal must not leave behind.
				return fmt.Errorf("socket redirect: opening program %d attached to the cgroup2 root: %w", id, err)
			}
			name, mapIDs, err := bpfProgInfoOf(fd)
			if err != nil || name != want {
				unix.Close(fd)
				continue
			}
			if _, dup := p.progs[h.kind]; dup {
				p.extra[fd] = h.attach
				continue
			}
			p.progs[h.kind] = fd
			p.findMaps(mapIDs)
		}
	}
	return nil
}

func (p *redirectPlane) findMaps(ids []uint32) {
	if p.mapFD >= 0 && p.revFD >= 0 {
		return
	}
	for _, id := range ids {
		fd, err := bpfGetFDByID(unix.BPF_MAP_GET_FD_BY_ID, id)
		if err != nil {
			continue
		}
		name, err := bpfMapNameOf(fd)
		switch {
		case err == nil && name == redirectMapName(p.tag) && p.mapFD < 0:
			p.mapFD = fd
		case err == nil && strings.HasPrefix(name, "bsrr") && p.revFD < 0:
			p.revFD = fd
			p.foreign = name != redirectRevName(p.tag, p.nsTag)
		default:
			unix.Close(fd)
		}
	}
}

// installed says every hook has the plane's program.
func (p *redirectPlane) installed() bool {
	return len(p.progs) == len(redirectHooks()) && p.mapFD >= 0 && p.revFD >= 0
}

// ensure makes and attaches what is missing. On failure it removes
// everything of the plane, so that nothing half-made stays attached.
func (p *redirectPlane) ensure() (err error) {
	if p.foreign {
		return fmt.Errorf("socket redirect: the programs of this table serve another network namespace")
	}
	if p.installed() {
		return nil
	}
	defer func() {
		if err != nil {
			p.uninstall()
		}
	}()
	if p.mapFD < 0 || p.revFD < 0 {
		// Programs without their maps (cannot happen but by hand):
		// start again.
		if len(p.progs) > 0 {
			if err := p.uninstall(); err != nil {
				return err
			}
		}
		if p.mapFD < 0 {
			// Read only for the programs: only berth writes it.
			if p.mapFD, err = bpfMapCreate(unix.BPF_MAP_TYPE_HASH, redirectKeySize, redirectValSize, redirectMaxEntries,
				unix.BPF_F_NO_PREALLOC|unix.BPF_F_RDONLY_PROG, redirectMapName(p.tag)); err != nil {
				return err
			}
		}
		if p.revFD < 0 {
			if p.revFD, err = bpfSocketStorageCreate(revSize, redirectRevName(p.tag, p.nsTag)); err != nil {
				return err
			}
		}
	}
	for _, h := range redirectHooks() {
		if _, ok := p.progs[h.kind]; ok {
			continue
		}
		code, err := redirectProgram(h, p.cookie, p.mapFD, p.revFD)
		if err != nil {
			return err
		}
		name := redirectProgName(h.kind, p.tag)
		fd, err := bpfProgLoad(unix.BPF_PROG_TYPE_CGROUP_SOCK_ADDR, h.attach, name, code)
		if err != nil {
			return err
		}
		if err := bpfProgAttach(p.cg, fd, h.attach, unix.BPF_F_ALLOW_MULTI); err != nil {
			unix.Close(fd)
			return fmt.Errorf("socket redirect: attaching %s to the cgroup2 root: %w", name, err)
		}
		p.progs[h.kind] = fd
	}
	return nil
}

// uninstall detaches the plane's programs; the kernel frees them and,
// with the last one, the maps.
func (p *redirectPlane) uninstall() error {
	var errs []error
	kinds := map[string]uint32{}
	for _, h := range redirectHooks() {
		kinds[h.kind] = h.attach
	}
	for kind, fd := range p.progs {
		if err := bpfProgDetach(p.cg, fd, kinds[kind]); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("socket redirect: detaching %s: %w", redirectProgName(kind, p.tag), err))
			continue
		}
		unix.Close(fd)
		delete(p.progs, kind)
	}
	for fd, attach := range p.extra {
		bpfProgDetach(p.cg, fd, attach)
		unix.Close(fd)
		delete(p.extra, fd)
	}
	return errors.Join(errs...)
}

// redirectAdd puts the entries of DNAT elements into the redirect map,
// making and attaching the programs with the first. It is best effort
// for the caller (the DNAT elements already serve every connection): on
// failure it leaves the map as it was, and the programs only when they
// were there before.
func (d *Dataplane) redirectAdd(ctx context.Context, els []element) error {
	ents := redirectEntries(els)
	if len(ents) == 0 {
		return nil
	}
	p, unlock, err := d.openRedirectIfUsable(ctx)
	if p == nil {
		return err
	}
	defer unlock()
	if err := p.ensure(); err != nil {
		return err
	}
	for i, e := range ents {
		if err := bpfMapUpdate(p.mapFD, e.key[:], e.val[:]); err != nil {
			for _, u := range ents[:i] {
				bpfMapDelete(p.mapFD, u.key[:])
			}
			if keys, kerr := bpfMapKeys(p.mapFD, redirectKeySize); kerr == nil && len(keys) == 0 {
				p.uninstall()
			}
			return fmt.Errorf("socket redirect: adding an entry: %w", err)
		}
	}
	return nil
}

// redirectRemove deletes the entries of DNAT elements that still hold
// their values (a key taken over by another container is left alone, as
// removeElements does), and detaches the programs when the map is empty.
func (d *Dataplane) redirectRemove(ctx context.Context, els []element) error {
	ents := redirectEntries(els)
	if len(ents) == 0 {
		return nil
	}
	p, unlock, err := d.openRedirectIfUsable(ctx)
	if p == nil {
		return err
	}
	defer unlock()
	if p.foreign {
		return nil // never added there
	}
	if p.mapFD < 0 {
		return p.uninstall() // nothing published through it; strays go
	}
	val := make([]byte, redirectValSize)
	for _, e := range ents {
		if err := bpfMapLookup(p.mapFD, e.key[:], val); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return fmt.Errorf("socket redirect: %w", err)
		}
		if string(val) != string(e.val[:]) {
			continue
		}
		if err := bpfMapDelete(p.mapFD, e.key[:]); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("socket redirect: deleting an entry: %w", err)
		}
	}
	return p.uninstallIfEmpty()
}

func (p *redirectPlane) uninstallIfEmpty() error {
	keys, err := bpfMapKeys(p.mapFD, redirectKeySize)
	if err != nil {
		return fmt.Errorf("socket redirect: listing entries: %w", err)
	}
	if len(keys) > 0 {
		return nil
	}
	return p.uninstall()
}

// redirectSync makes the redirect map hold exactly the entries of want
// (Reconcile's DNAT elements): programs are made when missing, removed
// when nothing is left.
func (d *Dataplane) redirectSync(ctx context.Context, want []element) error {
	ents := redirectEntries(want)
	if len(ents) == 0 {
		// Nothing wanted: a look without the lock first, whose file
		// would otherwise be made, and left, for a root that publishes
		// nothing (and has maybe no table to delete it with). Programs
		// attached right after this look are another process's, for
		// entries this Reconcile did not see: theirs to keep.
		p, err := d.findRedirect()
		if errors.Is(err, errNoRedirect) {
			return nil
		}
		if err != nil {
			return err
		}
		ours := !p.foreign && len(p.progs)+len(p.extra) > 0
		p.close()
		if !ours {
			return nil
		}
	}
	p, unlock, err := d.openRedirectIfUsable(ctx)
	if p == nil {
		return err
	}
	defer unlock()
	if p.foreign {
		return nil
	}
	if len(ents) == 0 {
		return p.uninstall()
	}
	if err := p.ensure(); err != nil {
		if len(p.progs) == 0 && len(p.extra) == 0 {
			// Refused by the kernel (an older one, another program
			// attached exclusively) and nothing of ours left: best
			// effort, as in AddEndpoint; the DNAT elements serve.
			return nil
		}
		return err
	}
	wanted := map[string]string{}
	for _, e := range ents {
		wanted[string(e.key[:])] = string(e.val[:])
	}
	keys, err := bpfMapKeys(p.mapFD, redirectKeySize)
	if err != nil {
		return fmt.Errorf("socket redirect: listing entries: %w", err)
	}
	for _, k := range keys {
		if _, ok := wanted[string(k)]; !ok {
			if err := bpfMapDelete(p.mapFD, k); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("socket redirect: deleting a stale entry: %w", err)
			}
		}
	}
	for _, e := range ents {
		if err := bpfMapUpdate(p.mapFD, e.key[:], e.val[:]); err != nil {
			return fmt.Errorf("socket redirect: adding an entry: %w", err)
		}
	}
	return nil
}

// RemoveSocketRedirect detaches the plane's redirect programs (and so
// frees its maps) whatever they still hold: for a root that is being
// deleted without its containers being removed first, as its nftables
// table is. Like the table, they would otherwise outlive it.
func (d *Dataplane) RemoveSocketRedirect(ctx context.Context) error {
	p, unlock, err := d.openRedirectIfUsable(ctx)
	if p == nil {
		return err
	}
	defer unlock()
	return p.uninstall()
}
