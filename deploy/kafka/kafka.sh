#!/usr/bin/env bash
# The project's own Apache Kafka: one KRaft broker+controller on loopback, no Docker.
#   kafka.sh fetch   download the broker's jars from Maven Central into the cache
#   kafka.sh start   fetch if needed, format storage once, start, wait until it answers
#   kafka.sh stop    stop it cleanly (SIGTERM, then SIGKILL after 30 s)
#   kafka.sh status  exit 0 if it is running
# Settings (environment): BACKBONE_KAFKA_PORT (19092), BACKBONE_KAFKA_CONTROLLER_PORT (19093),
# BACKBONE_KAFKA_HOME (jar cache, ~/.cache/agency-backbone/kafka-<version>),
# BACKBONE_KAFKA_DATA (~/.cache/agency-backbone/kafka-data-<port>), BACKBONE_KAFKA_HEAP (1g).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
port=${BACKBONE_KAFKA_PORT:-19092}
controller_port=${BACKBONE_KAFKA_CONTROLLER_PORT:-19093}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/agency-backbone
home=${BACKBONE_KAFKA_HOME:-$cache/kafka-$version}
data=${BACKBONE_KAFKA_DATA:-$cache/kafka-data-$port}
heap=${BACKBONE_KAFKA_HEAP:-1g}
pidfile=$data/kafka.pid
logfile=$data/kafka.log

say() { echo "kafka.sh: $*" >&2; }

fetch() {
  [ -f "$home/.complete" ] && return 0
  command -v mvn >/dev/null || { say "Maven (mvn) is needed to fetch Kafka: apt-get install maven"; exit 1; }
  command -v java >/dev/null || { say "Java 17+ is needed to run Kafka: apt-get install openjdk-17-jre-headless"; exit 1; }
  say "fetching Apache Kafka $version jars from Maven Central into $home"
  mkdir -p "$home"
  mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$home/libs" -DincludeScope=runtime
  touch "$home/.complete"
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && grep -q "Kafka Server started" "$logfile"; }

start() {
  if running; then say "already running on 127.0.0.1:$port (pid $(cat "$pidfile"))"; return 0; fi
  fetch
  mkdir -p "$data"
  sed -e "s#@PORT@#$port#g" -e "s#@CONTROLLER_PORT@#$controller_port#g" -e "s#@DATA@#$data#g" \
    "$here/server.properties.template" > "$data/server.properties"
  local java=(java "-Xms256m" "-Xmx$heap" "-XX:+UseG1GC" "-Djava.awt.headless=true"
              "-Dlog4j2.configurationFile=$here/log4j2.properties" -cp "$home/libs/*")
  if [ ! -f "$data/logs/meta.properties" ]; then
    "${java[@]}" kafka.tools.StorageTool format --standalone -c "$data/server.properties" \
      -t "$("${java[@]}" kafka.tools.StorageTool random-uuid)" >/dev/null
  fi
  : > "$logfile"
  nohup "${java[@]}" kafka.Kafka "$data/server.properties" >>"$logfile" 2>&1 &
  echo $! > "$pidfile"
  for _ in $(seq 1 120); do
    if answers; then say "running on 127.0.0.1:$port (pid $(cat "$pidfile"), log $logfile)"; return 0; fi
    running || { say "broker exited during start-up; last lines of $logfile:"; tail -20 "$logfile" >&2; exit 1; }
    sleep 0.5
  done
  say "broker did not answer on 127.0.0.1:$port within 60 s; see $logfile"; exit 1
}

stop() {
  running || { say "not running"; rm -f "$pidfile"; return 0; }
  local pid; pid=$(cat "$pidfile")
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; say "stopped"; return 0; }; sleep 0.5; done
  say "broker did not stop in 30 s; killing it"; kill -KILL "$pid"; rm -f "$pidfile"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) running && say "running on 127.0.0.1:$port" || { say "not running"; exit 1; } ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
