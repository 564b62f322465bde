"""Grade a student's hw5.py (GAN) or hw2_ResNet.py (ResNet) against the reference, safely.

    python autograde.py SUBMISSION [--results PATH] [--timeout SECONDS] [--json-only]
                        [--visibility [KEY=]LEVEL] [--hide-expected]
    python autograde.py --gradescope-bundle hw5|hw2 OUT.zip [--visibility ...] [--hide-expected]
    python autograde.py --class EXPORT_DIR --assignment hw5|hw2 --gradebook grades.csv --feedback-dir DIR
                        [-j N] [--regrade]
    python autograde.py --student-check hw5|hw2 OUT.py

SUBMISSION is a ``hw5.py``, a ``hw2_ResNet.py`` or a folder holding one or both; the file name
says which assignment it is. ``--hide-expected`` replaces the expected values in messages by
"[hidden]"; ``--visibility`` overrides a check's Gradescope visibility.

This file is the command line only. The grader is the package ``autograder/``:
``checks/hw5.py`` and ``checks/hw2.py`` hold each assignment's spec and checks with their points
(read one top to bottom to see everything that is graded); ``runner.py`` runs them against the
worker; ``sandbox.py`` starts the worker; ``protocol.py`` parses its replies; ``report.py`` and
``bundle.py`` write the results and the Gradescope zip; ``classroom.py`` grades a whole class.

Trust boundary. The grader never imports the submission. It holds the reference, draws every
input and weight, computes every expected value itself and makes every comparison. The
submission runs in ``autograde_worker.py`` (the untrusted side), in a separate process started
from a scratch folder holding only the worker file and a copy of the submission; as root, that
process runs as ``nobody`` in its own mount/PID/network namespaces, with the grader's folder
hidden. The worker answers one request at a time with raw data, which the grader parses against
a strict schema: a malformed, extra or unexpected reply earns nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
import traceback

from autograder.bundle import grader_files, make_bundle
from autograder.checks import ASSIGNMENTS, FILE_TO_ASSIGNMENT
from autograder.registry import VISIBILITY_LEVELS
from autograder.report import _missing_file_grading, _path_text, format_table, parse_visibility, results_json
from autograder.runner import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT, HERE, grade_assignment
from autograder.sandbox import _kill_orphans, _probe_memory_limit, _under, become_subreaper

EXIT_MISUSE = 2
MAX_MEMORY_MB = 1 << 20  # 1 TB: larger values are a typo (and overflow RLIMIT_AS on some systems)
MIN_TIMEOUT = 5.0  # seconds: less cannot import torch, and every student would get 0
EXIT_FAULT = 1  # the grader or its host failed: no score recorded

def _grader_file(path):
    """True when ``path`` (a link followed) is one of the files the grader reads: writing there
    would break every later grading."""
    return any(_same_file(path, os.path.join(HERE, f)) for f in grader_files())


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _find_submission(folder, name, max_depth=4):
    """The file ``name`` in ``folder`` or its subfolders (a zipped upload), matched without
    regard to case; regular files only, hidden folders and __MACOSX skipped. With several, the
    best-named one: exact case first, then the shallowest, then by path. Returns (path or None,
    note saying which file was graded when that is not simply ``folder/name``)."""
    found = []
    base = os.path.abspath(folder)
    for root, dirs, files in os.walk(base):
        depth = os.path.relpath(root, base).count(os.sep) + (root != base)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX" and depth < max_depth
                         and not os.path.islink(os.path.join(root, d)))
        for f in files:
            p = os.path.join(root, f)
            if f.lower() == name.lower() and not os.path.islink(p) and os.path.isfile(p):
                found.append((f != name, depth, os.path.relpath(p, base), p))
    if not found:
        return None, ""
    found.sort()
    best = found[0]
    if best[2] == name and len(found) == 1:
        return best[3], ""
    note = f"graded {_path_text(best[2])}"
    if len(found) > 1:
        note += f" (of {len(found)} candidates: {', '.join(_path_text(c[2]) for c in found[:5])})"
    return best[3], note


def build_parser():
    from common import ArgumentParser  # trusted side only (see make_bundle)

    p = ArgumentParser(
        prog="autograde.py",
        description="Grade a student's hw5.py (GAN) or hw2_ResNet.py (ResNet) against the reference next to this "
                    "file, each in a sandboxed subprocess, and print a table (check, points, max, message). "
                    "Exit status 0 whenever grading finished, whatever the score; 2 for misuse.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("submission", nargs="?", metavar="SUBMISSION",
                   help="a hw5.py, a hw2_ResNet.py, or a folder holding one or both")
    p.add_argument("--results", metavar="PATH", default=None,
                   help="also write Gradescope's results JSON to PATH (its folder must exist)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                   help="wall-clock seconds for each import of the submission (the first, and one after each "
                        "crash); each check may take a quarter of it, at least 5 s")
    p.add_argument("--memory-mb", type=int, default=DEFAULT_MEMORY_MB,
                   help="address-space limit of the grading subprocess (RLIMIT_AS), in MB")
    p.add_argument("--json-only", action="store_true",
                   help="print only the results JSON on stdout (no table)")
    p.add_argument("--assignment", choices=sorted(ASSIGNMENTS), default=None,
                   help="grade SUBMISSION as this assignment whatever its name; with a folder that lacks the "
                        "expected file, the result is a zero score that says so (what run_autograder uses)")
    p.add_argument("--visibility", action="append", metavar="[KEY=]LEVEL", default=None,
                   help=f"Gradescope visibility of check KEY (or of every check), comma-separated and repeatable; "
                        f"LEVEL is one of {', '.join(VISIBILITY_LEVELS)} (default: each check's declared one)")
    p.add_argument("--hide-expected", action="store_true",
                   help="messages say [hidden] in place of expected values (layers, shapes, counts, V)")
    g = p.add_argument_group("a whole class (see docs/autograder.md, 'A whole class')")
    g.add_argument("--class", dest="class_dir", metavar="EXPORT_DIR", default=None,
                   help="grade every submission of a Gradescope 'Export Submissions' folder (submission_metadata.yml) "
                        "or of a folder with one subfolder per student, as --assignment")
    g.add_argument("--gradebook", metavar="CSV", default=None,
                   help="with --class: the gradebook to write (one row per student: status, score, each check's points)")
    g.add_argument("--feedback-dir", metavar="DIR", default=None,
                   help="with --class: one folder per submission (feedback.txt, results.json), plus summary.png and "
                        "pass_rates.csv; what a second run reads to skip work already done")
    g.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="with --class: grade N submissions at once (each in its own sandboxed worker)")
    g.add_argument("--regrade", action="store_true",
                   help="with --class: grade every submission again, even those graded by an earlier run")
    p.add_argument("--student-check", nargs=2, metavar=("hw5|hw2", "OUT.py"), default=None,
                   help="write the students' self-check of hw5 or hw2 to OUT.py and exit: one standalone file to hand "
                        "out; a student runs `python OUT.py [path/to/hw5.py]` (or `pytest OUT.py`) next to their file "
                        "and sees the grader's public checks with its names and messages, offline, in seconds "
                        "(docs/student_check.md)")
    p.add_argument("--gradescope-bundle", nargs=2, metavar=("hw5|hw2", "OUT.zip"), default=None,
                   help="write the Gradescope autograder zip (gradescope/setup.sh and run_autograder, grading.env, "
                        "autograde.py, autograde_worker.py, common.py, the "
                        "reference) for one assignment instead of grading")
    return p


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    from common import atomic_write_bytes, check_out_dir, writable_target  # trusted side only (see make_bundle)

    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.timeout >= MIN_TIMEOUT and math.isfinite(args.timeout)):
        parser.error(f"--timeout must be at least {MIN_TIMEOUT:g} seconds (importing torch alone takes about 2 s), "
                     f"got {args.timeout:g}")
    if args.memory_mb < 512 or args.memory_mb > MAX_MEMORY_MB:
        parser.error(f"--memory-mb must be between 512 and {MAX_MEMORY_MB}, got {args.memory_mb}")
    try:
        visibility = parse_visibility(args.visibility)
    except ValueError as e:
        parser.error(f"--visibility {e}")
    class_flags = [f for f, v in (("--gradebook", args.gradebook), ("--feedback-dir", args.feedback_dir),
                                  ("--regrade", args.regrade), ("-j", args.jobs != 1)) if v]
    if args.class_dir is not None:
        return _grade_class(parser, args, visibility)
    if class_flags:
        parser.error(f"{class_flags[0]} goes with --class EXPORT_DIR")
    if args.student_check:
        return _write_student_check(parser, args)
    if args.gradescope_bundle:
        if args.submission:
            parser.error("give either SUBMISSION or --gradescope-bundle, not both")
        assignment, out_zip = args.gradescope_bundle
        if assignment not in ASSIGNMENTS:
            parser.error(f"--gradescope-bundle: the assignment must be hw5 or hw2, got {assignment!r}")
        folder = os.path.dirname(os.path.abspath(out_zip))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            parser.error(f"--gradescope-bundle: cannot write {out_zip!r} (its folder must exist and be writable)")
        if os.path.isdir(out_zip):
            parser.error(f"--gradescope-bundle: {out_zip!r} is a folder; name the zip file to write")
        if _grader_file(out_zip):
            parser.error(f"--gradescope-bundle: {out_zip!r} is one of the grader's own files; choose another path")
        try:
            members = make_bundle(assignment, out_zip, timeout=args.timeout, visibility=visibility,
                                  hide_expected=args.hide_expected)
        except (OSError, ValueError) as e:
            print(f"autograde.py: error: cannot write the bundle: {e}", file=sys.stderr)
            return EXIT_MISUSE
        print(f"wrote {out_zip}: {', '.join(members)}")
        print(f"upload it as the Gradescope autograder of {assignment} (base image Ubuntu 24.04; memory, timeout and a "
              f"test run: docs/gradescope.md)")
        return 0
    if not args.submission:
        parser.error("the SUBMISSION argument is required (a hw5.py, a hw2_ResNet.py, or a folder)")
    if sys.stdout is None and args.results is None:  # started with stdout closed (see common.cover_closed_std_fds)
        parser.error("stdout is closed and no --results PATH was given: the grade would be lost")
    path = args.submission
    if not os.path.exists(path):
        parser.error(f"no such file or folder: {path!r}")
    if args.results is not None:
        folder = os.path.dirname(os.path.abspath(args.results))
        if os.path.isdir(args.results):
            parser.error(f"--results: {args.results!r} is a folder; name the JSON file to write")
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            parser.error(f"--results: cannot write {args.results!r} (its folder must exist and be writable)")
        if _grader_file(args.results):
            parser.error(f"--results: {args.results!r} is one of the grader's own files; choose another path")
        try:  # a real write probe (e.g. /proc accepts no new file) before any grading
            check_out_dir(folder, "--results")
            writable_target(args.results)  # /dev/full, a FIFO: refused now, not after grading
        except (OSError, ValueError) as e:
            parser.error(f"--results: cannot write {args.results!r} ({e})")
        if _same_file(args.results, path) or (os.path.isdir(path) and any(
                _same_file(args.results, os.path.join(path, info["file"])) for info in ASSIGNMENTS.values())):
            parser.error(f"--results {args.results!r} is the submission itself; choose another path")
    if args.memory_mb != DEFAULT_MEMORY_MB:
        problem = _probe_memory_limit(args.memory_mb)
        if problem:
            print(f"autograde.py: error: {problem}", file=sys.stderr)
            return EXIT_MISUSE
    jobs = []  # (assignment, file or None)
    found_notes = {}
    if os.path.isdir(path):
        if args.assignment:
            f, found_note = _find_submission(path, ASSIGNMENTS[args.assignment]["file"])
            if f is None:
                py = [n for n in sorted(os.listdir(path)) if n.endswith(".py")]
                f = os.path.join(path, py[0]) if len(py) == 1 else None
            if found_note:
                found_notes[args.assignment] = found_note
            jobs.append((args.assignment, f))
        else:
            for a, info in ASSIGNMENTS.items():
                f = os.path.join(path, info["file"])
                if os.path.isfile(f):
                    jobs.append((a, f))
            if not jobs:
                parser.error(f"the folder {path!r} holds neither hw5.py nor hw2_ResNet.py")
            jobs.sort(key=lambda j: list(ASSIGNMENTS).index(j[0]))
    else:
        name = os.path.basename(path)
        assignment = args.assignment or FILE_TO_ASSIGNMENT.get(name)
        if assignment is None:
            parser.error(f"cannot tell the assignment from the file name {name!r}: expected hw5.py or "
                         f"hw2_ResNet.py (or pass --assignment hw5|hw2)")
        jobs.append((assignment, path))
    if args.results is not None and any(f and _same_file(args.results, f) for _, f in jobs):
        parser.error(f"--results {args.results!r} is the submission itself; choose another path")
    t0 = time.monotonic()
    gradings = []
    for assignment, f in jobs:
        if f is None:
            gradings.append(_missing_file_grading(assignment, path, args.hide_expected))
            continue
        try:
            g = grade_assignment(assignment, f, timeout=args.timeout, memory_mb=args.memory_mb,
                                 hide_expected=args.hide_expected)
        except OSError as e:  # the host failed (a full disk, an unwritable temporary folder): no score
            g = {"fault": f"{type(e).__name__}: {e}"}
        except Exception as e:  # noqa: BLE001 - a bug of the grader itself: no score, and the traceback
            print(f"autograde.py: internal error while grading {f}:\n{traceback.format_exc()}", file=sys.stderr)
            g = {"fault": f"{type(e).__name__}: {e}"}
        if g.get("fault"):  # the grader's fault, not the student's: record no score
            print(f"autograde.py: error: grading {_path_text(f)} failed on the grader's side ({g['fault']}); "
                  f"no score recorded", file=sys.stderr)
            return EXIT_FAULT
        if assignment in found_notes:
            g["notes"].append(found_notes[assignment])
            g["found"] = found_notes[assignment]  # results.json's output says which file was graded
        elif os.path.basename(f) != ASSIGNMENTS[assignment]["file"]:
            g["notes"].append(f"graded {_path_text(os.path.basename(f))} as {ASSIGNMENTS[assignment]['file']}")
        gradings.append(g)
    report = results_json(gradings, time.monotonic() - t0, visibility)
    text = json.dumps(report, indent=2)
    if args.results is not None:
        try:
            atomic_write_bytes(args.results, text + "\n")
        except (OSError, ValueError) as e:
            print(f"autograde.py: error: {e}", file=sys.stderr)  # names the file
            return EXIT_MISUSE
    if args.json_only:
        print(text)
    else:
        print(format_table(gradings))
        total = sum(r["max_score"] for g in gradings for r in g["results"])
        print(f"score: {report['score']:g} / {total:g} in {time.monotonic() - t0:.1f} s"
              + (f"; results written to {args.results}" if args.results else ""))
    return 0


def _write_student_check(parser, args):
    """``--student-check hw5|hw2 OUT.py``: the file a TA hands out (autograder/student_check.py)."""
    from autograder.student_check import NOT_RUN, write_student_check

    assignment, out = args.student_check
    if args.submission or args.gradescope_bundle:
        parser.error("--student-check writes one file: give no SUBMISSION or --gradescope-bundle with it")
    if assignment not in ASSIGNMENTS:
        parser.error(f"--student-check: the assignment must be hw5 or hw2, got {assignment!r}")
    folder = os.path.dirname(os.path.abspath(out))
    if not out.endswith(".py") or os.path.isdir(out):
        parser.error(f"--student-check: {out!r} must name a .py file to write (e.g. check_{assignment}.py)")
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        parser.error(f"--student-check: cannot write {out!r} (its folder must exist and be writable)")
    if _grader_file(out) or any(_same_file(out, os.path.join(HERE, info["file"])) for info in ASSIGNMENTS.values()):
        parser.error(f"--student-check: {out!r} is one of the grader's own files; choose another path")
    try:
        keys = write_student_check(assignment, out)
    except (OSError, ValueError) as e:
        print(f"autograde.py: error: cannot write {out}: {e}", file=sys.stderr)
        return EXIT_MISUSE
    print(f"wrote {out}: {len(keys)} checks of {assignment} (not run there, they need the reference's weights: "
          f"{', '.join(NOT_RUN[assignment])}); students run `python {os.path.basename(out)} "
          f"[{ASSIGNMENTS[assignment]['file']}]`")
    return 0


def _grade_class(parser, args, visibility):
    """``--class``: the checks of its flags, then ``classroom.grade_class`` and a summary."""
    from autograder import classroom
    from common import check_out_dir, writable_target

    if args.submission or args.gradescope_bundle or args.results:
        parser.error("--class grades a whole export: give no SUBMISSION, --results or --gradescope-bundle with it")
    for flag, value in (("--assignment", args.assignment), ("--gradebook", args.gradebook),
                        ("--feedback-dir", args.feedback_dir)):
        if not value:
            parser.error(f"--class needs {flag}")
    cores = os.cpu_count() or 1
    if not 1 <= args.jobs <= cores:
        parser.error(f"-j must be between 1 and this machine's {cores} CPU(s) (each grading keeps one busy), "
                     f"got {args.jobs}")
    export = os.path.abspath(args.class_dir)
    if not os.path.isdir(export):
        parser.error(f"--class: {args.class_dir!r} is not a folder (expected a submissions export)")
    for flag, path in (("--gradebook", args.gradebook), ("--feedback-dir", args.feedback_dir)):
        if _grader_file(path) or any(_same_file(os.path.join(HERE, f), path) for f in ("autograder", "gradescope")):
            parser.error(f"{flag}: {path!r} is one of the grader's own files; choose another path")
        if _under(path, export):
            parser.error(f"{flag}: {path!r} lies inside the export; a later run would take it for a student")
    if _under(args.gradebook, args.feedback_dir):
        parser.error(f"--gradebook: {args.gradebook!r} lies inside --feedback-dir, where the run writes its own files")
    if _under(export, args.feedback_dir):
        parser.error(f"--class: the export lies inside --feedback-dir {args.feedback_dir!r}; keep them apart")
    if os.path.isdir(args.gradebook):
        parser.error(f"--gradebook: {args.gradebook!r} is a folder; name the CSV file to write")
    try:
        check_out_dir(args.feedback_dir, "--feedback-dir")
        check_out_dir(os.path.dirname(os.path.abspath(args.gradebook)), "--gradebook")
        writable_target(args.gradebook)
    except (OSError, ValueError) as e:
        parser.error(str(e))
    if args.memory_mb != DEFAULT_MEMORY_MB:
        problem = _probe_memory_limit(args.memory_mb)
        if problem:
            print(f"autograde.py: error: {problem}", file=sys.stderr)
            return EXIT_MISUSE
    options = {"timeout": args.timeout, "memory_mb": args.memory_mb, "hide_expected": args.hide_expected,
               "visibility": visibility}
    t0 = time.monotonic()
    try:
        rows = classroom.grade_class(export, args.assignment, args.gradebook, args.feedback_dir, jobs=args.jobs,
                                     regrade=args.regrade, options=options,
                                     log=lambda line: print(line, file=sys.stderr))
    except classroom.ExportError as e:
        parser.error(str(e))
    except (KeyboardInterrupt, _Terminated):
        print(f"autograde.py: what was graded is kept in {args.gradebook} and {args.feedback_dir}: "
              f"run the same command again to go on", file=sys.stderr)
        raise
    print(classroom.summary_text(args.assignment, rows, time.monotonic() - t0))
    print(f"gradebook: {args.gradebook}; feedback: {args.feedback_dir} (summary.png, pass_rates.csv, and "
          f"students/: one folder per submission)")
    errors = [r for r in rows if r["status"] == "error"]
    if errors:
        print(f"autograde.py: error: the grader failed on {len(errors)} submission(s) (status=error, no score): "
              f"{', '.join(_path_text(r['submission']) for r in errors[:5])}; run again to retry them", file=sys.stderr)
        return EXIT_FAULT
    return 0


class _Terminated(BaseException):
    """SIGTERM/SIGHUP to the grader: unwinds like Ctrl-C, so every worker tree is killed and
    every sandbox removed by the ``finally`` blocks on the way out."""


def _on_terminate(signum, frame):
    raise _Terminated(signum)


def cli():
    """``python autograde.py``: Ctrl-C exits 130, SIGTERM 143, SIGHUP 129, without a traceback;
    the worker trees and sandboxes are cleaned up first."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_terminate)
    from common import quiet_exit

    become_subreaper()
    try:
        with quiet_exit("autograde.py"):
            return main()
    except _Terminated as t:
        print(f"autograde.py: stopped by {signal.Signals(t.args[0]).name}", file=sys.stderr)
        return 128 + t.args[0]
    finally:
        _kill_orphans()


if __name__ == "__main__":
    sys.exit(cli())
