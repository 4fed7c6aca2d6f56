"""SQL files under db/ and how migrations load them.

Each revision lists the function files it (re)loads with their sha256 at the time it was written.
tests/db/test_migrations.py fails when a file's current hash differs from the hash recorded by the last
revision that loads it: a changed function needs a new revision that reloads it.
Run `python -m app.sqlfiles db/functions/hearth/x.sql ...` to print the entries for a new revision, and
`python -m app.sqlfiles --rehash db/migrations/versions/NNNN_x.py` to refresh the hashes of a revision
that has not been released yet.
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path
from typing import Any

DB_DIR = Path(__file__).resolve().parent.parent / "db"
FUNCTIONS_DIR = DB_DIR / "functions"
MIGRATIONS_DIR = DB_DIR / "migrations"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def function_files() -> list[Path]:
    return sorted(FUNCTIONS_DIR.rglob("*.sql"))


def load_files(op: Any, relative_paths: list[str], base: Path = DB_DIR) -> None:
    """Run SQL files in the migration's transaction, or print them in offline (--sql) mode.

    Files go to the driver as they are (no bind-parameter parsing), several statements at once.
    """
    context = op.get_context()
    for rel in relative_paths:
        text = (base / rel).read_text()
        if context.as_sql:
            context.impl.static_output(f"-- {rel}\n{text}")
        else:
            raw = op.get_bind().connection.driver_connection
            raw.execute(text)


_ENTRY = re.compile(r'(\s*)"([^"]+\.sql)": "[0-9a-f]{64}",')


def rehash(revision_file: Path) -> None:
    """Rewrite the recorded hashes of an unreleased revision from the files as they are now, except for
    files that a later revision (a higher-numbered file beside it) reloads: that one records them."""
    later = {
        match[2]
        for other in revision_file.parent.glob("*.py")
        if other.name > revision_file.name
        for match in map(_ENTRY.match, other.read_text().splitlines())
        if match
    }
    out = []
    for line in revision_file.read_text().splitlines(keepends=True):
        match = _ENTRY.match(line)
        if match and match[2] not in later:
            line = f'{match[1]}"{match[2]}": "{sha256_of(DB_DIR / match[2])}",\n'
        out.append(line)
    revision_file.write_text("".join(out))


def _main(argv: list[str]) -> None:
    if argv[:1] == ["--rehash"]:
        for arg in argv[1:]:
            rehash(Path(arg))
        return
    for arg in argv:
        path = Path(arg).resolve()
        print(f'    "{path.relative_to(DB_DIR)}": "{sha256_of(path)}",')


if __name__ == "__main__":
    _main(sys.argv[1:])
