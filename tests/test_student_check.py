"""The students' self-check (autograder/student_check.py, docs/student_check.md): the file that
``write_student_check`` writes passes the starter completed correctly and every correct corpus
file, flags exactly the mistakes of the corpus (and of a few more mutants) that the grader's
public checks see, with the grader's own messages, holds no answer, and behaves as a command
line (exit statuses, one-line argument errors, Ctrl-C) and under pytest.

The two files are generated once per module and imported in this process; their checks run
in-process on each corpus file (about half a second per hw5 file), and the grader's in-process
grading gives the messages to compare with."""
import ast
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
import types

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "corpus")
sys.path.insert(0, ROOT)

from autograder import runner, student_check  # noqa: E402
from autograder.checks import CHECKS  # noqa: E402

# the starter's DataLoader(num_workers=4) warns on a 2-core machine; the loader is only built here
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")

with open(os.path.join(CORPUS, "expected.json"), encoding="utf-8") as f:
    EXPECTED = json.load(f)

# The grader's checks the self-check cannot run: they compare the student's nets with the
# reference's outputs given the reference's weights, which the file must not hold. Of the keys
# expected.json says a corpus file loses, these are the ones the self-check does not flag (N/A).
CANNOT_RUN = {
    "D_function": "D(x) against the reference's, with the reference's weights loaded",
    "G_function": "G(z) against the reference's, with the reference's weights loaded",
    "Block_train": "Block(C)(x) against the reference's in train mode, with its weights",
    "Block_eval": "Block(C)(x) against the reference's in eval mode, with its weights and BN statistics",
    "ResNet_train": "ResNet(C)(x) against the reference's in train mode, with its weights",
    "ResNet_eval": "ResNet(C)(x) against the reference's in eval mode, with its weights and BN statistics",
}
# Where the self-check waits (SKIP) on a corpus file although the grader scores the check: train
# runs the student's own calculate_V here (the grader puts its own V there), so it waits for
# V_value and V_grads to pass.
WAITS = {case: {"train"} for case in ("hw5/V_bce_wrong_sign.py", "hw5/V_sum.py", "hw5/V_log_D_Gz.py", "hw5/V_item.py")}

STARTER = {a: os.path.join(CORPUS, a, "starter_correct.py") for a in ("hw5", "hw2")}
FILE = {"hw5": "hw5.py", "hw2": "hw2_ResNet.py"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """{assignment: (path of the written file, the keys write_student_check returned)}."""
    folder = tmp_path_factory.mktemp("student_check")
    return {a: (str(folder / f"check_{a}.py"), student_check.write_student_check(a, str(folder / f"check_{a}.py")))
            for a in ("hw5", "hw2")}


@pytest.fixture(scope="module")
def selfcheck(generated):
    """The generated files, imported as modules (run_checks(path) -> [(status, key, message)])."""
    modules = {}
    for a, (path, _) in generated.items():
        spec = importlib.util.spec_from_file_location(f"_student_check_{a}_under_test", path)
        modules[a] = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = modules[a]
        spec.loader.exec_module(modules[a])
    yield modules
    for m in modules.values():
        sys.modules.pop(m.__name__, None)


def statuses(selfcheck, assignment, path):
    return {key: (status, message) for status, key, message in selfcheck[assignment].run_checks(path)}


@pytest.fixture(scope="module")
def corpus(selfcheck):
    """The self-check on every corpus file: {case: {key: (status, message)}}."""
    return {case: statuses(selfcheck, case.split("/")[0], os.path.join(CORPUS, case)) for case in sorted(EXPECTED)}


def graded(assignment, path, keys):
    """The grader's (in-process) messages of ``keys``: {key: (passed, message)}."""
    return {r["check"]: (r["score"] == r["max_score"], r["output"])
            for r in runner.grade_in_process(assignment, path, checks=keys)}


def by_status(results, status):
    return {key for key, (s, _) in results.items() if s == status}


# ------------------------------------------------------------------------------------------
# the corpus and more mistakes: exactly the grader's public failures, with its messages
# ------------------------------------------------------------------------------------------
def test_the_checks_this_test_says_cannot_run_are_those_the_generator_leaves_out():
    assert {k for a in ("hw5", "hw2") for k in student_check.NOT_RUN[a]} == set(CANNOT_RUN)


@pytest.mark.parametrize("assignment", ["hw5", "hw2"])
def test_the_file_runs_every_public_check_of_the_grader(generated, assignment):
    _, keys = generated[assignment]
    assert keys == [k for k in CHECKS[assignment] if k not in CANNOT_RUN]


@pytest.mark.parametrize("assignment", ["hw5", "hw2"])
def test_the_starter_completed_correctly_passes_every_check_it_runs(corpus, assignment):
    results = corpus[f"{assignment}/starter_correct.py"]
    assert by_status(results, "PASS") == set(CHECKS[assignment]) - set(CANNOT_RUN), results
    assert by_status(results, "N/A") == set(CHECKS[assignment]) & set(CANNOT_RUN)


def test_every_correct_corpus_file_passes(corpus):
    for case, expected in EXPECTED.items():
        if not expected["loses"]:
            failed = {k: m for k, (s, m) in corpus[case].items() if s not in ("PASS", "N/A")}
            assert not failed, (case, failed)


def test_each_mistake_of_the_corpus_that_a_public_check_sees_is_flagged_and_only_it(corpus):
    """FAIL = the checks expected.json says the file loses, less CANNOT_RUN; SKIP = WAITS."""
    for case, expected in EXPECTED.items():
        results = corpus[case]
        assignment = case.split("/")[0]
        assert by_status(results, "FAIL") == set(expected["loses"]) - set(CANNOT_RUN), case
        assert by_status(results, "SKIP") == WAITS.get(case, set()), case
        assert by_status(results, "N/A") == set(CHECKS[assignment]) & set(CANNOT_RUN), case
    assert sum(1 for e in EXPECTED.values() if set(e["loses"]) - set(CANNOT_RUN)) >= 15  # not a vacuous loop


def test_the_failure_messages_are_the_graders(corpus):
    """Every FAIL of the corpus has the grader's message, word for word (the self-check's nets are
    built with the grader's seeds, so even the numbers agree)."""
    compared = 0
    for case in sorted(corpus):
        failed = sorted(by_status(corpus[case], "FAIL"))
        if not failed:
            continue
        grader = graded(case.split("/")[0], os.path.join(CORPUS, case), failed)
        for key in failed:
            assert corpus[case][key][1] == grader[key][1], (case, key)
            compared += 1
    assert compared >= 40


def _mutant(tmp_path, assignment, old, new, extra=None):
    source = open(STARTER[assignment], encoding="utf-8").read()
    assert old in source
    folder = tmp_path / "student"
    folder.mkdir(exist_ok=True)
    path = folder / FILE[assignment]
    path.write_text(source.replace(old, new, 1))
    for name, text in (extra or {}).items():
        (folder / name).write_text(text)
    return str(path)


IMPORTS = "import numpy as np\n"
MUTANTS = {  # name: (assignment, old, new, the checks it must fail, the checks it waits on)
    "train: D descends V": ("hw5", "                (-V).backward()\n                self.D_optimizer.step()",
                            "                V.backward()\n                self.D_optimizer.step()", {"train"}, set()),
    "train: no G zero_grad": ("hw5", "                self.G_optimizer.zero_grad()\n", "", {"train"}, set()),
    "D without its Sigmoid": ("hw5", "x = self.sigmoid(self.fc(x))", "x = self.fc(x)", {"D_shape", "D_layers"},
                              {"V_value", "V_grads", "train"}),
    "prints at import": ("hw5", IMPORTS, IMPORTS + "print('hello')\n", {"import_quiet"}, set()),
    "GAN() raises": ("hw5", "lr=0.0002)", "lr=0.0002, betas=5)", {"D_optimizer", "G_optimizer", "train"}, set()),
    "writes at import": ("hw2", "import torch\n", "import torch\nopen('notes.txt', 'w').write('x')\n",
                         {"import_quiet"}, set()),
    "a helper module next to the file": ("hw2", "import torch\n", "import torch\nimport course_helper_x1\n",
                                         set(CHECKS["hw2"]) - set(CANNOT_RUN), set()),
    "a syntax error": ("hw2", "import torch\n", "import torch\ndef broken(:\n    pass\n",
                       set(CHECKS["hw2"]) - set(CANNOT_RUN), set()),
    "Block raises": ("hw2", "out = self.conv1(x)", "out = self.conv1(x, 3)",
                     {"Block_shape", "Block_no_bias", "Block_layers"}, set()),
    "ResNet skips its Block": ("hw2", "        x = self.block(x)\n", "", {"ResNet_layers"}, set()),
}


@pytest.mark.parametrize("name", list(MUTANTS))
def test_more_mistakes_are_flagged_with_the_graders_messages(selfcheck, tmp_path, name):
    """As the corpus, on mistakes it lacks: a wrong train loop, output at import, a helper module
    next to the file (the grader receives the file alone), a Block that raises (the ResNet checks
    still pass: the placeholder Block), a ResNet that skips its Block."""
    assignment, old, new, fails, waits = MUTANTS[name]
    path = _mutant(tmp_path, assignment, old, new, {"course_helper_x1.py": "X = 1\n"})
    results = statuses(selfcheck, assignment, path)
    assert (by_status(results, "FAIL"), by_status(results, "SKIP")) == (fails, waits), results
    grader = graded(assignment, path, sorted(set(CHECKS[assignment]) - set(CANNOT_RUN)))
    assert {k for k, (ok, _) in grader.items() if not ok} == fails
    assert {k: results[k][1] for k in fails} == {k: grader[k][1] for k in fails}


def test_V_value_on_a_hand_set_D_sees_what_the_students_own_D_hides(selfcheck, tmp_path):
    """A D that ignores its input (D(x) = D(G(z))) cannot show a V with the real and fake roles
    swapped; the hand-set D (0.8 on real images, 0.3 on G's) does, as the grader's stand-in does."""
    source = open(STARTER["hw5"], encoding="utf-8").read()
    source = source.replace("x = self.pool1(", "x = 0 * x\n        x = self.pool1(", 1)
    source = source.replace("V = torch.mean(torch.log(d_real)) + torch.mean(torch.log(1 - d_fake))",
                            "V = torch.mean(torch.log(d_fake)) + torch.mean(torch.log(1 - d_real))", 1)
    path = tmp_path / "hw5.py"
    path.write_text(source)
    results = statuses(selfcheck, "hw5", str(path))
    status, message = results["V_value"]
    assert status == "FAIL" and message.startswith("with a hand-set D (D(x) = 0.8 on the real images, 0.3 on G's): "), \
        message
    assert "expected mean log D(x) + mean log(1 - D(G(z))) = -0.579818" in message  # log 0.8 + log 0.7
    assert graded("hw5", str(path), ["V_value"])["V_value"][0] is False


def test_the_expected_V_gradients_are_the_gradients_of_V(selfcheck):
    """V_grads' reference (chain rule from D's outputs) against autograd of the formula."""
    import torch

    mod = selfcheck["hw5"]
    session = mod._Session(STARTER["hw5"])
    try:
        assert session.result("import")[0] == "PASS"
        torch.manual_seed(3)
        D, G = session.yours.mod.Discriminator(), session.yours.mod.Generator()
        x, z = torch.rand(5, 1, 32, 32) * 2 - 1, torch.randn(7, 128)
        V = torch.log(D(x)).mean() + torch.log(1 - D(G(z))).mean()
        params = list(D.parameters()) + list(G.parameters())
        want = torch.autograd.grad(V, params)
        mod._expected_V_gradients(D, G, x, z)
        for p, w in zip(params, want):
            assert torch.allclose(p.grad, w, rtol=1e-4, atol=1e-7)
    finally:
        session.close()


def test_train_reports_V_going_up_in_the_D_step_and_down_in_the_G_step(corpus):
    status, message = corpus["hw5/starter_correct.py"]["train"]
    numbers = [float(n) for n in re.findall(r"-?\d+\.\d+", message)]
    assert status == "PASS" and len(numbers) == 4, message
    assert numbers[0] < numbers[1] and numbers[2] > numbers[3]
    assert corpus["hw5/missing_D_zero_grad.py"]["train"][0] == "FAIL"


# ------------------------------------------------------------------------------------------
# no answer in the file; built from the grader's code
# ------------------------------------------------------------------------------------------
ANSWER_NAMES = {"hw5": ("Discriminator", "Generator", "calculate_V"), "hw2": ("Block", "ResNet")}
FORBIDDEN = set(ANSWER_NAMES["hw5"] + ANSWER_NAMES["hw2"]) | {"GAN"}  # no definition of these, at any depth
ANSWER_FILES = {"hw5": ["hw5.py", "tests/corpus/hw5/starter_correct.py"],
                "hw2": ["hw2_ResNet.py", "tests/corpus/hw2/starter_correct.py"]}
SIMPLE = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Return, ast.Expr, ast.Raise)
GENERIC = {"return x", "return out", "return V", "super().__init__()"}


def statements(tree, inside=None):
    """Every simple statement of ``tree`` (of the classes and functions named ``inside`` only), as
    one normalized line; docstrings, super().__init__() and bare returns left out."""
    roots = [n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef)) and n.name in inside] \
        if inside else [tree]
    found = set()
    for root in roots:
        for node in ast.walk(root):
            if isinstance(node, SIMPLE) and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
                code = re.sub(r"super\(\w+, self\)", "super()", ast.unparse(node))
                if code not in GENERIC:
                    found.add(code)
    return found


def answer_lines(assignment):
    """The statements of the answer (the classes D, G, calculate_V / Block, ResNet) of the
    reference and of the completed starter."""
    lines = set()
    for name in ANSWER_FILES[assignment]:
        with open(os.path.join(ROOT, name), encoding="utf-8") as f:
            lines |= statements(ast.parse(f.read()), ANSWER_NAMES[assignment])
    return lines


def answers_in(source, assignment):
    """What in ``source`` could serve as an answer: definitions of the answer's names (at any
    depth), statements of the reference's or the completed starter's answer, big literals
    (weights)."""
    tree = ast.parse(source)
    found = sorted(n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                   and n.name in FORBIDDEN)
    found += sorted(t.id for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets
                    if isinstance(t, ast.Name) and t.id in FORBIDDEN)
    found += sorted(answer_lines(assignment) & statements(tree))
    found += [f"a literal of {len(n.elts)} items" for n in ast.walk(tree)
              if isinstance(n, (ast.List, ast.Tuple)) and len(n.elts) > 64]
    found += [f"a string of {len(n.value)} characters" for n in ast.walk(tree)
              if isinstance(n, ast.Constant) and isinstance(n.value, (str, bytes)) and len(n.value) > 4000]
    return found


@pytest.mark.parametrize("assignment", ["hw5", "hw2"])
def test_the_file_holds_no_answer(generated, assignment):
    source = open(generated[assignment][0], encoding="utf-8").read()
    assert len(answer_lines(assignment)) >= 15  # the comparison has substance
    assert answers_in(source, assignment) == []
    # the same search finds an answer pasted in: a class, a line of the reference, weights
    reference_line = max((line for line in answer_lines(assignment) if "nn." in line), key=len)  # a layer
    assert answers_in(source + f"\n\nclass {ANSWER_NAMES[assignment][0]}:\n    pass\n", assignment)
    assert answers_in(source + f"\n\nif False:\n    {reference_line}\n", assignment) == [reference_line]
    assert answers_in(source + f"\nW = {list(range(100))}\n", assignment) == ["a literal of 100 items"]


@pytest.mark.parametrize("assignment", ["hw5", "hw2"])
def test_the_file_is_standalone_and_names_only_what_it_defines(generated, assignment):
    """It imports the standard library at the top, and torch, torchvision, numpy, PIL (and pytest
    under pytest) inside functions; no project module. No name is left undefined."""
    source = open(generated[assignment][0], encoding="utf-8").read()
    tree = ast.parse(source)
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    third_party = imported - set(sys.stdlib_module_names)
    assert third_party <= {"torch", "torchvision", "numpy", "PIL", "pytest"}, third_party
    top = {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    assert top <= set(sys.stdlib_module_names) and not any(isinstance(n, ast.ImportFrom) for n in tree.body)
    assert student_check.undefined_names(source) == set()
    assert student_check.undefined_names(source + "\ndef f():\n    return not_defined_anywhere\n") == \
        {"not_defined_anywhere"}


def test_a_message_changed_in_the_grader_changes_the_self_check(tmp_path, monkeypatch):
    """The file copies the grader's functions: a message edited in protocol.py is in the next file."""
    import autograder.protocol as protocol

    text = open(protocol.__file__, encoding="utf-8").read()
    assert "missing after layer" in text
    copy = tmp_path / "protocol.py"
    copy.write_text(text.replace("missing after layer", "absent after layer"))
    edited = types.ModuleType("protocol_edited")
    edited.__file__ = str(copy)
    monkeypatch.setitem(student_check.EMBED_FROM, "protocol", edited)
    source = student_check.build_source("hw2")
    assert "absent after layer" in source and "missing after layer" not in source


def test_a_changed_line_under_a_substitution_stops_the_generation(generated, monkeypatch):
    """The self-check's few changes to the grader's functions must still apply: when the grader's
    lines change, the generation fails instead of copying a function that no longer fits."""
    sources = [open(path, encoding="utf-8").read() for path, _ in generated.values()]
    for ref, (why, changes) in student_check.SUBSTITUTIONS.items():
        assert any(f"# (changed here: {why})" in source for source in sources), ref
    why, changes = student_check.SUBSTITUTIONS["checks:check_V_grads"]
    monkeypatch.setitem(student_check.SUBSTITUTIONS, "checks:check_V_grads",
                        (why, [(changes[0][0].replace("(real + fake)", "(real+fake)"), "", 1)]))
    with pytest.raises(AssertionError, match="check_V_grads"):
        student_check.build_source("hw5")


def test_write_student_check_refuses_an_unknown_assignment_and_the_graders_files(tmp_path):
    with pytest.raises(ValueError, match="hw5, hw2"):
        student_check.write_student_check("hw3", str(tmp_path / "x.py"))
    for name in ("hw5.py", os.path.join("autograder", "checks", "hw5.py"), "autograde_worker.py"):
        with pytest.raises(ValueError, match="grader's own files"):
            student_check.write_student_check("hw5", os.path.join(ROOT, name))
    assert not (tmp_path / "x.py").exists()


# ------------------------------------------------------------------------------------------
# the command line and pytest
# ------------------------------------------------------------------------------------------
def run(args, cwd, env=None, timeout=120):
    return subprocess.run([sys.executable, "-I", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


LINE = re.compile(r"^(PASS|FAIL|SKIP|N/A )  (\w+) +\S")


def test_a_correct_file_exits_0_alone_in_a_folder(generated, tmp_path):
    """The file runs with nothing of this repository (python -I, a folder holding only it and the
    student's file): one line per check, in the grader's order, then the count; exit status 0."""
    (tmp_path / "check_hw2.py").write_text(open(generated["hw2"][0], encoding="utf-8").read())
    (tmp_path / "hw2_ResNet.py").write_text(open(STARTER["hw2"], encoding="utf-8").read())
    out = run(["check_hw2.py"], tmp_path)
    lines = out.stdout.splitlines()
    assert out.returncode == 0, out.stdout + out.stderr
    assert [LINE.match(line).group(2) for line in lines[:-1]] == list(CHECKS["hw2"])
    assert lines[-1].startswith("hw2_ResNet.py: 9 of 9 checks passed, 0 failed, 0 skipped; not run here: Block_train")
    assert sorted(os.listdir(tmp_path)) == ["check_hw2.py", "hw2_ResNet.py"]  # nothing written beside


def test_a_wrong_hw5_file_exits_1_with_the_graders_message(generated, corpus, tmp_path):
    (tmp_path / "check_hw5.py").write_text(open(generated["hw5"][0], encoding="utf-8").read())
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "hw5.py").write_text(open(os.path.join(CORPUS, "hw5", "V_sum.py"), encoding="utf-8").read())
    out = run(["check_hw5.py", "mine/hw5.py"], tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    rows = {LINE.match(line).group(2): line for line in out.stdout.splitlines()[:-1]}
    assert rows["V_value"] == f"FAIL  V_value       {corpus['hw5/V_sum.py']['V_value'][1]}"
    assert rows["train"].startswith("SKIP  train ") and rows["D_function"].startswith("N/A   D_function ")
    assert out.stdout.splitlines()[-1].startswith("hw5.py: 10 of 13 checks passed, 2 failed, 1 skipped")
    assert out.stderr == ""


@pytest.mark.parametrize("args, message", [
    (["nope.py"], "no such file: nope.py"),
    (["a.py", "b.py"], "usage: python check_hw2.py [path/to/hw2_ResNet.py]"),
    (["--verbose"], "usage: python check_hw2.py"),
    (["hw5.py"], "hw5.py is hw5's file; this self-check is for hw2_ResNet.py"),
    (["notes.txt"], "notes.txt is not a Python file"),
    (["empty"], "no hw2_ResNet.py in the folder empty"),
    ([], "no such file: hw2_ResNet.py"),
])
def test_a_bad_argument_exits_2_with_one_line(generated, tmp_path, args, message):
    (tmp_path / "check_hw2.py").write_text(open(generated["hw2"][0], encoding="utf-8").read())
    (tmp_path / "hw5.py").write_text("")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "empty").mkdir()
    out = run(["check_hw2.py", *args], tmp_path)
    assert (out.returncode, out.stdout) == (2, ""), out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("check_hw2.py: ") and message in out.stderr


def test_ctrl_c_exits_130_without_a_traceback_and_removes_its_folder(generated, tmp_path):
    (tmp_path / "check_hw2.py").write_text(open(generated["hw2"][0], encoding="utf-8").read())
    marker = tmp_path / "importing"
    (tmp_path / "hw2_ResNet.py").write_text(f"import pathlib, time\npathlib.Path({str(marker)!r}).write_text('')\n"
                                            "time.sleep(60)\n")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.Popen([sys.executable, "-I", "check_hw2.py"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, TMPDIR=str(scratch)))
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and err.strip() == "check_hw2.py: interrupted"
    assert os.listdir(scratch) == []


def test_under_pytest_each_check_is_a_test(generated, tmp_path):
    """`pytest check_hw2.py`: a failed check is a failed test with the grader's message, a check
    this file cannot run is a skipped test; the file comes from CHECK_FILE."""
    (tmp_path / "check_hw2.py").write_text(open(generated["hw2"][0], encoding="utf-8").read())
    (tmp_path / "mine.py").write_text(open(os.path.join(CORPUS, "hw2", "block_no_final_relu.py"), encoding="utf-8").read())
    out = run(["-m", "pytest", "check_hw2.py", "-q", "-rfs", "-p", "no:cacheprovider"], tmp_path,
              env={"CHECK_FILE": "mine.py"})
    assert out.returncode == 1, out.stdout
    assert "1 failed, 8 passed, 4 skipped" in out.stdout, out.stdout
    assert "FAILED check_hw2.py::test_Block_layers" in out.stdout
    assert "\nBlock_layers: Block(1) (5 layers ran, expected 6): ReLU missing after layer 5\n" in out.stdout
    assert "SKIPPED [1] check_hw2.py" in out.stdout and "Block_train: not run here" in out.stdout


def test_the_command_line_writes_the_file_and_refuses_bad_targets_in_one_line(tmp_path):
    """``autograde.py --student-check``: the file it writes runs; a wrong assignment, a path that
    is not a .py file, or one of the grader's own files is refused with one line, exit 2."""
    cli = [sys.executable, os.path.join(ROOT, "autograde.py"), "--student-check"]
    out = subprocess.run(cli + ["hw2", str(tmp_path / "check_hw2.py")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "not run there, they need the reference's weights: Block_train" in out.stdout, out
    (tmp_path / "hw2_ResNet.py").write_text(open(os.path.join(CORPUS, "hw2", "starter_correct.py"), encoding="utf-8").read())
    assert subprocess.run([sys.executable, "-I", "check_hw2.py"], cwd=tmp_path, capture_output=True,
                          timeout=120).returncode == 0
    for args, expected in ((["hw7", "x.py"], "the assignment must be hw5 or hw2"),
                           (["hw2", str(tmp_path / "x.txt")], "must name a .py file"),
                           (["hw2", os.path.join(ROOT, "hw2_ResNet.py")], "one of the grader's own files")):
        out = subprocess.run(cli + args, capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and f"autograde.py: error: --student-check: " in out.stderr.splitlines()[-1], out
        assert expected in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "x.txt").exists()
