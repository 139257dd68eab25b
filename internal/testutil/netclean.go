package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RootTable is the nftables table (and the name of the default bridge)
// of berth's dataplane for the store at root: network.DataplaneTable,
// which a test in internal/network keeps equal to this. Test roots only:
// the default installation's ("berth") is never a test's.
func RootTable(root string) string {
	h := sha256.Sum256([]byte("bridge/" + root))
	return "berth" + hex.EncodeToString(h[:])[:8]
}

// DataplaneLeft lists what the dataplane of table has in the host's
// kernel: links marked as its bridges (interface alias "<table>:<network
// ID>", the default bridge and user networks' alike) and the nftables
// table inet <table>. Only that table's are looked at: other tests and a
// real berth on this machine have names of their own.
func DataplaneLeft(table string) []string {
	var left []string
	for _, l := range tableLinks(table) {
		left = append(left, "link "+l)
	}
	if tableExists(table) {
		left = append(left, "nftables table inet "+table)
	}
	return left
}

// NoDataplaneLeft fails t if the dataplane of table left anything in the
// kernel (after says when, e.g. "after removing every container"), and
// removes it so that one leak does not stay for the next tests.
func NoDataplaneLeft(t testing.TB, table, after string) {
	t.Helper()
	if left := DataplaneLeft(table); len(left) > 0 {
		t.Errorf("%s, berth left in the kernel: %s", after, strings.Join(left, ", "))
		RemoveDataplane(table)
	}
}

// RemoveDataplane removes what DataplaneLeft lists, with the ip and nft
// tools (best effort). The default installation's table is never touched.
func RemoveDataplane(table string) {
	if table == "" || table == "berth" {
		return
	}
	for _, l := range tableLinks(table) {
		exec.Command("ip", "link", "delete", l).Run()
	}
	if tableExists(table) {
		exec.Command("nft", "delete", "table", "inet", table).Run()
	}
}

// tableLinks are the links whose alias marks them as table's.
func tableLinks(table string) []string {
	var out []string
	ents, _ := os.ReadDir("/sys/class/net")
	for _, e := range ents {
		alias, err := os.ReadFile(filepath.Join("/sys/class/net", e.Name(), "ifalias"))
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(alias)), table+":") {
			out = append(out, e.Name())
		}
	}
	return out
}

func tableExists(table string) bool {
	nft, err := exec.LookPath("nft")
	if err != nil {
		return false
	}
	return exec.Command(nft, "list", "table", "inet", table).Run() == nil
}
