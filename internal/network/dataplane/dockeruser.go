package dataplane

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Beside a running Docker engine. Docker (iptables-nft) owns table ip
// filter and sets its FORWARD policy to drop; a packet dropped by any base
// chain of a hook is dropped whatever berth's own chains say, so berth's
// routed and (with br_netfilter) bridged traffic would die there. Docker's
// documented place for the host's own rules is the chain DOCKER-USER,
// which FORWARD jumps to first and Docker never flushes. When, and only
// when, that chain exists, berth puts at its top a few rules per bridge
// that accept berth's traffic and only that; berth's own forward chain
// still decides (published ports, isolation, --internal), since both base
// chains must accept. Nothing else of Docker's is touched: no table or
// chain is made, no policy or rule of Docker's is changed.
//
// The rules are written as iptables-nft writes them (meta, cmp, counter,
// immediate; the comment in the rule's userdata), so that iptables-nft -S
// DOCKER-USER prints them, and each carries the comment
// "berth <table> <bridge>", by which berth finds its own.
//
// Egress from a berth bridge must not open Docker's containers'
// unpublished ports, which Docker's own FORWARD rules drop: traffic out of
// a berth bridge to one of Docker's bridges returns to Docker's rules
// instead of being accepted. Docker's bridges are docker0, br-<id> (a
// wildcard, which also covers berth's own user networks' bridges: berth
// isolates those from each other anyway) and any other name found in
// Docker's isolation chain (a custom com.docker.network.bridge.name).

const (
	dockerFilterTable = "filter"
	dockerUserChain   = "DOCKER-USER"
	// dockerIsolation lists every Docker bridge as "oifname X drop"
	// (Docker 20.10 to 27).
	dockerIsolation = "DOCKER-ISOLATION-STAGE-2"
	// NFTNL_UDATA_RULE_COMMENT: where iptables-nft keeps -m comment.
	udataRuleComment userdata.Type = 0
)

// dockerBridgePatterns are the names of Docker's bridges that need no
// discovery; a trailing "+" is iptables' wildcard.
var dockerBridgePatterns = []string{"docker0", "br-+"}

// duRule is one of berth's rules in DOCKER-USER: "-i iif -o oif -j
// verdict", either name may be empty (any).
type duRule struct {
	iif, oif string
	accept   bool // else RETURN
}

func (r duRule) String() string {
	var parts []string
	if r.iif != "" {
		parts = append(parts, "-i "+r.iif)
	}
	if r.oif != "" {
		parts = append(parts, "-o "+r.oif)
	}
	if r.accept {
		return strings.Join(append(parts, "-j ACCEPT"), " ")
	}
	return strings.Join(append(parts, "-j RETURN"), " ")
}

// iptIfname is an interface name as iptables-nft compares it: with its
// NUL, or, for a wildcard "x+", the prefix alone.
func iptIfname(name string) []byte {
	if p, ok := strings.CutSuffix(name, "+"); ok {
		return []byte(p)
	}
	return append([]byte(name), 0)
}

func (r duRule) exprs() []expr.Any {
	var out []expr.Any
	for _, m := range []struct {
		key  expr.MetaKey
		name string
	}{{expr.MetaKeyIIFNAME, r.iif}, {expr.MetaKeyOIFNAME, r.oif}} {
		if m.name != "" {
			out = append(out, &expr.Meta{Key: m.key, Register: reg1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: iptIfname(m.name)})
		}
	}
	v := expr.VerdictReturn
	if r.accept {
		v = expr.VerdictAccept
	}
	return append(out, &expr.Counter{}, &expr.Verdict{Kind: v})
}

// parseDURule reads back a rule of the shape exprs writes.
func parseDURule(es []expr.Any) (duRule, bool) {
	var r duRule
	var key expr.MetaKey
	verdict := false
	for _, e := range es {
		switch e := e.(type) {
		case *expr.Meta:
			key = e.Key
		case *expr.Cmp:
			if e.Op != expr.CmpOpEq {
				return r, false
			}
			name, ok := strings.CutSuffix(string(e.Data), "\x00")
			if !ok {
				name += "+"
			}
			switch key {
			case expr.MetaKeyIIFNAME:
				r.iif = name
			case expr.MetaKeyOIFNAME:
				r.oif = name
			default:
				return r, false
			}
		case *expr.Counter:
		case *expr.Verdict:
			switch e.Kind {
			case expr.VerdictAccept:
				r.accept = true
			case expr.VerdictReturn:
			default:
				return r, false
			}
			verdict = true
		default:
			return r, false
		}
	}
	return r, verdict
}

// dockerUserRules are berth's rules for a bridge, top to bottom.
// dockerBridges are Docker's bridges found besides the patterns.
func dockerUserRules(bridge string, dockerBridges []string) []duRule {
	rules := []duRule{{iif: bridge, oif: bridge, accept: true}} // bridged, through br_netfilter
	for _, db := range append(slices.Clone(dockerBridgePatterns), dockerBridges...) {
		if db != bridge {
			rules = append(rules, duRule{iif: bridge, oif: db}) // Docker's rules decide
		}
	}
	return append(rules,
		duRule{iif: bridge, accept: true}, // egress; berth's chain drops --internal's
		duRule{oif: bridge, accept: true}, // ingress; berth's chain allows published ports and replies only
	)
}

func (d *Dataplane) dockerUserOn() bool { return d.opts.dockerUser == nil || d.opts.dockerUser() }

func (d *Dataplane) duCommentPrefix() string { return "berth " + d.opts.table + " " }

func ruleComment(r *nftables.Rule) string {
	s, _ := userdata.GetString(r.UserData, udataRuleComment)
	return s
}

// duFamilies are the families Docker has a filter table in.
var duFamilies = []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6}

// dockerFamilies are those of duFamilies that have a table "filter" (one
// listing: on a host without it, that is all an ensure costs).
func dockerFamilies(c *nftables.Conn) ([]nftables.TableFamily, error) {
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyUnspecified)
	if err != nil {
		return nil, err
	}
	var out []nftables.TableFamily
	for _, fam := range duFamilies {
		for _, t := range tables {
			if t.Name == dockerFilterTable && t.Family == fam {
				out = append(out, fam)
				break
			}
		}
	}
	return out, nil
}

func duChain(family nftables.TableFamily, name string) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: &nftables.Table{Name: dockerFilterTable, Family: family}}
}

// chainRules lists a chain's rules; ok is false when the table or chain
// does not exist. A dump of a missing chain's rules is empty, not an
// error, so an empty one is looked up (Docker's DOCKER-USER is never
// empty: it ends with a RETURN). (The library keeps only the errno's
// text.)
func chainRules(c *nftables.Conn, ch *nftables.Chain) (rules []*nftables.Rule, ok bool, err error) {
	rules, err = c.GetRules(ch.Table, ch)
	if err == nil && len(rules) > 0 {
		return rules, true, nil
	}
	if err == nil {
		_, err = c.ListChain(ch.Table, ch.Name)
	}
	if err != nil {
		if isNotExist(err) || strings.Contains(err.Error(), unix.ENOENT.Error()) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return rules, true, nil
}

// dockerBridgesIn are the bridges Docker's isolation chain names, except
// those the patterns cover.
func dockerBridgesIn(c *nftables.Conn, family nftables.TableFamily) ([]string, error) {
	rules, _, err := chainRules(c, duChain(family, dockerIsolation))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rules {
		var oif string
		var key expr.MetaKey
		drop := false
		for _, e := range r.Exprs {
			switch e := e.(type) {
			case *expr.Meta:
				key = e.Key
			case *expr.Cmp:
				if key == expr.MetaKeyOIFNAME && e.Op == expr.CmpOpEq {
					oif, _ = strings.CutSuffix(string(e.Data), "\x00")
				}
			case *expr.Verdict:
				drop = e.Kind == expr.VerdictDrop
			}
		}
		if oif == "" || !drop || coveredByPatterns(oif) || slices.Contains(out, oif) {
			continue
		}
		out = append(out, oif)
	}
	slices.Sort(out)
	return out, nil
}

func coveredByPatterns(name string) bool {
	for _, p := range dockerBridgePatterns {
		if pre, ok := strings.CutSuffix(p, "+"); ok && strings.HasPrefix(name, pre) || name == p {
			return true
		}
	}
	return false
}

// ensureDockerUser makes berth's rules for bridge in DOCKER-USER right
// where that chain exists. When they are right already, it costs a
// listing of DOCKER-USER and of Docker's isolation chain per family.
func (d *Dataplane) ensureDockerUser(bridge string) error {
	if !d.dockerUserOn() {
		return nil
	}
	var err error
	for range 3 {
		// ENOENT: a rule deleted meanwhile (another berth process),
		// or Docker's chain gone: look again.
		if err = d.ensureDockerUserOnce(bridge); err == nil || !isNotExist(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("bridge %s: berth's rules in Docker's chain %s: %w", bridge, dockerUserChain, err)
	}
	return nil
}

func (d *Dataplane) ensureDockerUserOnce(bridge string) error {
	// One socket for the few requests: a socket each costs more than
	// the requests themselves.
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	fams, err := dockerFamilies(c)
	if err != nil {
		return err
	}
	comment := d.duCommentPrefix() + bridge
	for _, fam := range fams {
		ch := duChain(fam, dockerUserChain)
		rules, ok, err := chainRules(c, ch)
		if err != nil || !ok {
			if err != nil {
				return err
			}
			continue
		}
		docker, err := dockerBridgesIn(c, fam)
		if err != nil {
			return err
		}
		want := dockerUserRules(bridge, docker)
		var have []*nftables.Rule
		var got []duRule
		for _, r := range rules {
			if ruleComment(r) == comment {
				have = append(have, r)
				pr, _ := parseDURule(r.Exprs)
				got = append(got, pr)
			}
		}
		if slices.Equal(got, want) {
			continue
		}
		for _, r := range have {
			if err := c.DelRule(r); err != nil {
				return err
			}
		}
		// Each at the top, last first: they end up in order, above
		// Docker's RETURN and any rule of the user's.
		for i := len(want) - 1; i >= 0; i-- {
			c.InsertRule(&nftables.Rule{Table: ch.Table, Chain: ch, Exprs: want[i].exprs(),
				UserData: userdata.AppendString(nil, udataRuleComment, comment)})
		}
		if err := c.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// removeDockerUser deletes berth's rules in DOCKER-USER of the bridges
// for which drop says so (by the bridge named in their comment).
func (d *Dataplane) removeDockerUser(drop func(bridge string) bool) error {
	var err error
	for range 3 {
		if err = d.removeDockerUserOnce(drop); err == nil || !isNotExist(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("berth's rules in Docker's chain %s: %w", dockerUserChain, err)
	}
	return nil
}

func (d *Dataplane) removeDockerUserOnce(drop func(bridge string) bool) error {
	prefix := d.duCommentPrefix()
	return deleteDockerUserRules(func(comment string) bool {
		br, ok := strings.CutPrefix(comment, prefix)
		return ok && drop(br)
	})
}

// deleteDockerUserRules deletes, in one transaction, the rules of the
// DOCKER-USER chains whose comment pick chooses.
func deleteDockerUserRules(pick func(comment string) bool) error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	n := 0
	for _, fam := range duFamilies {
		rules, _, err := chainRules(c, duChain(fam, dockerUserChain))
		if err != nil {
			return err
		}
		for _, r := range rules {
			if pick(ruleComment(r)) {
				if err := c.DelRule(r); err != nil {
					return err
				}
				n++
			}
		}
	}
	if n == 0 {
		return nil
	}
	return c.Flush()
}

// removeDockerUserBridge deletes a bridge's rules in DOCKER-USER.
func (d *Dataplane) removeDockerUserBridge(bridge string) error {
	return d.removeDockerUser(func(br string) bool { return br == bridge })
}

// RemoveDockerUserRules deletes this table's rules in Docker's
// DOCKER-USER chains, as Reconcile does when no bridge of it is left.
func (d *Dataplane) RemoveDockerUserRules() error {
	return d.removeDockerUser(func(string) bool { return true })
}

// SweepStaleDockerUserRules deletes berth's rules in Docker's DOCKER-USER
// chains whose table (family inet) is gone: made after the table, they
// would otherwise stay when a root's table is deleted by name.
func SweepStaleDockerUserRules() error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, t := range tables {
		live[t.Name] = true
	}
	return deleteDockerUserRules(func(comment string) bool {
		f := strings.Fields(comment)
		return len(f) == 3 && f[0] == "berth" && !live[f[1]]
	})
}
