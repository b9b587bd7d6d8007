#!/usr/bin/env bash
# Writes the credentials compose.yaml needs into .env (git-ignored, mode 0600):
# RABBITMQ_USER=provisioning and a random, URL-safe RABBITMQ_PASS (it goes into AMQP_URL
# unescaped), a random GRAFANA_ADMIN_PASSWORD (Grafana's `admin` user; viewers need none) and
# a random API_TOKEN: compose turns on Service B's bearer authentication with it, and a random
# RABBITMQ_ERLANG_COOKIE (hex) that the nodes of the "ha" profile's RabbitMQ cluster share.
# Adds only what is missing or empty; an existing password is never replaced, because
# RabbitMQ keeps the one it was first started with (until `docker compose down -v`).
# ENV_FILE=path writes elsewhere (relative paths are from the repository root).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
env_file="${ENV_FILE:-.env}"

umask 077
[ -e "$env_file" ] || : >"$env_file"
chmod 600 "$env_file"

# Prints NAME's value in the env file, empty when absent.
value_of() { sed -n "s/^$1=//p" "$env_file" | tail -n 1; }

# Sets NAME=VALUE, replacing an empty NAME= line or appending.
set_value() {
  if grep -q "^$1=" "$env_file"; then
    sed -i "s/^$1=.*/$1=$2/" "$env_file"
  else
    # Keep the file line-oriented even if its last line lacks a newline.
    [ ! -s "$env_file" ] || [ -z "$(tail -c 1 "$env_file")" ] || echo >>"$env_file"
    echo "$1=$2" >>"$env_file"
  fi
}

written=()
if [ -z "$(value_of RABBITMQ_USER)" ]; then
  set_value RABBITMQ_USER provisioning
  written+=(RABBITMQ_USER)
fi
for name in RABBITMQ_PASS GRAFANA_ADMIN_PASSWORD API_TOKEN; do
  if [ -z "$(value_of "$name")" ]; then
    set_value "$name" "$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(24))')"
    written+=("$name")
  fi
done

if [ -z "$(value_of RABBITMQ_ERLANG_COOKIE)" ]; then
  set_value RABBITMQ_ERLANG_COOKIE "$("$PYTHON" -c 'import secrets; print(secrets.token_hex(24))')"
  written+=(RABBITMQ_ERLANG_COOKIE)
fi

if [ ${#written[@]} -eq 0 ]; then
  echo "make-env: $env_file already sets RABBITMQ_USER, RABBITMQ_PASS, GRAFANA_ADMIN_PASSWORD, API_TOKEN and RABBITMQ_ERLANG_COOKIE; left unchanged" >&2
else
  echo "make-env: wrote ${written[*]} to $env_file (mode 0600)" >&2
fi
