# ketamine-cds: CDS Hooks service image.
#   Build:  docker build -t ketamine-cds:0.1.0 .          (podman: podman build --format docker ...)
#   Run:    docker run --rm -p 8080:8080 -e KETAMINE_CDS_TRUSTED_CLIENTS=/run/secrets/trusted-clients.json \
#             -v "$PWD/trusted-clients.json:/run/secrets/trusted-clients.json:ro" ketamine-cds:0.1.0
# Every environment variable is described in README.md ("Configuration reference"); building behind a
# proxy or a package mirror in README.md ("Build behind a proxy or a package mirror").

# requirements/runtime-constraints.txt is resolved for this Python minor: refresh it when changing it.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build stage: install the package and its runtime dependencies into a virtualenv ------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# The usual pip settings, for an internal package mirror (no credentials here: build arguments are kept in
# the build's metadata; put a password in the pip_conf secret below).
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md LICENSE openapi.yaml ./
COPY requirements/runtime-constraints.txt ./requirements/
COPY cds_service ./cds_service
# A regular (non-editable) install: runtime dependencies only, no dev extras, no build tools in the image.
# Every runtime dependency (and what it pulls in) is held at the exact version pinned in
# requirements/runtime-constraints.txt, so rebuilding the same commit gives the same packages. LICENSE goes
# into the installed package's metadata (/opt/venv/lib/python3.*/site-packages/ketamine_cds-*.dist-info/licenses/).
# Optional build secrets, mounted for this step only (never in a layer): pip_conf, a pip.conf (e.g. an index
# URL with credentials), and pip_ca, a PEM bundle that includes a TLS-inspecting proxy's CA.
# pip, setuptools and wheel leave the virtualenv once it is built: nothing at run time needs them.
RUN --mount=type=secret,id=pip_conf,required=false \
    --mount=type=secret,id=pip_ca,required=false \
    if [ -z "${PIP_INDEX_URL:-}" ]; then unset PIP_INDEX_URL; fi \
    && if [ -z "${PIP_EXTRA_INDEX_URL:-}" ]; then unset PIP_EXTRA_INDEX_URL; fi \
    && if [ -z "${PIP_TRUSTED_HOST:-}" ]; then unset PIP_TRUSTED_HOST; fi \
    && if [ -s /run/secrets/pip_conf ]; then export PIP_CONFIG_FILE=/run/secrets/pip_conf; fi \
    && if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
    && /opt/venv/bin/pip install --no-cache-dir -c requirements/runtime-constraints.txt /src \
    && /opt/venv/bin/pip uninstall --yes pip setuptools wheel \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib

# ---- runtime stage: slim base, non-root, no compilers, no pip ------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="ketamine-cds" \
      org.opencontainers.image.description="FHIR CDS Hooks 2.0 service for IV ketamine and intranasal esketamine orders" \
      org.opencontainers.image.licenses="Apache-2.0"

# No package installer in the running image: the base image's pip, setuptools and wheel go, with the
# copies ensurepip keeps. The data directory belongs to the service user and to group 0, group-writable, so
# that an arbitrary UID (OpenShift runs containers as a random UID in group 0) can write there too.
RUN python -m pip uninstall --yes pip setuptools wheel \
    && rm -rf /usr/local/lib/python3.*/ensurepip/_bundled \
    && groupadd --system --gid 10001 cds \
    && useradd --system --uid 10001 --gid cds --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin cds \
    && mkdir -p /var/lib/ketamine-cds \
    && chown 10001:0 /var/lib/ketamine-cds \
    && chmod 2775 /var/lib/ketamine-cds

COPY --from=build /opt/venv /opt/venv

# Secure and production defaults; override any of them at run time (README.md, "Configuration reference").
# PROMETHEUS_MULTIPROC_DIR is made at start by whichever UID runs the server, under /tmp (a tmpfs or an
# emptyDir when the root filesystem is read-only).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KETAMINE_CDS_AUTH=on \
    KETAMINE_CDS_WORKERS=2 \
    KETAMINE_CDS_THREADS=4 \
    KETAMINE_CDS_TIMEOUT=30 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/ketamine-cds-metrics \
    DATABASE_URL=sqlite:////var/lib/ketamine-cds/feedback.sqlite3

# The default SQLite feedback store lives here: a volume, so the file outlives the container and the
# directory stays writable under `docker run --read-only` (name it: -v ketamine-cds-data:/var/lib/ketamine-cds).
VOLUME ["/var/lib/ketamine-cds"]
WORKDIR /var/lib/ketamine-cds
USER 10001:10001
EXPOSE 8080

# Liveness only (/healthz touches no dependency); Kubernetes uses its own probes (deploy/kubernetes).
# Kept only in the Docker image format: build with podman/buildah using --format docker.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]

# In-flight calls get KETAMINE_CDS_TIMEOUT (30 s) after SIGTERM: stop with `docker stop -t 35`.
STOPSIGNAL SIGTERM
# gunicorn (gthread) with KETAMINE_CDS_WORKERS x KETAMINE_CDS_THREADS, worker timeout KETAMINE_CDS_TIMEOUT
CMD ["ketamine-cds", "serve", "--host", "0.0.0.0", "--port", "8080"]
