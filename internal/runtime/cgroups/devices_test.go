package cgroups

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// dockerDeviceRules are the rules berth's spec generator gives a
// non-privileged container (internal/runtime/spec.go).
func dockerDeviceRules() []specs.LinuxDeviceCgroup {
	dev := func(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
		r := specs.LinuxDeviceCgroup{Allow: true, Type: typ, Access: access}
		if major >= 0 {
			r.Major = ptr(major)
		}
		if minor >= 0 {
			r.Minor = ptr(minor)
		}
		return r
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		dev("c", -1, -1, "m"),
		dev("b", -1, -1, "m"),
		dev("c", 1, 3, "rwm"),
		dev("c", 1, 5, "rwm"),
		dev("c", 1, 7, "rwm"),
		dev("c", 1, 8, "rwm"),
		dev("c", 1, 9, "rwm"),
		dev("c", 5, 0, "rwm"),
		dev("c", 5, 1, "rwm"),
		dev("c", 5, 2, "rwm"),
		dev("c", 136, -1, "rwm"),
		dev("c", 10, 200, "rwm"),
	}
}

func mustParseRules(t *testing.T, rules []specs.LinuxDeviceCgroup) []deviceRule {
	t.Helper()
	out, err := parseDeviceRules(rules)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestV1DeviceWrites(t *testing.T) {
	got := v1DeviceWrites(mustParseRules(t, dockerDeviceRules()))
	want := []fileWrite{
		{file: "devices.deny", value: "a"},
		{file: "devices.deny", value: "a *:* rwm"},
		{file: "devices.allow", value: "c *:* m"},
		{file: "devices.allow", value: "b *:* m"},
		{file: "devices.allow", value: "c 1:3 rwm"},
		{file: "devices.allow", value: "c 1:5 rwm"},
		{file: "devices.allow", value: "c 1:7 rwm"},
		{file: "devices.allow", value: "c 1:8 rwm"},
		{file: "devices.allow", value: "c 1:9 rwm"},
		{file: "devices.allow", value: "c 5:0 rwm"},
		{file: "devices.allow", value: "c 5:1 rwm"},
		{file: "devices.allow", value: "c 5:2 rwm"},
		{file: "devices.allow", value: "c 136:* rwm"},
		{file: "devices.allow", value: "c 10:200 rwm"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("v1DeviceWrites =\n%v\nwant\n%v", got, want)
	}
}

func TestParseDeviceRules(t *testing.T) {
	tests := []struct {
		name    string
		rule    specs.LinuxDeviceCgroup
		want    string // v1 form
		wantErr bool
	}{
		{name: "empty type and access", rule: specs.LinuxDeviceCgroup{Allow: true}, want: "a *:* rwm"},
		{name: "explicit -1 numbers", rule: specs.LinuxDeviceCgroup{Type: "b", Major: ptr[int64](-1), Minor: ptr[int64](-1), Access: "r"}, want: "b *:* r"},
		{name: "access letters in any order", rule: specs.LinuxDeviceCgroup{Type: "c", Major: ptr[int64](4), Minor: ptr[int64](64), Access: "mwr"}, want: "c 4:64 rwm"},
		{name: "minor only", rule: specs.LinuxDeviceCgroup{Type: "c", Minor: ptr[int64](3), Access: "w"}, want: "c *:3 w"},
		{name: "unknown type", rule: specs.LinuxDeviceCgroup{Type: "p"}, wantErr: true},
		{name: "unknown access", rule: specs.LinuxDeviceCgroup{Type: "c", Access: "rx"}, wantErr: true},
		{name: "negative major", rule: specs.LinuxDeviceCgroup{Type: "c", Major: ptr[int64](-2)}, wantErr: true},
		{name: "major beyond 32 bits", rule: specs.LinuxDeviceCgroup{Type: "c", Major: ptr[int64](1 << 32)}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDeviceRules([]specs.LinuxDeviceCgroup{tt.rule})
			if tt.wantErr {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err = %v, want an invalid argument error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := got[0].v1String(); s != tt.want {
				t.Errorf("v1String() = %q, want %q", s, tt.want)
			}
		})
	}
}

// runFilter executes a device program the way the kernel would, for the
// instruction forms deviceFilter emits, and returns r0.
func runFilter(t *testing.T, prog []insn, devType, access, major, minor uint32) uint64 {
	t.Helper()
	var ctx [12]byte
	binary.LittleEndian.PutUint32(ctx[0:], access<<16|devType)
	binary.LittleEndian.PutUint32(ctx[4:], major)
	binary.LittleEndian.PutUint32(ctx[8:], minor)
	var r [11]uint64
	for pc, steps := 0, 0; ; pc, steps = pc+1, steps+1 {
		if pc < 0 || pc >= len(prog) || steps > 10000 {
			t.Fatalf("program ran off its end (pc %d, %d steps)", pc, steps)
		}
		in := prog[pc]
		imm := uint64(int64(in.imm))
		switch in.code {
		case opLdxMemW:
			if in.src != regCtx || in.off < 0 || int(in.off)+4 > len(ctx) {
				t.Fatalf("pc %d: load from r%d%+d", pc, in.src, in.off)
			}
			r[in.dst] = uint64(binary.LittleEndian.Uint32(ctx[in.off:]))
		case opMovImm:
			r[in.dst] = imm
		case opMovReg:
			r[in.dst] = r[in.src]
		case opAndImm:
			r[in.dst] &= imm
		case opAndReg:
			r[in.dst] &= r[in.src]
		case opOrImm:
			r[in.dst] |= imm
		case opXorImm:
			r[in.dst] ^= imm
		case opRshImm:
			r[in.dst] >>= imm
		case opJneImm:
			if r[in.dst] != imm {
				pc += int(in.off)
			}
		case opJeqImm:
			if r[in.dst] == imm {
				pc += int(in.off)
			}
		case opExit:
			return r[regRet]
		default:
			t.Fatalf("pc %d: unexpected opcode %#x", pc, in.code)
		}
	}
}

const (
	char  = unix.BPF_DEVCG_DEV_CHAR
	block = unix.BPF_DEVCG_DEV_BLOCK
	read  = unix.BPF_DEVCG_ACC_READ
	write = unix.BPF_DEVCG_ACC_WRITE
	mknod = unix.BPF_DEVCG_ACC_MKNOD
)

func TestDeviceFilterDecisions(t *testing.T) {
	allow := func(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
		r := specs.LinuxDeviceCgroup{Allow: true, Type: typ, Access: access}
		if major >= 0 {
			r.Major = ptr(major)
		}
		if minor >= 0 {
			r.Minor = ptr(minor)
		}
		return r
	}
	deny := func(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
		r := allow(typ, major, minor, access)
		r.Allow = false
		return r
	}
	type access struct {
		devType, major, minor, access uint32
		want                          bool
	}
	tests := []struct {
		name  string
		rules []specs.LinuxDeviceCgroup
		cases []access
	}{
		{
			name:  "docker defaults",
			rules: dockerDeviceRules(),
			cases: []access{
				{char, 1, 3, read | write, true},    // /dev/null
				{char, 1, 7, write, true},           // /dev/full
				{char, 136, 12, read | write, true}, // a pty
				{char, 10, 200, read, true},         // /dev/net/tun
				{char, 4, 1, mknod, true},           // mknod of any char device
				{block, 8, 0, mknod, true},          // and of any block device
				{char, 4, 1, read, false},           // but no tty1 use
				{block, 8, 0, read, false},          // nor /dev/sda
				{char, 1, 1, read, false},           // nor /dev/mem
				{char, 10, 201, write, false},
			},
		},
		{
			name:  "no rules deny everything",
			rules: nil,
			cases: []access{{char, 1, 3, read, false}, {block, 1, 3, mknod, false}},
		},
		{
			name:  "allow all",
			rules: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}},
			cases: []access{{char, 1, 1, read | write | mknod, true}, {block, 8, 0, write, true}},
		},
		{
			name:  "a later deny overrides an earlier allow, bit by bit",
			rules: []specs.LinuxDeviceCgroup{allow("c", 1, 5, "rwm"), deny("c", 1, 5, "w")},
			cases: []access{
				{char, 1, 5, read, true},
				{char, 1, 5, read | mknod, true},
				{char, 1, 5, write, false},
				{char, 1, 5, read | write, false},
			},
		},
		{
			name:  "a later allow overrides an earlier deny",
			rules: []specs.LinuxDeviceCgroup{allow("", -1, -1, "rwm"), deny("c", -1, -1, "rwm"), allow("c", 1, 3, "rw")},
			cases: []access{
				{char, 1, 3, read | write, true},
				{char, 1, 3, mknod, false},
				{char, 1, 4, read, false},
				{block, 1, 3, read | write | mknod, true},
			},
		},
		{
			name:  "access granted by two rules adds up",
			rules: []specs.LinuxDeviceCgroup{allow("c", 1, 9, "r"), allow("c", 1, -1, "w")},
			cases: []access{
				{char, 1, 9, read | write, true},
				{char, 1, 8, read, false},
				{char, 1, 8, write, true},
				{block, 1, 9, read, false},
			},
		},
		{
			name:  "a deny before a catch-all allow does not matter",
			rules: []specs.LinuxDeviceCgroup{deny("c", 1, 3, "rwm"), allow("a", -1, -1, "rwm"), deny("b", -1, -1, "w")},
			cases: []access{
				{char, 1, 3, read, true},
				{block, 8, 0, read, true},
				{block, 8, 0, write, false},
			},
		},
		{
			name:  "wildcard major",
			rules: []specs.LinuxDeviceCgroup{allow("b", -1, 0, "r")},
			cases: []access{
				{block, 8, 0, read, true},
				{block, 259, 0, read, true},
				{block, 8, 1, read, false},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := mustParseRules(t, tt.rules)
			prog := deviceFilter(rules)
			for _, c := range tt.cases {
				kind := byte('c')
				if c.devType == block {
					kind = 'b'
				}
				got := runFilter(t, prog, c.devType, c.access, c.major, c.minor) == 1
				if got != c.want {
					t.Errorf("program: %c %d:%d access %03b: allowed = %v, want %v", kind, c.major, c.minor, c.access, got, c.want)
				}
				if ref := allowed(rules, kind, c.major, c.minor, c.access); ref != c.want {
					t.Errorf("allowed: %c %d:%d access %03b = %v, want %v", kind, c.major, c.minor, c.access, ref, c.want)
				}
			}
		})
	}
}

// TestDeviceFilterMatchesReference runs the programs of several rule sets
// over every combination of a few devices and all accesses, against the
// rule semantics written plainly in allowed.
func TestDeviceFilterMatchesReference(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	ruleSets := [][]specs.LinuxDeviceCgroup{
		dockerDeviceRules(),
		{
			{Allow: true, Type: "c", Major: n(1), Access: "rw"},
			{Allow: false, Type: "c", Major: n(1), Minor: n(7), Access: "w"},
			{Allow: true, Type: "b", Minor: n(0), Access: "m"},
			{Allow: false, Type: "a", Access: "m"},
			{Allow: true, Type: "c", Major: n(1), Minor: n(3), Access: "m"},
		},
		{
			{Allow: true, Access: "rwm"},
			{Allow: false, Type: "b", Access: "rw"},
			{Allow: true, Type: "b", Major: n(8), Minor: n(0), Access: "r"},
		},
	}
	var devices [][3]uint32
	for _, typ := range []uint32{char, block} {
		for _, major := range []uint32{1, 5, 8, 10, 136} {
			for _, minor := range []uint32{0, 1, 3, 7, 200} {
				devices = append(devices, [3]uint32{typ, major, minor})
			}
		}
	}
	for i, set := range ruleSets {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			rules := mustParseRules(t, set)
			prog := deviceFilter(rules)
			for _, d := range devices {
				kind := byte('c')
				if d[0] == block {
					kind = 'b'
				}
				for acc := uint32(1); acc <= accessAll; acc++ {
					got := runFilter(t, prog, d[0], acc, d[1], d[2]) == 1
					if want := allowed(rules, kind, d[1], d[2], acc); got != want {
						t.Errorf("%c %d:%d access %03b: program says %v, rules say %v", kind, d[1], d[2], acc, got, want)
					}
				}
			}
		})
	}
}

func TestEncodeProgram(t *testing.T) {
	if bigEndian() {
		t.Skip("the expected bytes are little-endian")
	}
	got := encodeProgram([]insn{
		{code: opLdxMemW, dst: regMajor, src: regCtx, off: ctxMajor},
		{code: opJneImm, dst: regMinor, off: 3, imm: 200},
		{code: opXorImm, dst: regGranted, imm: -1},
	})
	want := []byte{
		0x61, 0x14, 4, 0, 0, 0, 0, 0,
		0x55, 0x05, 3, 0, 200, 0, 0, 0,
		0xa7, 0x06, 0, 0, 0xff, 0xff, 0xff, 0xff,
	}
	if !slices.Equal(got, want) {
		t.Errorf("encodeProgram = % x, want % x", got, want)
	}
}

// TestBPFAttrLayout pins the attribute sizes to linux/bpf.h's layout: a
// stray padding byte moves every later field and the kernel reads garbage.
func TestBPFAttrLayout(t *testing.T) {
	for _, tt := range []struct {
		name      string
		got, want uintptr
	}{
		{"userPtr", unsafe.Sizeof(userPtr{}), 8},
		{"progLoadAttr", unsafe.Sizeof(progLoadAttr{}), 72},
		{"progLoadAttr.progName", unsafe.Offsetof(progLoadAttr{}.progName), 48},
		{"progAttachAttr", unsafe.Sizeof(progAttachAttr{}), 20},
		{"progQueryAttr", unsafe.Sizeof(progQueryAttr{}), 32},
		{"progQueryAttr.progCnt", unsafe.Offsetof(progQueryAttr{}.progCnt), 24},
		{"getFDByIDAttr", unsafe.Sizeof(getFDByIDAttr{}), 12},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: %d bytes, want %d", tt.name, tt.got, tt.want)
		}
	}
}
