#!/usr/bin/env bash
# Installs the machine-level tools the project needs and does not find: Java 17+ and Maven
# (to fetch and run Kafka), PostgreSQL 15 with the wal2json decoder (the jobcentre CDC
# connector's database), Prometheus (its promtool checks deploy/prometheus/; tests scrape with
# it). Debian packages; run as root or with sudo available.
set -euo pipefail

missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
[ -x /usr/lib/postgresql/15/bin/pg_ctl ] || missing+=(postgresql-15)
[ -f /usr/lib/postgresql/15/lib/wal2json.so ] || missing+=(postgresql-15-wal2json)
command -v promtool >/dev/null || missing+=(prometheus)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "system-packages.sh: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
