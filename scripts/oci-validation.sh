#!/bin/sh
# Runs the OCI runtime validation suite (opencontainers/runtime-tools'
# validation/*/*.t) against runc and against berth's built-in runtime
# through its runc-compatible command line (a berth-runc link), and prints
# per-runtime totals and a per-file comparison.
#
#   sudo sh scripts/oci-validation.sh [TEST ...]      # e.g. create hooks pidfile
#
# The suite is built from source fetched through the Go module proxy (never
# vendored here). Environment:
#   RUNTIMES      runtimes to judge (default "runc berth")
#   TEST_TIMEOUT  seconds per test file (default 120)
#   WORK          where the suite is built and run (default: a new temp dir)
#   KEEP=1        keep WORK afterwards (its results/ has every TAP output)
set -eu

RT_VERSION=v0.9.1-0.20251114084447-edf4cb3d2116
RUNTIMES=${RUNTIMES:-"runc berth"}
TEST_TIMEOUT=${TEST_TIMEOUT:-120}
REPO=$(cd "$(dirname "$0")/.." && pwd)

[ "$(id -u)" = 0 ] || { echo "oci-validation: run as root" >&2; exit 1; }
for tool in go unshare timeout; do
	command -v $tool >/dev/null || { echo "oci-validation: $tool is missing" >&2; exit 1; }
done

WORK=${WORK:-$(mktemp -d /tmp/oci-validation.XXXXXX)}
mkdir -p "$WORK"
cleanup() { [ "${KEEP:-}" = 1 ] || rm -rf "$WORK"; }
trap cleanup EXIT

# --- build the suite -------------------------------------------------------
SRC=$WORK/runtime-tools
if [ ! -x "$SRC/runtimetest" ]; then
	dir=$(cd "$WORK" && GOFLAGS=-mod=mod go mod download -json \
		"github.com/opencontainers/runtime-tools@$RT_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
	[ -d "$dir" ] || { echo "oci-validation: could not fetch runtime-tools $RT_VERSION" >&2; exit 1; }
	rm -rf "$SRC"
	cp -r "$dir" "$SRC"
	chmod -R u+w "$SRC"
	rm -rf "$SRC/vendor"
	(
		cd "$SRC"
		export GOFLAGS=-mod=mod GOTOOLCHAIN=local
		go mod tidy >/dev/null 2>&1 || true
		CGO_ENABLED=0 go build -tags "netgo osusergo" -o runtimetest ./cmd/runtimetest
		for f in validation/*/*.go; do
			case $f in validation/util/*) continue ;; esac
			go build -o "${f%.go}.t" "./$f"
		done
	)
fi

# --- the runtimes ----------------------------------------------------------
BIN=$WORK/bin
mkdir -p "$BIN"
if echo " $RUNTIMES " | grep -q ' berth '; then
	(cd "$REPO" && CGO_ENABLED=0 go build -o "$BIN/berth" ./cmd/berth)
	ln -sf berth "$BIN/berth-runc"
fi
runtime_path() {
	case $1 in
	berth) echo "$BIN/berth-runc" ;;
	*) command -v "$1" ;;
	esac
}

# --- run -------------------------------------------------------------------
key() { # validation/DIR/NAME.t -> DIR, or DIR-NAME when they differ
	d=$(basename "$(dirname "$1")") n=$(basename "$1" .t)
	if [ "$d" = "$n" ]; then echo "$d"; else echo "$d-$n"; fi
}
cd "$SRC"
if [ $# -gt 0 ]; then
	TESTS=$(for t in "$@"; do ls validation/$t/*.t; done)
else
	TESTS=$(ls validation/*/*.t)
fi
RES=$WORK/results
mkdir -p "$RES"
# The tests make their bundles under TMPDIR: keep them (and what failed
# tests leave) in WORK. A container with a user namespace runs as a mapped
# uid that must reach its bundle.
mkdir -p "$WORK/tmp"
chmod 755 "$WORK" "$WORK/tmp"
export TMPDIR=$WORK/tmp
for rt in $RUNTIMES; do
	path=$(runtime_path "$rt")
	# A full run starts afresh; a run of some tests replaces their results
	# only (with KEEP=1 and the same WORK, the totals then mix both).
	[ $# -gt 0 ] || rm -rf "${RES:?}/$rt"
	mkdir -p "$RES/$rt"
	for t in $TESTS; do
		out=$RES/$rt/$(key "$t").tap
		RUNTIME=$path timeout -k 5 "$TEST_TIMEOUT" \
			unshare -m --propagation private "./$t" >"$out" 2>"$out.stderr" </dev/null || true
	done
done

# --- report ----------------------------------------------------------------
count() { # FILE -> "ok notok skip"
	awk '
		/^ok / { if ($0 ~ /# [Ss][Kk][Ii][Pp]/) s++; else o++ }
		/^not ok / { if ($0 ~ /# [Ss][Kk][Ii][Pp]/) s++; else if ($0 ~ /# TODO/) o++; else n++ }
		/^1\.\.0 # [Ss][Kk][Ii][Pp]/ { s++ }
		END { printf "%d %d %d\n", o, n, s }' "$1"
}
echo
printf '%-10s %8s %8s %8s %6s\n' runtime ok "not ok" skip files
for rt in $RUNTIMES; do
	o=0 n=0 s=0 f=0
	for out in "$RES/$rt"/*.tap; do
		set -- $(count "$out")
		o=$((o + $1)) n=$((n + $2)) s=$((s + $3)) f=$((f + 1))
	done
	printf '%-10s %8d %8d %8d %6d\n' "$rt" $o $n $s $f
done
echo
printf '%-34s' "file (ok/not ok/skip)"
for rt in $RUNTIMES; do printf ' %14s' "$rt"; done
echo
for t in $TESTS; do
	k=$(key "$t")
	printf '%-34s' "$k"
	for rt in $RUNTIMES; do
		set -- $(count "$RES/$rt/$k.tap")
		printf ' %14s' "$1/$2/$3"
	done
	echo
done
