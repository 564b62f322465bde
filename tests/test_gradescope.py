"""docs/gradescope.md, checked: the bundles it tells a TA to upload are built, unpacked under a
fake /autograder (AUTOGRADER_ROOT, AUTOGRADER_PYTHON) and run through run_autograder on a
correct and a wrong file of each assignment, under the memory limit the guide names; the scores
are the walkthrough's; the guide's image, Python, memory and timeout agree with setup.sh, with
the grader's time limits and with what is measured here; setup.sh picks the right Python on
stand-ins for both Ubuntu images.

How the memory limit is applied (said in the skip/assert messages):
- a child of this process's memory cgroup (v2 ``memory.max``, or v1 ``memory.limit_in_bytes``)
  holds run_autograder and everything it starts: the kernel enforces the limit, as Docker does on
  Gradescope, and the test asserts that nothing was OOM-killed;
- where no cgroup can be made (not root, read-only /sys/fs/cgroup), a sampler sums the
  proportional set size (PSS) of run_autograder's process tree every 50 ms and asserts its peak
  stays under the limit (weaker: a short spike between samples is missed).
Where the torch under test is a CUDA build (PyPI's default, as on the development machines), the
guide's 768 MB figure (for the CPU build that setup.sh installs) is skipped, not weakened; set
GRADESCOPE_TEST_PYTHON to a Python with the CPU build to check it. No timing is asserted.
GRADESCOPE_TEST_NO_CGROUP=1 forces the sampler; GRADESCOPE_TEST_GUIDE=PATH checks another copy of
the guide (the negative controls: a wrong number there must fail).
"""
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDE = os.environ.get("GRADESCOPE_TEST_GUIDE") or os.path.join(ROOT, "docs", "gradescope.md")
SETUP = os.path.join(ROOT, "gradescope", "setup.sh")
CORPUS = os.path.join(ROOT, "tests", "corpus")
PYTHON = os.environ.get("GRADESCOPE_TEST_PYTHON") or sys.executable
FILES = {"hw5": "hw5.py", "hw2": "hw2_ResNet.py"}
# the walkthrough's files: (assignment, corpus file) for a correct and a wrong submission
CORRECT = {"hw5": "hw5/starter_correct.py", "hw2": "hw2/starter_correct.py"}
WRONG = {"hw5": "hw5/G_relu.py", "hw2": "hw2/block_no_skip.py"}


# ------------------------------------------------------------------------------ the guide
def _guide():
    with open(GUIDE, encoding="utf-8") as f:
        return f.read()


def _setting(text, name):
    """The 'choose' cell of the guide's settings table row ``name``."""
    m = re.search(r"^\| " + re.escape(name) + r" \| ([^|]+) \|", text, re.M)
    assert m, f"docs/gradescope.md has no settings row '| {name} | ... |'"
    return m.group(1).strip()


def _mb(cell):
    m = re.search(r"(\d+) MB", cell)
    assert m, f"no 'N MB' in {cell!r}"
    return int(m.group(1))


def guide_numbers():
    text = _guide()
    timeout = _setting(text, "Autograder timeout")
    m = re.search(r"\((\d+) s\)", timeout)
    assert m, f"the timeout row must say '(N s)': {timeout!r}"
    peaks = {}  # (build, assignment) -> MB: the measured peaks table
    for build, hw, mb in re.findall(r"^\| (CPU|CUDA) build \| (hw5|hw2) \| (\d+) MB \|", text, re.M):
        peaks[build, hw] = int(mb)
    worst = re.search(r"worst case is (\d+) s", text)
    assert worst, "the guide must state 'worst case is N s'"
    return {"image": _setting(text, "Base image"), "python": _setting(text, "Python"),
            "memory": _mb(_setting(text, "Memory")), "default_ok": _mb(_setting(text, "Memory, CPU build only")),
            "timeout": int(m.group(1)), "worst": int(worst.group(1)), "peaks": peaks}


def walkthrough():
    """{(assignment, corpus file): (score, {check: points})} from the guide's walkthrough tables
    (a check the table does not show scored its full points, as the guide says)."""
    from autograder import checks

    text = _guide()
    out = {}
    for m in re.finditer(r"<!-- walkthrough (hw5|hw2) ([\w/.]+) -->\n```text\n(.*?)```", text, re.S):
        hw, path, table = m.groups()
        shown = dict(re.findall(r"^\d+\.\d+\s+(\w+)\s+(\d+)\s+\d+\s", table, re.M))
        assert set(shown) <= {k for k, _, _ in checks.POINTS[hw]}, shown
        rows = {k: int(shown.get(k, p)) for k, p, _ in checks.POINTS[hw]}
        total = re.search(r"^score: (\d+) / 100", table, re.M)
        assert total, f"the walkthrough of {path} has no 'score: N / 100' line"
        out[hw, path] = (int(total.group(1)), rows)
    return out


def test_guide_settings_agree_with_setup_sh_and_the_grader():
    g = guide_numbers()
    with open(SETUP, encoding="utf-8") as f:
        setup = f.read()
    # the image and its Python: setup.sh demands the guide's minimum and names the image
    assert g["image"].startswith("Ubuntu 24.04"), g["image"]
    m = re.search(r"(\d+)\.(\d+) \(the image's python3; (\d+)\.(\d+) or newer needed\)", g["python"])
    assert m, g["python"]
    assert (int(m.group(3)), int(m.group(4))) <= (int(m.group(1)), int(m.group(2)))
    assert f"sys.version_info < ({m.group(3)}, {m.group(4)})" in setup
    assert f"Python >= {m.group(3)}.{m.group(4)}" in setup and "Ubuntu 24.04" in setup
    assert "python3.11 python3.11-venv" in setup and "ppa:deadsnakes/ppa" in setup
    assert "docs/gradescope.md" in setup
    # memory: the choice covers every measured peak (of both torch builds), and the default's
    # row is the 768 MB Gradescope gives
    assert g["default_ok"] == 768
    assert set(g["peaks"]) == {(b, hw) for b in ("CPU", "CUDA") for hw in ("hw5", "hw2")}, g["peaks"]
    assert all(p < g["memory"] for p in g["peaks"].values()), (g["peaks"], g["memory"])
    assert all(g["peaks"]["CPU", hw] < g["default_ok"] for hw in ("hw5", "hw2"))
    # the timeout: the grader's own worst case (each import and check to its limit), computed
    # here from its time limits, is the guide's, and the timeout the guide names exceeds it
    from autograder import checks, runner

    limit = runner.DEFAULT_TIMEOUT
    check = max(runner.CHECK_LIMIT_MIN, runner.CHECK_LIMIT_FRACTION * limit)
    n = max(len(checks.POINTS[hw]) for hw in FILES) - 2  # import and import_quiet come with the import
    worst = limit + n * check + (n - 1) * limit  # every check to its limit, a fresh import after each but the last
    assert g["worst"] == round(worst), (g["worst"], worst)
    assert g["timeout"] >= worst + 120, (g["timeout"], worst)


# ------------------------------------------------------------------------------ memory limit
def _own_memory_cgroup():
    """(path, version) of this process's memory cgroup, or (None, reason)."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError as e:
        return None, f"no /proc/self/cgroup ({e})"
    for line in lines:
        hier, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(",") and os.path.isdir("/sys/fs/cgroup/memory" + path):
            return "/sys/fs/cgroup/memory" + path, 1
    for line in lines:
        hier, controllers, path = line.split(":", 2)
        if hier == "0" and os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            return "/sys/fs/cgroup" + path, 2
    return None, "no memory cgroup (neither v1's memory controller nor v2's unified tree)"


class MemoryLimit:
    """run_autograder's process tree under ``mb`` MB: a child memory cgroup where one can be made,
    else a PSS sampler (``how`` says which)."""

    def __init__(self, mb, tmp_path):
        self.mb, self.cg, self.version = mb, None, None
        base, version = _own_memory_cgroup()
        if os.environ.get("GRADESCOPE_TEST_NO_CGROUP") == "1":  # to try the sampler where cgroups work
            base, version = None, "GRADESCOPE_TEST_NO_CGROUP=1"
        self.how = f"PSS sampler, {mb} MB asserted (no cgroup: {version})" if base is None else ""
        if base is not None:
            cg = os.path.join(base, f"gradescope-test-{os.getpid()}-{tmp_path.name}"[:200])
            try:
                os.mkdir(cg)
                limit = "memory.limit_in_bytes" if version == 1 else "memory.max"
                with open(os.path.join(cg, limit), "w") as f:
                    f.write(str(mb * 2**20))
                with open(os.path.join(cg, limit)) as f:
                    assert int(f.read().split()[0]) == mb * 2**20
                self.cg, self.version = cg, version
                self.how = f"cgroup v{version} {limit} = {mb} MB"
            except (OSError, AssertionError, ValueError) as e:
                with contextlib.suppress(OSError):
                    os.rmdir(cg)
                self.how = f"PSS sampler, {mb} MB asserted (cgroup at {base} not usable: {e})"
        self.peak_pss_mb = 0

    def _enter(self):
        if self.cg:
            with open(os.path.join(self.cg, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))

    def _sample(self, pid, stop):
        while not stop.is_set():
            total = 0
            for p in [pid] + _descendants(pid):
                try:
                    with open(f"/proc/{p}/smaps_rollup") as f:
                        total += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
                except (OSError, ValueError, IndexError):
                    pass
            self.peak_pss_mb = max(self.peak_pss_mb, total // 1024)
            stop.wait(0.05)

    def oom_kills(self):
        if not self.cg:
            return 0
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        with open(os.path.join(self.cg, name)) as f:
            m = re.search(r"^oom_kill (\d+)", f.read(), re.M)
        return int(m.group(1)) if m else 0

    def run(self, cmd, env, timeout):
        self.peak_pss_mb = 0
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=self._enter)
        stop = threading.Event()
        sampler = threading.Thread(target=self._sample, args=(proc.pid, stop), daemon=True)
        sampler.start()
        try:
            out, _ = proc.communicate(timeout=timeout)
        finally:
            stop.set()
            sampler.join()
            if proc.poll() is None:
                proc.kill()
        return proc.returncode, out

    def close(self):
        if self.cg:
            for _ in range(100):
                try:
                    os.rmdir(self.cg)
                    return
                except OSError:
                    time.sleep(0.05)


def _descendants(pid):
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    data = f.read()
                parent[int(entry)] = int(data[data.rindex(b")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    found, frontier = [], [pid]
    while frontier:
        frontier = [p for p, pp in parent.items() if pp in frontier and p not in found]
        found += frontier
    return found


# ------------------------------------------------------------------------------ the bundles
def _torch_build():
    out = subprocess.run([PYTHON, "-c", "import torch; print('CPU' if torch.version.cuda is None else 'CUDA')"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[-1]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """{assignment: source folder}: each bundle built by the command the guide gives, unpacked
    as Gradescope does (the scripts' modes restored)."""
    made = {}
    for hw in FILES:
        top = tmp_path_factory.mktemp(f"gradescope-{hw}")
        zpath = top / f"{hw}.zip"
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "autograde.py"), "--gradescope-bundle", hw,
                               str(zpath)], capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        assert f"python autograde.py --gradescope-bundle {hw} {hw}_autograder.zip" in _guide()  # the guide's command
        source = top / "autograder" / "source"
        with zipfile.ZipFile(zpath) as z:
            z.extractall(source)
        for name in ("setup.sh", "run_autograder"):
            os.chmod(source / name, 0o755)
        made[hw] = source
    return made


def _grade(source, hw, corpus_file, limit, tmp_path):
    """run_autograder on the corpus file as the upload, under ``limit``: (results.json, stdout)."""
    root = source.parent
    shutil.rmtree(root / "submission", ignore_errors=True)
    shutil.rmtree(root / "results", ignore_errors=True)
    (root / "submission").mkdir()
    shutil.copy(os.path.join(CORPUS, corpus_file), root / "submission" / FILES[hw])
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=PYTHON)
    code, out = limit.run([str(source / "run_autograder")], env, timeout=300)
    assert code == 0, out
    with open(root / "results" / "results.json", encoding="utf-8") as f:
        return json.load(f), out


def _check_against_walkthrough(report, out, hw, corpus_file):
    expected = walkthrough()
    assert (hw, corpus_file) in expected, f"the guide has no walkthrough for {corpus_file}"
    score, rows = expected[hw, corpus_file]
    assert report["score"] == score, (report["score"], score, out[-3000:])
    got = {t["name"] for t in report["tests"]}
    assert len(got) == len(rows), (rows, got)
    assert [t["score"] for t in report["tests"]] == [float(p) for p in rows.values()], out[-3000:]
    assert re.search(rf"^score: {score} / 100 in ", out, re.M), out[-3000:]


@pytest.mark.parametrize("hw", ["hw5", "hw2"])
def test_run_autograder_under_the_guides_memory_gives_the_walkthroughs_scores(bundles, hw, tmp_path):
    g = guide_numbers()
    build = _torch_build()
    limit = MemoryLimit(g["memory"], tmp_path)
    print(f"{hw}: torch {build} build; memory limit: {limit.how}")
    try:
        for corpus_file in (CORRECT[hw], WRONG[hw]):
            report, out = _grade(bundles[hw], hw, corpus_file, limit, tmp_path)
            _check_against_walkthrough(report, out, hw, corpus_file)
            assert limit.oom_kills() == 0, f"{corpus_file}: OOM-killed under {limit.how}"
            assert limit.peak_pss_mb < g["memory"], (limit.peak_pss_mb, limit.how)
            # the guide's measured peak for this torch build agrees with this run's (sampled) peak
            stated = g["peaks"][build, hw]
            if corpus_file == CORRECT[hw]:  # (the guide's table is of the correct files)
                assert 0.5 * stated <= limit.peak_pss_mb <= 1.3 * stated, (
                    f"{corpus_file}: peak PSS {limit.peak_pss_mb} MB here, the guide says {stated} MB for the "
                    f"{build} build")
            print(f"{corpus_file}: score {report['score']:g}, peak PSS {limit.peak_pss_mb} MB "
                  f"(guide: {stated} MB), OOM kills {limit.oom_kills()}")
    finally:
        limit.close()


def test_the_default_768_mb_grades_a_correct_hw5_with_the_cpu_build(bundles, tmp_path):
    """The guide: 768 MB (Gradescope's default) is enough with the CPU build of torch only."""
    g = guide_numbers()
    if _torch_build() != "CPU":
        pytest.skip("the torch under test is a CUDA build; the guide's 768 MB figure is for the CPU build "
                    "(set GRADESCOPE_TEST_PYTHON to a Python with torch's CPU build to check it)")
    limit = MemoryLimit(g["default_ok"], tmp_path)
    try:
        report, out = _grade(bundles["hw5"], "hw5", CORRECT["hw5"], limit, tmp_path)
        _check_against_walkthrough(report, out, "hw5", CORRECT["hw5"])
        assert limit.oom_kills() == 0, f"OOM-killed under {limit.how}"
        assert limit.peak_pss_mb < g["default_ok"], (limit.peak_pss_mb, limit.how)
    finally:
        limit.close()


def test_the_walkthrough_covers_a_correct_and_a_wrong_file_of_each_assignment():
    with open(os.path.join(CORPUS, "expected.json"), encoding="utf-8") as f:
        corpus = json.load(f)
    from autograder import checks

    expected = walkthrough()
    for hw in FILES:
        for corpus_file in (CORRECT[hw], WRONG[hw]):
            score, rows = expected[hw, corpus_file]
            assert score == corpus[corpus_file]["score"], corpus_file
            assert list(rows) == [k for k, _, _ in checks.POINTS[hw]], corpus_file  # every check, in order
            full = {k: p for k, p, _ in checks.POINTS[hw]}
            assert sorted(k for k in rows if rows[k] < full[k]) == sorted(corpus[corpus_file]["loses"]), corpus_file
            assert sum(rows.values()) == score
    assert expected[("hw5", CORRECT["hw5"])][0] == 100 and expected[("hw5", WRONG["hw5"])][0] < 100


# ------------------------------------------------------------------------------ setup.sh
_STUB_PYTHON = r"""#!/bin/bash
# a stand-in Python {version}: logs its arguments; -m venv makes a venv whose python is this script
echo "$(basename "$0") $*" >> "$STUB_LOG"
case "$1" in
  -V) echo "Python {version}" ;;
  -c) case "$2" in
        *torch*) echo "setup.sh: Python {version} torch 2.14.1+cpu (CPU build)" ;;
        *) exec "$REAL_PYTHON" -c "import sys; sys.version_info = {info}; exec(sys.argv[1])" "$2" ;;
      esac ;;
  -m) if [ "$2" = venv ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; fi ;;
esac
exit 0
"""

_STUB_APT = r"""#!/bin/bash
# a stand-in apt-get: python3.11 installs when the image's lists have it ($STUB_DIR/lists-have-311)
# or once the deadsnakes PPA was added ($STUB_DIR/ppa)
echo "apt-get $*" >> "$STUB_LOG"
if [ "$1" = install ] && [[ " $* " == *" python3.11 "* ]]; then
  if [ -e "$STUB_DIR/lists-have-311" ] || [ -e "$STUB_DIR/ppa" ]; then
    cp "$STUB_DIR/python3.11.stub" "$STUB_DIR/bin/python3.11"; exit 0
  fi
  echo "E: Unable to locate package python3.11" >&2; exit 100
fi
exit 0
"""

_STUB_PPA = r"""#!/bin/bash
echo "add-apt-repository $*" >> "$STUB_LOG"
[ -e "$STUB_DIR/ppa-reachable" ] || exit 1
[ "$*" = "-y ppa:deadsnakes/ppa" ] && touch "$STUB_DIR/ppa"
"""


def _run_setup(tmp_path, python3_version, lists_have_311=False, ppa_reachable=False):
    """setup.sh with stand-ins for apt-get, add-apt-repository and the Pythons of an image whose
    python3 is ``python3_version``: (exit status, output, log of the stand-ins' calls, source)."""
    stub = tmp_path / "stub"
    (stub / "bin").mkdir(parents=True)
    for tool in ("bash", "grep", "dirname", "basename", "mkdir", "cp", "cat", "touch", "chmod"):
        os.symlink(shutil.which(tool), stub / "bin" / tool)

    def python(version):  # its -c code runs in this Python, with sys.version_info set to ``version``
        info = repr(tuple(map(int, version.split("."))) + ("final", 0))
        return _STUB_PYTHON.replace("{version}", version).replace("{info}", info)

    for name, text in (("bin/python3", python(python3_version)), ("python3.11.stub", python("3.11.0")),
                       ("bin/apt-get", _STUB_APT), ("bin/add-apt-repository", _STUB_PPA)):
        (stub / name).write_text(text)
        os.chmod(stub / name, 0o755)
    if lists_have_311:
        (stub / "lists-have-311").touch()
    if ppa_reachable:
        (stub / "ppa-reachable").touch()
    source = tmp_path / "autograder" / "source"
    source.mkdir(parents=True)
    shutil.copy(SETUP, source / "setup.sh")
    from autograder import bundle

    pins = bundle._read_pins(os.path.join(ROOT, "requirements.txt"))
    (source / "requirements.txt").write_text("".join(f"{p}=={pins[p]}\n" for p in ("torch", "torchvision", "numpy",
                                                                                        "scipy")))
    log = stub / "log"
    env = {"PATH": str(stub / "bin"), "STUB_LOG": str(log), "STUB_DIR": str(stub), "REAL_PYTHON": sys.executable,
           "AUTOGRADER_ROOT": str(tmp_path / "autograder")}
    proc = subprocess.run([shutil.which("bash"), str(source / "setup.sh")], env=env, capture_output=True, text=True,
                          timeout=60)
    return proc.returncode, proc.stdout + proc.stderr, log.read_text() if log.exists() else "", source, pins


def test_setup_sh_uses_ubuntu_24_04s_python3_as_it_is(tmp_path):
    code, out, log, source, pins = _run_setup(tmp_path, "3.12.3")
    assert code == 0, out
    assert "the grader's Python is Python 3.12.3" in out and "too old" not in out
    assert "python3.11" not in log and "add-apt-repository" not in log
    assert "apt-get install -y --no-install-recommends python3 python3-venv python3-pip util-linux" in log
    assert f"python3 -m venv {tmp_path / 'autograder' / 'venv'}" in log
    # exact pins: the PyPI packages from requirements-pypi.txt, torch/torchvision from the CPU index
    assert (source / "requirements-pypi.txt").read_text() == f"numpy=={pins['numpy']}\nscipy=={pins['scipy']}\n"
    assert (source / "requirements-torch.txt").read_text() == (f"torch=={pins['torch']}\n"
                                                               f"torchvision=={pins['torchvision']}\n")
    assert f"-m pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu -r " \
           f"{source / 'requirements-torch.txt'}" in log
    assert f"-m pip install --no-cache-dir -r {source / 'requirements-pypi.txt'}" in log
    assert "(CPU build)" in out


def test_setup_sh_installs_python_3_11_on_ubuntu_22_04_and_says_so(tmp_path):
    code, out, log, source, pins = _run_setup(tmp_path, "3.10.12", lists_have_311=True)
    assert code == 0, out
    assert "Python 3.10.12 is too old for the pinned packages" in out
    assert "apt-get install -y --no-install-recommends python3.11 python3.11-venv" in log
    assert "add-apt-repository" not in log  # the image's own lists had it
    assert "the grader's Python is Python 3.11.0" in out
    assert f"python3.11 -m venv {tmp_path / 'autograder' / 'venv'}" in log and "python3 -m venv" not in log
    assert "util-linux" in log


def test_setup_sh_falls_back_to_the_deadsnakes_ppa(tmp_path):
    code, out, log, source, pins = _run_setup(tmp_path, "3.10.12", ppa_reachable=True)
    assert code == 0, out
    assert "adding the deadsnakes PPA" in out and "add-apt-repository -y ppa:deadsnakes/ppa" in log
    assert log.index("add-apt-repository") < log.rindex("apt-get install -y --no-install-recommends python3.11")
    assert "the grader's Python is Python 3.11.0" in out


def test_setup_sh_stops_with_a_message_when_no_python_3_11_can_be_had(tmp_path):
    code, out, log, source, pins = _run_setup(tmp_path, "3.10.12")
    assert code != 0
    assert "no Python >= 3.11 could be installed; choose Gradescope's Ubuntu 24.04 base image" in out
    assert "-m venv" not in log and "pip install" not in log
