#!/usr/bin/env bash
# Debian packages the local stack and the suite need; installs only what is missing (idempotent).
# clickhouse-server: the database (run by `truyvet up` with the project's own config, not as a service)
# kcat: Kafka-native intake tests; zbar-tools: decodes the QR PNGs in tests; maven + Java 17: Kafka jars.
set -euo pipefail
need=()
command -v clickhouse-server >/dev/null || [ -x /usr/sbin/clickhouse-server ] || need+=(clickhouse-server clickhouse-client)
command -v kcat >/dev/null || need+=(kcat)
command -v zbarimg >/dev/null || need+=(zbar-tools)
# poppler-utils: pdftoppm renders the bulk poster PDFs' pages for zbarimg in the tests
command -v pdftoppm >/dev/null || need+=(poppler-utils)
command -v mvn >/dev/null || need+=(maven)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
fc-list 2>/dev/null | grep -qi dejavu || need+=(fonts-dejavu-core)
# chromium: the dashboard's browser tests (driven headless by Playwright for Python; no browser download)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages: ${need[*]} (run: sudo apt-get install ${need[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "${need[@]}"; }
