#!/usr/bin/env bash
# System packages the test tiers need: etcd (Debian's etcd-server) for the local control plane.
set -euo pipefail
need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing system packages: ${need[*]}; install them with: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi
# etcd-server's Debian package starts a system etcd on 2379; the tests start their own on
# free ports, so stop it to keep the machine quiet.
if command -v systemctl >/dev/null 2>&1; then systemctl stop etcd >/dev/null 2>&1 || true; fi
pkill -f "^/usr/bin/etcd$" >/dev/null 2>&1 || true
