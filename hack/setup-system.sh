#!/usr/bin/env bash
# System tools the test tiers need beyond Python and Go. etcd is built from Go by
# hack/tools/build.sh (Debian's etcd 3.4 is too old for Kubernetes 1.34); the test node agent
# runs pods under `unshare` (util-linux) and needs root for mount and UTS namespaces.
set -euo pipefail
missing=()
for cmd in unshare mount go; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if ((${#missing[@]})); then
  echo "missing commands: ${missing[*]} (unshare and mount come with util-linux; Go from https://go.dev/dl)" >&2
  exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "warning: not root; the cluster tests' node agent needs root for mount/UTS namespaces" >&2
fi
