package dataplane

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/errdefs"
)

// The table records the version of its static part as an empty chain
// "ruleset-<N>". Two berth builds on one host would otherwise fight, each
// rewriting the table into its own version on every change: a newer
// build upgrades an older table (and deletes the older marker), an older
// build refuses to touch a newer one and says so.

const markerPrefix = "ruleset-"

func markerName(version int) string { return markerPrefix + strconv.Itoa(version) }

// staticChainsAt are the static chains with the marker of version.
func staticChainsAt(version int) []chainSpec {
	chains := staticChains()
	for i, c := range chains {
		if c.name == markerName(rulesetVersion) {
			chains[i] = chainSpec{name: markerName(version)}
		}
	}
	return chains
}

// checkVersion reads the markers among the table's chains (have): it
// fails if one is newer than this build's version, and returns the older
// ones, which an upgrade deletes.
func (d *Dataplane) checkVersion(have map[string]bool) (older []string, err error) {
	newest := 0
	for name := range have {
		v, ok := markerVersion(name)
		if !ok {
			continue
		}
		if v < d.opts.version {
			older = append(older, name)
		}
		newest = max(newest, v)
	}
	if newest > d.opts.version {
		return nil, errdefs.Conflict("nftables table inet %s: ruleset version %d written by a newer berth; upgrade this berth (it writes version %d) or stop using the newer one on this host", d.opts.table, newest, d.opts.version)
	}
	return older, nil
}

// refuseNewer fails if the table holds a newer version than this build's.
func (d *Dataplane) refuseNewer() error {
	b, err := d.newBatch()
	if err != nil {
		return err
	}
	have, err := d.chainNames(b)
	if err != nil {
		return fmt.Errorf("nftables table inet %s: listing chains: %w", d.opts.table, err)
	}
	_, err = d.checkVersion(have)
	return err
}

func markerVersion(chain string) (int, bool) {
	s, ok := strings.CutPrefix(chain, markerPrefix)
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(s)
	return v, err == nil && v > 0
}
