#!/usr/bin/env bash
# Install everything kpi-stream needs on a fresh Debian machine: system packages (JDK, Maven,
# Prometheus, Alertmanager, Chromium), a virtualenv in .venv with the package and its dev
# extras, and the pinned Kafka jars (cached in ~/.cache/kpi-stream). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v openssl >/dev/null || need+=(openssl)
if [ "${KPI_SKIP_TEST_TOOLS:-0}" != 1 ]; then
  command -v promtool >/dev/null || need+=(prometheus)
  command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
  command -v chromium >/dev/null || need+=(chromium)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The Debian packages enable services; nothing here wants them running.
  for svc in prometheus prometheus-alertmanager prometheus-node-exporter; do
    pkill -f "^/usr/bin/$svc" 2>/dev/null || true
  done
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  rm -f .venv/.installed-* && touch "$stamp"
fi
.venv/bin/kpi-stream broker fetch
