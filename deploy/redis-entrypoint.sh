#!/bin/sh
# The redis service's command (docker-compose.replicas.yml): redis-server on
# redis.conf with the password from the redis_password secret. The password
# reaches redis-server on its standard input: never its argv (ps on the host
# shows that), its environment, or a file.
#
#   REDIS_CONF           the config (default /usr/local/etc/redis/redis.conf)
#   REDIS_PASSWORD_FILE  the secret (default /run/secrets/redis_password)
#
# Extra arguments go to redis-server (the tests pass --port, --dir).
set -eu

conf=${REDIS_CONF:-/usr/local/etc/redis/redis.conf}
password_file=${REDIS_PASSWORD_FILE:-/run/secrets/redis_password}

fail() {
  printf 'redis-entrypoint: %s\n' "$*" >&2
  exit 1
}

[ -r "$conf" ] || fail "cannot read $conf"
password=$(cat "$password_file" 2>/dev/null) || fail "cannot read $password_file"
# Letters and digits only (openssl rand -hex 32): nothing to quote in a
# config line, and the gateway's password_file reads the same bytes.
case $password in
  '' | *[!A-Za-z0-9]*) fail "$password_file must hold one line of letters and digits (openssl rand -hex 32)" ;;
esac
[ "${#password}" -ge 32 ] || fail "$password_file must hold at least 32 characters"

exec redis-server "$conf" "$@" - <<CONFIG
requirepass $password
CONFIG
