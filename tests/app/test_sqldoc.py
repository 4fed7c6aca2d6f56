"""docs/sql-api.md is what app.sqldoc renders from a migrated database: a changed function, comment, grant
or job fails here until the file is regenerated."""

from __future__ import annotations

import difflib
from pathlib import Path

from app import sqldoc

DOC = Path(__file__).resolve().parents[2] / "docs" / "sql-api.md"


def test_sql_api_doc_is_rendered_from_the_database(db_url: str) -> None:
    rendered = sqldoc.render(db_url)
    committed = DOC.read_text()
    diff = "".join(
        difflib.unified_diff(
            committed.splitlines(True), rendered.splitlines(True), "committed", "rendered", n=1
        )
    )
    assert rendered == committed, (
        "docs/sql-api.md is out of date: run `python -m app.sqldoc --output docs/sql-api.md`\n" + diff[:4000]
    )


def test_every_api_function_is_documented_with_what_it_raises(db_url: str) -> None:
    text = sqldoc.render(db_url)
    for section in text.split("\n### hearth.")[1:]:
        name = section.split("\n", 1)[0]
        assert "(no comment)" not in section, name
        assert "\nRaises: " in section, name


def test_raises_follows_the_calls() -> None:
    bodies = {
        "hearth.a": "PERFORM hearth_data.b(1); RAISE EXCEPTION 'x' USING ERRCODE = 'HT403';",
        "hearth_data.b": "PERFORM hearth_data.c(); PERFORM hearth.a(2);",
        "hearth_data.c": "RAISE EXCEPTION 'y' USING ERRCODE = 'HT410';",
    }
    assert sqldoc._raised("hearth.a", bodies) == {"HT403", "HT410"}
    assert sqldoc._raised("hearth_data.c", bodies) == {"HT410"}
