"""The documentation holds together: README.md stays a newcomer's page, and every
relative link in it and in docs/ leads to a file (and heading) that exists."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of ``page``."""
    out = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_every_relative_link_leads_somewhere() -> None:
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue                                    # http:, mailto:
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken


def test_the_readme_is_a_page_for_newcomers() -> None:
    """About two screens: what it is, the two commands, the walkthrough, where next."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 110
    for heading in ("## The two commands", "## Your own station in ten minutes", "## Where next"):
        assert heading in text
    assert "scripts/demo" in text and "scripts/test" in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test" in ci                           # CI runs the README's test command
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{page.name}" in text, f"README does not lead to docs/{page.name}"
