#!/usr/bin/env bash
# System tools the test tiers need beyond Python and Go. etcd, the kubelet, kube-proxy and
# CoreDNS are built from Go by hack/tools/build.sh (Debian's etcd 3.4 is too old for
# Kubernetes 1.34). The real test node (hack/cluster/node.py) takes the rest from Debian's
# packages, installed here when missing: containerd and runc (the runtime),
# containernetworking-plugins (CNI bridge, host-local, loopback), iptables and nftables
# (kube-proxy's rules and their removal), debootstrap (the images' base). It needs root.
set -euo pipefail
missing=()
for cmd in unshare mount nsenter go; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if ((${#missing[@]})); then
  echo "missing commands: ${missing[*]} (unshare, mount and nsenter come with util-linux; Go from https://go.dev/dl)" >&2
  exit 1
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "warning: not root; the cluster tier's real node needs root (set ARCX_E2E_NODE=agent for the node agent, which needs root too)" >&2
  exit 0
fi
# command -> Debian package
declare -A node_packages=(
  [containerd]=containerd [runc]=runc [iptables]=iptables [nft]=nftables
  [debootstrap]=debootstrap [ip]=iproute2
)
need=()
for cmd in "${!node_packages[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || need+=("${node_packages[$cmd]}")
done
[[ -x /usr/lib/cni/bridge || -x /opt/cni/bin/bridge ]] || need+=(containernetworking-plugins)
if ((${#need[@]})); then
  echo "setup-system: installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
fi
