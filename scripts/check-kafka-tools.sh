#!/usr/bin/env bash
# Checks that this machine can run the local Kafka broker (devkit.localservers):
# Java 17+ always, Maven once to fetch the broker jars into .cache/kafka. Skipped when
# the variable named by $1 (TEST_KAFKA_BOOTSTRAP or STACK_KAFKA_BOOTSTRAP) points at a
# broker you run yourself.
set -euo pipefail

external_var="${1:-TEST_KAFKA_BOOTSTRAP}"
if [[ -n "${!external_var:-}" ]]; then
  exit 0
fi

hint="Install them (Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless maven),
or set ${external_var}=host:port to use a Kafka broker you already run."

if ! command -v java >/dev/null 2>&1; then
  printf 'The local Kafka broker needs Java 17 or newer, and java is not on PATH.\n%s\n' "$hint" >&2
  exit 1
fi
version="$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')"
major="${version%%.*}"
if [[ ! "$major" =~ ^[0-9]+$ ]] || (( major < 17 )); then
  printf 'The local Kafka broker needs Java 17 or newer; found "%s".\n%s\n' "$version" "$hint" >&2
  exit 1
fi

jars_marker="${MOST_CACHE_DIR:-.cache}/kafka/jars/.complete"
if [[ ! -f "$jars_marker" ]] && ! command -v mvn >/dev/null 2>&1; then
  printf 'Maven (mvn) is needed once to fetch the Kafka broker jars into %s.\n%s\n' \
    "${MOST_CACHE_DIR:-.cache}/kafka" "$hint" >&2
  exit 1
fi
