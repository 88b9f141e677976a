# syntax=docker/dockerfile:1
# ketamine-cds: CDS Hooks service image.
#   Build:  docker build -t ketamine-cds:0.1.0 .
#   Run:    docker run --rm -p 8080:8080 -e KETAMINE_CDS_TRUSTED_CLIENTS=/run/secrets/trusted-clients.json \
#             -v "$PWD/trusted-clients.json:/run/secrets/trusted-clients.json:ro" ketamine-cds:0.1.0
# Every environment variable is described in README.md ("Configuration reference").

# requirements/runtime-constraints.txt is resolved for this Python minor: refresh it when changing it.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build stage: install the package and its runtime dependencies into a virtualenv ------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md LICENSE openapi.yaml ./
COPY requirements/runtime-constraints.txt ./requirements/
COPY cds_service ./cds_service
# A regular (non-editable) install: runtime dependencies only, no dev extras, no build tools in the image.
# Every runtime dependency (and what it pulls in) is held at the exact version pinned in
# requirements/runtime-constraints.txt, so rebuilding the same commit gives the same packages. LICENSE goes
# into the installed package's metadata (/opt/venv/lib/python3.*/site-packages/ketamine_cds-*.dist-info/licenses/).
RUN /opt/venv/bin/pip install --no-cache-dir -c requirements/runtime-constraints.txt /src \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib

# ---- runtime stage: slim base, non-root, no compilers, no pip cache ---------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="ketamine-cds" \
      org.opencontainers.image.description="FHIR CDS Hooks 2.0 service for IV ketamine and intranasal esketamine orders" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 cds \
    && useradd --system --uid 10001 --gid cds --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin cds \
    && mkdir -p /var/lib/ketamine-cds /tmp/ketamine-cds-metrics \
    && chown cds:cds /var/lib/ketamine-cds /tmp/ketamine-cds-metrics

COPY --from=build /opt/venv /opt/venv

# Secure and production defaults; override any of them at run time (README.md, "Configuration reference").
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KETAMINE_CDS_AUTH=on \
    KETAMINE_CDS_WORKERS=2 \
    KETAMINE_CDS_THREADS=4 \
    KETAMINE_CDS_TIMEOUT=30 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/ketamine-cds-metrics \
    DATABASE_URL=sqlite:////var/lib/ketamine-cds/feedback.sqlite3

WORKDIR /var/lib/ketamine-cds
USER 10001:10001
EXPOSE 8080

# Liveness only (/healthz touches no dependency); Kubernetes uses its own probes (deploy/kubernetes).
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]

STOPSIGNAL SIGTERM
# gunicorn (gthread) with KETAMINE_CDS_WORKERS x KETAMINE_CDS_THREADS, worker timeout KETAMINE_CDS_TIMEOUT
CMD ["ketamine-cds", "serve", "--host", "0.0.0.0", "--port", "8080"]
