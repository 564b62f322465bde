"""The checks' vocabulary: ``Check`` (a row of the point table), the two import checks every
assignment starts with, the context a check receives, and the typed outcomes a check or the
channel to the worker can raise. The assignments' own checks live in ``checks/<assignment>.py``."""

from __future__ import annotations

import dataclasses
import re
from typing import Callable

VISIBILITY_LEVELS = ("visible", "after_published", "after_due_date", "hidden")  # Gradescope's per-test ones


@dataclasses.dataclass(frozen=True)
class Check:
    """One row of an assignment's point table. ``run(ctx)`` returns None or a note (full marks)
    or raises CheckFail (0). ``after``: checks that must have run first (the order is checked)."""

    key: str
    points: int
    description: str
    run: Callable | None = None
    after: tuple = ()
    visibility: str = "visible"

    def __post_init__(self):
        assert self.visibility in VISIBILITY_LEVELS, (self.key, self.visibility)
        assert isinstance(self.points, int) and self.points > 0, (self.key, self.points)


# every assignment starts with these two; the worker runs them (the import is each worker's start)
IMPORT_CHECKS = (
    Check("import", 4, "imports alone, without error, within the time limit"),
    Check("import_quiet", 2, "importing prints nothing, writes no file, opens no network connection"),
)


def assemble(checks, module):
    """The full grading order: the import checks, then ``checks`` with each one's ``run`` taken
    from ``module.check_<key>``. Asserts that every check has its function (and every function a
    row), that the keys are unique and that each check comes after the ones it names in ``after``."""
    rows, seen = list(IMPORT_CHECKS), {c.key for c in IMPORT_CHECKS}
    for c in checks:
        assert c.key not in seen, f"duplicate check {c.key}"
        missing = [k for k in c.after if k not in seen]
        assert not missing, f"{c.key} must come after {missing}"
        rows.append(dataclasses.replace(c, run=getattr(module, f"check_{c.key}")))
        seen.add(c.key)
    extra = {n[6:] for n in vars(module) if n.startswith("check_")} - seen
    assert not extra, f"check functions without a row in CHECKS: {sorted(extra)}"
    return tuple(rows)


# An expected value in a message is marked with _exp(); render() shows it, or with
# --hide-expected replaces it by "[hidden]" (students then cannot read answers off the grader).
_EXPECTED = re.compile("\x02(.*?)\x03", re.S)


def _exp(value):
    return f"\x02{value}\x03"


def sci(x):
    """A small number as the handout writes it: 2e-4, 1e-5."""
    return f"{x:.0e}".replace("e-0", "e-")


def render(message, hide_expected=False):
    """A check's message as a student sees it: expected values shown or hidden."""
    return _EXPECTED.sub("[hidden]" if hide_expected else lambda m: m.group(1), message)


# ---------------------------------------------------------------------- outcomes
class CheckFail(Exception):
    """A check failed: the message says why; the check scores 0."""


class OutOfMemory(CheckFail):
    """The submission ran out of memory during the check: 0, and a fresh worker for the rest
    (memory it still holds would fail every later check)."""


class WorkerLost(Exception):
    """The worker died or broke the protocol: the check scores 0 with this message (" during
    this check" added) and a new worker grades the remaining checks."""


class CheckTimeout(WorkerLost):
    """The check overran its time limit (the worker is stopped and restarted)."""


class ForgedReply(WorkerLost):
    """A reply the grader did not ask for, or that does not parse: it earns nothing."""


# ---------------------------------------------------------------------- the context
class Ctx:
    """What a check needs: the reference module, the channel to the worker, and the time limit."""

    def __init__(self, assignment, reference, channel, label, hide_expected=False):
        self.assignment = assignment
        self.ref = reference
        self.channel = channel
        self.label = label
        self.hide_expected = hide_expected  # the worker's own messages then name no reference shape
        self.deadline = None  # set per check by the grader

    def ask(self, op, **fields):
        """Send one request; returns the parsed reply (CheckFail, or OutOfMemory, for a {"fail"} reply)."""
        data = self.channel.ask(op, fields, self.deadline)
        if "fail" in data:
            raise (OutOfMemory if data.get("out_of_memory") else CheckFail)(data["fail"])
        return data
