#!/usr/bin/env bash
# Installs what Hearth needs and is missing: Debian's pg_cron, chromium and node (when root), a venv with
# the project, the JavaScript client's dev dependencies (clients/js/node_modules, from its lockfile).
# Sourced by scripts/hearth and scripts/test; safe to run again (it does nothing when all is there).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pgbin="${HEARTH_PG_BIN:-/usr/lib/postgresql/15/bin}"

need_apt=()
[ -x "$pgbin/postgres" ] || need_apt+=(postgresql-15)
[ -f "$(dirname "$pgbin")/lib/pg_cron.so" ] || need_apt+=(postgresql-15-cron)
# The browser test drives Debian's Chromium through playwright (never `playwright install`).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# The JavaScript client's tests run on Node 20+ (clients/js).
command -v npm >/dev/null || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing ${need_apt[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "bootstrap: please install ${need_apt[*]} (Debian packages); continuing without" >&2
  fi
fi

py="${PYTHON:-$(command -v python3.11 || command -v python3)}"
stamp="$root/.venv/.installed"
if [ ! -x "$root/.venv/bin/python" ]; then
  echo "bootstrap: creating .venv" >&2
  "$py" -m venv "$root/.venv"
fi
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  echo "bootstrap: installing Python dependencies into .venv" >&2
  "$root/.venv/bin/pip" install -q --disable-pip-version-check -e "$root[dev]"
  touch "$stamp"
fi
js="$root/clients/js"
if command -v npm >/dev/null && { [ ! -f "$js/node_modules/.package-lock.json" ] \
    || [ "$js/package-lock.json" -nt "$js/node_modules/.package-lock.json" ]; }; then
  echo "bootstrap: installing the JavaScript client's dev dependencies (npm ci)" >&2
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
fi
