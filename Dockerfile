# syntax=docker/dockerfile:1.7
# arcx images, one file, three targets (not built by the test suite; docs/operator.md has the
# build commands, and how to build without a registry on hack/docker-local-base.sh's base):
#
#   docker build --target operator -t arcx-operator:dev .   # small: kopf + kubernetes client, no JAX
#   docker build --target job-cpu  -t arcx-job:dev-cpu .    # `arcx` with CPU JAX (kind, local clusters)
#   docker build --target job-tpu  -t arcx-job:dev-tpu .    # `arcx` with jax[tpu] (GKE TPU node pools)
#
# Every image runs as the non-root user 65532; dependencies are pinned by constraints.txt.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 65532 arcx \
 && useradd --system --uid 65532 --gid 65532 --home-dir /home/arcx --create-home arcx

# --- operator --------------------------------------------------------------------------
FROM base AS operator-build
COPY constraints.txt /src/constraints.txt
COPY store/pyproject.toml /src/store/pyproject.toml
COPY store/src /src/store/src
COPY operator/pyproject.toml /src/operator/pyproject.toml
COPY operator/src /src/operator/src
# arcx-store is the shared, JAX-free store package (layout, markers, backends).
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --constraint /src/constraints.txt /src/store /src/operator

FROM base AS operator
COPY --from=operator-build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["arcx-operator"]

# --- job images ------------------------------------------------------------------------
FROM base AS job-src
COPY constraints.txt /src/constraints.txt
COPY store/pyproject.toml /src/store/pyproject.toml
COPY store/src /src/store/src
COPY job_image/pyproject.toml /src/job_image/pyproject.toml
COPY job_image/src /src/job_image/src

FROM job-src AS job-cpu-build
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --constraint /src/constraints.txt /src/store /src/job_image

FROM base AS job-cpu
COPY --from=job-cpu-build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH HOME=/home/arcx
USER 65532:65532
WORKDIR /home/arcx
CMD ["arcx", "--help"]

# After job-cpu: the legacy builder (no BuildKit) builds every stage above its target, so
# `--target job-cpu` would otherwise install jax[tpu] too.
FROM job-src AS job-tpu-build
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --constraint /src/constraints.txt /src/store "/src/job_image[tpu]"

FROM base AS job-tpu
COPY --from=job-tpu-build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH HOME=/home/arcx
USER 65532:65532
WORKDIR /home/arcx
CMD ["arcx", "--help"]
