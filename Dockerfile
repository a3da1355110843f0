# syntax=docker/dockerfile:1
# Serves a mamamia catalog mounted at /data:  docker run -p 8000:8000 -v $PWD/catalog:/data:ro mamamia
FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY schema/ schema/
COPY sdk/ sdk/
COPY ingest/ ingest/
COPY server/ server/
RUN uv sync --locked --no-dev --no-editable --package mamamia-server

FROM python:3.11-slim AS runtime
RUN useradd --create-home --uid 10001 mamamia
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 MAMAMIA_SERVER_HOST=0.0.0.0
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/v1/health', timeout=4).status != 200)"]
ENTRYPOINT ["mamamia", "serve", "/data"]
CMD ["--host", "0.0.0.0", "--port", "8000"]
