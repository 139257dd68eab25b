#!/bin/sh
# The test run: installs prerequisites, then vets and tests everything.
# Tests that need root, runc or the kernel fail (not skip) when CI=true.
set -eu
cd "$(dirname "$0")/.."
. scripts/deps.sh
echo "== gofmt"
bad=$(gofmt -l cmd internal test bench 2>/dev/null || true)
if [ -n "$bad" ]; then
	echo "gofmt would change:" >&2
	echo "$bad" >&2
	exit 1
fi
echo "== go vet"
go vet ./...
echo "== go test"
# -p 2: two packages at a time on these 2-core machines. ./... includes
# the differential suite (test/diff): berth against Docker's golden
# outputs and, in the same run, against a private dockerd (docker.io,
# installed by deps.sh); with CI=true a missing dockerd fails it.
go test -p 2 -count=1 -timeout 30m ./... "$@"
echo "== end-to-end tests again, with runc as the runtime"
# The first pass ran containers with berth's built-in runtime (the
# default); the runtime package's conformance suite covers both, and this
# keeps the whole CLI honest with an OCI runtime binary too.
BERTH_RUNTIME=runc go test -count=1 -timeout 30m ./test/e2e/ "$@"
