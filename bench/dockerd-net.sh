#!/bin/sh
# dockerd-net.sh start|stop DIR [BRIDGE]: a private Docker engine WITH its
# default bridge networking (a bridge, iptables, the userland proxy), the
# anchor of the bench's network section. The bench's usual private dockerd
# runs with --bridge=none and has no bridge. The default bridge is BRIDGE
# (default dknb0), made here and handed to dockerd with -b, not docker0:
# another Docker engine on the host, or its cleanup, owns docker0. "stop"
# stops it by its pidfile and puts the host back: the bridge, and the
# iptables rules, chains and (empty) tables it added are removed, checked
# against the iptables-save taken at "start".
set -eu
cmd=${1:?usage: dockerd-net.sh start|stop DIR [BRIDGE]}
dir=${2:?usage: dockerd-net.sh start|stop DIR [BRIDGE]}
br=${3:-dknb0}
case $cmd in
start)
	if ip link show "$br" >/dev/null 2>&1; then
		echo "$br exists already (another Docker engine?); not starting" >&2
		exit 1
	fi
	mkdir -p "$dir"
	iptables-save >"$dir/iptables.before"
	cat /proc/sys/net/ipv4/ip_forward >"$dir/ip_forward.before"
	echo "$br" >"$dir/bridge"
	# Addresses away from the 172.16/12 networks berth and other engines
	# use on this host.
	ip link add "$br" type bridge
	ip addr add 10.199.0.1/24 dev "$br"
	ip link set "$br" up
	dockerd --data-root "$dir/data" --exec-root "$dir/exec" \
		-H "unix://$dir/docker.sock" --pidfile "$dir/docker.pid" \
		-b "$br" --default-address-pool base=10.198.0.0/16,size=24 \
		>"$dir/log" 2>&1 &
	for _ in $(seq 100); do
		DOCKER_HOST="unix://$dir/docker.sock" docker version >/dev/null 2>&1 && exit 0
		sleep 0.1
	done
	echo "dockerd did not answer; see $dir/log" >&2
	exit 1
	;;
stop)
	if [ -f "$dir/docker.pid" ]; then
		pid=$(cat "$dir/docker.pid")
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	ip link del "$(cat "$dir/bridge")" 2>/dev/null || true
	# Docker's iptables: its chains in filter and nat, their jumps from
	# the built-in chains and its MASQUERADE rule. Delete every rule that
	# was not there before, then its chains.
	for t in filter nat; do
		iptables-save -t $t | grep '^-A' | while read -r line; do
			grep -qxF -- "$line" "$dir/iptables.before" && continue
			# shellcheck disable=SC2086
			iptables -t $t $(echo "$line" | sed 's/^-A/-D/') 2>/dev/null || true
		done
		for ch in $(iptables-save -t $t | sed -n 's/^:\(DOCKER[^ ]*\) .*/\1/p'); do
			grep -q "^:$ch " "$dir/iptables.before" && continue
			iptables -t $t -X "$ch" 2>/dev/null || true
		done
	done
	iptables -P FORWARD "$(sed -n 's/^:FORWARD \([A-Z]*\).*/\1/p' "$dir/iptables.before" | head -1)" 2>/dev/null || true
	cat "$dir/ip_forward.before" >/proc/sys/net/ipv4/ip_forward
	# iptables-nft made the tables ip filter and ip nat: gone again when
	# they were not there before and nothing else uses them now.
	for t in filter nat; do
		grep -q "^\*$t" "$dir/iptables.before" && continue
		iptables-save -t $t | grep -q '^-A\|^:[^ ]* - ' && continue
		nft delete table ip $t 2>/dev/null || true
	done
	iptables-save | grep -v '^#' >"$dir/iptables.after" || true
	if ! grep -v '^#' "$dir/iptables.before" | diff - "$dir/iptables.after" >/dev/null; then
		echo "iptables differ from before dockerd started:" >&2
		grep -v '^#' "$dir/iptables.before" | diff - "$dir/iptables.after" >&2 || true
	fi
	umount "$dir"/exec/netns/* 2>/dev/null || true
	rm -rf "$dir"
	;;
*)
	echo "usage: dockerd-net.sh start|stop DIR" >&2
	exit 2
	;;
esac
