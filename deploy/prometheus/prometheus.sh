#!/usr/bin/env bash
# Prometheus for the backbone, from Debian's `prometheus` package.
#
#   prometheus.sh install             install the package if prometheus or promtool is missing
#   prometheus.sh check               promtool check config, check rules and the rules' unit
#                                     tests (test rules) on deploy/prometheus/
#   prometheus.sh run CONFIG PORT DIR run a Prometheus in the foreground on 127.0.0.1:PORT with
#                                     CONFIG, keeping its data in DIR (tests and local use)
#
# Run as root or with sudo available (install only). The Debian package's own service is not
# used: `run` starts a private Prometheus on loopback.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

install_prometheus() {
    if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
        return 0
    fi
    echo "prometheus.sh: installing Debian's prometheus package" >&2
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    # No recommends: the node exporter is not needed to scrape the backbone.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends prometheus
}

check_deploy() {
    install_prometheus
    promtool check config "$here/prometheus.yml"
    promtool check rules "$here/alerts.yml"
    (cd "$here" && promtool test rules alerts_test.yml alerts_weekly_test.yml)
}

run_prometheus() {
    local config="$1" port="$2" data="$3"
    install_prometheus
    mkdir -p "$data"
    # exec: the caller's process id is Prometheus itself, so it can be stopped by that id.
    exec prometheus \
        --config.file="$config" \
        --web.listen-address="127.0.0.1:$port" \
        --storage.tsdb.path="$data" \
        --storage.tsdb.retention.time=1d \
        --web.enable-lifecycle \
        --log.level=warn
}

case "${1:-}" in
    install) install_prometheus ;;
    check) check_deploy ;;
    run)
        [ $# -eq 4 ] || { echo "usage: $0 run CONFIG PORT DATA_DIR" >&2; exit 2; }
        run_prometheus "$2" "$3" "$4"
        ;;
    *)
        echo "usage: $0 install | check | run CONFIG PORT DATA_DIR" >&2
        exit 2
        ;;
esac
