#!/usr/bin/env bash
# A throwaway Prometheus server for driftline's integration tests: scrapes one target's /metrics every second.
# Loopback only; our own process (never the distribution's service); Debian's `prometheus` package when none
# is on PATH.
#
#   bash scripts/prometheus/prometheus.sh install                    # make sure `prometheus` is on PATH
#   bash scripts/prometheus/prometheus.sh start HOST:PORT [RUN_DIR]  # config + start + wait for /-/ready;
#                                                                    # last stdout line: the base URL
#   bash scripts/prometheus/prometheus.sh stop [RUN_DIR]             # TERM, KILL after a timeout; removes data
#   bash scripts/prometheus/prometheus.sh status [RUN_DIR]           # exit 0 and print the URL when running
#
# Environment (all optional):
#   DRIFTLINE_PROMETHEUS_RUN            run dir when none is given, default ${TMPDIR:-/tmp}/driftline-prometheus
#   DRIFTLINE_PROMETHEUS_PORT           listen port, default: a free loopback port
#   DRIFTLINE_PROMETHEUS_READY_TIMEOUT  seconds to wait for /-/ready, default 60
#   DRIFTLINE_PROMETHEUS_STOP_TIMEOUT   seconds between TERM and KILL, default 15
#   DRIFTLINE_NO_APT=1                  never install with apt-get (fail instead when prometheus is missing)
#
# Installing: only as root with apt-get available: `apt-get update`, then `apt-get install -y
# --no-install-recommends prometheus` (Debian 12: Prometheus 2.42). The package's maintainer scripts would
# start its own service; there is no systemd here and invoke-rc.d would run the SysV script, so a temporary
# /usr/sbin/policy-rc.d (exit 101) forbids service starts for the duration of the install, unless one exists.
#
# Run dir contents: prometheus.yml, prometheus.log, prometheus.pid, url (written once ready), data/ (TSDB,
# fresh on every start, removed by stop).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEMPLATE="$SCRIPT_DIR/prometheus.yml.template"
READY_TIMEOUT="${DRIFTLINE_PROMETHEUS_READY_TIMEOUT:-60}"
STOP_TIMEOUT="${DRIFTLINE_PROMETHEUS_STOP_TIMEOUT:-15}"
APT_TIMEOUT=900

say() { printf '[prometheus] %s\n' "$*" >&2; }
die() { printf '[prometheus] error: %s\n' "$*" >&2; exit 1; }

# set_run_dir DIR [create]: only `start` creates the run dir; stop and status must not leave one behind.
set_run_dir() {
  RUN_DIR="${1:-${DRIFTLINE_PROMETHEUS_RUN:-${TMPDIR:-/tmp}/driftline-prometheus}}"
  if [[ "${2:-}" == create ]]; then mkdir -p "$RUN_DIR"; fi
  if [[ -d "$RUN_DIR" ]]; then RUN_DIR="$(cd "$RUN_DIR" && pwd)"; fi
  CONFIG="$RUN_DIR/prometheus.yml"
  DATA_DIR="$RUN_DIR/data"
  PID_FILE="$RUN_DIR/prometheus.pid"
  LOG_FILE="$RUN_DIR/prometheus.log"
  URL_FILE="$RUN_DIR/url"
}

find_prometheus() {
  local p
  p="$(command -v prometheus 2>/dev/null || true)"
  # Debian installs to /usr/bin; look there too in case PATH is trimmed.
  [[ -z "$p" && -x /usr/bin/prometheus ]] && p=/usr/bin/prometheus
  [[ -n "$p" ]] || return 1
  printf '%s\n' "$p"
}

ensure_prometheus() {
  local p
  if p="$(find_prometheus)"; then PROMETHEUS="$p"; return; fi
  [[ "${DRIFTLINE_NO_APT:-0}" != 1 ]] || die "prometheus not found on PATH and DRIFTLINE_NO_APT=1"
  [[ "$(id -u)" == 0 ]] || die "prometheus not found on PATH; install it (Debian: apt-get install prometheus), or run as root to let this script do it"
  command -v apt-get >/dev/null 2>&1 || die "prometheus not found on PATH and apt-get is not available"
  local lock=/var/lock/driftline-prometheus-install.lock
  exec 8>"$lock"
  if command -v flock >/dev/null 2>&1; then flock -w "$APT_TIMEOUT" 8 || die "another install holds $lock"; fi
  if p="$(find_prometheus)"; then exec 8>&-; PROMETHEUS="$p"; return; fi

  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\n# temporary, scripts/prometheus/prometheus.sh: no service starts during the install\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    made_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  local t0=$SECONDS status=0
  say "prometheus not on PATH: installing Debian's package (apt-get update; apt-get install prometheus)"
  {
    timeout "$APT_TIMEOUT" apt-get update -q &&
      DEBIAN_FRONTEND=noninteractive timeout "$APT_TIMEOUT" apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold prometheus
  } </dev/null >&2 || status=$?
  if (( made_policy )); then rm -f "$policy"; trap - EXIT; fi
  exec 8>&-
  (( status == 0 )) || die "apt-get failed (exit $status)"
  p="$(find_prometheus)" || die "apt-get installed prometheus but no prometheus binary was found"
  say "installed $("$p" --version 2>&1 | head -n 1) in $(( SECONDS - t0 )) s"
  PROMETHEUS="$p"
}

# A free loopback port chosen by the kernel (or $DRIFTLINE_PROMETHEUS_PORT).
pick_port() {
  if [[ -n "${DRIFTLINE_PROMETHEUS_PORT:-}" ]]; then printf '%s\n' "$DRIFTLINE_PROMETHEUS_PORT"; return; fi
  command -v node >/dev/null 2>&1 || die "node not found on PATH (needed to pick a free port)"
  node -e '
    const s = require("node:net").createServer();
    s.listen({ port: 0, host: "127.0.0.1", exclusive: true }, () => {
      const p = s.address().port;
      s.close(() => console.log(p));
    });
  '
}

# Pid of our prometheus for this run dir if it runs, else a non-zero status.
running_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "--config.file=$CONFIG" || return 1
  fi
  printf '%s\n' "$pid"
}

http_ok() {
  node -e '
    fetch(process.argv[1], { signal: AbortSignal.timeout(2000) })
      .then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1));
  ' "$1"
}

stop_pid() {
  local pid="$1"
  kill -TERM "$pid" 2>/dev/null || return 0
  local deadline=$(( SECONDS + STOP_TIMEOUT ))
  while kill -0 "$pid" 2>/dev/null; do
    if (( SECONDS >= deadline )); then
      say "pid $pid still running after ${STOP_TIMEOUT}s: KILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
}

cmd_start() {
  local target="${1:-}"
  local target_re='^[^[:space:]/]+:[0-9]+$'
  [[ "$target" =~ $target_re ]] || die "usage: prometheus.sh start HOST:PORT [RUN_DIR] (got '${target}')"
  set_run_dir "${2:-}" create
  ensure_prometheus
  [[ -r "$TEMPLATE" ]] || die "config template $TEMPLATE missing"
  local old
  if old="$(running_pid)"; then say "stopping the prometheus already running from $RUN_DIR (pid $old)"; stop_pid "$old"; fi
  rm -rf "$DATA_DIR" "$URL_FILE" "$PID_FILE"
  sed "s|@TARGET@|$target|g" "$TEMPLATE" > "$CONFIG"
  if "${PROMETHEUS%prometheus}promtool" --version >/dev/null 2>&1; then
    "${PROMETHEUS%prometheus}promtool" check config "$CONFIG" >/dev/null 2>&1 || die "promtool rejects $CONFIG"
  fi

  local attempt port pid url
  for attempt in 1 2 3; do
    port="$(pick_port)"
    url="http://127.0.0.1:$port"
    # setsid: its own session, so the caller's terminal signals and process group do not reach it.
    setsid "$PROMETHEUS" \
      --config.file="$CONFIG" \
      --storage.tsdb.path="$DATA_DIR" \
      --storage.tsdb.retention.time=1h \
      --web.listen-address="127.0.0.1:$port" \
      --web.enable-lifecycle \
      </dev/null >"$LOG_FILE" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" > "$PID_FILE"
    say "started $("$PROMETHEUS" --version 2>&1 | head -n 1 | cut -d' ' -f1-3) pid $pid on $url scraping $target every 1s"
    local deadline=$(( SECONDS + READY_TIMEOUT ))
    while (( SECONDS < deadline )); do
      if ! kill -0 "$pid" 2>/dev/null; then break; fi
      if http_ok "$url/-/ready"; then
        printf '%s\n' "$url" > "$URL_FILE"
        say "ready (log: $LOG_FILE)"
        printf '%s\n' "$url"
        return 0
      fi
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      stop_pid "$pid"
      die "not ready within ${READY_TIMEOUT}s; last log lines: $(tail -n 5 "$LOG_FILE" | tr '\n' ' ')"
    fi
    if grep -q 'address already in use' "$LOG_FILE" && [[ -z "${DRIFTLINE_PROMETHEUS_PORT:-}" ]]; then
      say "port $port taken meanwhile (attempt $attempt): trying another"
      continue
    fi
    die "prometheus exited during startup; last log lines: $(tail -n 5 "$LOG_FILE" | tr '\n' ' ')"
  done
  die "could not bind a free port in 3 attempts"
}

cmd_stop() {
  set_run_dir "${1:-}"
  local pid
  if pid="$(running_pid)"; then
    stop_pid "$pid"
    say "stopped pid $pid"
  else
    say "not running (run dir $RUN_DIR)"
  fi
  rm -rf "$DATA_DIR" "$PID_FILE" "$URL_FILE"
}

cmd_status() {
  set_run_dir "${1:-}"
  running_pid >/dev/null || { say "not running (run dir $RUN_DIR)"; return 1; }
  [[ -s "$URL_FILE" ]] || { say "starting, not ready yet"; return 1; }
  cat "$URL_FILE"
}

case "${1:-}" in
  install) ensure_prometheus; say "using $PROMETHEUS ($("$PROMETHEUS" --version 2>&1 | head -n 1))"; printf '%s\n' "$PROMETHEUS" ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  status) shift; cmd_status "$@" ;;
  *) die "usage: prometheus.sh install | start HOST:PORT [RUN_DIR] | stop [RUN_DIR] | status [RUN_DIR]" ;;
esac
