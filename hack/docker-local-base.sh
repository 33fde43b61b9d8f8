#!/usr/bin/env bash
# Build a local stand-in for the Dockerfile's base image, python:3.11-slim-bookworm, where no
# container registry can be reached (the development sandbox and CI reach Debian's package
# mirror and PyPI, not Docker Hub), so that the Dockerfile can still be built and its images run:
#
#   hack/docker-local-base.sh                       # -> arcx-local/python:3.11-bookworm
#   docker build --build-arg PYTHON_IMAGE=arcx-local/python:3.11-bookworm \
#     --target operator -t arcx-operator:dev .
#
# What it is: a minimal Debian bookworm root filesystem made by debootstrap (--variant=minbase)
# with Debian's python3 (3.11 on bookworm), python3-venv, python-is-python3 (`python` on PATH)
# and ca-certificates, imported with `docker import`. What the Dockerfile needs from its base
# is exactly that: `python` 3.11 with `-m venv`, plus groupadd/useradd (from passwd, part of
# minbase). It differs from the official image in that Python lives in /usr/bin (Debian's build)
# rather than /usr/local/bin; the images' venvs in /opt/venv do not care.
#
# Where outbound TLS is re-signed by a local egress proxy (as in the development sandbox), pip
# inside `docker build` fails certificate checks unless the image trusts that CA too: the CA
# files this machine added under /usr/local/share/ca-certificates are copied into the image and
# PIP_CERT points pip at the system bundle (pip's own bundle would not have them). Images built
# on this base therefore trust this machine's local CAs: they are for local testing, never push.
#
# Needs root, debootstrap and a running Docker engine (docs/operator.md, "Building the images
# without a registry", shows how one was started here). Environment:
#   MIRROR   Debian mirror (default: the first deb.debian.org-style URI apt uses here, else
#            http://deb.debian.org/debian)
#   TAG      image name (default arcx-local/python:3.11-bookworm)
#   HOST_CA  1 (default) copy this machine's local CAs into the image, 0 to leave them out
#   WORKDIR  where the root filesystem is made and then removed (default: a mktemp dir in /tmp)
set -euo pipefail

TAG=${TAG:-arcx-local/python:3.11-bookworm}

for tool in debootstrap docker; do
  command -v "$tool" >/dev/null || { echo "docker-local-base: $tool is not on PATH" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "docker-local-base: debootstrap needs root" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "docker-local-base: no Docker engine answers (docker info)" >&2; exit 1; }

if [[ -z ${MIRROR:-} ]]; then
  # The mirror apt already uses (deb822 .sources or one-line sources.list), not -security.
  MIRROR=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n 1 | tr -d ' ' || true)
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi

ROOT=${WORKDIR:-$(mktemp -d /tmp/arcx-base.XXXXXX)}
# tar records "." too: the image's / would keep mktemp's 0700 and the non-root user could not
# reach /bin ("stat /bin/ls: permission denied").
chmod 0755 "$ROOT"
cleanup() { rm -rf "$ROOT"; }
trap cleanup EXIT

echo "docker-local-base: debootstrap bookworm from $MIRROR into $ROOT"
debootstrap --variant=minbase \
  --include=python3,python3-venv,python-is-python3,ca-certificates \
  bookworm "$ROOT" "$MIRROR"

if [[ ${HOST_CA:-1} == 1 ]] && compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$ROOT"/usr/local/share/ca-certificates/
  chroot "$ROOT" update-ca-certificates
fi

# Slim it the way the official slim images are: no apt lists, caches, docs or man pages.
chroot "$ROOT" apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin \
  "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/*

tar -C "$ROOT" --numeric-owner -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["python3"]' \
  - "$TAG"

# As a non-root user, as the arcx images run.
version=$(docker run --rm --user 65532:65532 "$TAG" python --version)
echo "docker-local-base: $TAG ready ($version)"
case $version in
  "Python 3.11."*) ;;
  *) echo "docker-local-base: expected Python 3.11, got '$version'" >&2; exit 1 ;;
esac
