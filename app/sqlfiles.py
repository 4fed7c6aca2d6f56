"""The SQL under db/: the declared schema at head, and the frozen SQL of each migration.

db/ is a package of data, installed as `app.sql` (pyproject.toml maps it): it is found here through
importlib.resources, so the same code reads db/ in a checkout (an editable install) and app/sql/ in an
installed wheel, from any working directory.

- `db/schema.sql` (roles, schemas, tables, indexes, grants) and `db/functions/**.sql` (one function per
  file) declare the schema as it is at head.
- Each revision `db/migrations/versions/NNNN_name.py` runs the SQL frozen beside it in
  `db/migrations/versions/NNNN_name/`: its own statements, and under `functions/` a copy of every
  function file it (re)loads, exactly as it was when the revision was written. An old revision
  therefore replays the same whatever db/functions says today.
- A changed function is a new revision carrying its new text: `python -m app.sqlfiles freeze NNNN_name`
  copies every function file that differs from its latest frozen copy into that revision's folder (or
  name the files). tests/db/test_migrations.py builds one database from the migrations and one from the
  declared schema and fails on any difference.

Every path under db/ is resolved here, and only here.
"""

from __future__ import annotations

import importlib.resources
import shutil
import sys
from pathlib import Path
from typing import Any


def _package_dir() -> Path:
    found = importlib.resources.files("app.sql")
    if not isinstance(found, Path):  # e.g. a zipped install: alembic and psql need real files
        raise RuntimeError(f"Hearth's SQL must be installed as files, not inside {found}")
    return found


DB_DIR = _package_dir()
FUNCTIONS_DIR = DB_DIR / "functions"
MIGRATIONS_DIR = DB_DIR / "migrations"
VERSIONS_DIR = MIGRATIONS_DIR / "versions"
SCHEMA_FILE = DB_DIR / "schema.sql"


def function_files() -> list[Path]:
    """The function files at head, in load order."""
    return sorted(FUNCTIONS_DIR.rglob("*.sql"))


def revisions() -> list[str]:
    """The frozen folders, oldest first (NNNN_name)."""
    return sorted(p.name for p in VERSIONS_DIR.iterdir() if p.is_dir() and p.name[:4].isdigit())


def frozen_functions(revision: str) -> list[str]:
    """The function files a revision (re)loads, relative to the versions folder, in load order."""
    base = VERSIONS_DIR / revision / "functions"
    return [str(p.relative_to(VERSIONS_DIR)) for p in sorted(base.rglob("*.sql"))]


def latest_frozen(function: str, *, before: str | None = None) -> Path | None:
    """The newest frozen copy of a function file (`hearth/touch.sql`), optionally only among the
    revisions older than `before`: what a downgrade of `before` reloads."""
    found = None
    for revision in revisions():
        if before is not None and revision >= before:
            break
        copy = VERSIONS_DIR / revision / "functions" / function
        if copy.exists():
            found = copy
    return found


def read(relative: str) -> str:
    return (VERSIONS_DIR / relative).read_text()


def run(op: Any, files: list[str], *, role: str | None = None) -> None:
    """From a revision: run frozen SQL files (relative to the versions folder) in the migration's
    transaction, or print them in offline (--sql) mode. With `role`, they run under SET ROLE, so the
    objects they create are that role's.

    Files go to the driver as they are (no bind-parameter parsing), several statements at once.
    """
    context = op.get_context()
    texts = [(rel, read(rel)) for rel in files]
    if role is not None:
        texts = [("", f"SET ROLE {role};"), *texts, ("", "RESET ROLE;")]
    for rel, text in texts:
        if context.as_sql:
            context.impl.static_output(f"-- {rel}\n{text}" if rel else text)
        else:
            op.get_bind().connection.driver_connection.execute(text)


def reload_previous(op: Any, revision: str, *, role: str | None = None) -> None:
    """From a downgrade: reload, for each function file `revision` froze, its copy in the newest older
    revision (functions that `revision` created have none: the downgrade drops them itself)."""
    previous = []
    for rel in frozen_functions(revision):
        function = rel.split("/functions/", 1)[1]
        older = latest_frozen(function, before=revision)
        if older is not None:
            previous.append(str(older.relative_to(VERSIONS_DIR)))
    run(op, previous, role=role)


def changed_functions() -> list[Path]:
    """Function files that differ from their newest frozen copy, or have none."""
    changed = []
    for path in function_files():
        copy = latest_frozen(str(path.relative_to(FUNCTIONS_DIR)))
        if copy is None or copy.read_bytes() != path.read_bytes():
            changed.append(path)
    return changed


def freeze(revision: str, paths: list[Path]) -> list[Path]:
    """Copy function files into a revision's frozen folder; returns the copies."""
    copies = []
    for path in paths:
        relative = path.resolve().relative_to(FUNCTIONS_DIR)
        copy = VERSIONS_DIR / revision / "functions" / relative
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
        copies.append(copy)
    return copies


def _main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[0] != "freeze":
        raise SystemExit(
            "usage: python -m app.sqlfiles freeze NNNN_name [db/functions/...sql ...]\n"
            "copies the named function files (default: every one changed since its newest frozen copy)\n"
            "into db/migrations/versions/NNNN_name/functions/"
        )
    revision, files = argv[1], [Path(a) for a in argv[2:]]
    for copy in freeze(revision, files or changed_functions()):
        print(copy.relative_to(DB_DIR.parent))


if __name__ == "__main__":
    _main(sys.argv[1:])
