package testutil

import (
	"os/exec"
	"strings"
)

// RemoveRootDataplane removes what a test root of berth's left in the
// kernel that no berth command removes: its default network's bridge and
// its nftables tables (inet and bridge), all named "berth" and 8 hex digits (see
// network.DataplaneTable). The default installation's ("berth0",
// "berth") is never touched. Best effort, with the ip and nft tools.
func RemoveRootDataplane(bridge string) {
	if len(bridge) != len("berth")+8 || !strings.HasPrefix(bridge, "berth") {
		return
	}
	exec.Command("ip", "link", "delete", bridge).Run()
	exec.Command("nft", "delete", "table", "inet", bridge).Run()
	exec.Command("nft", "delete", "table", "bridge", bridge).Run()
}
