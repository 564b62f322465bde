"""Grading a whole class in one command: ``python autograde.py --class EXPORT_DIR ...``.

Read top to bottom: the export (who submitted what), the rule that picks each student's file,
then the run (a pool of grading processes, resumable) and what it writes: ``grades.csv``, one
feedback folder per submission, and the class summary (score histogram, each check's pass rate).

Each submission is graded by ``runner.grade_assignment``, exactly as ``autograde.py FILE``
grades it: a fresh sandboxed worker per submission, started after the submission is copied,
never reused. What the class mode shares between students is the trusted side only (torch and
the reference imported once, then forked into the pool's processes).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import hashlib
import io
import json
import multiprocessing
import os
import re
import signal
import sys

from .checks import ASSIGNMENTS, POINTS
from .report import _path_text, format_table, results_json

STATUSES = ("graded", "missing", "ambiguous", "error")  # "error": the grader's or host's fault, no score
METADATA = "submission_metadata.yml"  # Gradescope's "Export Submissions" index
SKIPPED_DIRS = ("__MACOSX",)  # and every hidden folder
MAX_DEPTH = 8  # folders below a submission's own that are searched (a zipped upload's folders)


# ==========================================================================================
# THE EXPORT: one entry per student
# ==========================================================================================
class ExportError(ValueError):
    """The export folder cannot be read as a class (one line, naming what was expected)."""


def read_export(export_dir):
    """``[{"student", "email", "submission", "folder"}]``, one per student, sorted by student.

    A Gradescope export holds ``submission_metadata.yml`` (at its top, or in its one subfolder)
    and a folder ``submission_<id>/`` per submission; a group submission gives one row per
    member. Any other folder is a plain export (Canvas, Moodle, a TA's own): one subfolder per
    student, named after the student. ``folder`` is None when the metadata lists a submission
    whose folder is not there.
    """
    export_dir = os.path.abspath(export_dir)
    if not os.path.isdir(export_dir):
        raise ExportError(f"--class: {export_dir!r} is not a folder (expected a submissions export)")
    meta = os.path.join(export_dir, METADATA)
    if not os.path.isfile(meta):
        inner = [os.path.join(export_dir, d) for d in _subfolders(export_dir)]
        inner = [d for d in inner if os.path.isfile(os.path.join(d, METADATA))]
        if len(inner) == 1:
            export_dir, meta = inner[0], os.path.join(inner[0], METADATA)
    if os.path.isfile(meta):
        return _read_gradescope(export_dir, meta)
    students = [{"student": d, "email": "", "submission": d, "folder": os.path.join(export_dir, d)}
                for d in _subfolders(export_dir)]
    students += [{"student": d, "email": "", "submission": d, "folder": None, "note": "a symbolic link (not followed)"}
                 for d in sorted(os.listdir(export_dir)) if not d.startswith(".")
                 and os.path.islink(os.path.join(export_dir, d)) and os.path.isdir(os.path.join(export_dir, d))]
    if not students:
        raise ExportError(f"--class: {export_dir!r} holds neither {METADATA} nor a subfolder per student")
    return sorted(students, key=lambda s: (s["student"].lower(), s["submission"]))


def _subfolders(folder):
    return sorted(d for d in os.listdir(folder) if not d.startswith(".") and d not in SKIPPED_DIRS
                  and os.path.isdir(os.path.join(folder, d)) and not os.path.islink(os.path.join(folder, d)))


def _read_gradescope(export_dir, meta):
    import yaml  # PyYAML (requirements.txt); Gradescope writes Ruby-style keys such as ":submitters:"

    class Loader(yaml.SafeLoader):  # a Ruby-tagged value (!ruby/object:BigDecimal ...) read as plain data
        pass

    Loader.add_multi_constructor("!ruby/", lambda loader, suffix, node: (
        loader.construct_mapping(node) if isinstance(node, yaml.MappingNode) else
        loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else loader.construct_scalar(node)))
    try:
        with open(meta, encoding="utf-8") as f:
            data = yaml.load(f, Loader=Loader)  # noqa: S506 - a SafeLoader: no Python objects
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ExportError(f"--class: cannot read {meta}: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ExportError(f"--class: {meta} is not a mapping of submissions (expected Gradescope's export)")
    students = []
    for sub, info in data.items():
        sub = str(sub)
        info = {str(k).lstrip(":"): v for k, v in (info or {}).items()} if isinstance(info, dict) else {}
        folder = os.path.join(export_dir, sub)
        plain = os.path.basename(sub) == sub and sub not in ("", ".", "..")  # never a path out of the export
        folder = folder if plain and os.path.isdir(folder) and not os.path.islink(folder) else None
        people = [p for p in info.get("submitters") or [] if isinstance(p, dict)]
        for p in people or [{}]:
            p = {str(k).lstrip(":"): v for k, v in p.items()}
            note = "" if people else f"no submitters in {METADATA}"
            if not plain:
                note = "; ".join(n for n in (note, "its key is not a folder name of the export") if n)
            students.append({"student": str(p.get("name") or p.get("email") or sub), "email": str(p.get("email") or ""),
                             "submission": sub, "folder": folder, **({"note": note} if note else {})})
    listed = {s["submission"] for s in students}
    for d in _subfolders(export_dir):  # on disk but not in the metadata: graded, and named so
        if d not in listed:
            students.append({"student": d, "email": "", "submission": d, "folder": os.path.join(export_dir, d),
                             "note": f"not listed in {METADATA}"})
    return _note_duplicates(sorted(students, key=lambda s: (s["student"].lower(), s["submission"])))


def _note_duplicates(students):
    """A student (the same email, or the same name without one) in two submissions gets a note on
    both rows: which one counts is the TA's decision, not the grader's."""
    import unicodedata

    by = {}
    for s in students:
        who = s["email"].strip().lower() or unicodedata.normalize("NFC", s["student"]).strip().lower()
        by.setdefault(who, []).append(s)
    for same in by.values():
        subs = sorted({s["submission"] for s in same})
        for s in same if len(subs) > 1 else ():
            others = ", ".join(x for x in subs if x != s["submission"])
            s["note"] = "; ".join(n for n in (s.get("note", ""), f"the same student is also in {others}") if n)
    return students


# ==========================================================================================
# THE FILE RULE: which file of a submission is graded (never a guess)
# ==========================================================================================
def choose_file(folder, assignment):
    """``(status, path or None, note)`` for one submission folder, by this rule:

    1. the file named as the handout says (``hw5.py``; any case), up to MAX_DEPTH folders deep:
       exactly one is graded; several are ``ambiguous`` (all listed);
    2. none so named: the submission's only ``.py`` file is graded, and the note says so
       (``hw5_final.py`` graded as hw5.py); several ``.py`` files are ``ambiguous``;
    3. no ``.py`` file at all: ``missing``, with the files that are there.
    Hidden folders, ``__MACOSX`` and symbolic links are never followed or graded.
    """
    label = ASSIGNMENTS[assignment]["file"]
    if folder is None:
        return "missing", None, "no folder for this submission in the export"
    named, python, others, deeper = [], [], [], False
    for root, dirs, files in os.walk(folder):
        depth = os.path.relpath(root, folder).count(os.sep) + (root != folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS
                         and not os.path.islink(os.path.join(root, d)))
        if depth >= MAX_DEPTH and dirs:
            deeper, dirs[:] = True, []
        for f in sorted(files):
            p = os.path.join(root, f)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            rel = os.path.relpath(p, folder)
            (named if f.lower() == label.lower() else python if f.endswith(".py") else others).append(rel)
    shown = lambda paths: ", ".join(map(_path_text, paths[:8])) + (f" (+{len(paths) - 8} more)" if len(paths) > 8 else "")
    if len(named) == 1:
        note = "" if named[0] == label else f"graded {_path_text(named[0])} as {label}"
        return "graded", os.path.join(folder, named[0]), note
    if named:
        return "ambiguous", None, f"{len(named)} files named {label}: {shown(named)}"
    if len(python) == 1:
        return "graded", os.path.join(folder, python[0]), f"graded {_path_text(python[0])} as {label} (its only .py file)"
    if python:
        return "ambiguous", None, f"no {label}, and {len(python)} other .py files: {shown(python)}"
    note = f"no {label} and no .py file" + (f"; found: {shown(others)}" if others else "")
    if deeper:
        note += f"; folders more than {MAX_DEPTH} levels deep were not searched"
    elif not others:
        note += "; the folder holds no regular file"
    return "missing", None, note


# ==========================================================================================
# THE RUN
# ==========================================================================================
def grade_class(export_dir, assignment, gradebook, feedback_dir, jobs=1, regrade=False, options=None,
                progress=None, log=print):
    """Grade every submission of ``export_dir`` as ``assignment``; write ``gradebook`` (CSV),
    ``feedback_dir/students/<submission>/`` (feedback.txt, results.json, record.json) and the class
    summary (``feedback_dir/summary.png``, ``pass_rates.csv``). Returns the gradebook rows.

    ``options``: ``grade_assignment``'s keyword arguments (timeout, memory_mb, hide_expected)
    plus ``visibility`` for results.json. A submission whose record.json says it was graded from
    the same file by the same grader with the same options is not graded again unless
    ``regrade``. Ctrl-C keeps every finished grading (its record and the gradebook so far).
    """
    from common import atomic_write_bytes

    from . import runner, sandbox

    options = dict(options or {})
    visibility = options.pop("visibility", None)
    students = read_export(export_dir)
    fingerprint = _grader_fingerprint(assignment, dict(options, visibility=visibility))
    os.makedirs(os.path.join(feedback_dir, "students"), exist_ok=True)
    with _lock(feedback_dir):
        by_submission = {}  # one grading per submission (a group's members share it)
        for s in students:
            by_submission.setdefault(s["submission"], s)
        folders = _feedback_folders(feedback_dir, by_submission)
        records, todo = {}, []  # a record's note is the file rule's (students see it); export notes stay per row
        for sub, s in by_submission.items():
            status, path, note = choose_file(s["folder"], assignment)
            if status == "graded":
                try:
                    digest = _sha256(path)
                except OSError as e:
                    status, note = "error", "; ".join(n for n in (note, f"cannot read it: {e.strerror}") if n)
            if status != "graded":
                records[sub] = {"status": status, "file": "", "score": None, "checks": {}, "note": note}
                _write_feedback(folders[sub], records[sub], None, None)
                continue
            old = None if regrade else _read_record(folders[sub])
            if (old and old.get("status") == "graded" and old.get("submission") == sub
                    and old.get("fingerprint") == fingerprint and old.get("sha256") == digest
                    and old.get("file") == os.path.relpath(path, s["folder"])):  # (the feedback names the file)
                records[sub] = dict(old, note=note)
            else:
                todo.append((sub, path, digest, note))
        if todo and jobs > 1 and not sandbox.workers_isolated_from_each_other(runner.hidden_folders(assignment)):
            log(f"grading one at a time, not {jobs} at once: without mount and PID namespaces here, two students' "
                f"workers would share a user and could reach each other's files and processes")
            jobs = 1
        if todo:
            runner.prepare(assignment)  # torch and the reference imported once, before the pool forks
        done = sum(r["status"] == "graded" for r in records.values())
        log(f"{len(by_submission)} submission(s): {len(todo)} to grade, {jobs} at a time; {done} graded before by "
            f"this grader (--regrade grades them again); {len(records) - done} missing, ambiguous or unreadable")

        def finish(task, g):
            sub, path, digest, note = task
            rel = os.path.relpath(path, by_submission[sub]["folder"])
            if g.get("fault"):
                records[sub] = {"status": "error", "file": rel, "score": None, "checks": {},
                                "note": "; ".join(n for n in (note, f"the grader failed: {g['fault']}") if n)}
                _write_feedback(folders[sub], records[sub], None, None)
                return
            if note:
                g["notes"].insert(0, note)
                g["found"] = note
            report = results_json([g], g["seconds"], visibility)
            records[sub] = {"status": "graded", "submission": sub, "file": rel, "score": report["score"],
                            "checks": {r["check"]: r["score"] for r in g["results"]}, "note": note,
                            "sha256": digest, "fingerprint": fingerprint}
            _write_feedback(folders[sub], records[sub], g, report)

        try:
            again = []  # with -j N, a time limit or a kill may be a neighbour's doing: graded again alone
            for task, g in _run(todo, assignment, options, jobs, progress):
                if jobs > 1 and len(todo) > 1 and _cut_short(g):
                    again.append(task)
                    continue
                finish(task, g)
                atomic_write_bytes(gradebook, _gradebook_csv(assignment, students, records))
            if again:
                log(f"{len(again)} submission(s) hit a time limit or were killed while graded beside others: "
                    f"graded again one at a time")
            for task, g in _run(again, assignment, options, 1, progress, pool=True):
                finish(task, g)
                atomic_write_bytes(gradebook, _gradebook_csv(assignment, students, records))
        finally:  # Ctrl-C, SIGTERM: what is done is written, then the run stops
            rows = _gradebook_rows(assignment, students, records)
            atomic_write_bytes(gradebook, _gradebook_csv(assignment, students, records))
            write_summary(assignment, rows, feedback_dir)
    return rows


def _cut_short(grading):
    """True when a check of this grading hit its time limit or its worker was killed: with other
    gradings beside it, that may be their doing (they share the CPU and the memory)."""
    return any(("longer than its limit" in r["output"] or "time limit of" in r["output"] or "SIGKILL" in r["output"])
               for r in grading.get("results", ()))


def _run(todo, assignment, options, jobs, progress, pool=False):
    """Yield ``(task, grading)`` as each submission finishes: in this process for one job (unless
    ``pool``), else in a pool of forked processes (each with the trusted side already imported),
    which unwind their gradings even when this process is killed outright."""
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: the pool forks this process
    bar = tqdm(total=len(todo), unit="submission", disable=None if progress is None else not progress,
               file=sys.stderr, dynamic_ncols=True)
    try:
        if jobs <= 1 and not pool:
            for task in todo:
                yield task, _grade_one(assignment, task[1], options)
                bar.update()
            return
        if not todo:
            return
        pool = concurrent.futures.ProcessPoolExecutor(max_workers=min(jobs, len(todo)),
                                                      mp_context=multiprocessing.get_context("fork"),
                                                      initializer=_pool_init)
        try:
            futures = {pool.submit(_grade_one, assignment, task[1], options): task for task in todo}
            for future in concurrent.futures.as_completed(futures):
                try:
                    g = future.result()
                except Exception as e:  # noqa: BLE001 - a pool process lost: its students (and those waiting) get
                    # status=error, never a score, and the next run grades them again
                    g = {"fault": f"{type(e).__name__}: {e}"}
                yield futures[future], g
                bar.update()
        except BaseException:
            _stop_pool(pool)
            raise
        pool.shutdown(wait=True)
    finally:
        bar.close()


def _grade_one(assignment, path, options):
    """One submission, as ``autograde.py FILE`` grades it; a host-side failure is a fault, not a score."""
    from . import runner

    _GRADING.append(True)
    try:
        return runner.grade_assignment(assignment, path, **options)
    except Exception as e:  # noqa: BLE001 - the host's or the grader's fault: this student's row says so
        return {"fault": f"{type(e).__name__}: {e}"}
    except _Stopped:  # a pool process told to stop: the grading's cleanup has run (worker killed, sandbox gone)
        from .sandbox import _kill_orphans

        _kill_orphans()  # (in case the signal came during that cleanup)
        os._exit(128 + signal.SIGTERM)
    finally:
        _GRADING.clear()


_GRADING = []  # in a pool process: non-empty while a grading runs


class _Stopped(BaseException):
    """SIGTERM to a pool process while it grades: unwinds the grading, so the ``finally`` blocks
    kill its worker and remove its sandbox."""


def _pool_init():
    from .sandbox import become_subreaper

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    signal.signal(signal.SIGTERM, _on_stop)
    signal.signal(signal.SIGHUP, _on_stop)
    become_subreaper()  # the workers' orphans come back to this process, which kills them
    with contextlib.suppress(Exception):  # the main process killed (-9): stop as if told to
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def _on_stop(signum, frame):
    for sig in (signal.SIGTERM, signal.SIGHUP):  # once: the cleanup itself is not interrupted
        signal.signal(sig, signal.SIG_IGN)
    if not _GRADING:
        os._exit(128 + signum)  # idle: nothing to clean up
    raise _Stopped(signum)


def _stop_pool(pool):
    """Ctrl-C: cancel what has not started, stop what has (each grading's ``finally`` kills its
    worker and removes its sandbox), and wait for the pool's processes."""
    stops = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, stops)  # a second Ctrl-C must not cut the cleanup short
    try:
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            with contextlib.suppress(OSError):
                p.terminate()
        for p in processes:
            p.join(30)
            if p.is_alive():
                p.kill()
                p.join(5)
    finally:
        for sig in stops - blocked:  # what arrived meanwhile is dropped: the run is stopping already
            with contextlib.suppress(OSError, ValueError):
                signal.sigtimedwait([sig], 0)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


# ==========================================================================================
# WHAT IT WRITES
# ==========================================================================================
def _columns(assignment):
    return ["student", "email", "submission", "file", "status", "score"] + [k for k, _, _ in POINTS[assignment]] + ["note"]


def _gradebook_rows(assignment, students, records):
    rows = []
    for s in students:
        r = records.get(s["submission"])
        if r is None:
            continue  # not graded yet (an interrupted run)
        row = {"student": s["student"], "email": s["email"], "submission": s["submission"], "file": r["file"],
               "status": r["status"], "score": "" if r["score"] is None else f"{r['score']:g}",
               "note": "; ".join(n for n in (s.get("note", ""), r["note"]) if n)}
        for k, _, _ in POINTS[assignment]:
            row[k] = f"{r['checks'][k]:g}" if k in r["checks"] else ""
        rows.append(row)
    return rows


def _gradebook_csv(assignment, students, records):
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=_columns(assignment), lineterminator="\n")
    w.writeheader()
    w.writerows({k: _cell(v) for k, v in row.items()} for row in _gradebook_rows(assignment, students, records))
    return out.getvalue()


def _cell(text):
    """A text cell a spreadsheet shows as text: a name or file name that starts like a formula
    (``=HYPERLINK(...)``, ``+``, ``-``, ``@``) gets a leading apostrophe (OWASP's CSV injection
    advice), and control characters are escaped so each row stays one line."""
    text = _path_text(str(text))
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _feedback_folders(feedback_dir, submissions):
    """{submission: its folder under ``feedback_dir/students/``}: the submission's own name when
    it is a plain file name, else its plain part and a hash; never two submissions in one folder
    (names compared without regard to case, as macOS and Windows do)."""
    taken, folders = set(), {}
    for sub in sorted(submissions):
        name = re.sub(r"[^A-Za-z0-9._-]", "_", sub).strip(".")[:60] or "submission"
        tag = hashlib.sha256(sub.encode()).hexdigest()
        if name != sub:
            name = f"{name}-{tag[:8]}"
        while name.lower() in taken:
            name, tag = f"{name}-{tag[:8]}", hashlib.sha256(tag.encode()).hexdigest()
        taken.add(name.lower())
        folders[sub] = os.path.join(feedback_dir, "students", name)
    return folders


def _lock(feedback_dir):
    """An exclusive lock on ``feedback_dir`` for this run: a second run at once on the same
    folder would grade everything twice and overwrite the first one's gradebook."""
    import fcntl

    f = open(os.path.join(feedback_dir, ".lock"), "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise ExportError(f"--feedback-dir: another --class run is using {feedback_dir}; wait for it to end") from None
    return f


def _read_record(folder):
    with contextlib.suppress(OSError, ValueError):
        with open(os.path.join(folder, "record.json"), encoding="utf-8") as f:
            record = json.load(f)
        if isinstance(record, dict) and record.get("status") in STATUSES:
            return record
    return None


def _write_feedback(folder, record, grading, report):
    """feedback.txt (what the student reads), results.json (Gradescope's format) and
    record.json (what a resumed run reads back), in the submission's ``folder``."""
    from common import atomic_write_bytes

    os.makedirs(folder, exist_ok=True)
    if grading is not None:
        text = format_table([grading]) + f"score: {record['score']:g} / {sum(p for _, p, _ in POINTS[grading['assignment']]):g}\n"
        atomic_write_bytes(os.path.join(folder, "results.json"), json.dumps(report, indent=2) + "\n")
    else:
        text = f"not graded ({record['status']}): {record['note']}\n"
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(folder, "results.json"))  # a stale one from an earlier run
    atomic_write_bytes(os.path.join(folder, "feedback.txt"), text)
    atomic_write_bytes(os.path.join(folder, "record.json"), json.dumps(record, indent=2) + "\n")


def write_summary(assignment, rows, feedback_dir):
    """The class at a glance: ``pass_rates.csv`` (each check: points, students who got them)
    and ``summary.png`` (the score histogram; each check's pass rate). Returns the pass rates."""
    from common import atomic_write_bytes

    graded = [r for r in rows if r["status"] == "graded"]
    rates = []
    for k, p, _ in POINTS[assignment]:
        passed = sum(float(r[k]) >= p for r in graded)
        rates.append({"check": k, "points": p, "passed": passed, "graded": len(graded),
                      "pass_rate": f"{passed / len(graded):.3f}" if graded else ""})
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=["check", "points", "passed", "graded", "pass_rate"], lineterminator="\n")
    w.writeheader()
    w.writerows(rates)
    atomic_write_bytes(os.path.join(feedback_dir, "pass_rates.csv"), out.getvalue())
    _plot_summary(assignment, graded, rates, rows, os.path.join(feedback_dir, "summary.png"))
    return rates


def summary_text(assignment, rows, seconds):
    """What the terminal shows at the end: the counts, the mean, the most-missed checks and the
    students who need a TA's look."""
    import statistics

    graded = [r for r in rows if r["status"] == "graded"]
    scores = [float(r["score"]) for r in graded]
    counts = ", ".join(f"{sum(r['status'] == s for r in rows)} {s}" for s in STATUSES)
    lines = [f"{len(rows)} student(s): {counts}"
             + (f"; mean {statistics.mean(scores):.1f}, median {statistics.median(scores):g}" if scores else "")
             + f" ({seconds:.0f} s)"]
    if graded:
        rates = sorted(((sum(float(r[k]) >= p for r in graded) / len(graded), k) for k, p, _ in POINTS[assignment]))
        lines.append("most missed: " + ", ".join(f"{k} ({rate:.0%} passed)" for rate, k in rates[:3]))
    look = [r for r in rows if r["status"] != "graded" or r["note"]]
    for r in look[:10]:
        lines.append(f"  {_path_text(r['student'])} [{r['status']}]: {_path_text(r['note'])}")
    if len(look) > 10:
        lines.append(f"  ... {len(look) - 10} more with a note (see the gradebook's note column)")
    return "\n".join(lines)


def _plot_summary(assignment, graded, rates, rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    from common import atomic_write

    scores = np.array([float(r["score"]) for r in graded])
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1, 1.4]})
    a.hist(scores, bins=np.arange(-2.5, 105, 5), color="tab:blue", edgecolor="white")  # bars at 0, 5, ..., 100
    a.set_xlabel("score (of 100; each bar holds the scores within 2.5 of its centre)")
    a.set_ylabel("students")
    a.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    stats = f"mean {scores.mean():.1f}, median {np.median(scores):g}" if len(scores) else "none graded"
    a.set_title(f"{ASSIGNMENTS[assignment]['title']}: {len(graded)} graded ({stats})", fontsize=10)
    keys = [r["check"] for r in rates]
    share = [r["passed"] / r["graded"] if r["graded"] else 0.0 for r in rates]
    bars = b.barh(range(len(keys)), share, color=["tab:red" if s < 0.5 else "tab:green" for s in share])
    b.set_yticks(range(len(keys)), [f"{k} ({r['points']})" for k, r in zip(keys, rates)], fontsize=8)
    b.invert_yaxis()
    b.set_xlim(0, 1)
    b.set_xlabel("share of graded students with full points")
    b.bar_label(bars, [f"{s:.0%}" for s in share], fontsize=7, padding=2)
    other = ", ".join(f"{counts[s]} {s}" for s in STATUSES[1:] if counts[s])
    b.set_title("each check's pass rate" + (f" (not graded: {other})" if other else ""), fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _grader_fingerprint(assignment, options):
    """The grading code, the references, torch's and Python's versions and the options: a record
    from another grader (a check fixed since) or other options is graded again."""
    from .bundle import grader_files
    from .runner import HERE

    from importlib.metadata import version  # (importing torch here could be cut by a signal half-way)

    h = hashlib.sha256(json.dumps([assignment, options, version("torch"), sys.version], default=str,
                                  sort_keys=True).encode())
    for rel in grader_files():
        if rel.endswith(("classroom.py", "bundle.py")) or rel.startswith(("gradescope", "requirements")):
            continue  # what writes the outputs or the bundle: not what grades
        with contextlib.suppress(OSError):
            h.update(rel.encode() + _sha256(os.path.join(HERE, rel)).encode())
    return h.hexdigest()
