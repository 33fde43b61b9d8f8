#!/usr/bin/env bash
# Build, or reuse, the pinned binaries of the local test control plane (docs/testing.md).
#
#   hack/tools/build.sh               build whatever is missing from the cache
#   hack/tools/build.sh --print-env   build what is missing, then print ARCX_*=path lines
#   hack/tools/build.sh --check       exit 1 (building nothing) when a binary is missing
#
# Everything comes from Go and the module proxy, each through a small wrapper module whose
# go.mod/go.sum pin every dependency: kube-apiserver, kube-controller-manager, kube-scheduler
# and kubectl from k8s.io/kubernetes (hack/tools/k8s), etcd from go.etcd.io/etcd/server/v3
# (hack/tools/etcd), the real test node's kubelet and kube-proxy from the same k8s wrapper,
# CoreDNS from github.com/coredns/coredns with the plugins the node uses (hack/tools/coredns),
# the JobSet controller from sigs.k8s.io/jobset (hack/tools/jobset), helm
# from helm.sh/helm/v3/cmd/helm (hack/tools/helm). Versions are in versions.env.
# It then runs hack/tools/fake-gcs-server.sh (the GCS tier's server, its own script).
# Binaries live outside the work tree in ${ARCX_TOOLS_CACHE:-$HOME/.cache/arcx-tools}/
# <name>-<version>/bin/<name>; a version bump is a new directory, so stale builds are never used.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$HERE/versions.env"
CACHE=${ARCX_TOOLS_CACHE:-$HOME/.cache/arcx-tools}
MODE=build
case "${1:-}" in
  --print-env) MODE=env ;;
  --check) MODE=check ;;
  "") ;;
  *) echo "usage: $0 [--print-env|--check]" >&2; exit 2 ;;
esac

export CGO_ENABLED=0
export GOFLAGS="-trimpath"
LDFLAGS="-s -w"

log() { echo "[build.sh] $*" >&2; }

bin_path() { echo "$CACHE/$1-$2/bin/$1"; }

have() { [[ -x "$(bin_path "$1" "$2")" ]]; }

# Kubernetes binaries report the version they were stamped with (helm checks kubeVersion
# against it); an unstamped build from an older recipe is rebuilt.
have_kube() {
  local out
  have "$1" "$KUBE_VERSION" || return 1
  if [[ $1 == kubectl ]]; then
    out=$("$(bin_path "$1" "$KUBE_VERSION")" version --client 2>/dev/null) || return 1
  else
    out=$("$(bin_path "$1" "$KUBE_VERSION")" --version 2>/dev/null) || return 1
  fi
  [[ $out == *"$KUBE_VERSION"* ]]
}

kube_ldflags() {
  local v=${KUBE_VERSION#v} minor flags=""
  minor=$(echo "$v" | cut -d. -f2)
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$LDFLAGS$flags"
}

# install_into NAME VERSION SRC: move a freshly built binary into its cache slot atomically.
install_into() {
  local dest
  dest=$(dirname "$(bin_path "$1" "$2")")
  mkdir -p "$dest"
  mv -f "$3" "$dest/$1.tmp.$$"
  mv -f "$dest/$1.tmp.$$" "$dest/$1"
}

check_pin() {  # the wrapper go.mod must require the version versions.env names
  local dir=$1 module=$2 version=$3
  if ! grep -qE "^(require )?[[:space:]]*$module $version\$" "$dir/go.mod"; then
    log "$dir/go.mod does not require $module $version (versions.env); update the wrapper module"
    exit 1
  fi
}

build_kube() {
  local tmp
  check_pin "$HERE/k8s" k8s.io/kubernetes "$KUBE_VERSION"
  tmp=$(mktemp -d "$CACHE/.kube.XXXXXX")
  log "building kube-apiserver, kube-controller-manager, kube-scheduler $KUBE_VERSION"
  (cd "$HERE/k8s" && go build -ldflags="$(kube_ldflags)" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler)
  for b in kube-apiserver kube-controller-manager kube-scheduler; do
    install_into "$b" "$KUBE_VERSION" "$tmp/$b"
  done
  rmdir "$tmp"
}

build_node() {  # the real node's kubelet and kube-proxy: same wrapper module and pins
  local tmp
  check_pin "$HERE/k8s" k8s.io/kubernetes "$KUBE_VERSION"
  tmp=$(mktemp -d "$CACHE/.node.XXXXXX")
  log "building kubelet, kube-proxy $KUBE_VERSION"
  (cd "$HERE/k8s" && go build -ldflags="$(kube_ldflags)" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy)
  for b in kubelet kube-proxy; do
    install_into "$b" "$KUBE_VERSION" "$tmp/$b"
  done
  rmdir "$tmp"
}

build_kubectl() {  # same wrapper module and Go build cache as build_kube
  local tmp
  check_pin "$HERE/k8s" k8s.io/kubernetes "$KUBE_VERSION"
  tmp=$(mktemp -d "$CACHE/.kubectl.XXXXXX")
  log "building kubectl $KUBE_VERSION"
  (cd "$HERE/k8s" && go build -ldflags="$(kube_ldflags)" -o "$tmp/kubectl" k8s.io/kubernetes/cmd/kubectl)
  install_into kubectl "$KUBE_VERSION" "$tmp/kubectl"
  rmdir "$tmp"
}

# build_wrapped NAME DIR MODULE VERSION PACKAGE [LDFLAGS]: build PACKAGE through the wrapper
# module in hack/tools/DIR (its go.mod pins MODULE at VERSION; its go.sum pins every dependency).
build_wrapped() {
  local tmp
  check_pin "$HERE/$2" "$3" "$4"
  tmp=$(mktemp -d "$CACHE/.$1.XXXXXX")
  log "building $1 $4"
  (cd "$HERE/$2" && go build -ldflags="$LDFLAGS ${6:-}" -o "$tmp/$1" "$5")
  install_into "$1" "$4" "$tmp/$1"
  rmdir "$tmp"
}

jobset_crds() {  # the CRDs ship in the module source, in the module cache after the build
  local dest src
  dest="$CACHE/jobset-$JOBSET_VERSION/crd"
  [[ -f "$dest/jobset.x-k8s.io_jobsets.yaml" ]] && return 0
  src=$(go mod download -json "sigs.k8s.io/jobset@$JOBSET_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  mkdir -p "$dest"
  cp "$src"/config/components/crd/bases/*.yaml "$dest/"
  chmod -R u+w "$dest"
}

missing=()
have_kube kube-apiserver && have_kube kube-controller-manager && have_kube kube-scheduler \
  || missing+=(kube)
have_kube kubectl || missing+=(kubectl)
have_kube kubelet && have_kube kube-proxy || missing+=(node)
have coredns "$COREDNS_VERSION" || missing+=(coredns)
have etcd "$ETCD_VERSION" || missing+=(etcd)
have jobset "$JOBSET_VERSION" && [[ -f "$CACHE/jobset-$JOBSET_VERSION/crd/jobset.x-k8s.io_jobsets.yaml" ]] \
  || missing+=(jobset)
have helm "$HELM_VERSION" || missing+=(helm)

if [[ $MODE == check ]]; then
  if ((${#missing[@]})); then log "missing: ${missing[*]}"; exit 1; fi
  exit 0
fi

mkdir -p "$CACHE"
start=$SECONDS
for m in "${missing[@]}"; do
  case $m in
    kube) build_kube ;;
    kubectl) build_kubectl ;;
    node) build_node ;;
    # The wrapper's own main: CoreDNS with only the plugins the real node uses.
    coredns) build_wrapped coredns coredns github.com/coredns/coredns "$COREDNS_VERSION" . ;;
    etcd) build_wrapped etcd etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 ;;
    jobset) have jobset "$JOBSET_VERSION" \
              || build_wrapped jobset jobset sigs.k8s.io/jobset "$JOBSET_VERSION" sigs.k8s.io/jobset \
                   "-X sigs.k8s.io/jobset/pkg/version.GitVersion=$JOBSET_VERSION"
            jobset_crds ;;
    helm) build_wrapped helm helm helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
            "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" ;;
  esac
done
log "ready in $((SECONDS - start))s (built: ${missing[*]:-nothing})"

# The GCS tier's server has its own script (it prints the binary's path).
FAKE_GCS=""
if [[ -x "$HERE/fake-gcs-server.sh" ]]; then
  FAKE_GCS=$("$HERE/fake-gcs-server.sh")
fi

if [[ $MODE == env ]]; then
  echo "ARCX_ETCD=$(bin_path etcd "$ETCD_VERSION")"
  echo "ARCX_KUBE_APISERVER=$(bin_path kube-apiserver "$KUBE_VERSION")"
  echo "ARCX_KUBE_CONTROLLER_MANAGER=$(bin_path kube-controller-manager "$KUBE_VERSION")"
  echo "ARCX_KUBE_SCHEDULER=$(bin_path kube-scheduler "$KUBE_VERSION")"
  echo "ARCX_KUBECTL=$(bin_path kubectl "$KUBE_VERSION")"
  echo "ARCX_JOBSET=$(bin_path jobset "$JOBSET_VERSION")"
  echo "ARCX_JOBSET_CRDS=$CACHE/jobset-$JOBSET_VERSION/crd"
  echo "ARCX_HELM=$(bin_path helm "$HELM_VERSION")"
  echo "ARCX_KUBELET=$(bin_path kubelet "$KUBE_VERSION")"
  echo "ARCX_KUBE_PROXY=$(bin_path kube-proxy "$KUBE_VERSION")"
  echo "ARCX_COREDNS=$(bin_path coredns "$COREDNS_VERSION")"
  if [[ -n $FAKE_GCS ]]; then echo "ARCX_FAKE_GCS_SERVER=$FAKE_GCS"; fi
fi
