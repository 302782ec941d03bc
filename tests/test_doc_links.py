"""Every relative link of the Markdown pages leads somewhere: the file exists, and a `#fragment` names a heading
of the page it points at (GitHub's heading ids: lower case, punctuation dropped, spaces as hyphens). A page that
moves, or a heading that is reworded, otherwise leaves readers at a 404 or at the top of a long page without a
word."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted(
    [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "bench").glob("*.md"), *REPO.glob("tests/data/*/*.md")]
)
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)  # links inside code are examples, not links
LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def heading_id(title: str) -> str:
    """The id GitHub gives a heading: lower case, characters other than letters, digits, `_`, `-` and spaces
    dropped, spaces turned into hyphens."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def heading_ids(page: Path) -> set[str]:
    return {heading_id(title) for title in HEADING.findall(CODE.sub("", page.read_text(encoding="utf-8")))}


def broken_links(page: Path) -> list[str]:
    """The relative links of `page` whose file is missing or whose fragment is no heading there."""
    broken = []
    for target in LINK.findall(CODE.sub("", page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, fragment = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target} (no such file: {os.path.relpath(destination, page.parent)} from {page.name})")
        elif fragment and destination.suffix == ".md" and fragment not in heading_ids(destination):
            broken.append(f"{target} (no heading #{fragment} in {destination.name})")
    return broken


def test_the_pages_are_found():
    assert REPO / "README.md" in PAGES and len(PAGES) >= 10


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_relative_link_leads_somewhere(page):
    assert broken_links(page) == []


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "other.md").write_text("# A heading, with punctuation!\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md) [ok](other.md#a-heading-with-punctuation) [gone](missing.md) [moved](other.md#old) "
        "`[code](not/checked.md)` [web](https://example.org/x)\n",
        encoding="utf-8",
    )
    assert [line.split(" (")[0] for line in broken_links(page)] == ["missing.md", "other.md#old"]
