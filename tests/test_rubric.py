"""docs/rubric.md: it covers every part of the key, its points add up, it states the cap and the
knock-on rule, every written part lists accepted equivalents and class-wide mistakes, no part's
deductions for the submitted sheet exceed its points, and it agrees with the key's appendix
(the verdict blocks) on the submitted hw2 sheet; the code deductions equal what
autograder.checks.POINTS takes from the named mutants. Each check is a function of the rubric's text, so the negative
controls at the end run the same checks on broken copies."""

import re

import pytest

from test_written_answers import KEY, PART_IDS, ROOT, _blocks, _fields

RUBRIC = ROOT / "docs" / "rubric.md"
CODE_PARTS = {"hw5.Q3.a", "hw5.Q3.b", "hw5.Q3.c", "hw2.Q3.a", "hw2.Q3.b"}
WRITTEN = [p for p in PART_IDS if ".sheet." not in p and p not in CODE_PARTS]
ITEM = re.compile(r"-(\d+): (.*?)(?=; -\d+:|$)")


def rows(text):
    """{part: (points, accepted equivalents, [(deduction, text)])} of the two part tables."""
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 4 and re.fullmatch(r"hw\d\.[\w.]+", cells[0]) and cells[1].isdigit():
            assert cells[0] not in out, cells[0]
            out[cells[0]] = (int(cells[1]), cells[2], [(int(d), t) for d, t in
                                                       ITEM.findall(cells[3])])
    return out


def sheet_scores(text):
    """{part: (verdict, score or None)} of the table 'The submitted hw2 sheet under this rubric'."""
    sec = text[text.index("## The submitted hw2 sheet"):text.index("## Code")]
    out = {}
    for m in re.finditer(r"^\| (hw2\.[\w.]+) \| ([^|]+) \| (?:(\d+)/(\d+)|—) \|$", sec, re.M):
        out[m.group(1)] = (m.group(2).strip(), (int(m.group(3)), int(m.group(4)))
                           if m.group(3) else None)
    return out


def is_sheet(t):
    return "(sheet" in t


def check_covers_and_adds_up(text):
    r = rows(text)
    assert sorted(r) == sorted(WRITTEN), set(r) ^ set(WRITTEN)
    code = text[text.index("## Code"):]
    for pid in CODE_PARTS:
        assert pid in code, f"{pid} not in the rubric's code section"
    for hw in ("hw5", "hw2"):
        assert sum(pts for pid, (pts, _, _) in r.items() if pid.startswith(hw)) == 100, hw
        assert re.search(rf"^## {hw} \(written, 100\)", text, re.M)


def check_each_part(text):
    """Accepted equivalents and >= 2 class-wide mistakes per part; each deduction within points."""
    for pid, (pts, accept, deds) in rows(text).items():
        assert len(accept) >= 10, f"{pid}: no accepted answer listed"
        assert len([t for _, t in deds if not is_sheet(t)]) >= 2, f"{pid}: class-wide mistakes"
        assert all(0 < d <= pts for d, _ in deds), pid


def check_rules(text):
    assert "**never below 0**" in text, "the cap"
    assert "deduct once per root error" in text, "the knock-on rule"
    assert "Equivalent answers earn full credit" in text
    assert "Notation is judged as the appendix judges it" in text


def check_no_set_exceeds_its_points(text):
    """The deductions the rubric lists for the one submitted sheet never need the cap; the others
    may add up past a part's points only because the cap is stated."""
    for pid, (pts, _, deds) in rows(text).items():
        assert sum(d for d, t in deds if is_sheet(t)) <= pts, f"{pid}: sheet deductions > points"
        if sum(d for d, _ in deds) > pts:
            assert "**never below 0**" in text


def check_agrees_with_the_appendix(text, key_text):
    r, scores = rows(text), sheet_scores(text)
    blocks = _blocks(key_text)
    sheet = [p for p in blocks if p.startswith("hw2.sheet.")]
    assert len(sheet) == 20 and len(scores) == 20
    for sid in sheet:
        q, *rest = sid.split(".")[2:]
        part = "hw2." + ".".join([q] + [x.lower() for x in rest])
        f = _fields(blocks[sid][0][1])
        result, steps = f["result"], f.get("steps")
        pts, _, deds = r[part]
        lost = sum(d for d, t in deds if is_sheet(t))
        verdict, score = scores[part]
        if result == "ungraded":
            assert score is None and "PDF" in text[text.index(f"| {part} |"):].split("\n")[0]
            continue
        if result == "missing":  # a blank part: 0 (rule 1), nothing to deduct
            assert lost == 0 and score == (0, pts) and verdict == "missing", part
            continue
        assert score == (max(0, pts - lost), pts), (part, score, pts - lost)
        if result == "right" and steps != "wrong":
            assert lost == 0 and verdict.startswith("right"), part
        elif result == "right":
            assert 0 < lost < pts and verdict == "wrong step, right result", part
        else:  # wrong, incomplete
            assert lost > 0 and verdict == result, part


def check_appendix_table_agrees_with_its_blocks(key_text):
    """The appendix's table says what its verdict blocks say."""
    blocks = _blocks(key_text)
    table = {m.group(1).replace(" ", "."): m.group(2) for m in re.finditer(
        r"^\| (Q\d [A-H]\.?[iv]*) \| ([^|]+) \|", key_text, re.M)}
    assert len(table) == 20
    for row, verdict in table.items():
        f = _fields(blocks[f"hw2.sheet.{row}"][0][1])
        result, steps = f["result"], f.get("steps")
        if result == "right":
            assert "right" in verdict and not verdict.startswith("**wrong**"), row
            assert (steps == "wrong") == bool(re.search(r"wrong|sloppy|mislabelled", verdict)), row
        elif result == "ungraded":
            assert "not gradeable" in verdict, row
        else:
            assert verdict.startswith(f"**{result}**"), (row, verdict)


def test_rubric_covers_every_part_and_adds_up():
    check_covers_and_adds_up(RUBRIC.read_text())


def test_every_part_has_equivalents_and_class_wide_mistakes():
    check_each_part(RUBRIC.read_text())


def test_rubric_states_the_cap_and_the_knock_on_rule():
    check_rules(RUBRIC.read_text())


def test_no_deduction_set_exceeds_its_points_without_the_cap():
    check_no_set_exceeds_its_points(RUBRIC.read_text())


def test_rubric_agrees_with_the_appendix():
    check_agrees_with_the_appendix(RUBRIC.read_text(), KEY.read_text())
    check_appendix_table_agrees_with_its_blocks(KEY.read_text())


def test_rubric_code_deductions_match_the_autograder():
    from autograder.checks import POINTS
    from test_autograde import MUTANTS

    points = {a: {k: p for k, p, _ in r} for a, r in POINTS.items()}
    items = re.findall(r'-(\d+): "([^"]+)" \(mutant\)', RUBRIC.read_text())
    assert len(items) >= 8
    for ded, name in items:
        assignment, _, lost = MUTANTS[name]
        assert int(ded) == sum(points[assignment][k] for k in lost), name


def _agrees(text):
    check_agrees_with_the_appendix(text, KEY.read_text())


BROKEN = {
    # the old hw2.Q2.h: the non-integer stride deducted again (knock-on), -10 on a 5-point part
    "knock-on": ("; -2: padding used", "; -5: non-integer stride (sheet); -2: padding used",
                 check_no_set_exceeds_its_points),
    # the old B.iv: a notation deduction for an answer the appendix calls right
    "notation": ("(over d or over i) |", "(over d or over i); -1: notation P(z_j) without "
                 "conditioning (sheet) |", _agrees),
    "score": ("| hw2.Q2.g | wrong step, right result | 3/4 |",
              "| hw2.Q2.g | wrong step, right result | 4/4 |", _agrees),
    "verdict": ("| hw2.Q2.h | wrong | 0/5 |", "| hw2.Q2.h | right | 0/5 |", _agrees),
    "points": ("| hw5.Q1.a.ii | 5 |", "| hw5.Q1.a.ii | 6 |", check_covers_and_adds_up),
    "part dropped": ("| hw2.Q2.d | 4 |", "| hw2.Q2.dd | 4 |", check_covers_and_adds_up),
    "no equivalents": ("| 2 (the two means) |", "|  |", check_each_part),
    "only the sheet's mistakes": ("; -2: pi instead of eta as the weights; -2: log P(x) not "
                                  "expanded over d", "", check_each_part),
    "no cap": ("**never below 0**", "below 0 if need be", check_rules),
    "no knock-on rule": ("deduct once per root error", "deduct for every error", check_rules),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_negative_controls(name):
    """Each check fails on a copy of the rubric broken the way its name says."""
    old, new, check = BROKEN[name]
    text = RUBRIC.read_text()
    assert text.count(old) == 1, old
    with pytest.raises((AssertionError, KeyError)):
        check(text.replace(old, new))


def test_appendix_check_negative_control():
    """A verdict changed in the appendix's table alone is caught."""
    bad = KEY.read_text().replace("| Q1 B.iv | right |", "| Q1 B.iv | **wrong** |")
    with pytest.raises(AssertionError):
        check_appendix_table_agrees_with_its_blocks(bad)
