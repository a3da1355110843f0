# syntax=docker/dockerfile:1
# Serves a mamamia catalog mounted at /data:  docker run -p 8000:8000 -v $PWD/catalog:/data:ro mamamia
FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
# The image's own Python 3.11, never a downloaded one (the runtime stage runs the venv on it);
# the system trust store, so a build behind a TLS-inspecting proxy works once the base trusts it.
ENV UV_CACHE_DIR=/var/cache/uv UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON=/usr/local/bin/python3.11 UV_PYTHON_DOWNLOADS=never UV_SYSTEM_CERTS=1
# gcc builds the SDK's one C module (mamamia._boxdecode, the loop that decodes a crop's chunks);
# only the built module reaches the runtime stage. Debian's packages follow the base image.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY schema/ schema/
COPY sdk/ sdk/
COPY ingest/ ingest/
COPY server/ server/
# The cache mount keeps downloaded wheels between builds; it is not part of the image.
RUN --mount=type=cache,target=/var/cache/uv \
    uv sync --locked --no-dev --no-editable --package mamamia-server

FROM python:3.11-slim AS runtime
RUN useradd --create-home --uid 10001 mamamia
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 MAMAMIA_SERVER_HOST=0.0.0.0
USER 10001
EXPOSE 8000
# The port is read from the server's own command line (or MAMAMIA_SERVER_PORT), so the check
# follows `docker run IMAGE --port N`, as it must with host networking.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request as u; a = open('/proc/1/cmdline').read().split(chr(0)); p = a[a.index('--port') + 1] if '--port' in a[:-1] else os.environ.get('MAMAMIA_SERVER_PORT', '8000'); sys.exit(u.urlopen(f'http://127.0.0.1:{p}/v1/health', timeout=4).status != 200)"]
ENTRYPOINT ["mamamia", "serve", "/data"]
CMD ["--host", "0.0.0.0", "--port", "8000"]
