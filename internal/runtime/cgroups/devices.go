package cgroups

import (
	"math"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// deviceRule is a validated linux.resources.devices entry.
type deviceRule struct {
	allow bool
	// kind is 'a' (all), 'b' (block) or 'c' (char).
	kind byte
	// major and minor are -1 for any.
	major, minor int64
	// access is a set of BPF_DEVCG_ACC_* bits.
	access uint32
}

// anyNumber stands for a wildcard major or minor number.
const anyNumber = -1

// accessAll is mknod, read and write: "rwm".
const accessAll = unix.BPF_DEVCG_ACC_MKNOD | unix.BPF_DEVCG_ACC_READ | unix.BPF_DEVCG_ACC_WRITE

// parseDeviceRules validates the spec's device rules. An empty access is
// read as "rwm" and an empty type as "a", as runc reads them.
func parseDeviceRules(rules []specs.LinuxDeviceCgroup) ([]deviceRule, error) {
	out := make([]deviceRule, 0, len(rules))
	for i, r := range rules {
		d := deviceRule{allow: r.Allow, major: anyNumber, minor: anyNumber}
		switch r.Type {
		case "", "a":
			d.kind = 'a'
		case "b", "c":
			d.kind = r.Type[0]
		default:
			return nil, errdefs.InvalidArgument("cgroups: device rule %d: invalid type %q: use a, b or c", i, r.Type)
		}
		for _, n := range []struct {
			name string
			in   *int64
			out  *int64
		}{{"major", r.Major, &d.major}, {"minor", r.Minor, &d.minor}} {
			if n.in == nil || *n.in == anyNumber {
				continue
			}
			// The kernel hands the program 32-bit numbers; an immediate
			// is a signed 32-bit value, and no real device number comes
			// near that bound (majors have 12 bits, minors 20).
			if *n.in < 0 || *n.in > math.MaxInt32 {
				return nil, errdefs.InvalidArgument("cgroups: device rule %d: invalid %s number %d", i, n.name, *n.in)
			}
			*n.out = *n.in
		}
		access := r.Access
		if access == "" {
			access = "rwm"
		}
		for _, c := range access {
			switch c {
			case 'r':
				d.access |= unix.BPF_DEVCG_ACC_READ
			case 'w':
				d.access |= unix.BPF_DEVCG_ACC_WRITE
			case 'm':
				d.access |= unix.BPF_DEVCG_ACC_MKNOD
			default:
				return nil, errdefs.InvalidArgument("cgroups: device rule %d: invalid access %q: use a combination of r, w and m", i, r.Access)
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// v1String formats a rule for devices.allow or devices.deny: "c 1:3 rwm",
// "a *:* rwm".
func (d deviceRule) v1String() string {
	num := func(n int64) string {
		if n == anyNumber {
			return "*"
		}
		return strconv.FormatInt(n, 10)
	}
	var acc strings.Builder
	if d.access&unix.BPF_DEVCG_ACC_READ != 0 {
		acc.WriteByte('r')
	}
	if d.access&unix.BPF_DEVCG_ACC_WRITE != 0 {
		acc.WriteByte('w')
	}
	if d.access&unix.BPF_DEVCG_ACC_MKNOD != 0 {
		acc.WriteByte('m')
	}
	return string(d.kind) + " " + num(d.major) + ":" + num(d.minor) + " " + acc.String()
}

// v1DeviceWrites plans the v1 devices controller: start from "deny
// everything" and apply the rules in order, each one overriding what came
// before, which is how the OCI spec reads the list.
func v1DeviceWrites(rules []deviceRule) []fileWrite {
	out := []fileWrite{{file: "devices.deny", value: "a"}}
	for _, r := range rules {
		file := "devices.deny"
		if r.allow {
			file = "devices.allow"
		}
		out = append(out, fileWrite{file: file, value: r.v1String()})
	}
	return out
}

// matchesAll reports whether the rule covers every device and access, so
// that it decides everything on its own and earlier rules no longer matter.
func (d deviceRule) matchesAll() bool {
	return d.kind == 'a' && d.major == anyNumber && d.minor == anyNumber && d.access == accessAll
}

// allowed is the decision the rules make for one access, the reference the
// eBPF program must agree with: every requested access bit takes the value
// of the last rule that matches the device and names that bit; a bit no
// rule names is denied.
func allowed(rules []deviceRule, kind byte, major, minor uint32, access uint32) bool {
	var granted uint32
	for _, r := range rules {
		if r.kind != 'a' && r.kind != kind ||
			r.major != anyNumber && r.major != int64(major) ||
			r.minor != anyNumber && r.minor != int64(minor) {
			continue
		}
		if r.allow {
			granted |= r.access
		} else {
			granted &^= r.access
		}
	}
	return access&^granted == 0
}
