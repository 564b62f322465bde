"""autograde.py: a grade a submission cannot forge (issue 14, items 1-2).

Each hostile submission below wraps the same wrong model (a Linear D and G, a V that returns 0,
a train that does nothing) in an attack: forged lines on every file descriptor, patching the
grader and torch, finding / re-exporting / printing / modifying the reference. Graded through
the real sandbox, each must score no more, check by check, than its honest twin (the same wrong
model without the attack), lose every value check (function, V, train), leave the reference
and the grader byte-identical, and never show the reference's source in results.json.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import autograde  # noqa: E402
from autograder import bundle, checks, protocol, registry, report as reporting, runner  # noqa: E402
from autograder.checks import hw5 as hw5checks  # noqa: E402

GRADER_FILES = [f for f in bundle.grader_files() if f.endswith(".py")]  # the package's files too
VALUE_CHECKS = {"hw5": {"D_function", "G_function", "V_value", "V_grads", "train"},
                "hw2": {"Block_train", "Block_eval", "ResNet_train", "ResNet_eval"}}

WRONG_HW5 = '''
import torch
import torch.nn as nn


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(1024, 1)

    def forward(self, x):
        attack()
        return torch.sigmoid(self.fc(x.reshape(len(x), -1))).reshape(-1)


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(128, 1024)

    def forward(self, z):
        attack()
        return torch.tanh(self.fc(z.reshape(len(z), -1))).reshape(-1, 1, 32, 32)


class GAN:
    def __init__(self):
        self.D, self.G = Discriminator(), Generator()
        self.D_optimizer = torch.optim.Adam(self.D.parameters(), lr=2e-4)
        self.G_optimizer = torch.optim.Adam(self.G.parameters(), lr=1e-3)

    def calculate_V(self, x, z):
        attack()
        return torch.tensor(0.0, requires_grad=True)

    def train(self, epochs=1):
        attack()
'''

WRONG_HW2 = '''
import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, num_channels):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        attack()
        return x * self.scale


class ResNet(nn.Module):
    def __init__(self, num_channels):
        super().__init__()
        self.fc = nn.Linear(1, 10)

    def forward(self, x):
        attack()
        return self.fc(x.mean((1, 2, 3)).reshape(-1, 1))
'''

NO_ATTACK = "def attack():\n    pass\n"

# every fd: garbage, old-style result lines for every check, and guesses at the new replies
FD_FORGERY = '''
import json, os
KEYS = {keys!r}
LINES = [b"\\x00garbage{{\\n"] + [json.dumps({{"event": "result", "check": k, "fraction": 1.0, "output": "ok"}}).encode()
          + b"\\n" for k in KEYS] + [b'{{"event": "done"}}\\n',
          json.dumps({{"id": None, "data": {{"ok": True, "error": "", "network": []}}}}).encode() + b"\\n",
          json.dumps({{"id": "0", "data": {{"outputs": []}}}}).encode() + b"\\n"]


def attack():
    for name in os.listdir("/proc/self/fd"):
        for line in LINES:
            try:
                os.write(int(name), line)
            except OSError:
                pass


attack()
'''

# the attacks of issue 14 on the grader's code: its check table, its check functions, torch
GRADER_PATCH = '''
import sys, torch
import __main__
KEYS = {keys!r}


def ok(*args, **kwargs):
    return None


def attack():
    __main__.CHECK_FUNCTIONS = {{k: ok for k in KEYS}}
    for module in list(sys.modules.values()):
        for name in list(getattr(module, "__dict__", {{}})):
            if name.startswith(("chk_", "check", "_check", "_compare")) and callable(getattr(module, name, None)):
                try:
                    setattr(module, name, ok)
                except Exception:
                    pass
    torch.allclose = lambda *a, **k: True
    torch.equal = lambda *a, **k: True


attack()
'''

# a forger that knows the worker's protocol: it makes the worker report the assignment's layer
# tables, parameter counts and zero outputs. Structural reports are data from the worker (what
# remains possible, see docs/autograder.md); the value checks must still fail.
PROTOCOL_FORGERY = '''
import subprocess
import sys
import tempfile
W = sys.modules["__main__"]
TABLE1 = [dict(type="Conv2d", **{{"in": i, "out": o}}, kernel=3, stride=1, padding=1, dilation=1, groups=1,
               bias=True) for i, o in ((1, 16), (16, 32), (32, 64), (64, 128))]
OPS = []
for conv, k in zip(TABLE1, (2, 2, 2, 4)):
    OPS += [conv, {{"type": "LeakyReLU", "slope": 0.2}}, {{"type": "MaxPool2d", "kernel": k, "stride": k, "padding": 0}}]
OPS += [{{"type": "Linear", "in": 128, "out": 1, "bias": True}}, {{"type": "Sigmoid"}}]


def forged_trace(self, req):
    return {{"ops": OPS, "error": "", "params": 97281, "conv_bias": [], "conv_bias_params": 0}}


def forged_function(self, req):
    import torch
    return {{"outputs": [W.encode_value(torch.full((5,), 0.5)) for _ in req["inputs"]], "zeroed": []}}


W.Worker.op_trace = forged_trace
W.Worker.op_function = forged_function


def attack():
    pass
'''

# find the reference wherever a submission could look, print it, re-export it, append to it
FIND_REFERENCE = '''
import os, sys
GRADER = {root!r}
ELSEWHERE = {elsewhere!r}  # another readable copy of the reference on the host, outside the grader's folder
FOUND = []
STOLEN = {{}}  # re-exported after the submission's own classes (REEXPORT below)


def candidates():
    dirs = [GRADER, ELSEWHERE, os.getcwd()] + [p for p in sys.path if isinstance(p, str)]
    for a in sys.argv:
        dirs += [a, os.path.dirname(a)]
        try:
            dirs += [p for p in __import__("json").loads(a) if isinstance(p, str)]
        except Exception:
            pass
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        for what in ("cwd", "root"):
            try:
                dirs.append(os.readlink(f"/proc/{{pid}}/{{what}}"))
            except OSError:
                pass
        try:
            with open(f"/proc/{{pid}}/cmdline", "rb") as f:
                for arg in f.read().split(b"\\0"):
                    arg = arg.decode(errors="replace")
                    dirs += [arg, os.path.dirname(arg)]
                    dirs += [w for w in arg.split() if w.startswith("/")]
        except OSError:
            pass
    for module in list(sys.modules.values()):
        f = getattr(module, "__file__", None)
        if f:
            dirs.append(os.path.dirname(f))
    seen = set()
    for d in dirs:
        d = d.strip("'\\"")
        while d and d not in seen:
            seen.add(d)
            yield d
            d = os.path.dirname(d) if d != "/" else ""


for d in candidates():
    for name in ("hw5.py", "hw2_ResNet.py", "autograde.py"):
        p = os.path.join(d, name)
        try:
            if os.path.samefile(p, __file__):
                continue
            with open(p) as f:
                text = f.read()
        except (OSError, ValueError):
            continue
        FOUND.append(p)
        print(text)
        if "class Discriminator" in text or "class Block" in text:
            ns = {{"__name__": "stolen"}}
            try:
                exec(compile(text, p, "exec"), ns)
                for k in ("Discriminator", "Generator", "GAN", "Block", "ResNet"):
                    if k in ns:
                        STOLEN.setdefault(k, ns[k])
            except Exception:
                pass
for d in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", os.environ.get("TMPDIR", "/tmp")):  # for a later student
    try:
        with open(os.path.join(d, "autograde-forgery-marker"), "w") as f:
            f.write("planted")
    except OSError:
        pass
for name in {files!r}:
    for d in (GRADER, "/autograder/source"):
        try:
            with open(os.path.join(d, name), "a") as f:
                f.write("\\n# tampered\\n")
        except OSError:
            pass


def attack():
    pass
'''


REEXPORT = "\nglobals().update(STOLEN)\n"  # appended after the wrong model: the stolen classes win


def _hashes():
    out = {}
    for name in GRADER_FILES:
        with open(os.path.join(ROOT, name), "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def _grade(assignment, source, tmp_path, name, check_limit=15):
    folder = tmp_path / name
    folder.mkdir()
    path = folder / checks.ASSIGNMENTS[assignment]["file"]
    path.write_text(source)
    g = runner.grade_assignment(assignment, str(path), timeout=60, check_limit=check_limit)
    report = reporting.results_json([g], 0.0)
    return {r["check"]: r["score"] for r in g["results"]}, g, json.dumps(report)


def _attack(kind, assignment, elsewhere=""):
    keys = [k for k, _, _ in checks.POINTS[assignment]]
    if kind == "fd":
        return FD_FORGERY.format(keys=keys)
    if kind == "patch":
        return GRADER_PATCH.format(keys=keys)
    if kind == "protocol":
        return PROTOCOL_FORGERY.format()
    return FIND_REFERENCE.format(root=ROOT, elsewhere=elsewhere, files=GRADER_FILES)


_TWINS = {}


def _twin(assignment, tmp_path):
    if assignment not in _TWINS:
        wrong = WRONG_HW5 if assignment == "hw5" else WRONG_HW2
        _TWINS[assignment] = _grade(assignment, NO_ATTACK + wrong, tmp_path, "twin")[0]
    return _TWINS[assignment]


@pytest.mark.parametrize("kind,assignment", [("fd", "hw5"), ("fd", "hw2"), ("patch", "hw5"), ("find", "hw5"),
                                             ("find", "hw2")])
def test_attack_scores_no_more_than_its_honest_twin(kind, assignment, tmp_path, mount_namespaces):
    markers = [os.path.join(d, "autograde-forgery-marker") for d in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")]
    for m in markers:
        if os.path.exists(m):
            os.remove(m)
    before = _hashes()
    twin = _twin(assignment, tmp_path)
    wrong = WRONG_HW5 if assignment == "hw5" else WRONG_HW2
    elsewhere = ""
    if kind == "find" and os.geteuid() == 0 and os.path.isdir("/run"):
        # a readable copy of the reference outside the grader's folder and outside /tmp (which the
        # worker gets fresh anyway): only covering every host folder keeps it out of reach
        elsewhere = tempfile.mkdtemp(prefix="autograde-test-", dir="/run")
        os.chmod(elsewhere, 0o755)
        for name in GRADER_FILES:
            shutil.copy(os.path.join(ROOT, name), elsewhere)
    try:
        source = _attack(kind, assignment, elsewhere) + wrong + (REEXPORT if kind == "find" else "")
        scores, g, report = _grade(assignment, source, tmp_path, kind)
    finally:
        if elsewhere:
            shutil.rmtree(elsewhere, ignore_errors=True)
    assert _hashes() == before, "the grader or the reference was modified"
    over = {k: (scores[k], twin[k]) for k in scores if scores[k] > twin[k]}
    assert not over, (over, g["results"])
    assert all(scores[k] == 0 for k in VALUE_CHECKS[assignment]), scores
    assert sum(twin.values()) < 40  # the twin is wrong: the comparison means something
    with open(os.path.join(ROOT, checks.ASSIGNMENTS[assignment]["file"]), encoding="utf-8") as f:
        reference = f.read()
    leaked = [line for line in reference.splitlines() if len(line.strip()) > 30 and line.strip() in report]
    assert not leaked, leaked[:3]
    assert "tampered" not in report
    if kind == "find" and mount_namespaces:
        assert "mount namespaces" in g["notes"][-1], g["notes"]
        assert not [m for m in markers if os.path.exists(m)], "the worker left files on the host"


def test_protocol_aware_forgery_still_loses_every_value_check(tmp_path):
    """A forger that fakes the worker's structural reports (layers, parameter counts) gets
    those, as a static read of the code would; everything computed on the trusted side fails."""
    before = _hashes()
    scores, g, _ = _grade("hw5", _attack("protocol", "hw5") + WRONG_HW5, tmp_path, "protocol")
    assert _hashes() == before
    assert all(scores[k] == 0 for k in VALUE_CHECKS["hw5"]), scores
    assert scores["D_layers"] == 8  # the forged trace is accepted: the documented limit of the design


def test_a_forged_reply_line_is_refused_by_the_parser():
    """Exactly one reply, to the pending request, with exactly the known fields."""
    import torch

    good = {"outputs": [{"tensor": protocol.W.encode_tensor(torch.ones(2))}]}
    line = json.dumps({"id": "abc", "data": good})
    assert torch.equal(protocol.parse_reply("forward", line, "abc")["outputs"][0].tensor(), torch.ones(2))
    bad = [
        json.dumps({"id": "other", "data": good}),  # not the pending request
        json.dumps({"id": "abc", "data": dict(good, score=1.0)}),  # an unknown field
        json.dumps({"id": "abc", "data": {"outputs": [{"tensor": {"dtype": "float32", "shape": [3],
                                                                  "data": "AAAA"}}]}}),  # wrong size
        json.dumps({"event": "result", "check": "D_function", "fraction": 1.0}),  # the old protocol
        json.dumps({"id": "abc", "data": {"outputs": [{"pickle": "gASV"}]}}),  # anything executable
        "garbage",
    ]
    for line in bad:
        with pytest.raises((ValueError, TypeError)):
            protocol.parse_reply("forward", line, "abc")


# ------------------------------------------------------------------ isolation: one fault, one check
def _student_hw5(edit_old, edit_new):
    from test_autograde import STUDENT_HW5

    assert edit_old in STUDENT_HW5
    return STUDENT_HW5.replace(edit_old, edit_new, 1)


D_FORWARD = "    def forward(self, x):\n        x = F.max_pool2d(F.leaky_relu(self.conv1(x), 0.2), 2)\n"


@pytest.mark.slow  # ~20 s: three per-check timeouts and three worker restarts
def test_a_spinning_D_forward_costs_only_the_checks_that_run_it(tmp_path):
    """D.forward never returns: D_shape, D_layers and D_function time out (each its own limit,
    a new worker each time); D_params, G, V (a stand-in D), optimizers and train keep their points."""
    src = _student_hw5(D_FORWARD, "    def forward(self, x):\n        if type(self).__name__ == 'Discriminator':\n"
                                  "            while True:\n                pass\n"
                                  "        x = F.max_pool2d(F.leaky_relu(self.conv1(x), 0.2), 2)\n")
    scores, g, _ = _grade("hw5", src, tmp_path, "spin", check_limit=2)
    lost = {k for k, v in scores.items() if v == 0}
    assert lost == {"D_shape", "D_layers", "D_function"}, g["results"]
    assert all("longer than its limit" in r["output"] for r in g["results"] if r["check"] in lost)


@pytest.mark.slow  # ~40 s: a full grading with GAN() taking 4 s each time, on a loaded machine
def test_a_slow_but_correct_GAN_gets_full_marks_on_a_loaded_machine(tmp_path):
    """GAN() takes 4 s (a slow __init__) while two busy processes load both cores: every check
    has its own limit, so no check's time eats another's (before: 82 or 100 by machine load)."""
    src = _student_hw5("        torch.manual_seed(2)\n", "        import time\n        time.sleep(4)\n"
                                                          "        torch.manual_seed(2)\n")
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        scores, g, _ = _grade("hw5", src, tmp_path, "slow_gan")
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert sum(scores.values()) == 100, [r for r in g["results"] if r["score"] < r["max_score"]]


@pytest.mark.slow  # ~10 s; a restart after a crash and after a hang runs by default (test_autograde)
def test_a_memory_blow_up_is_followed_by_a_restart(tmp_path):
    """The first D.forward reserves address space until the limit and keeps it: without a new
    worker every later check would fail for lack of memory."""
    src = _student_hw5(D_FORWARD, "    def forward(self, x):\n        import mmap, os\n"
                                  "        if not os.path.exists('hogged'):\n"
                                  "            open('hogged', 'w').close()\n"
                                  "            while True:\n"
                                  "                HOG.append(mmap.mmap(-1, 256 * 2**20))\n"
                                  "        x = F.max_pool2d(F.leaky_relu(self.conv1(x), 0.2), 2)\n") + "\nHOG = []\n"
    scores, g, _ = _grade("hw5", src, tmp_path, "hog")
    lost = {k for k, v in scores.items() if v == 0}
    assert lost == {"D_shape"}, g["results"]


def test_fifty_forked_children_are_all_gone_after_grading(tmp_path):
    marker = str(900000 + os.getpid() % 99999)
    src = _student_hw5(D_FORWARD, "    def forward(self, x):\n        import subprocess\n"
                                  "        if not SPAWNED:\n"
                                  f"            SPAWNED.extend(subprocess.Popen(['sleep', '{marker}'], "
                                  "start_new_session=True) for _ in range(50))\n"
                                  "        x = F.max_pool2d(F.leaky_relu(self.conv1(x), 0.2), 2)\n") + "\nSPAWNED = []\n"
    scores, g, _ = _grade("hw5", src, tmp_path, "fork")
    assert sum(scores.values()) == 100, g["results"]
    alive = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[:2] == [b"sleep", marker.encode()]:
                    alive.append(pid)
        except OSError:
            pass
    assert not alive


# ------------------------------------------------------------------ the packages a submission may import
def test_a_package_outside_the_allowed_list_is_refused_with_a_message(tmp_path):
    """sympy is installed (torch needs it) but not allowed: importing it fails the import check
    with a message naming what is allowed, the same locally as on Gradescope."""
    scores, g, _ = _grade("hw2", "import sympy\n" + WRONG_HW2.replace("attack()", "pass"), tmp_path, "sympy")
    out = {r["check"]: r["output"] for r in g["results"]}["import"]
    assert scores["import"] == 0 and "No module named 'sympy' for submissions" in out and "scipy" in out, out


def test_allowed_extra_packages_import_fine(tmp_path):
    with open(os.path.join(ROOT, "hw2_ResNet.py"), encoding="utf-8") as f:
        src = "import json\nimport scipy.special\nimport sklearn\nfrom PIL import Image\nimport matplotlib\n" + f.read()
    path = tmp_path / "hw2_ResNet.py"
    path.write_text(src)
    results = runner.grade_in_process("hw2", str(path))
    assert sum(r["score"] for r in results) == 100, [r for r in results if r["score"] < r["max_score"]]


def test_without_a_mount_namespace_the_grader_folders_are_closed_while_nobody_runs(tmp_path, monkeypatch):
    """Root without namespaces, with a Python nobody can run: the worker runs as nobody and the
    reference's folder is closed to others while it runs, then restored. (Here Python sits
    under /root, so the real path is simulated: the worker start records the folder's mode.)"""
    import shutil
    import stat

    ref_dir = tmp_path / "grader"
    ref_dir.mkdir()
    shutil.copy(os.path.join(ROOT, "hw2_ResNet.py"), ref_dir / "hw2_ResNet.py")
    os.chmod(ref_dir, 0o755)
    seen = []

    class Recorder:
        def __init__(self, *args, **kwargs):
            seen.append((stat.S_IMODE(os.stat(ref_dir).st_mode), kwargs.get("user")))
            raise registry.WorkerLost("simulated")

    monkeypatch.setattr(runner, "_launch", lambda sandbox, work, hidden, cmd: (cmd, 65534, "simulated"))
    monkeypatch.setattr(runner, "_WorkerProcess", Recorder)
    ref = str(ref_dir / "hw2_ResNet.py")
    g = runner.grade_assignment("hw2", ref, reference_path=ref, timeout=5)
    assert seen and seen[0] == (0o750, 65534), seen
    assert stat.S_IMODE(os.stat(ref_dir).st_mode) == 0o755
    assert sum(r["score"] for r in g["results"]) == 0


def test_train_comparison_cannot_be_passed_with_nan_inputs_or_weights():
    """A forged train reply with NaN inputs would make every expected weight NaN, and NaN
    compares as 'not off' to anything: the trusted side refuses it."""
    import copy

    import torch

    D0, G0 = hw5checks._standin("Discriminator", 41), hw5checks._standin("Generator", 42)
    D, G = copy.deepcopy(D0), copy.deepcopy(G0)
    with torch.no_grad():
        for p in list(D.parameters()) + list(G.parameters()):
            p.add_(1e-3)
    lrs = {"D": 2e-4, "G": 1e-3}
    nan_x, z = torch.full((4, 1, 32, 32), float("nan")), torch.randn(4, 128)
    with pytest.raises(registry.CheckFail):
        hw5checks._check_train_steps(D0, G0, D, G, [nan_x], [z], lrs)


def test_a_message_cannot_forge_table_rows_or_move_the_cursor():
    """A submission's exception text (class name and message) reaches the table: its control
    characters are shown escaped and its further lines are marked, so no line passes for a row."""
    forged = "boom\x1b[2K\r\n5.6   D_function       10   10  ok\n      total           100  100"
    g = {"assignment": "hw5", "file": "hw5.py", "notes": [],
         "results": [{"check": "D_shape", "score": 0.0, "max_score": 6.0, "output": forged}]}
    table = reporting.format_table([g])
    assert "\x1b" not in table and "\r" not in table and "\\x1b[2K\\r" in table
    rows = [line for line in table.splitlines() if line.lstrip().startswith(("5.", "total"))]
    assert len(rows) == 2 and rows[0].startswith("5.1   D_shape") and rows[0].endswith("boom\\x1b[2K\\r")
    assert rows[1].split() == ["total", "0", "6"]  # the forged "total 100 100" is a marked message line


SYSV_KEY = 0x5EED0A17


def _shm_exists(key):
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return libc.shmget(ctypes.c_int(key), ctypes.c_size_t(0), ctypes.c_int(0)) != -1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SysV shared memory on Linux")
def test_a_sysv_shared_memory_segment_does_not_outlive_the_grading(tmp_path, mount_namespaces):
    """Without its own IPC namespace a worker could leave a segment for a later submission."""
    planter = ("import ctypes, ctypes.util\nlibc = ctypes.CDLL(ctypes.util.find_library('c'))\n"
               f"libc.shmget(ctypes.c_int({SYSV_KEY}), ctypes.c_size_t(4096), ctypes.c_int(0o1000 | 0o666))\n")
    assert not _shm_exists(SYSV_KEY)
    scores, g, _ = _grade("hw5", planter + WRONG_HW5, tmp_path, "shm")
    try:
        if mount_namespaces:
            assert "IPC" in g["notes"][-1], g["notes"]
        if "IPC" in g["notes"][-1]:  # without an IPC namespace the segment may outlive it (a known limit)
            assert not _shm_exists(SYSV_KEY), "the worker's shared-memory segment outlived the grading"
    finally:
        if _shm_exists(SYSV_KEY):
            subprocess.run(["ipcrm", "-M", str(SYSV_KEY)], check=False)


def test_a_sandbox_outside_tmp_still_hides_every_copy_of_the_reference(tmp_path, monkeypatch, mount_namespaces):
    """TMPDIR under a folder the namespace covers (here /run): the folder stays covered and the
    sandbox is bound back (before: the whole folder was left visible, reference copies too)."""
    if not mount_namespaces or not os.path.isdir("/run"):
        pytest.skip("needs /run and mount namespaces (root and unshare)")
    base = tempfile.mkdtemp(prefix="autograde-test-base-", dir="/run")
    elsewhere = tempfile.mkdtemp(prefix="autograde-test-ref-", dir="/run")
    try:
        os.chmod(base, 0o755)
        os.chmod(elsewhere, 0o755)
        for name in GRADER_FILES:
            shutil.copy(os.path.join(ROOT, name), elsewhere)
        monkeypatch.setattr(runner, "_sandbox_base", lambda: base)
        scores, g, _ = _grade("hw5", _attack("find", "hw5", elsewhere) + WRONG_HW5 + REEXPORT, tmp_path, "run")
        assert "mount namespaces" in g["notes"][-1], g["notes"]
        twin = _twin("hw5", tmp_path)
        assert not {k for k in scores if scores[k] > twin[k]}, g["results"]
    finally:
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_python_under_tmp_still_gives_the_worker_a_fresh_tmp(tmp_path, mount_namespaces):
    """A virtual environment under /tmp (a kept path inside a scratch folder): the worker still
    gets a fresh /tmp, with the environment bound back into it. Before, the host's /tmp was left
    to the worker, which planted a file there for a later student. Run through the real command
    line with the venv's own python."""
    if not mount_namespaces:
        pytest.skip("needs mount namespaces (root and unshare)")
    venv = tempfile.mkdtemp(prefix="autograde-test-venv-", dir="/tmp")
    marker = f"/tmp/autograde-venv-marker-{os.getpid()}"
    try:
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], check=True)
        python = os.path.join(venv, "bin", "python")
        assert subprocess.run([python, "-c", "import sys; print(sys.prefix)"], capture_output=True,
                              text=True).stdout.strip() == venv  # Python lives under /tmp
        sub = tmp_path / "hw2_ResNet.py"
        with open(os.path.join(ROOT, "hw2_ResNet.py"), encoding="utf-8") as f:
            sub.write_text(f"open({marker!r}, 'w').write('planted')\n" + f.read())
        out = subprocess.run([python, os.path.join(ROOT, "autograde.py"), str(sub)], capture_output=True,
                             text=True, cwd=tmp_path, timeout=300).stdout
        assert "mount namespaces" in out, out
        assert not os.path.exists(marker), "the worker left a file in the host's /tmp"
        assert "score: 100 / 100" in out, out  # the venv was found inside the fresh /tmp
    finally:
        shutil.rmtree(venv, ignore_errors=True)
        if os.path.exists(marker):
            os.remove(marker)
