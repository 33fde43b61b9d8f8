#!/usr/bin/env bash
# The e2e suite (tests/cluster) against a kind cluster, where Docker exists (docs/testing.md).
#
#   hack/kind-e2e.sh            create the cluster, install JobSet, build and load the images,
#                               install the chart, run the suite
#   KEEP=1 hack/kind-e2e.sh     leave the cluster running afterwards
#
# Needs docker, kind, kubectl and helm on PATH. It has not been run in this repository's CI:
# that machine has no Docker and no kind node image (the local control plane of hack/cluster
# runs the same tests there).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
# shellcheck source=tools/versions.env
source "$HERE/tools/versions.env"
CLUSTER=${KIND_CLUSTER:-arcx-e2e}
SHARED=${ARCX_E2E_SHARED_DIR:-/tmp/arcx-e2e-shared}
TAG=e2e
KUBECONFIG_FILE=$(mktemp)

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "kind-e2e: $tool is not on PATH" >&2; exit 1; }
done

cleanup() {
  if [[ -z ${KEEP:-} ]]; then kind delete cluster --name "$CLUSTER" || true; fi
  rm -f "$KUBECONFIG_FILE"
}
trap cleanup EXIT

mkdir -p "$SHARED"
# The job pods run as uid 65532 and write their outputs here.
chmod 0777 "$SHARED"
# The shared directory appears at the same path on the node. The tests mount it into the
# job pods and the operator through a hostPath PersistentVolume and a claim per namespace
# (hack/cluster/volumes.py; Pod Security restricted admits claims, not hostPath), so the
# pods, the operator and the tests (which write the tiny model there and read the outputs)
# see the same files.
cat <<EOF | kind create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE" --config -
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    extraMounts:
      - hostPath: $SHARED
        containerPath: $SHARED
EOF
export KUBECONFIG=$KUBECONFIG_FILE

kubectl apply --server-side \
  -f "https://github.com/kubernetes-sigs/jobset/releases/download/${JOBSET_VERSION}/manifests.yaml"
kubectl -n jobset-system wait --for=condition=Available deployment --all --timeout=300s

docker build -f "$REPO/Dockerfile" --target operator -t "arcx-operator:$TAG" "$REPO"
docker build -f "$REPO/Dockerfile" --target job-cpu -t "arcx-job:$TAG-cpu" "$REPO"
kind load docker-image --name "$CLUSTER" "arcx-operator:$TAG" "arcx-job:$TAG-cpu"

# The tests install the chart themselves (tests/cluster/conftest.py `arcx`: these images,
# pullPolicy Never, the shared directory through a claim, a namespace enforcing Pod Security
# restricted), exactly as on the local real node.
ARCX_E2E_KUBECONFIG=$KUBECONFIG_FILE ARCX_E2E_SHARED_DIR=$SHARED \
  ARCX_E2E_OPERATOR_IMAGE="arcx-operator:$TAG" ARCX_E2E_JOB_IMAGE="arcx-job:$TAG-cpu" \
  "$REPO/.venv/bin/pytest" -m cluster "$REPO/tests/cluster" "$@"
