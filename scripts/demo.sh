#!/bin/sh
# The main job: build berth, make a busybox base image from Debian's
# busybox-static, import it, and run containers. Run as root.
set -eu
cd "$(dirname "$0")/.."
. scripts/deps.sh
CGO_ENABLED=0 go build -o bin/berth ./cmd/berth
B=bin/berth
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sh scripts/mkbusybox.sh "$work/busybox-rootfs.tar"
set -x
$B import "$work/busybox-rootfs.tar" busybox:latest
$B images
$B run --rm busybox echo hello
$B run --rm busybox sh -c 'exit 3' || echo "exit code: $?"
$B rm -f web >/dev/null 2>&1 || true
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
