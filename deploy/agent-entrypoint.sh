#!/bin/bash
# One coding agent: its CLI in a tmux session (which outlives every viewer's
# connection), served by ttyd on a UNIX socket for the gateway. No TCP port.
#
# Environment (all optional):
#   AGENT_COMMAND         what tmux runs, a shell command line (default: bash)
#   AGENT_SESSION         the tmux session's name (default: agent)
#   AGENT_COLUMNS/ROWS    its size until a client attaches (default: 120x40)
#   TTYD_SOCKET           ttyd's socket (default: /run/ttyd/ttyd.sock); ttyd
#                         takes a path ending in .sock or .socket for a socket
#   TTYD_SOCKET_OWNER     user:group of the socket (default: this user and its
#                         primary group, which the gateway is a member of)
#   TTYD_CREDENTIAL_FILE  a file holding "user:password" for ttyd's basic auth
#   AGENT_SECRETS         variables to load from files: for each NAME, the file
#                         named by NAME_FILE (a Docker secret) becomes NAME
#                         (default: ANTHROPIC_API_KEY GEMINI_API_KEY OPENAI_API_KEY)
set -euo pipefail

die() {
  printf 'agent-entrypoint: %s\n' "$*" >&2
  exit 1
}

# The contents of a file, without trailing whitespace.
read_trimmed() {
  local value
  value=$(<"$1")
  printf '%s' "${value%"${value##*[![:space:]]}"}"
}

# Everything created from here on (ttyd's socket first of all) is for the
# owner and the group only: the gateway is the group's one other member.
umask 007

command=${AGENT_COMMAND:-bash}
session=${AGENT_SESSION:-agent}
columns=${AGENT_COLUMNS:-120}
rows=${AGENT_ROWS:-40}
socket=${TTYD_SOCKET:-/run/ttyd/ttyd.sock}
owner=${TTYD_SOCKET_OWNER:-$(id -un):$(id -gn)}

for name in ${AGENT_SECRETS-ANTHROPIC_API_KEY GEMINI_API_KEY OPENAI_API_KEY}; do
  file_var=${name}_FILE
  file=${!file_var:-}
  unset "$file_var"
  [[ -n $file ]] || continue
  [[ -r $file ]] || die "$file_var: cannot read $file"
  value=$(read_trimmed "$file")
  # An empty file leaves the variable alone: that CLI signs in another way.
  if [[ -n $value ]]; then
    export "$name=$value"
  fi
done

ttyd_args=(--interface "$socket" --socket-owner "$owner" --writable)
if [[ -n ${TTYD_CREDENTIAL_FILE:-} ]]; then
  [[ -r $TTYD_CREDENTIAL_FILE ]] || die "TTYD_CREDENTIAL_FILE: cannot read $TTYD_CREDENTIAL_FILE"
  credential=$(read_trimmed "$TTYD_CREDENTIAL_FILE")
  [[ $credential == ?*:?* ]] || die "TTYD_CREDENTIAL_FILE must hold user:password"
  # ttyd keeps the base64 of it in 256 bytes.
  ((${#credential} <= 180)) || die "TTYD_CREDENTIAL_FILE: the credential is over 180 characters"
  ttyd_args+=(--credential "$credential")
  unset credential
fi
unset TTYD_CREDENTIAL_FILE

case $socket in
  /*.sock | /*.socket) ;;
  *) die "TTYD_SOCKET must be an absolute path ending in .sock or .socket, not $socket" ;;
esac
folder=${socket%/*}
[[ -d $folder && -w $folder && -x $folder ]] ||
  die "$folder must be a folder $(id -un) can write (the agent's socket volume)"
# A socket left by the last run would make the bind fail.
rm -f -- "$socket"

# The session starts now, watched or not; ttyd attaches a tmux client per
# connection. If the agent has exited, the next connection starts it again.
if ! tmux -u has-session -t "=$session" 2>/dev/null; then
  tmux -u new-session -d -s "$session" -x "$columns" -y "$rows" "$command"
fi
exec ttyd "${ttyd_args[@]}" -- \
  tmux -u new-session -A -s "$session" -x "$columns" -y "$rows" "$command"
