#!/usr/bin/env bash
# Makes sure the Prometheus tools the observability tests use are installed: `promtool`
# (checks prometheus.yml, unit-tests the alert rules), `prometheus` (the live dashboard test
# scrapes the real processes) and `prometheus-redis-exporter` (Redis series for that test).
# Does nothing when all three are on PATH. Otherwise installs Debian's packages; where apt is
# missing or fails (not root, no network) it warns and exits 0: those tests then skip with a
# message saying why, and the rest of the suite still runs.
set -uo pipefail

missing=()
for tool in promtool prometheus prometheus-redis-exporter; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0

warn() { echo "ensure-prometheus: WARNING: $*; the observability tests that need them will skip" >&2; }

if ! command -v apt-get >/dev/null 2>&1; then
  warn "${missing[*]} missing and apt-get is not available"
  exit 0
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    warn "${missing[*]} missing and installing needs root"
    exit 0
  fi
fi

echo "ensure-prometheus: installing prometheus and prometheus-redis-exporter (missing: ${missing[*]})" >&2
export DEBIAN_FRONTEND=noninteractive
# --no-install-recommends: not the node exporter, and no service is started (tests run their own).
if "${sudo[@]}" apt-get update -qq >/dev/null \
  && "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    prometheus prometheus-redis-exporter >/dev/null; then
  echo "ensure-prometheus: installed" >&2
else
  warn "apt-get could not install prometheus and prometheus-redis-exporter"
fi
exit 0
