"""The grader on student-style files (tests/corpus/, written on the course's starter by a helper
who did not read the grader; the expected scores are what a TA would give, from the published
point table): each gets its exact expected score and loses exactly its expected checks.

Each file is graded in-process (the worker's handler in this process, through the same protocol;
about 0.5 s each after the first); the starter completed correctly also runs through the
sandbox's command line and through the Gradescope bundle."""

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "corpus")
sys.path.insert(0, ROOT)

from autograder import runner  # noqa: E402

# the starter's DataLoader(num_workers=4) warns on a 2-core machine; the loader is only built here
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")

with open(os.path.join(CORPUS, "expected.json"), encoding="utf-8") as f:
    EXPECTED = json.load(f)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_corpus_file_gets_its_expected_score(case):
    assignment = case.split("/")[0]
    results = runner.grade_in_process(assignment, os.path.join(CORPUS, case))
    lost = sorted(r["check"] for r in results if r["score"] < r["max_score"])
    score = sum(r["score"] for r in results)
    assert (score, lost) == (EXPECTED[case]["score"], sorted(EXPECTED[case]["loses"])), \
        [(r["check"], r["output"]) for r in results if r["score"] < r["max_score"]]


def test_every_corpus_file_has_an_expectation():
    files = {f"{a}/{n}" for a in ("hw5", "hw2") for n in os.listdir(os.path.join(CORPUS, a)) if n.endswith(".py")}
    assert files == set(EXPECTED)


def test_the_starter_completed_correctly_scores_100_through_the_sandbox_and_the_bundle(tmp_path):
    """The starter as handed out (eager MNIST loader with num_workers=4, visualize every epoch, a
    64-row z) through the command line's sandbox, and through run_autograder of the hw5 bundle."""
    sub = tmp_path / "local"
    sub.mkdir()
    shutil.copy(os.path.join(CORPUS, "hw5", "starter_correct.py"), sub / "hw5.py")
    out = subprocess.run([sys.executable, os.path.join(ROOT, "autograde.py"), str(sub / "hw5.py"), "--json-only"],
                         capture_output=True, text=True, timeout=300)
    assert json.loads(out.stdout)["score"] == 100.0, out.stdout
    root = tmp_path / "autograder"
    source = root / "source"
    out = subprocess.run([sys.executable, os.path.join(ROOT, "autograde.py"), "--gradescope-bundle", "hw5",
                          str(tmp_path / "hw5.zip")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    with zipfile.ZipFile(tmp_path / "hw5.zip") as z:
        z.extractall(source)
    os.chmod(source / "run_autograder", 0o755)
    (root / "submission").mkdir()
    shutil.copy(os.path.join(CORPUS, "hw5", "starter_correct.py"), root / "submission" / "hw5.py")
    run = subprocess.run(["bash", str(source / "run_autograder")], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable))
    report = json.loads((root / "results" / "results.json").read_text())
    assert report["score"] == 100.0, (run.stderr, [t for t in report["tests"] if t["score"] < t["max_score"]])


def test_hide_expected_hides_the_fix_but_not_the_handouts_shapes():
    """--hide-expected keeps what the handout does not give away: D's output shape (N,) is the
    handout's and stays; the fix of a sign-flipped V is hidden (issue 24)."""
    def outputs(case, hide):
        return {r["check"]: r["output"] for r in runner.grade_in_process(case.split("/")[0], os.path.join(CORPUS, case),
                                                                          hide_expected=hide)}

    shape = outputs("hw5/D_squeeze.py", True)["D_shape"]
    assert "expected (1,)" in shape, shape
    sign, shown = outputs("hw5/V_bce_wrong_sign.py", True)["V_value"], outputs("hw5/V_bce_wrong_sign.py", False)
    assert "sign error" in sign and "BCE" not in sign and "[hidden]" in sign, sign
    assert "BCE" in shown["V_value"]  # (the negative control: shown without the flag)
