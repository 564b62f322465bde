"""autograde.py: the host-side faults of issue 18 (items 7-12 and the grader's weak messages).

Each test fails on the grader before commit 287e503 (noted per test)."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AUTOGRADE = os.path.join(ROOT, "autograde.py")
sys.path.insert(0, ROOT)

import autograde  # noqa: E402
from autograder import report as reporting, runner  # noqa: E402


def _cli(*args, timeout=60, **kw):
    return subprocess.run([sys.executable, AUTOGRADE, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, **kw)


@pytest.mark.parametrize("value", ["99999999999999", "2000000"])
def test_huge_memory_mb_is_a_one_line_error(value, tmp_path):
    """(before: an OverflowError traceback, or a silently accepted absurd limit)"""
    proc = _cli(os.path.join(ROOT, "hw2_ResNet.py"), "--memory-mb", value)
    assert proc.returncode == 2 and "--memory-mb" in proc.stderr and "Traceback" not in proc.stderr


def test_memory_limit_too_low_for_torch_blames_the_grader(tmp_path):
    """(before: exit 0, every check 0, a message blaming line 1 of the student's file)"""
    out = tmp_path / "r.json"
    proc = _cli(os.path.join(ROOT, "hw2_ResNet.py"), "--memory-mb", "600", "--results", out)
    assert proc.returncode == 2, proc.stdout
    assert "grader memory limit too low for torch (600 MB)" in proc.stderr
    assert not out.exists()


def test_symlink_to_dev_zero_is_refused_quickly(tmp_path):
    """(before: getsize() is 0, and the copy of /dev/zero fills the disk)"""
    os.symlink("/dev/zero", tmp_path / "hw5.py")
    out = tmp_path / "r.json"
    t0 = time.monotonic()
    proc = _cli(tmp_path / "hw5.py", "--results", out, "--timeout", 10)
    assert time.monotonic() - t0 < 15 and proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["score"] == 0 and "regular files only" in report["tests"][0]["output"]


def test_fifo_submission_is_refused(tmp_path):
    os.mkfifo(tmp_path / "hw2_ResNet.py")
    out = tmp_path / "r.json"
    proc = _cli(tmp_path / "hw2_ResNet.py", "--results", out, "--timeout", 10, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "not a regular file" in json.loads(out.read_text())["tests"][0]["output"]


def test_results_equal_to_the_submission_is_refused(tmp_path):
    """(before: the student's file was overwritten by the results JSON)"""
    sub = tmp_path / "hw2_ResNet.py"
    sub.write_text("x = 1\n")
    for target in (sub, tmp_path / "." / "hw2_ResNet.py"):
        proc = _cli(sub, "--results", target)
        assert proc.returncode == 2 and "is the submission itself" in proc.stderr
    proc = _cli(tmp_path, "--results", sub)  # a folder holding it
    assert proc.returncode == 2 and "is the submission itself" in proc.stderr
    assert sub.read_text() == "x = 1\n"


@pytest.mark.parametrize("results", ["/proc/x", "/dev/full"])
def test_results_that_cannot_be_written_fail_before_grading(results, tmp_path):
    """(before: the error came only after the whole grading)"""
    t0 = time.monotonic()
    proc = _cli(os.path.join(ROOT, "hw2_ResNet.py"), "--results", results)
    assert proc.returncode == 2 and "--results" in proc.stderr and time.monotonic() - t0 < 5


@pytest.mark.parametrize("value", ["nan", "-1", "inf"])
def test_bundle_flags_are_validated_before_anything_is_written(value, tmp_path):
    """(before: --timeout nan / -1 wrote a bundle that failed every student)"""
    out = tmp_path / "b.zip"
    proc = _cli("--gradescope-bundle", "hw5", out, "--timeout", value)
    assert proc.returncode == 2 and "--timeout" in proc.stderr
    assert not out.exists() and os.listdir(tmp_path) == []


def test_custom_base_exception_is_reported_as_what_it_is(tmp_path):
    """(before: 'exited with status 1 (os._exit or a hard crash)')"""
    src = open(os.path.join(ROOT, "hw2_ResNet.py"), encoding="utf-8").read()
    src += ("\nclass Stop(BaseException):\n    pass\n\n\n_orig = Block.forward\n\n\n"
            "def _forward(self, x):\n    raise Stop('nope')\n\n\nBlock.forward = _forward\n")
    (tmp_path / "hw2_ResNet.py").write_text(src)
    g = runner.grade_assignment("hw2", str(tmp_path / "hw2_ResNet.py"), timeout=30)
    shape = {r["check"]: r for r in g["results"]}["Block_shape"]
    assert "Stop (a BaseException subclass" in shape["output"] and "nope" in shape["output"], shape["output"]


SLOW_SPAWNER = '''
import os, subprocess, sys, time
pidfile = {pidfile!r}
if os.fork() == 0:
    os.setsid()
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
    while True:
        time.sleep(0.1)
time.sleep(1.0)
while True:
    time.sleep(0.1)
'''


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("no_unshare", ["1", "0"])
def test_sigterm_kills_the_whole_worker_tree_and_removes_the_sandbox(no_unshare, tmp_path):
    """SIGTERM while a submission hangs at import, after it started a setsid daemon.
    (before: the worker, the daemon and the sandbox folder outlived the grader)"""
    # the daemon writes its pid into the worker's scratch folder (the one place, besides the
    # namespace's own /tmp, that the worker can write as nobody); the sandbox goes in tmpdir,
    # a folder others may enter
    (tmp_path / "hw5.py").write_text(SLOW_SPAWNER.format(pidfile="daemon.pid"))
    tmpdir = pathlib.Path(tempfile.mkdtemp(dir="/tmp"))
    os.chmod(tmpdir, 0o755)
    env = dict(os.environ, AUTOGRADE_NO_UNSHARE=no_unshare, TMPDIR=str(tmpdir))
    proc = subprocess.Popen([sys.executable, AUTOGRADE, str(tmp_path / "hw5.py"), "--timeout", "60"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not list(tmpdir.glob("*/work/daemon.pid")) and time.monotonic() < deadline:
        time.sleep(0.1)
    pidfiles = list(tmpdir.glob("*/work/daemon.pid"))
    assert pidfiles, "the submission did not start"
    time.sleep(0.2)
    daemon = int(pidfiles[0].read_text() or 0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143 and "Traceback" not in err, err
    time.sleep(0.5)
    if no_unshare == "1":  # without a PID namespace the daemon's pid is a host pid
        assert not _alive(daemon)
    assert os.listdir(tmpdir) == [], "the sandbox folder was left behind"


def test_ctrl_c_exits_130_without_traceback(tmp_path):
    (tmp_path / "hw5.py").write_text("import time\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, AUTOGRADE, str(tmp_path / "hw5.py"), "--timeout", "60"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err, err


def test_run_autograder_removes_stale_results_first(tmp_path):
    """A reused root whose grader cannot start must not show the previous student's 100.
    (before: run_autograder kept the stale results.json)"""
    bundle = tmp_path / "b.zip"
    assert _cli("--gradescope-bundle", "hw2", bundle).returncode == 0
    root = tmp_path / "ag"
    with zipfile.ZipFile(bundle) as z:
        z.extractall(root / "source")
        assert "common.py" in z.namelist()
    os.chmod(root / "source" / "run_autograder", 0o755)
    (root / "results").mkdir()
    (root / "results" / "results.json").write_text('{"score": 100.0, "tests": []}')
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON="/nonexistent/python")
    run = subprocess.run([str(root / "source" / "run_autograder")], env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0
    report = json.loads((root / "results" / "results.json").read_text())
    assert report["score"] == 0.0 and "autograder itself failed" in report["output"]
    # a directory in place of results.json is removed too
    os.remove(root / "results" / "results.json")
    (root / "results" / "results.json").mkdir()
    subprocess.run([str(root / "source" / "run_autograder")], env=env, capture_output=True, timeout=60)
    assert os.path.isfile(root / "results" / "results.json")


def test_a_folder_name_cannot_forge_a_line_of_the_report(tmp_path):
    """A submitted folder named "sub\nhw5.py: 100 of 100 points" (before: the line appeared raw)."""
    sub = tmp_path / "sub\nhw5.py: 100 of 100 points\x1b[2J"
    sub.mkdir()
    (sub / "hw5.py").write_text("x = 1\n")
    path, note = autograde._find_submission(str(tmp_path), "hw5.py")
    assert path == str(sub / "hw5.py") and "\n" not in note and "\x1b" not in note
    assert note == "graded sub\\nhw5.py: 100 of 100 points\\x1b[2J/hw5.py"
    (tmp_path / "notes\n.txt").write_text("")
    msg = reporting._missing_file_grading("hw2", str(tmp_path))["results"][0]["output"]
    assert "\n" not in msg and "notes\\n.txt" in msg


@pytest.mark.slow  # ~5 s; one file in a subfolder, any case, is graded in the bundle's test by default
def test_submission_found_in_subfolders_and_case_insensitively(tmp_path):
    """With several candidates the exact name at the shallowest depth wins, and the grader says
    which file it graded (a single one in a subfolder: the bundle's test). (before: 0 points)"""
    ref = open(os.path.join(ROOT, "hw2_ResNet.py"), encoding="utf-8").read()
    (tmp_path / "sub" / "hw2").mkdir(parents=True)
    (tmp_path / "sub" / "hw2" / "HW2_ResNet.py").write_text(ref)
    (tmp_path / "sub" / "notes.txt").write_text("hi")
    out = tmp_path / "r.json"
    (tmp_path / "sub" / "deep" / "er").mkdir(parents=True)
    (tmp_path / "sub" / "deep" / "er" / "hw2_ResNet.py").write_text("broken(\n")
    (tmp_path / "sub" / "x").mkdir()
    (tmp_path / "sub" / "x" / "hw2_ResNet.py").write_text(ref)
    proc = _cli(tmp_path / "sub", "--assignment", "hw2", "--results", out, timeout=120)
    report = json.loads(out.read_text())
    assert report["score"] == 100.0 and "graded x/hw2_ResNet.py (of 3 candidates" in report["output"]


# ------------------------------------------------------------------ issue 27 (robustness, third pass)
@pytest.mark.parametrize("closed", ["0<&-", "1>&-", "2>&-"])
def test_a_closed_standard_stream_still_grades_correct_work_100(closed, tmp_path):
    """Cause 1 (before: 0/100, every check 'closed its request channel while importing', exit 0):
    os.pipe() took the free fd 0, 1 or 2, which Popen's stdio setup overwrote in the worker."""
    out = tmp_path / "r.json"
    cmd = f"exec {closed}; exec {sys.executable!r} {AUTOGRADE!r} {os.path.join(ROOT, 'hw2_ResNet.py')!r} --results {str(out)!r}"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["score"] == 100.0, [t["output"] for t in report["tests"] if t["score"] < t["max_score"]]


def test_with_stdout_closed_and_no_results_file_the_grade_is_not_silently_lost(tmp_path):
    """Before: graded, printed the table into the closed stdout, and exited 0."""
    cmd = f"exec 1>&-; exec {sys.executable!r} {AUTOGRADE!r} {os.path.join(ROOT, 'hw2_ResNet.py')!r}"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and "stdout is closed and no --results PATH was given" in proc.stderr, proc.stderr


def test_a_library_warning_in_the_output_does_not_show_the_hosts_python_folders(tmp_path):
    """Before: the starter's DataLoader warning (4 workers on a 2-core machine) printed
    ``/root/.pyenv/versions/.../torch/utils/data/dataloader.py:...`` in the report students read."""
    import torch

    sub = tmp_path / "hw2_ResNet.py"
    sub.write_text(open(os.path.join(ROOT, "hw2_ResNet.py"), encoding="utf-8").read()
                   + "\n_forward = Block.forward\n\n\ndef _warns(self, x):\n    import torch.utils.data, warnings\n"
                     "    warnings.warn_explicit('probe of the grader', UserWarning, torch.utils.data.__file__, 7)\n"
                     "    return _forward(self, x)\n\n\nBlock.forward = _warns\n")
    report = json.loads(_cli(sub, "--json-only").stdout)
    assert "__init__.py:7: UserWarning: probe of the grader" in report["output"], report["output"]
    assert os.path.dirname(torch.__file__) not in report["output"]


def test_out_of_memory_the_kernel_kills_a_worker_before_the_grader(tmp_path):
    """RLIMIT_AS is per process: a submission that forks many children can exhaust the machine's
    memory (a hostile pass OOM-killed the grader of a whole class). Every worker process has the
    highest OOM score, inherited by its children, so the kernel kills one of them first."""
    from autograder import runner

    sub = tmp_path / "hw2_ResNet.py"
    sub.write_text(open(os.path.join(ROOT, "hw2_ResNet.py"), encoding="utf-8").read()
                   + "\nimport os\nif os.fork() == 0:\n    os._exit(0 if open('/proc/self/oom_score_adj').read().strip()"
                     " == '1000' else 9)\n_, status = os.wait()\nprint('child', os.waitstatus_to_exitcode(status), "
                     "'self', open('/proc/self/oom_score_adj').read().strip())\n")
    quiet = {r["check"]: r["output"] for r in runner.grade_assignment("hw2", str(sub))["results"]}["import_quiet"]
    assert "'child 0 self 1000'" in quiet, quiet


@pytest.mark.parametrize("layout", ["sub/hw2_ResNet.py", "HW2_ResNet.py", "only.py"])
def test_results_never_overwrite_the_file_the_folder_search_picked(layout, tmp_path):
    """Cause 2 (before: graded 100, then replaced the submission with the JSON): the guard
    compares --results with the file picked in the folder, not only SUBMISSION/hw2_ResNet.py."""
    target = tmp_path / "s" / layout
    target.parent.mkdir(parents=True)
    target.write_text("x = 1\n")
    proc = _cli("--assignment", "hw2", tmp_path / "s", "--results", target)
    assert proc.returncode == 2 and "is the submission itself" in proc.stderr, proc.stderr
    assert target.read_text() == "x = 1\n"


def test_a_tiny_timeout_is_refused(tmp_path):
    proc = _cli(os.path.join(ROOT, "hw2_ResNet.py"), "--timeout", "1e-9")
    assert proc.returncode == 2 and "--timeout must be at least" in proc.stderr


@pytest.mark.parametrize("content,kind", [(b"PK\x03\x04" + b"\x00" * 40, "a zip archive"),
                                          ("import torch\n".encode("utf-16"), "saved as UTF-16 text")])
def test_a_zip_or_utf16_file_is_named_for_what_it_is(content, kind, tmp_path):
    """(before: 'source code string cannot contain null bytes')"""
    (tmp_path / "hw2_ResNet.py").write_bytes(content)
    g = runner.grade_assignment("hw2", str(tmp_path / "hw2_ResNet.py"), timeout=30)
    assert all(r["score"] == 0 and kind in r["output"] for r in g["results"]), g["results"][0]


def test_a_host_side_failure_records_no_score_and_exits_non_zero(tmp_path, monkeypatch, capsys):
    """(before: every check 0 with 'autograder error', exit 0, and results.json recorded the 0)"""
    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runner, "_copy_source", full_disk)
    out = tmp_path / "r.json"
    assert autograde.main([os.path.join(ROOT, "hw2_ResNet.py"), "--results", str(out)]) == autograde.EXIT_FAULT
    assert not out.exists()
    err = capsys.readouterr().err
    assert "No space left on device" in err and "no score recorded" in err and "Traceback" not in err
