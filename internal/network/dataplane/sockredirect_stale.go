package dataplane

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// sweepStaleRedirects detaches the socket redirect programs of this
// network namespace whose table is gone: a root deleted without its
// containers being removed, a table deleted by hand, a test's simulated
// reboot. Their entries name container addresses whose bridge is gone
// with the table; left attached, they would send the host's connections
// to 127.0.0.1 wherever the routes lead, off the host included.
//
// A plane attaches its programs only while its table exists, so the
// programs are listed first and the tables after: a program whose table
// is missing then was stale already.
func (d *Dataplane) sweepStaleRedirects() error {
	if d.opts.noRedirect {
		return nil
	}
	root := d.opts.cgroup2
	if root == "" {
		var err error
		if root, err = cgroup2Root(); err != nil || root == "" {
			return err
		}
	}
	cookie, err := netnsCookie()
	if err != nil {
		return fmt.Errorf("socket redirect: network namespace cookie: %w", err)
	}
	cg, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil // no cgroup2 here: nothing can be attached
	}
	defer unix.Close(cg)
	// A plane of this namespace has a reverse map named for it.
	nsSuffix := "_" + redirectNSTag(cookie)
	type attached struct {
		fd     int
		attach uint32
		tag    string
	}
	var progs []attached
	defer func() {
		for _, p := range progs {
			unix.Close(p.fd)
		}
	}()
	for _, h := range redirectHooks() {
		ids, err := bpfProgQuery(cg, h.attach)
		if err != nil {
			if errors.Is(err, unix.EINVAL) || bpfDenied(err) {
				continue
			}
			return fmt.Errorf("socket redirect: querying the cgroup's programs: %w", err)
		}
		for _, id := range ids {
			fd, err := bpfGetFDByID(unix.BPF_PROG_GET_FD_BY_ID, id)
			if err != nil {
				continue
			}
			name, mapIDs, err := bpfProgInfoOf(fd)
			tag, ok := strings.CutPrefix(name, "bsr"+h.kind+"_")
			if err != nil || !ok || !usesMap(mapIDs, func(m string) bool { return strings.HasPrefix(m, "bsrr") && strings.HasSuffix(m, nsSuffix) }) {
				unix.Close(fd)
				continue
			}
			progs = append(progs, attached{fd, h.attach, tag})
		}
	}
	if len(progs) == 0 {
		return nil
	}
	c, err := nftables.New()
	if err != nil {
		return err
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return fmt.Errorf("socket redirect: listing nftables tables: %w", err)
	}
	live := map[string]bool{}
	for _, t := range tables {
		live[redirectTag(t.Name)] = true
	}
	var errs []error
	for _, p := range progs {
		if live[p.tag] {
			continue
		}
		if err := bpfProgDetach(cg, p.fd, p.attach); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("socket redirect: detaching a stale program of table tag %s: %w", p.tag, err))
		}
	}
	return errors.Join(errs...)
}

// SweepStaleRedirects detaches the socket redirect programs whose table
// is gone (see sweepStaleRedirects); for test suites' sweeps of roots
// their killed runs left.
func (d *Dataplane) SweepStaleRedirects() error { return d.sweepStaleRedirects() }

// usesMap says one of the maps ids has a name that match accepts.
func usesMap(ids []uint32, match func(name string) bool) bool {
	for _, id := range ids {
		fd, err := bpfGetFDByID(unix.BPF_MAP_GET_FD_BY_ID, id)
		if err != nil {
			continue
		}
		n, err := bpfMapNameOf(fd)
		unix.Close(fd)
		if err == nil && match(n) {
			return true
		}
	}
	return false
}
