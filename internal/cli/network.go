package cli

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/filters"
)

func (a *app) networkCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "network", Short: "Manage networks", Args: noArgs, RunE: func(c *cobra.Command, _ []string) error { return c.Help() }}
	cmd.AddCommand(a.networkCreateCommand(), a.networkLsCommand(), a.networkInspectCommand(), a.networkRmCommand(),
		a.networkPruneCommand(), a.networkConnectCommand(), a.networkDisconnectCommand())
	return cmd
}

func (a *app) networkCreateCommand() *cobra.Command {
	var req engine.NetworkCreateRequest
	var subnets, ranges, gateways, opts, labels, ipamOpts, aux []string
	var ipamDriver, configFrom string
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create a network",
		Args:  exactArgs(1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			req.Name = args[0]
			var err error
			if req.Options, err = keyValues(opts); err != nil {
				return err
			}
			if req.Labels, err = readLabels(nil, labels); err != nil {
				return err
			}
			ipamOptions, err := keyValues(ipamOpts)
			if err != nil {
				return err
			}
			cfg, err := consolidateIPAM(subnets, ranges, gateways)
			if err != nil {
				return err
			}
			if len(aux) > 0 {
				return usageError{fmt.Errorf("--aux-address is not supported by berth")}
			}
			req.IPAM = &engine.NetworkIPAM{Driver: ipamDriver, Options: ipamOptions, Config: cfg}
			if configFrom != "" {
				req.ConfigFrom = &engine.NetworkConfigRef{Network: configFrom}
			}
			resp, err := e.NetworkCreate(ctx, req)
			if err != nil {
				return err
			}
			if resp.Warning != "" {
				printWarnings(a.stderr, strings.Split(resp.Warning, "\n"))
			}
			fmt.Fprintln(a.stdout, resp.ID)
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVarP(&req.Driver, "driver", "d", "bridge", "Driver to manage the Network")
	fl.StringArrayVarP(&opts, "opt", "o", nil, "Set driver specific options")
	fl.StringArrayVar(&labels, "label", nil, "Set metadata on a network")
	fl.BoolVar(&req.Internal, "internal", false, "Restrict external access to the network")
	fl.BoolVar(&req.Attachable, "attachable", false, "Enable manual container attachment")
	fl.BoolVar(&req.Ingress, "ingress", false, "Create swarm routing-mesh network")
	fl.StringVar(&req.Scope, "scope", "", "Control the network's scope")
	fl.BoolVar(&req.ConfigOnly, "config-only", false, "Create a configuration only network")
	fl.StringVar(&configFrom, "config-from", "", "The network from which to copy the configuration")
	fl.BoolVar(&req.EnableIPv6, "ipv6", false, "Enable or disable IPv6 networking")
	fl.StringVar(&ipamDriver, "ipam-driver", "default", "IP Address Management Driver")
	fl.StringArrayVar(&ipamOpts, "ipam-opt", nil, "Set IPAM driver specific options")
	fl.StringSliceVar(&subnets, "subnet", nil, "Subnet in CIDR format that represents a network segment")
	fl.StringSliceVar(&ranges, "ip-range", nil, "Allocate container ip from a sub-range")
	fl.StringSliceVar(&gateways, "gateway", nil, "IPv4 or IPv6 Gateway for the master subnet")
	fl.StringArrayVar(&aux, "aux-address", nil, "Auxiliary IPv4 or IPv6 addresses used by Network driver")
	return cmd
}

// keyValues reads "k=v" options as docker's map options do.
func keyValues(list []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out, nil
}

// consolidateIPAM pairs each --ip-range and --gateway with the --subnet
// that contains it, as docker's CLI does (its refusals are the CLI's own:
// exit 1, no daemon prefix). A subnet that does not parse goes to the
// engine, which words the error.
func consolidateIPAM(subnets, ranges, gateways []string) ([]engine.NetworkIPAMConfig, error) {
	fail := func(format string, args ...any) error { return cliError{fmt.Errorf(format, args...)} }
	if len(subnets) < len(ranges) || len(subnets) < len(gateways) {
		return nil, fail("every ip-range or gateway must have a corresponding subnet")
	}
	cfg := make([]engine.NetworkIPAMConfig, len(subnets))
	prefixes := make([]netip.Prefix, len(subnets))
	for i, s := range subnets {
		cfg[i].Subnet = s
		p, err := netip.ParsePrefix(s)
		if err != nil {
			continue
		}
		p = p.Masked()
		for j := 0; j < i; j++ {
			if prefixes[j].IsValid() && prefixes[j].Overlaps(p) {
				return nil, fail("multiple overlapping subnet configuration is not supported")
			}
		}
		prefixes[i] = p
	}
	pair := func(kind, v string, contained func(netip.Prefix) (bool, error), field func(*engine.NetworkIPAMConfig) *string) error {
		for i, p := range prefixes {
			if !p.IsValid() {
				continue
			}
			ok, err := contained(p)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if f := field(&cfg[i]); *f != "" {
				return fail("cannot configure multiple %ss (%s, %s) on the same subnet (%s)", kind, v, *f, subnets[i])
			} else {
				*f = v
			}
			return nil
		}
		return fail("no matching subnet for %s %s", kind, v)
	}
	for _, r := range ranges {
		rp, err := netip.ParsePrefix(r)
		if err != nil {
			return nil, fail("invalid CIDR address: %s", r)
		}
		if err := pair("range", r, func(p netip.Prefix) (bool, error) { return p.Contains(rp.Addr()) && rp.Bits() >= p.Bits(), nil },
			func(c *engine.NetworkIPAMConfig) *string { return &c.IPRange }); err != nil {
			return nil, err
		}
	}
	for _, g := range gateways {
		ga, err := netip.ParseAddr(g)
		if err != nil {
			return nil, fail("invalid IP address: %s", g)
		}
		if err := pair("gateway", g, func(p netip.Prefix) (bool, error) { return p.Contains(ga), nil },
			func(c *engine.NetworkIPAMConfig) *string { return &c.Gateway }); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

type networkRow struct {
	ID        string `json:"ID"`
	Name      string `json:"Name"`
	Driver    string `json:"Driver"`
	Scope     string `json:"Scope"`
	IPv4      string `json:"IPv4"`
	IPv6      string `json:"IPv6"`
	Internal  string `json:"Internal"`
	Labels    string `json:"Labels"`
	CreatedAt string `json:"CreatedAt"`
	labels    map[string]string
}

// Label is the {{.Label "key"}} of docker's network rows.
func (r networkRow) Label(key string) string { return r.labels[key] }

func (a *app) networkLsCommand() *cobra.Command {
	var quiet, noTrunc bool
	var format string
	flt := filters.NewFlag()
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    noArgs,
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			nets, err := e.NetworkList(ctx, engine.NetworkListRequest{Filters: flt.Args})
			if err != nil {
				return err
			}
			slices.SortFunc(nets, func(x, y engine.NetworkResource) int { return strings.Compare(x.Name, y.Name) })
			var rows []networkRow
			for _, n := range nets {
				id := n.ID
				if !noTrunc {
					id = id[:12]
				}
				var ls []string
				for _, k := range slices.Sorted(maps.Keys(n.Labels)) {
					ls = append(ls, k+"="+n.Labels[k])
				}
				created, _ := time.Parse(time.RFC3339Nano, n.Created)
				rows = append(rows, networkRow{ID: id, Name: n.Name, Driver: n.Driver, Scope: n.Scope,
					IPv4: strconv.FormatBool(hasIPv4(n)), IPv6: strconv.FormatBool(n.EnableIPv6), Internal: strconv.FormatBool(n.Internal),
					Labels: strings.Join(ls, ","), CreatedAt: created.String(), labels: n.Labels})
			}
			if quiet {
				for _, r := range rows {
					fmt.Fprintln(a.stdout, r.ID)
				}
				return nil
			}
			if format == "" || strings.TrimSpace(format) == "table" {
				format = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
			}
			return renderRows(a.stdout, format, rows, map[string]string{"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER",
				"Scope": "SCOPE", "IPv4": "IPV4", "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT", "Label": "LABEL"})
		}),
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display network IDs")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "Do not truncate the output")
	cmd.Flags().StringVar(&format, "format", "", "Format output using a custom template")
	cmd.Flags().VarP(flt, "filter", "f", "Provide filter values (e.g. \"driver=bridge\")")
	return cmd
}

func (a *app) networkInspectCommand() *cobra.Command {
	var format string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NETWORK [NETWORK...]",
		Short: "Display detailed information on one or more networks",
		Args:  minArgs(1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			return a.inspectEach(format, args, func(ref string) (any, error) { return e.NetworkInspect(ctx, ref) })
		}),
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a custom template")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "Verbose output for diagnostics")
	return cmd
}

func (a *app) networkRmCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm NETWORK [NETWORK...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more networks",
		Args:    minArgs(1),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			// One at a time, in order, as docker's CLI removes them.
			var errs []string
			for _, ref := range args {
				if err := e.NetworkRemove(ctx, ref); err != nil {
					if force && errdefs.IsNotFound(err) {
						continue
					}
					errs = append(errs, "Error response from daemon: "+err.Error())
					continue
				}
				fmt.Fprintln(a.stdout, ref)
			}
			if len(errs) > 0 {
				fmt.Fprintln(a.stderr, strings.Join(errs, "\n"))
				return &errdefs.ExitStatus{Code: 1}
			}
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not error if the network does not exist")
	return cmd
}

func (a *app) networkPruneCommand() *cobra.Command {
	var force bool
	flt := filters.NewFlag()
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all unused networks",
		Args:  noArgs,
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, _ []string) error {
			if !force && !a.confirm("WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ") {
				return nil
			}
			rep, err := e.NetworksPrune(ctx, flt.Args)
			if rep != nil && len(rep.NetworksDeleted) > 0 {
				fmt.Fprintln(a.stdout, "Deleted Networks:")
				for _, n := range rep.NetworksDeleted {
					fmt.Fprintln(a.stdout, n)
				}
			}
			return err
		}),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().Var(flt, "filter", "Provide filter values (e.g. \"until=<timestamp>\")")
	return cmd
}

func (a *app) networkConnectCommand() *cobra.Command {
	var aliases, links, linkLocal, driverOpts []string
	var ip, ip6 string
	cmd := &cobra.Command{
		Use:   "connect [OPTIONS] NETWORK CONTAINER",
		Short: "Connect a container to a network",
		Args:  exactArgs(2),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			if len(linkLocal) > 0 || len(driverOpts) > 0 {
				return usageError{fmt.Errorf("--link-local-ip and --driver-opt are not supported by berth")}
			}
			es := &engine.EndpointSettingsRequest{Aliases: aliases, Links: links}
			if ip != "" || ip6 != "" {
				es.IPAMConfig = &engine.EndpointIPAMConfig{IPv4Address: ip, IPv6Address: ip6}
			}
			return e.NetworkConnect(ctx, engine.NetworkConnectRequest{Network: args[0], Container: args[1], EndpointConfig: es})
		}),
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&aliases, "alias", nil, "Add network-scoped alias for the container")
	fl.StringVar(&ip, "ip", "", "IPv4 address (e.g., \"172.30.100.104\")")
	fl.StringVar(&ip6, "ip6", "", "IPv6 address (e.g., \"2001:db8::33\")")
	fl.StringArrayVar(&links, "link", nil, "Add link to another container")
	fl.StringArrayVar(&linkLocal, "link-local-ip", nil, "Add a link-local address for the container")
	fl.StringArrayVar(&driverOpts, "driver-opt", nil, "driver options for the network")
	return cmd
}

func (a *app) networkDisconnectCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "disconnect [OPTIONS] NETWORK CONTAINER",
		Short: "Disconnect a container from a network",
		Args:  exactArgs(2),
		RunE: a.withEngine(func(ctx context.Context, e *engine.Engine, args []string) error {
			return e.NetworkDisconnect(ctx, engine.NetworkDisconnectRequest{Network: args[0], Container: args[1], Force: force})
		}),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the container to disconnect from a network")
	return cmd
}

// hasIPv4 is the IPv4 column of docker's rows (API 1.48's EnableIPv4):
// whether the network gives IPv4 addresses.
func hasIPv4(n engine.NetworkResource) bool {
	for _, c := range n.IPAM.Config {
		if p, err := netip.ParsePrefix(c.Subnet); err == nil && p.Addr().Is4() {
			return true
		}
	}
	return false
}
