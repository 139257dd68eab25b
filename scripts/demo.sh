#!/bin/sh
# The main job: build berth, make a busybox base image from Debian's
# busybox-static, import it, and run containers. Run as root.
set -eu
cd "$(dirname "$0")/.."
. scripts/deps.sh
CGO_ENABLED=0 go build -o bin/ ./cmd/berth ./cmd/berth-shim
# Its own --root and --runroot: the demo never sees, let alone touches,
# the containers, images or volumes of the machine's own berth.
work=$(mktemp -d)
B="bin/berth --root $work/root --runroot $work/run"
cleanup() {
	set +x
	ids=$($B ps -aq 2>/dev/null || true)
	[ -z "$ids" ] || $B rm -f -v $ids >/dev/null 2>&1 || true
	# The built-in runtime keeps a read-only mount of berth's binary in
	# its state directory: detach whatever is mounted below $work.
	awk -v w="$work/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo |
		sort -r | while read -r m; do umount -l "$m"; done
	rm -rf "$work"
}
trap cleanup EXIT
sh scripts/mkbusybox.sh "$work/busybox-rootfs.tar"
set -x
$B import "$work/busybox-rootfs.tar" busybox:latest
$B images
$B run --rm busybox echo hello
$B run --rm busybox sh -c 'exit 3' || echo "exit code: $?"
$B run -d --name web -e A=1 -v data:/data -m 64m --cpus 0.5 --pids-limit 50 busybox sh -c 'while true; do date; sleep 1; done'
$B ps
sleep 2
$B logs --tail 3 web
$B exec web sh -c 'echo A=$A; id; cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max'
$B stop -t 1 web
$B start web
$B ps -a
$B rm -f web
$B volume rm data
