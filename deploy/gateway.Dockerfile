# The gateway. Build context: the repository root (deploy/docker-compose.yml
# does it), e.g.
#   docker build -f deploy/gateway.Dockerfile -t agent-gateway .

# The browser bundle (xterm.js, esbuild) from the npm registry.
FROM node:22-bookworm-slim AS bundle
WORKDIR /src/static
COPY static/package.json static/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY static/ ./
RUN npm run build

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN groupadd --gid 10001 gateway \
 && useradd --uid 10001 --gid gateway --no-create-home --home-dir /var/lib/gateway \
      --shell /usr/sbin/nologin gateway \
 && install -d -o gateway -g gateway -m 0700 /var/lib/gateway

# The source tree stays at /app, installed editable: the gateway serves
# <repo>/static beside its package, i.e. /app/static.
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway/ gateway/
RUN pip install -e /app \
 && python -m compileall -q /app/gateway
COPY static/terminal.html static/login.html static/
COPY --from=bundle /src/static/dist/ static/dist/

USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
CMD ["gateway", "serve", "--config", "/etc/gateway/config.toml"]
