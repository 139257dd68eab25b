package testutil

import (
	"os/exec"
	"regexp"
	"strings"
)

// dockerUserHandle matches a rule of berth's in Docker's DOCKER-USER chain
// as `nft -a list chain` prints it: its comment "berth <table> <bridge>"
// and its handle.
var dockerUserHandle = regexp.MustCompile(`comment "berth (\S+) (\S+)".*# handle (\d+)`)

// dockerUserRules are table's rules in Docker's DOCKER-USER chains (ip and
// ip6 filter) of this namespace: "<family> <bridge> <handle>" each.
func dockerUserRules(table string) []string {
	nft, err := exec.LookPath("nft")
	if err != nil {
		return nil
	}
	var out []string
	for _, family := range []string{"ip", "ip6"} {
		list, err := exec.Command(nft, "-a", "list", "chain", family, "filter", "DOCKER-USER").Output()
		if err != nil {
			continue // no such chain: no Docker
		}
		for _, line := range strings.Split(string(list), "\n") {
			if m := dockerUserHandle.FindStringSubmatch(line); m != nil && m[1] == table {
				out = append(out, family+" "+m[2]+" "+m[3])
			}
		}
	}
	return out
}

// removeDockerUserRules deletes what dockerUserRules lists.
func removeDockerUserRules(table string) {
	for _, r := range dockerUserRules(table) {
		f := strings.Fields(r)
		exec.Command("nft", "delete", "rule", f[0], "filter", "DOCKER-USER", "handle", f[2]).Run()
	}
}
