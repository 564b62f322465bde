"""``autograde.py --class``: a whole class in one command.

The file rule and the export readers are tested on hand-made folders with hand-written
expectations. The class runs go through the real command line: a Gradescope export and a
plain export of the same 20 students (correct, wrong, renamed, missing, ambiguous, hostile and
crashing), whose gradebooks must equal what one-at-a-time grading gives each file, check by check.
"""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "corpus")
sys.path.insert(0, ROOT)

from autograder import classroom, runner  # noqa: E402
from autograder.checks import POINTS  # noqa: E402

CORRECT2 = open(os.path.join(CORPUS, "hw2", "starter_correct.py"), encoding="utf-8").read()
HOSTILE = {  # appended to the correct hw2 file: each must cost its author, never a classmate
    "kill_everything": "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\n",
    "exit_at_import": "import os\nos._exit(3)\n",
    "segfault": "import ctypes\nctypes.string_at(0)\n",
    "allocate_forever": "blocks = []\nwhile True:\n    blocks.append(bytearray(1 << 26))\n",
    "daemon_left_behind": "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(3600)\n    os._exit(0)\n",
    "overwrite_classmates": ("import glob\nfor p in glob.glob('/tmp/**/hw2_ResNet.py', recursive=True) + "
                             "glob.glob('/var/tmp/**/hw2_ResNet.py', recursive=True):\n    try:\n"
                             "        open(p, 'w').write('raise SystemExit(1)\\n')\n    except OSError:\n        pass\n"),
}


def _class_files():
    """student -> {relative path: text} for the 20 students of the class (hw2)."""
    corpus = lambda n: open(os.path.join(CORPUS, "hw2", n), encoding="utf-8").read()
    files = {
        "ann": {"hw2_ResNet.py": CORRECT2},
        "ben": {"hw2_ResNet.py": corpus("block_no_skip.py")},
        "cat": {"hw2_ResNet.py": corpus("resnet_stem_bias.py")},
        "dan": {"hw2_ResNet.py": corpus("module_level_print.py")},
        "eve": {"hw2_ResNet_final.py": CORRECT2, "notes.txt": "my answer"},  # renamed: graded by the rule, noted
        "fay": {"work/HW2_ResNet.py": CORRECT2},  # another case, in a subfolder (a zipped folder)
        "gus": {"report.pdf": "%PDF"},  # missing
        "hal": {},  # missing: an empty folder
        "ida": {"hw2_ResNet.py": CORRECT2, "old/hw2_ResNet.py": corpus("block_conv_bias.py")},  # ambiguous
        "jon": {"a.py": CORRECT2, "b.py": CORRECT2},  # ambiguous: no hw2_ResNet.py, two .py files
        "kim": {"hw2_ResNet.py": CORRECT2, "__MACOSX/._hw2_ResNet.py": "junk", ".git/hw2_ResNet.py": "junk"},
        "lee": {"hw2_ResNet.py": "this is not python\n"},
        "may": {"hw2_ResNet.py": corpus("resnet_no_stem_relu.py")},
    }
    for name, code in HOSTILE.items():
        files[f"z_{name}"] = {"hw2_ResNet.py": CORRECT2 + "\n" + code}
    files["ned"] = {"hw2_ResNet.py": CORRECT2}
    assert len(files) == 20
    return files


def _write(folder, files):
    for rel, text in files.items():
        p = os.path.join(folder, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w", encoding="utf-8") as f:
            f.write(text)
    os.makedirs(folder, exist_ok=True)


def _gradescope_export(root, students):
    meta = []
    for i, (name, files) in enumerate(sorted(students.items())):
        sub = f"submission_{5000 + i}"
        _write(os.path.join(root, sub), files)
        meta.append(f"{sub}:\n  :submitters:\n  - :name: {name}\n    :sid: '{i}'\n    :email: {name}@uni.edu\n"
                    f"  :created_at: 2026-11-30 21:12:13.000000000 -08:00\n  :score: 0.0\n")
    with open(os.path.join(root, "submission_metadata.yml"), "w", encoding="utf-8") as f:
        f.write("".join(meta))


def _grade_class(export, out, *extra, timeout=600):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "autograde.py"), "--class", str(export),
                           "--assignment", "hw2", "--gradebook", str(out / "grades.csv"), "--feedback-dir",
                           str(out / "feedback"), *extra], capture_output=True, text=True, timeout=timeout)
    with open(out / "grades.csv", encoding="utf-8") as f:
        return proc, list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------
# the file rule and the exports (no grading)
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("student, status, graded, note", [
    ("ann", "graded", "hw2_ResNet.py", ""),
    ("eve", "graded", "hw2_ResNet_final.py", "graded hw2_ResNet_final.py as hw2_ResNet.py (its only .py file)"),
    ("fay", "graded", "work/HW2_ResNet.py", "graded work/HW2_ResNet.py as hw2_ResNet.py"),
    ("gus", "missing", None, "no hw2_ResNet.py and no .py file; found: report.pdf"),
    ("hal", "missing", None, "no hw2_ResNet.py and no .py file; the folder holds no regular file"),
    ("ida", "ambiguous", None, "2 files named hw2_ResNet.py: hw2_ResNet.py, old/hw2_ResNet.py"),
    ("jon", "ambiguous", None, "no hw2_ResNet.py, and 2 other .py files: a.py, b.py"),
    ("kim", "graded", "hw2_ResNet.py", ""),  # __MACOSX and hidden folders are not candidates
])
def test_the_file_rule_grades_one_file_or_says_why_not(tmp_path, student, status, graded, note):
    _write(str(tmp_path), _class_files()[student])
    got_status, path, got_note = classroom.choose_file(str(tmp_path), "hw2")
    assert (got_status, path and os.path.relpath(path, tmp_path), got_note) == (status, graded, note)


def test_the_file_rule_searches_8_folders_deep_and_says_when_it_stopped(tmp_path):
    _write(str(tmp_path / "a"), {"1/2/3/4/5/6/7/8/hw2_ResNet.py": CORRECT2})
    _write(str(tmp_path / "b"), {"1/2/3/4/5/6/7/8/9/hw2_ResNet.py": CORRECT2, "readme.txt": ""})
    assert classroom.choose_file(str(tmp_path / "a"), "hw2")[:2] == (
        "graded", str(tmp_path / "a" / "1/2/3/4/5/6/7/8/hw2_ResNet.py"))
    assert classroom.choose_file(str(tmp_path / "b"), "hw2") == (
        "missing", None, "no hw2_ResNet.py and no .py file; found: readme.txt; folders more than 8 levels deep "
                         "were not searched")


def test_the_file_rule_never_follows_a_link(tmp_path):
    secret = tmp_path / "secret.py"
    secret.write_text(CORRECT2)
    (tmp_path / "sub").mkdir()
    os.symlink(secret, tmp_path / "sub" / "hw2_ResNet.py")
    os.symlink(tmp_path, tmp_path / "sub" / "loop")
    assert classroom.choose_file(str(tmp_path / "sub"), "hw2")[0] == "missing"


def test_a_gradescope_export_gives_one_row_per_student(tmp_path):
    """Ruby-style keys, a group submission (two rows, one submission), a listed submission whose
    folder is missing, and a folder the metadata does not list."""
    (tmp_path / "export" / "submission_1").mkdir(parents=True)
    (tmp_path / "export" / "submission_3").mkdir()
    (tmp_path / "export" / "submission_metadata.yml").write_text(
        "submission_1:\n  :submitters:\n  - :name: Zoe Ng\n    :email: zoe@uni.edu\n  - :name: Al Bo\n"
        "    :email: al@uni.edu\n  :score: 1.0\nsubmission_2:\n  :submitters:\n  - :name: Cy Do\n    :email: cy@uni.edu\n")
    rows = classroom.read_export(str(tmp_path))  # the export's folder one level down is found too
    assert [(r["student"], r["email"], r["submission"], r["folder"] and os.path.basename(r["folder"]), r.get("note"))
            for r in rows] == [
        ("Al Bo", "al@uni.edu", "submission_1", "submission_1", None),
        ("Cy Do", "cy@uni.edu", "submission_2", None, None),
        ("submission_3", "", "submission_3", "submission_3", "not listed in submission_metadata.yml"),
        ("Zoe Ng", "zoe@uni.edu", "submission_1", "submission_1", None)]


def test_gradebook_cells_cannot_be_formulas_or_break_rows(tmp_path):
    """Names and file names come from students: one that starts like a spreadsheet formula is
    kept as text (a leading apostrophe), and a newline cannot start a forged row."""
    (tmp_path / "export" / "submission_1").mkdir(parents=True)
    (tmp_path / "export" / "submission_1" / "=HYPERLINK(x).txt").write_text("")
    (tmp_path / "export" / "submission_metadata.yml").write_text(
        'submission_1:\n  :submitters:\n  - :name: "=HYPERLINK(\\"http://x\\")"\n  - :name: "Al\\nmallory,100"\n'
        '  - :name: "Eve\\rMallory"\n')
    out = tmp_path / "out"
    out.mkdir()
    proc, rows = _grade_class(tmp_path / "export", out)
    assert proc.returncode == 0, proc.stderr
    assert [(r["student"], r["status"]) for r in rows] == [("'=HYPERLINK(\"http://x\")", "missing"),
                                                          ("Al\\nmallory,100", "missing"), ("Eve\\rMallory", "missing")]
    assert rows[0]["note"] == "no hw2_ResNet.py and no .py file; found: =HYPERLINK(x).txt"  # not at a cell's start
    assert len((out / "grades.csv").read_text().splitlines()) == 4


def test_metadata_keys_never_reach_outside_the_export_and_odd_entries_are_noted(tmp_path):
    """A key that is a path is not followed; a submission without submitters, and a student in
    two submissions, get a note (which one counts is the TA's call)."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("")
    export = tmp_path / "export"
    for sub in ("submission_1", "submission_2", "submission_3"):
        (export / sub).mkdir(parents=True)
    (export / "submission_metadata.yml").write_text(
        "../outside:\n  :submitters:\n  - :name: Mal\n"
        "submission_1:\n  :submitters:\n  - :name: Ann\n    :email: ann@uni.edu\n"
        "submission_2:\n  :submitters:\n  - :name: Ann B.\n    :email: ANN@uni.edu\n"
        "submission_3:\n  :submitters: []\n")
    rows = {r["submission"]: r for r in classroom.read_export(str(export))}
    assert rows["../outside"]["folder"] is None
    assert rows["../outside"]["note"] == "its key is not a folder name of the export"
    assert rows["submission_1"]["note"] == "the same student is also in submission_2"
    assert rows["submission_2"]["note"] == "the same student is also in submission_1"
    assert rows["submission_3"]["note"] == "no submitters in submission_metadata.yml"


def test_feedback_folders_never_collide():
    subs = ["a,b", "a_b-" + __import__("hashlib").sha256(b"a,b").hexdigest()[:8], "Ann", "ann", "../x", "x"]
    folders = classroom._feedback_folders("/fb", subs)
    names = [os.path.basename(f).lower() for f in folders.values()]
    assert len(set(names)) == len(subs) and all(os.path.dirname(f) == "/fb/students" for f in folders.values())
    assert folders["x"] == "/fb/students/x" and folders == classroom._feedback_folders("/fb", subs[::-1])


def test_a_second_run_at_once_on_the_same_feedback_folder_is_refused(tmp_path):
    held = classroom._lock(str(tmp_path))
    with pytest.raises(classroom.ExportError, match="another --class run is using"):
        classroom._lock(str(tmp_path))
    held.close()
    classroom._lock(str(tmp_path)).close()


def test_ruby_tagged_values_of_a_real_export_are_read_as_plain_data(tmp_path):
    (tmp_path / "submission_7").mkdir()
    (tmp_path / "submission_metadata.yml").write_text(
        "submission_7:\n  :submitters:\n  - :name: Ann\n    :email: ann@uni.edu\n"
        "  :score: !ruby/object:BigDecimal 18:0.1e2\n  :history: !ruby/array:Array []\n")
    assert [(r["student"], r["submission"]) for r in classroom.read_export(str(tmp_path))] == [("Ann", "submission_7")]


def test_a_group_members_notes_stay_on_their_own_rows(tmp_path):
    """Bob is in two submissions, one with Carol: the note is Bob's, not Carol's."""
    for sub in ("submission_1", "submission_2"):
        (tmp_path / "export" / sub).mkdir(parents=True)
    (tmp_path / "export" / "submission_metadata.yml").write_text(
        "submission_1:\n  :submitters:\n  - :name: Carol\n    :email: c@uni.edu\n  - :name: Bob\n    :email: b@uni.edu\n"
        "submission_2:\n  :submitters:\n  - :name: Bob\n    :email: b@uni.edu\n")
    out = tmp_path / "out"
    out.mkdir()
    proc, rows = _grade_class(tmp_path / "export", out)
    assert proc.returncode == 0, proc.stderr
    notes = {(r["student"], r["submission"]): r["note"] for r in rows}
    assert notes[("Carol", "submission_1")] == "no hw2_ResNet.py and no .py file; the folder holds no regular file"
    assert notes[("Bob", "submission_1")].startswith("the same student is also in submission_2; no hw2_ResNet.py")
    assert "also in" not in (out / "feedback" / "students" / "submission_1" / "feedback.txt").read_text()


@pytest.mark.parametrize("content, expected", [
    ("- just\n- a list\n", "is not a mapping of submissions"),
    ("submission_1: [unclosed\n", "cannot read"),
])
def test_a_broken_metadata_file_is_one_line(tmp_path, content, expected):
    (tmp_path / "submission_metadata.yml").write_text(content)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "autograde.py"), "--class", str(tmp_path),
                           "--assignment", "hw2", "--gradebook", str(tmp_path.parent / "g.csv"), "--feedback-dir",
                           str(tmp_path.parent / "fb")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and expected in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]  # after argparse's usage: the one line naming the flag
    assert last.startswith("autograde.py: error: --class: ") and expected in last, proc.stderr


@pytest.mark.parametrize("args, expected", [
    (["--gradebook", "G.csv", "--feedback-dir", "FB"], "--class needs --assignment"),
    (["--assignment", "hw2", "--feedback-dir", "FB"], "--class needs --gradebook"),
    (["--assignment", "hw2", "--gradebook", "G.csv", "--feedback-dir", "FB", "-j", "0"], "-j must be between 1 and"),
    (["--assignment", "hw2", "--gradebook", "G.csv", "--feedback-dir", "FB", "-j", "100000"], "-j must be between 1 and"),
    (["--assignment", "hw2", "--gradebook", "G.csv", "--feedback-dir", "EXPORT/fb"], "lies inside the export"),
    (["--assignment", "hw2", "--gradebook", "FB/summary.png", "--feedback-dir", "FB"], "lies inside --feedback-dir"),
    (["--assignment", "hw2", "--gradebook", "../G.csv", "--feedback-dir", "."], "the export lies inside --feedback-dir"),
    (["--assignment", "hw2", "--gradebook", "G.csv", "--feedback-dir", "FB", "X.py"], "give no SUBMISSION"),
])
def test_class_flags_are_checked_in_one_line_before_grading(tmp_path, args, expected):
    (tmp_path / "EXPORT" / "ann").mkdir(parents=True)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "autograde.py"), "--class", "EXPORT", *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and expected in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "G.csv").exists()


def test_class_flags_without_class_are_refused(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "autograde.py"), "x.py", "-j", "2"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "-j goes with --class EXPORT_DIR" in proc.stderr, proc.stderr


# ------------------------------------------------------------------------------------------
# a class of 20, two exports, against one-at-a-time grading
# ------------------------------------------------------------------------------------------
GRADED_FILE = {"eve": "hw2_ResNet_final.py", "fay": "work/HW2_ResNet.py"}  # the others: hw2_ResNet.py
def _sandboxes_holding(text):
    """The grader's sandbox folders (left in /tmp) whose copy of the submission holds ``text``."""
    found = []
    for d in os.listdir("/tmp"):
        p = os.path.join("/tmp", d, "work", "hw2_ResNet.py")
        if d.startswith("autograde-hw2-") and os.path.isfile(p):
            with open(p, encoding="utf-8", errors="replace") as f:
                found += [d] if text in f.read() else []
    return found


JOBS = str(min(2, os.cpu_count() or 1))  # -j may not exceed the machine's CPUs
EXPECTED_STATUS = {"gus": "missing", "hal": "missing", "ida": "ambiguous", "jon": "ambiguous"}


@pytest.fixture(scope="module")
def one_at_a_time(tmp_path_factory):
    """Each gradable student's file graded alone (runner.grade_assignment: what autograde.py FILE
    does): student -> [each check's points]."""
    out, by_text = {}, {}  # (the same text is graded once: five students hand in the correct file)
    for name, files in _class_files().items():
        if name in EXPECTED_STATUS:
            continue
        text = files[GRADED_FILE.get(name, "hw2_ResNet.py")]
        if text not in by_text:
            path = tmp_path_factory.mktemp(name) / "hw2_ResNet.py"
            path.write_text(text)
            by_text[text] = [r["score"] for r in runner.grade_assignment("hw2", str(path))["results"]]
        out[name] = by_text[text]
    return out


KEYS = [k for k, _, _ in POINTS["hw2"]]


def _check_gradebook(rows, one_at_a_time, student_of=lambda r: r["student"]):
    assert [student_of(r) for r in rows] == sorted(_class_files())
    for r in rows:
        name = student_of(r)
        assert r["status"] == EXPECTED_STATUS.get(name, "graded"), (name, r)
        if r["status"] == "graded":
            assert [float(r[k]) for k in KEYS] == one_at_a_time[name], (name, r["note"])
            assert float(r["score"]) == sum(one_at_a_time[name])
        else:
            assert r["score"] == "" and all(r[k] == "" for k in KEYS) and r["note"]
    by = {student_of(r): r for r in rows}
    # correct work scores 100 whatever its classmates do (the hostile ones ran beside it)
    assert all(float(by[n]["score"]) == 100 for n in ("ann", "eve", "fay", "kim", "ned")), \
        {n: (by[n]["score"], by[n]["note"]) for n in ("ann", "eve", "fay", "kim", "ned")}
    assert by["eve"]["note"] == "graded hw2_ResNet_final.py as hw2_ResNet.py (its only .py file)"


def test_a_gradescope_export_of_20_graded_two_at_a_time_equals_one_at_a_time(tmp_path, one_at_a_time,
                                                                             mount_namespaces):
    _gradescope_export(tmp_path / "export", _class_files())
    out = tmp_path / "out"
    out.mkdir()
    proc, rows = _grade_class(tmp_path / "export", out, "-j", JOBS, "--timeout", "60")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    emails = {r["student"]: r["email"] for r in rows}
    assert emails["ann"] == "ann@uni.edu" and rows[0]["submission"].startswith("submission_")
    _check_gradebook(rows, one_at_a_time)
    assert ("grading one at a time" in proc.stderr) == (not mount_namespaces)
    # feedback: each graded student's table and Gradescope JSON; the others' reason
    fb = out / "feedback"
    sub = {r["student"]: r["submission"] for r in rows}
    report = json.loads((fb / "students" / sub["ben"] / "results.json").read_text())
    assert report["score"] == 70 and len(report["tests"]) == len(KEYS)
    assert "skip connection" in (fb / "students" / sub["ben"] / "feedback.txt").read_text()
    assert (fb / "students" / sub["ida"] / "feedback.txt").read_text().startswith("not graded (ambiguous): 2 files named")
    assert not (fb / "students" / sub["ida"] / "results.json").exists()
    # the summary agrees with the gradebook
    with open(fb / "pass_rates.csv", encoding="utf-8") as f:
        rates = {r["check"]: r for r in csv.DictReader(f)}
    graded = [r for r in rows if r["status"] == "graded"]
    for k, p, _ in POINTS["hw2"]:
        assert int(rates[k]["passed"]) == sum(float(r[k]) == p for r in graded) and int(rates[k]["graded"]) == 16
    assert (fb / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "16 graded, 2 missing, 2 ambiguous, 0 error" in proc.stdout


def test_a_plain_export_of_20_graded_one_at_a_time_equals_it_and_a_second_run_grades_only_changed_files(tmp_path, one_at_a_time):
    for name, files in _class_files().items():
        _write(str(tmp_path / "export" / name), files)
    out = tmp_path / "out"
    out.mkdir()
    proc, rows = _grade_class(tmp_path / "export", out)
    assert proc.returncode == 0, proc.stderr
    _check_gradebook(rows, one_at_a_time)
    # a second run grades nothing; a changed file is graded again, and only it
    records = {r["submission"]: (out / "feedback" / "students" / r["submission"] / "record.json").stat().st_mtime_ns
               for r in rows if r["status"] == "graded"}
    shutil.copy(os.path.join(CORPUS, "hw2", "block_no_skip.py"), tmp_path / "export" / "ned" / "hw2_ResNet.py")
    os.rename(tmp_path / "export" / "eve" / "hw2_ResNet_final.py", tmp_path / "export" / "eve" / "mine.py")
    proc, again = _grade_class(tmp_path / "export", out)
    assert proc.returncode == 0 and "2 to grade" in proc.stderr, proc.stderr
    changed = {r["submission"] for r in again if r["status"] == "graded" and
               (out / "feedback" / "students" / r["submission"] / "record.json").stat().st_mtime_ns != records[r["submission"]]}
    assert changed == {"ned", "eve"}  # a new file, and the same file under a new name (its feedback names it)
    assert "graded mine.py as hw2_ResNet.py" in (out / "feedback" / "students" / "eve" / "feedback.txt").read_text()
    assert {r["student"]: r["score"] for r in again}["ned"] == "70"


@pytest.mark.parametrize("sig, jobs", [(signal.SIGINT, "1"), (signal.SIGTERM, JOBS)])
def test_ctrl_c_or_sigterm_keeps_what_was_graded_and_a_second_run_goes_on(tmp_path, sig, jobs):
    """The second student's import hangs: Ctrl-C (or SIGTERM, to the pool's run) then stops the
    run at once, without a traceback; the first student's row and feedback stay; no worker and
    no sandbox are left. The next run grades only the second; with --regrade, both."""
    _write(str(tmp_path / "export" / "a_first"), {"hw2_ResNet.py": CORRECT2})
    marker = f"# {tmp_path.name}\n"  # finds this test's sandboxes among those of gradings running beside it
    _write(str(tmp_path / "export" / "b_hangs"), {"hw2_ResNet.py": marker + "import time\ntime.sleep(600)\n"})
    out = tmp_path / "out"
    cmd = [sys.executable, os.path.join(ROOT, "autograde.py"), "--class", str(tmp_path / "export"), "--assignment",
           "hw2", "--gradebook", str(out / "grades.csv"), "--feedback-dir", str(out / "fb"), "--timeout", "300"]
    proc = subprocess.Popen(cmd + ["-j", jobs], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "fb" / "students" / "a_first" / "record.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # b_hangs is being imported now
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, stderr
    assert "Traceback" not in stderr, stderr
    assert ("run the same command again to go on" if sig == signal.SIGINT else "stopped by SIGTERM") in stderr
    with open(out / "grades.csv", encoding="utf-8") as f:
        assert [(r["student"], r["score"]) for r in csv.DictReader(f)] == [("a_first", "100")]
    assert not _sandboxes_holding(marker)
    _write(str(tmp_path / "export" / "b_hangs"), {"hw2_ResNet.py": CORRECT2})
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "1 to grade" in proc.stderr, proc.stderr
    proc = subprocess.run(cmd + ["--regrade"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "2 to grade" in proc.stderr, proc.stderr
