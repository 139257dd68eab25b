package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
// tables inet <table> and bridge <table> (the ports' guards); its rules
// in Docker's DOCKER-USER chain (comment "berth <table> <bridge>"); and
// its lock files. Only that table's are looked at: other tests and a
// real berth on this machine have names of their own.
func DataplaneLeft(table string) []string {
	var left []string
	for _, l := range tableLinks(table) {
		left = append(left, "link "+l)
	}
	for _, family := range tableFamilies() {
		if tableExists(family, table) {
			left = append(left, "nftables table "+family+" "+table)
		}
	}
	for _, name := range dataplaneLockFiles(table) {
		if lock := filepath.Join(DataplaneLockDir, name); fileExists(lock) {
			left = append(left, "lock file "+lock)
		}
	}
	for _, r := range dockerUserRules(table) {
		left = append(left, "rule in Docker's DOCKER-USER chain ("+r+")")
	}
	return left
}

// DataplaneLockDir is where berth's dataplane keeps a lock file per table.
const DataplaneLockDir = "/run/berth-dataplane"

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
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
	removeDockerUserRules(table)
	for _, family := range tableFamilies() {
		if tableExists(family, table) {
			exec.Command("nft", "delete", "table", family, table).Run()
		}
	}
	// Only a test root's, whose berth processes are gone or done: no
	// one holds or waits for it.
	for _, name := range dataplaneLockFiles(table) {
		os.Remove(filepath.Join(DataplaneLockDir, name))
	}
}

// dataplaneLockFiles are the names of table's lock files: the plane's and
// its socket redirect's.
func dataplaneLockFiles(table string) []string {
	return []string{table + ".lock", table + ".redirect.lock"}
}

// tableLinks are the links whose alias marks them as table's, in this
// process's network namespace (ip speaks netlink; /sys/class/net would be
// the namespace that mounted /sys).
func tableLinks(table string) []string {
	out, err := exec.Command("ip", "-j", "link", "show").Output()
	if err != nil {
		return nil
	}
	var links []struct {
		Name  string `json:"ifname"`
		Alias string `json:"ifalias"`
	}
	if json.Unmarshal(out, &links) != nil {
		return nil
	}
	var names []string
	for _, l := range links {
		if strings.HasPrefix(l.Alias, table+":") {
			names = append(names, l.Name)
		}
	}
	return names
}

// tableFamilies are the families of berth's nftables tables, all named
// after the table.
func tableFamilies() []string { return []string{"inet", "bridge"} }

func tableExists(family, table string) bool {
	nft, err := exec.LookPath("nft")
	if err != nil {
		return false
	}
	return exec.Command(nft, "list", "table", family, table).Run() == nil
}
