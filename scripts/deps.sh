#!/bin/sh
# Installs what berth needs at run time and in its tests on Debian: an OCI
# runtime (runc; crun too, for --runtime), a static busybox for the base
# image, Go, and Debian's docker.io (a private dockerd drives the built-in
# runtime in an end-to-end test), and Debian's docker-registry and skopeo
# (peers of `berth registry serve` in test/registry). Safe to run again.
set -eu
need=""
for pkg in runc crun busybox-static tini iproute2 iptables nftables ca-certificates docker.io docker-registry skopeo; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
if [ -n "$need" ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq $need >/dev/null
fi
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="$PATH:/usr/local/go/bin"
fi
if ! command -v go >/dev/null 2>&1; then
	echo "deps.sh: Go 1.26 is needed to build berth (Debian 12's golang package is too old)" >&2
	exit 1
fi
