"""The README and docs/ stand alone: every link points inside the repository, at a file that exists and,
for a `#fragment`, at a heading of that file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
# The demo page the README points at: the app's own address, on this machine.
LOCAL = re.compile(r"<?https?://(127\.0\.0\.1|localhost)[:/]")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (but - and _), spaces as -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_stay_inside_the_repository_and_resolve(doc: Path) -> None:
    text = doc.read_text()
    assert "../shared" not in text and "SPEC.md" not in text
    for target in LINK.findall(text):
        assert not re.match(r"[a-z]+:", target), f"{doc.name} links outside the repository: {target}"
        path, _, fragment = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        assert linked.is_relative_to(ROOT), f"{doc.name}: {target} leaves the repository"
        assert linked.exists(), f"{doc.name}: {target} does not exist"
        if fragment:
            assert fragment in _anchors(linked), f"{doc.name}: no heading for #{fragment} in {linked.name}"
    for url in re.findall(r"https?://[^\s)>`]+", text):
        assert LOCAL.match(url) or "example.org" in url, f"{doc.name} names an outside address: {url}"


def test_the_readme_links_every_document() -> None:
    readme = (ROOT / "README.md").read_text()
    for doc in DOCS[1:]:
        assert f"](docs/{doc.name}" in readme, f"README.md does not link docs/{doc.name}"
