#!/usr/bin/env bash
# Debian's chromium for driftline's browser tests (driven by playwright-core from test/support/browser.ts).
#
#   bash scripts/chromium/chromium.sh install   # make sure `chromium` is on PATH; last stdout line: its path
#   bash scripts/chromium/chromium.sh path      # print the executable, or exit 1 when there is none
#
# Environment (all optional):
#   DRIFTLINE_CHROMIUM   the executable to use instead of the `chromium` on PATH
#   DRIFTLINE_NO_APT=1   never install with apt-get (fail instead when chromium is missing)
#
# Installing: only as root with apt-get available: `apt-get update`, then `apt-get install -y
# --no-install-recommends chromium` (Debian 12 with its security updates: Chromium 156 when written, a 124 MB
# download, 414 MB installed, about 20 s). Nothing in the package starts a service; the tests start the browser
# themselves, headless, never this script.
set -euo pipefail

APT_TIMEOUT=900

say() { printf '[chromium] %s\n' "$*" >&2; }
die() { printf '[chromium] error: %s\n' "$*" >&2; exit 1; }

find_chromium() {
  local p
  if [[ -n "${DRIFTLINE_CHROMIUM:-}" ]]; then
    [[ -x "$DRIFTLINE_CHROMIUM" ]] || return 1
    printf '%s\n' "$DRIFTLINE_CHROMIUM"
    return
  fi
  p="$(command -v chromium 2>/dev/null || true)"
  # Debian installs /usr/bin/chromium; look there too in case PATH is trimmed.
  [[ -z "$p" && -x /usr/bin/chromium ]] && p=/usr/bin/chromium
  [[ -n "$p" ]] || return 1
  printf '%s\n' "$p"
}

chromium_version() {
  "$1" --version 2>/dev/null | head -n 1 || true
}

ensure_chromium() {
  local p
  if p="$(find_chromium)"; then CHROMIUM="$p"; return; fi
  [[ -z "${DRIFTLINE_CHROMIUM:-}" ]] || die "DRIFTLINE_CHROMIUM=$DRIFTLINE_CHROMIUM is not an executable"
  [[ "${DRIFTLINE_NO_APT:-0}" != 1 ]] || die "chromium not found on PATH and DRIFTLINE_NO_APT=1"
  [[ "$(id -u)" == 0 ]] || die "chromium not found on PATH; install it (Debian: apt-get install chromium), or run as root to let this script do it"
  command -v apt-get >/dev/null 2>&1 || die "chromium not found on PATH and apt-get is not available"
  local lock=/var/lock/driftline-chromium-install.lock
  exec 8>"$lock"
  if command -v flock >/dev/null 2>&1; then flock -w "$APT_TIMEOUT" 8 || die "another install holds $lock"; fi
  if p="$(find_chromium)"; then exec 8>&-; CHROMIUM="$p"; return; fi

  local t0=$SECONDS status=0
  say "chromium not on PATH: installing Debian's package (apt-get update; apt-get install chromium)"
  {
    timeout "$APT_TIMEOUT" apt-get update -q &&
      DEBIAN_FRONTEND=noninteractive timeout "$APT_TIMEOUT" apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold chromium
  } </dev/null >&2 || status=$?
  exec 8>&-
  (( status == 0 )) || die "apt-get failed (exit $status)"
  p="$(find_chromium)" || die "apt-get installed chromium but no chromium executable was found"
  say "installed $(chromium_version "$p") in $(( SECONDS - t0 )) s"
  CHROMIUM="$p"
}

case "${1:-}" in
  install) ensure_chromium; say "using $CHROMIUM ($(chromium_version "$CHROMIUM"))"; printf '%s\n' "$CHROMIUM" ;;
  path) find_chromium || { say "chromium not found on PATH${DRIFTLINE_CHROMIUM:+ (DRIFTLINE_CHROMIUM=$DRIFTLINE_CHROMIUM is not an executable)}"; exit 1; } ;;
  *) die "usage: chromium.sh install | path" ;;
esac
