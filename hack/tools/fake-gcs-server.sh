#!/usr/bin/env bash
# Build fake-gcs-server (a GCS-protocol server that honours ifGenerationMatch) from its pinned
# Go module into the tools cache and print the binary's path. A second call reuses the cache.
#
#   hack/tools/fake-gcs-server.sh            # -> .../fake-gcs-server-v1.52.2/fake-gcs-server
#
# Cache: ${ARCX_TOOLS_CACHE:-$HOME/.cache/arcx-tools}/fake-gcs-server-<version>/
set -euo pipefail

VERSION="${FAKE_GCS_SERVER_VERSION:-v1.52.2}"
CACHE="${ARCX_TOOLS_CACHE:-$HOME/.cache/arcx-tools}"
DEST="$CACHE/fake-gcs-server-$VERSION"
BIN="$DEST/fake-gcs-server"

if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "fake-gcs-server.sh: 'go' is not on PATH; install Go >= 1.22 to build fake-gcs-server" >&2
  exit 1
fi

mkdir -p "$DEST"
tmp="$(mktemp -d "$DEST/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "fake-gcs-server.sh: building github.com/fsouza/fake-gcs-server@$VERSION (first time only)" >&2
GOBIN="$tmp" GOFLAGS="${GOFLAGS:-} -buildvcs=false" CGO_ENABLED=0 \
  nice go install "github.com/fsouza/fake-gcs-server@$VERSION" >&2
mv "$tmp/fake-gcs-server" "$BIN"
echo "$BIN"
