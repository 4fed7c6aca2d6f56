#!/usr/bin/env bash
# Installs what Hearth needs and is missing: Debian's pg_cron and chromium (when root), a venv with the
# project.
# Sourced by scripts/hearth and scripts/test; safe to run again (it does nothing when all is there).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pgbin="${HEARTH_PG_BIN:-/usr/lib/postgresql/15/bin}"

need_apt=()
[ -x "$pgbin/postgres" ] || need_apt+=(postgresql-15)
[ -f "$(dirname "$pgbin")/lib/pg_cron.so" ] || need_apt+=(postgresql-15-cron)
# The browser test drives Debian's Chromium through playwright (never `playwright install`).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
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
