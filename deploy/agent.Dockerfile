# One image for every agent: tmux, ttyd and the three agent CLIs. Which CLI
# a container runs is its AGENT_COMMAND (see agent-entrypoint.sh). Build
# context: this folder (deploy/docker-compose.yml does it), e.g.
#   docker build -f agent.Dockerfile -t agent-gateway-agent .
#
# Debian trixie packages ttyd (bookworm does not), hence the trixie image.
ARG NODE_IMAGE=node:22-trixie-slim
FROM ${NODE_IMAGE}

# Pin these for reproducible builds (npm versions or dist-tags).
ARG CLAUDE_CODE_VERSION=latest
ARG GEMINI_CLI_VERSION=latest
ARG CODEX_VERSION=latest

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      tmux ttyd tini \
      ca-certificates curl git openssh-client ripgrep procps less \
 && rm -rf /var/lib/apt/lists/*

RUN npm install --global --no-audit --no-fund \
      "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}" \
      "@google/gemini-cli@${GEMINI_CLI_VERSION}" \
      "@openai/codex@${CODEX_VERSION}" \
 && npm cache clean --force

# The agent's primary group (gid 7681) is the one group it shares with the
# gateway: ttyd's socket is agent:7681 0660, its folder 2770. A new socket
# volume mounted on /run/ttyd takes this folder's owner and mode.
RUN groupadd --gid 7681 ttyd-socket \
 && useradd --uid 10010 --gid ttyd-socket --create-home --home-dir /home/agent \
      --shell /bin/bash agent \
 && install -d -o agent -g ttyd-socket -m 2770 /run/ttyd \
 && install -d -o agent -g ttyd-socket -m 0700 /workspace

COPY agent-tmux.conf /etc/tmux.conf
COPY agent-entrypoint.sh /usr/local/bin/agent-entrypoint
RUN chmod 0644 /etc/tmux.conf && chmod 0755 /usr/local/bin/agent-entrypoint

ENV LANG=C.UTF-8 \
    SHELL=/bin/bash \
    TTYD_SOCKET=/run/ttyd/ttyd.sock \
    AGENT_COMMAND=bash \
    DISABLE_AUTOUPDATER=1

USER 10010:7681
WORKDIR /workspace

# Alive means ttyd answers on its socket (a 401 without the credential counts).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD curl -s -o /dev/null --max-time 4 --unix-socket "$TTYD_SOCKET" http://localhost/token || exit 1

# tini reaps the tmux server and forwards SIGTERM to ttyd.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/agent-entrypoint"]
