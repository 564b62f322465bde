"""What a grading produces: Gradescope's results JSON (with per-check visibility), the terminal
table, and the messages' escaping (a submission's text cannot forge a row or move the cursor)."""

from __future__ import annotations

import os
import re

from .checks import ASSIGNMENTS, POINTS, VISIBILITY
from .registry import VISIBILITY_LEVELS, render


def parse_visibility(specs):
    """{check: level} from ``--visibility`` values: "LEVEL" (every check) or "KEY=LEVEL", comma-separated."""
    chosen = {}
    for spec in specs or ():
        items = [i.strip() for i in spec.split(",") if i.strip()]
        if not items:
            raise ValueError(f"{spec!r}: give LEVEL (every check) or KEY=LEVEL, comma-separated")
        for item in items:
            key, eq, level = (part.strip() for part in item.rpartition("="))
            if eq and not key:
                raise ValueError(f"{item!r}: name a check before '=' (or give LEVEL alone for every check)")
            if level not in VISIBILITY_LEVELS:
                raise ValueError(f"{item!r}: the level must be one of {', '.join(VISIBILITY_LEVELS)}")
            if key and key not in VISIBILITY:
                raise ValueError(f"{item!r}: no check is called {key!r} (see docs/autograder.md)")
            chosen.update({k: level for k in ([key] if key else VISIBILITY)})
    return chosen


def results_json(gradings, elapsed, visibility=None):
    """Gradescope's results format (the top-level score is the sum of the test scores); each
    test's visibility is its check's declared one unless ``visibility`` {check: level} says otherwise."""
    visibility = {**VISIBILITY, **(visibility or {})}
    tests, lines = [], []
    score = 0.0
    for g in gradings:
        number = ASSIGNMENTS[g["assignment"]]["number"]
        shown = [r for r in g["results"] if visibility.get(r["check"], "visible") == "visible"]
        got, most = sum(r["score"] for r in shown), sum(r["max_score"] for r in shown)
        if len(shown) == len(g["results"]):
            lines.append(f"{g['file']}: {got:g} / {most:g} points")
        else:  # the sum must not give away the checks students may not see yet
            lines.append(f"{g['file']}: {got:g} / {most:g} points in the {len(shown)} visible checks "
                         f"({len(g['results']) - len(shown)} more not shown yet)")
        if g.get("found"):
            lines.append(g["found"])
        for i, r in enumerate(g["results"], 1):
            tests.append({"name": f"{g['file']}: {r['name']}", "number": f"{number}.{i}", "score": r["score"],
                          "max_score": r["max_score"], "output": r["output"],
                          "visibility": visibility.get(r["check"], "visible")})
            score += r["score"]
        if g.get("output"):
            lines.append(f"Output of your {g['file']} during grading (capped):\n{g['output'].rstrip()}")
    return {"score": round(score, 4), "execution_time": int(round(elapsed)), "output": "\n".join(lines),
            "tests": tests}


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _printable(text):
    """``text`` with every control character but newline and tab shown as an escape (``\\x1b``):
    a message built from a submission's exception cannot move the cursor or erase a line."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text))


def _path_text(path):
    """A file name from the submission on one printable line: control characters (newlines too)
    and undecodable bytes escaped, so a folder name cannot forge a line of the report."""
    text = _printable(path.encode("utf-8", "backslashreplace").decode("utf-8"))
    return text.replace("\n", "\\n").replace("\t", "\\t")


def format_table(gradings):
    """The terminal table: one row per check; a message's further lines are marked with "|" so
    no line of a message can pass for a row."""
    out = []
    for g in gradings:
        rows = [(f"{ASSIGNMENTS[g['assignment']]['number']}.{i}", r["check"], f"{r['score']:g}", f"{r['max_score']:g}",
                 r["output"]) for i, r in enumerate(g["results"], 1)]
        w = max(len(r[1]) for r in rows)
        out.append(f"== {g['file']} ({ASSIGNMENTS[g['assignment']]['title']}) ==")
        out.append(f"{'#':<5} {'check':<{w}} {'points':>6} {'max':>4}  message")
        for num, key, s, m, msg in rows:
            first, *rest = _printable(msg).split("\n")
            out.append(f"{num:<5} {key:<{w}} {s:>6} {m:>4}  {first}")
            out.extend(" " * (w + 18) + "| " + line for line in rest)
        total = sum(r["score"] for r in g["results"])
        out.append(f"{'':<5} {'total':<{w}} {total:>6g} {sum(r['max_score'] for r in g['results']):>4g}")
        for note in g.get("notes", []):
            out.append(f"({note})")
        out.append("")
    return "\n".join(out)


def _missing_file_grading(assignment, folder, hide_expected=False):
    found = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    label = ASSIGNMENTS[assignment]["file"]
    msg = (f"no {label} in your submission (found: {', '.join(map(_path_text, found[:20])) if found else 'nothing'}); "
           f"upload {label}")
    results = [{"check": k, "name": render(d, hide_expected), "score": 0.0, "max_score": float(p), "output": msg}
               for k, p, d in POINTS[assignment]]
    return {"assignment": assignment, "file": label, "results": results, "output": "", "notes": [], "seconds": 0.0}
