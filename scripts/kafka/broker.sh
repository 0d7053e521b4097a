#!/usr/bin/env bash
# A single-node Apache Kafka 4.1.1 broker (KRaft, broker+controller in one JVM) for
# driftline's integration tests. Loopback only; no Docker; jars from Maven Central.
#
#   bash scripts/kafka/broker.sh start    # fetch jars (cached), format, start, wait until a
#                                         # consumer can join a group; last stdout line is the
#                                         # bootstrap address, e.g. 127.0.0.1:19092
#   bash scripts/kafka/broker.sh stop     # TERM, KILL after a timeout; removes the broker data
#   bash scripts/kafka/broker.sh restart  # stop and start again on the same ports and data (tests of a
#                                         # broker restart); prints the address
#   bash scripts/kafka/broker.sh status   # exit 0 and print the address when running, else 1
#
# Environment (all optional):
#   DRIFTLINE_KAFKA_HOME             jar cache, default $HOME/.cache/driftline/kafka-4.1.1
#   DRIFTLINE_KAFKA_RUN              run dir, default <repo>/.kafka (git-ignored)
#   DRIFTLINE_KAFKA_PORT             client port, default 19092 (a free port if busy)
#   DRIFTLINE_KAFKA_CONTROLLER_PORT  KRaft controller port, default 19093 (a free port if busy)
#   DRIFTLINE_KAFKA_READY_TIMEOUT    seconds to wait for readiness, default 90
#   DRIFTLINE_KAFKA_STOP_TIMEOUT     seconds between TERM and KILL, default 20
#   DRIFTLINE_KAFKA_HEAP             JVM -Xmx, default 512m
#   DRIFTLINE_KAFKA_RESTART_PAUSE    seconds 'restart' leaves the broker down, default 0
#   DRIFTLINE_KAFKA_AUTO_CREATE_TOPICS  auto.create.topics.enable, default false: tests and
#                                    driftline create their topics explicitly (partition count,
#                                    cleanup.policy=compact for changelogs), so a produce to a
#                                    topic nobody created fails loudly instead of silently
#                                    making a 1-partition topic.
#   DRIFTLINE_TEST_LOGS              when set, kafkajs logs in wait-ready.mjs are on
#
# Run dir contents: server.properties, log4j2.properties, kafka.log (broker output),
# kafka.pid, brokers (bootstrap address, written once the broker is ready), data/ (log.dirs,
# fresh on every cold start, removed by stop).
set -euo pipefail

KAFKA_VERSION=4.1.1
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
KAFKA_HOME="${DRIFTLINE_KAFKA_HOME:-$HOME/.cache/driftline/kafka-$KAFKA_VERSION}"
LIB_DIR="$KAFKA_HOME/lib"
MARKER="$LIB_DIR/.driftline-complete"
POM="$SCRIPT_DIR/pom.xml"
RUN_DIR="${DRIFTLINE_KAFKA_RUN:-$REPO_ROOT/.kafka}"
DATA_DIR="$RUN_DIR/data"
PID_FILE="$RUN_DIR/kafka.pid"
LOG_FILE="$RUN_DIR/kafka.log"
BROKERS_FILE="$RUN_DIR/brokers"
PROPS="$RUN_DIR/server.properties"
LOG4J_PROPS="$RUN_DIR/log4j2.properties"
READY_TIMEOUT="${DRIFTLINE_KAFKA_READY_TIMEOUT:-90}"
STOP_TIMEOUT="${DRIFTLINE_KAFKA_STOP_TIMEOUT:-20}"
HEAP="${DRIFTLINE_KAFKA_HEAP:-512m}"
RESTART_PAUSE="${DRIFTLINE_KAFKA_RESTART_PAUSE:-0}"
AUTO_CREATE="${DRIFTLINE_KAFKA_AUTO_CREATE_TOPICS:-false}"

say() { printf '[kafka] %s\n' "$*" >&2; }
die() { printf '[kafka] error: %s\n' "$*" >&2; exit 1; }

check_java() {
  command -v java >/dev/null 2>&1 || die "java not found on PATH; Kafka $KAFKA_VERSION needs Java 17 or newer"
  local line ver major
  line="$(java -version 2>&1 | head -n 1)"
  ver="$(printf '%s\n' "$line" | sed -n 's/.*version "\([^"]*\)".*/\1/p')"
  [[ -n "$ver" ]] || die "cannot read the Java version from: $line"
  if [[ "$ver" == 1.* ]]; then major="$(printf '%s' "$ver" | cut -d. -f2)"; else major="${ver%%[.+-]*}"; fi
  [[ "$major" =~ ^[0-9]+$ ]] || die "cannot read the Java version from: $line"
  (( major >= 17 )) || die "Java $ver found ($(command -v java)); Kafka $KAFKA_VERSION needs Java 17 or newer"
}

check_node() {
  command -v node >/dev/null 2>&1 || die "node not found on PATH (needed for the readiness check)"
}

pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

ensure_jars() {
  local want
  want="$(pom_hash)"
  if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$want" ]]; then
    say "jars cached in $LIB_DIR"
    return
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH (needed once to fetch the Kafka jars into $LIB_DIR)"
  mkdir -p "$KAFKA_HOME"
  # Run dirs may share one jar cache: fetch under a lock, then look again.
  exec 8>"$KAFKA_HOME/.lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w 600 8 || die "another process holds $KAFKA_HOME/.lock"
  fi
  if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$want" ]]; then
    exec 8>&-
    say "jars cached in $LIB_DIR"
    return
  fi
  say "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIB_DIR"
  local tmp="$KAFKA_HOME/lib.partial.$$"
  rm -rf "$tmp"
  # Maven 3.8 prints bare ANSI resets even with -q -B; strip them (pipefail keeps mvn's status).
  if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
      -DoutputDirectory="$tmp" -DincludeScope=runtime 2>&1 \
      | sed -e 's/\x1b\[[0-9;]*m//g' -e '/^[[:space:]]*$/d' >&2; then
    rm -rf "$tmp"
    die "mvn dependency:copy-dependencies failed (see above)"
  fi
  ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"; }
  rm -rf "$LIB_DIR"
  mv "$tmp" "$LIB_DIR"
  printf '%s\n' "$want" > "$MARKER"
  exec 8>&-
  say "fetched $(ls "$LIB_DIR"/*.jar | wc -l) jars ($(du -sh "$LIB_DIR" | cut -f1))"
}

# Prints $1 if 127.0.0.1:$1 can be bound, else a free port chosen by the kernel (never $2).
pick_port() {
  node -e '
    const net = require("node:net");
    const [want, avoid] = process.argv.slice(1).map(Number);
    const tryListen = (port) => new Promise((resolve) => {
      const s = net.createServer();
      s.once("error", () => resolve(-1));
      s.listen({ port, host: "127.0.0.1", exclusive: true }, () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    (async () => {
      if (want > 0 && want !== avoid) {
        const p = await tryListen(want);
        if (p > 0) { console.log(p); return; }
      }
      for (;;) {
        const p = await tryListen(0);
        if (p > 0 && p !== avoid) { console.log(p); return; }
      }
    })();
  ' "$1" "${2:-0}"
}

# Pid of our broker if it runs, else nothing (and a non-zero status).
running_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # Guard against a recycled pid: it must be a JVM running kafka.Kafka with our properties.
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "kafka.Kafka $PROPS" || return 1
  fi
  printf '%s\n' "$pid"
}

# The address of the broker described by the run dir's server.properties.
configured_address() {
  if [[ -s "$BROKERS_FILE" ]]; then cat "$BROKERS_FILE"; return; fi
  sed -n 's#^advertised.listeners=PLAINTEXT://##p' "$PROPS" 2>/dev/null | head -n 1
}

wait_ready() { # address pid
  node "$SCRIPT_DIR/wait-ready.mjs" "$1" --timeout "$READY_TIMEOUT" --pid "$2" >&2
}

kill_broker() { # pid
  local pid="$1" waited=0
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    if (( waited >= STOP_TIMEOUT * 10 )); then
      say "broker $pid still running after ${STOP_TIMEOUT}s; sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

fail_start() { # pid message
  local pid="$1" msg="$2"
  say "$msg"
  if [[ -f "$LOG_FILE" ]]; then
    if grep -qE '(ERROR|FATAL)' "$LOG_FILE"; then
      say "errors in $LOG_FILE:"
      grep -E '(ERROR|FATAL)' "$LOG_FILE" | head -n 10 | sed 's/^/    /' >&2
    fi
    say "last lines of $LOG_FILE:"
    tail -n 40 "$LOG_FILE" | sed 's/^/    /' >&2
  fi
  [[ -n "$pid" ]] && kill_broker "$pid"
  rm -f "$PID_FILE" "$BROKERS_FILE"
  die "Kafka broker did not come up"
}

write_config() { # port controller_port
  local port="$1" cport="$2"
  cat > "$PROPS" <<EOF
# Written by scripts/kafka/broker.sh; single-node KRaft broker for tests, loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA_DIR
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=$AUTO_CREATE
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.segment.bytes=16777216
EOF
  cat > "$LOG4J_PROPS" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.target = SYSTEM_OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
EOF
}

# Starts the JVM on the run dir's properties and data, waits until it serves clients; sets pid.
launch_and_wait() { # address
  local addr="$1"
  # setsid: the broker outlives this script and is not hit by signals to the caller's
  # process group. The inner shell writes its own pid, then becomes the JVM (exec).
  local launcher=(bash -c 'echo $$ > "$0"; exec "$@"' "$PID_FILE"
    java -Xms128m -Xmx"$HEAP" -XX:+UseG1GC -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$LOG4J_PROPS" -Dkafka.logs.dir="$RUN_DIR"
    -cp "$LIB_DIR/*" kafka.Kafka "$PROPS")
  rm -f "$PID_FILE"
  if command -v setsid >/dev/null 2>&1; then
    setsid "${launcher[@]}" </dev/null >>"$LOG_FILE" 2>&1 8>&- 9>&- &
  else
    nohup "${launcher[@]}" </dev/null >>"$LOG_FILE" 2>&1 8>&- 9>&- &
  fi
  local i
  for i in $(seq 50); do [[ -s "$PID_FILE" ]] && break; sleep 0.1; done
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || fail_start "" "broker process did not start"

  if ! wait_ready "$addr" "$pid"; then
    if kill -0 "$pid" 2>/dev/null; then
      fail_start "$pid" "broker pid $pid did not serve clients within ${READY_TIMEOUT}s"
    else
      fail_start "" "broker pid $pid exited during startup"
    fi
  fi
}

cmd_start() {
  check_java
  check_node
  mkdir -p "$RUN_DIR"
  # One start at a time per run dir. The lock fd must not leak into the broker JVM.
  exec 9>"$RUN_DIR/.lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w 300 9 || die "another 'broker.sh start' holds $RUN_DIR/.lock"
  fi

  local pid addr
  if pid="$(running_pid)"; then
    addr="$(configured_address)"
    say "broker already running (pid $pid) at $addr; checking that it serves clients"
    if wait_ready "$addr" "$pid"; then
      printf '%s\n' "$addr" > "$BROKERS_FILE"
      say "reusing broker pid $pid"
      printf '%s\n' "$addr"
      return 0
    fi
    say "running broker $pid is not healthy; restarting it"
    kill_broker "$pid"
  fi
  rm -f "$PID_FILE" "$BROKERS_FILE"

  ensure_jars

  local port cport
  port="$(pick_port "${DRIFTLINE_KAFKA_PORT:-19092}")"
  cport="$(pick_port "${DRIFTLINE_KAFKA_CONTROLLER_PORT:-19093}" "$port")"
  [[ "$port" == "${DRIFTLINE_KAFKA_PORT:-19092}" ]] || say "port ${DRIFTLINE_KAFKA_PORT:-19092} is busy; using $port"
  [[ "$cport" == "${DRIFTLINE_KAFKA_CONTROLLER_PORT:-19093}" ]] || say "controller port ${DRIFTLINE_KAFKA_CONTROLLER_PORT:-19093} is busy; using $cport"
  addr="127.0.0.1:$port"

  rm -rf "$DATA_DIR"
  mkdir -p "$DATA_DIR"
  write_config "$port" "$cport"
  : > "$LOG_FILE"

  # A Kafka cluster id is 16 random bytes in unpadded base64url, not starting with '-'.
  local cluster_id
  cluster_id="$(node -e '
    const { randomBytes } = require("node:crypto");
    let id; do { id = randomBytes(16).toString("base64url"); } while (id.startsWith("-"));
    console.log(id);')"
  say "formatting storage in $DATA_DIR (cluster id $cluster_id)"
  if ! java -Xmx256m -Dlog4j2.configurationFile="$LOG4J_PROPS" -cp "$LIB_DIR/*" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPS" >>"$LOG_FILE" 2>&1; then
    fail_start "" "kafka-storage format failed"
  fi

  say "starting broker on $addr (controller 127.0.0.1:$cport), log $LOG_FILE"
  launch_and_wait "$addr"
  printf '%s\n' "$addr" > "$BROKERS_FILE"
  say "broker ready (pid $pid)"
  printf '%s\n' "$addr"
}

cmd_stop() {
  local pid
  if pid="$(running_pid)"; then
    say "stopping broker pid $pid"
    kill_broker "$pid"
  else
    say "no broker running from $RUN_DIR"
  fi
  rm -rf "$DATA_DIR"
  rm -f "$PID_FILE" "$BROKERS_FILE"
}

# The same broker stopped (TERM, KILL after the stop timeout) and started again on its ports and its data, as an
# operator's restart: clients see it go away and come back at the same address with every committed record.
cmd_restart() {
  check_java
  check_node
  exec 9>"$RUN_DIR/.lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w 300 9 || die "another broker.sh command holds $RUN_DIR/.lock"
  fi
  local pid addr
  pid="$(running_pid)" || die "no broker running from $RUN_DIR to restart (start one first)"
  addr="$(configured_address)"
  say "restarting broker pid $pid at $addr, keeping its data in $DATA_DIR"
  kill_broker "$pid"
  if (( RESTART_PAUSE > 0 )); then say "down for ${RESTART_PAUSE}s"; sleep "$RESTART_PAUSE"; fi
  launch_and_wait "$addr"
  printf '%s\n' "$addr" > "$BROKERS_FILE"
  say "broker ready again (pid $pid)"
  printf '%s\n' "$addr"
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    say "running, pid $pid"
    configured_address
    return 0
  fi
  say "not running"
  return 1
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  restart) cmd_restart ;;
  *) printf 'usage: %s start|stop|restart|status\n' "$0" >&2; exit 64 ;;
esac
