"""The README and docs/: every relative link and image resolves, the Quickstart is the two
commands CI runs, and the README stays a short page."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page):
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", page.read_text(), re.M)}


def links(page):
    """(target, anchor) of every relative link or image of ``page`` (code blocks skipped)."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for m in LINK.finditer(text):
        url = m.group(1)
        if re.match(r"[a-z]+:", url):  # http:, https:, mailto:
            continue
        path, _, anchor = url.partition("#")
        yield (page.parent / path).resolve() if path else page, anchor


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(page):
    broken = [f"{t}#{a}" for t, a in links(page) if not t.exists() or (a and t.suffix == ".md" and a not in anchors(t))]
    assert not broken, f"{page.name}: broken links {broken}"


def test_the_link_check_catches_a_broken_link_and_a_broken_anchor(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# A heading, with punctuation\n")
    page.write_text("[ok](there.md#a-heading-with-punctuation) [gone](missing.md) [bad](there.md#nope) "
                    "![img](fig.png) [web](https://example.org/x)\n")
    bad = [t.name + "#" + a for t, a in links(page) if not t.exists() or (a and a not in anchors(t))]
    assert bad == ["missing.md#", "there.md#nope", "fig.png#"]


def test_readme_is_short_and_its_quickstart_is_the_two_commands_ci_runs():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    quick = text[text.index("## Quickstart"):]
    block = re.search(r"```bash\n(.*?)```", quick, re.S).group(1).strip().splitlines()
    assert block == ["python -m pip install -r requirements.txt && python hw5.py",
                     "python -m pip install -r requirements.txt && python -m pytest"]
    assert block[1] in (ROOT / ".ci" / "run").read_text()  # CI runs the README's test command
