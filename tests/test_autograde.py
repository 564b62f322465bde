"""Tests for autograde.py: the reference files get full marks, mutants lose exactly the points
of the checks they break, hostile submissions give the right zeros in bounded time, misuse of
the CLI exits non-zero, and the Gradescope bundle works against a fake /autograder tree.

The mutants start from small student-style solutions written here (functional activations,
BCELoss, a torchvision data loader), so they do not depend on the reference files' text. Their
checks run in-process (``grade_in_process``: the same check code as the sandboxed worker, with
no subprocess start-up); the reference files and the hostile submissions go through the real
sandboxed subprocess.
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import time
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import autograde  # noqa: E402
from autograder import bundle as bundling, checks, protocol, registry, report as reporting, runner, sandbox  # noqa: E402
from autograder.checks import hw5 as hw5checks  # noqa: E402

AUTOGRADE = os.path.join(ROOT, "autograde.py")

STUDENT_HW5 = '''
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torchvision import datasets, transforms


def get_data_loader(batch_size):
    transform = transforms.Compose([transforms.Resize(32), transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    train_set = datasets.MNIST("./data", train=True, download=True, transform=transform)
    return torch.utils.data.DataLoader(train_set, batch_size=batch_size, shuffle=True)


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, 1, 1)
        self.conv2 = nn.Conv2d(16, 32, 3, 1, 1)
        self.conv3 = nn.Conv2d(32, 64, 3, 1, 1)
        self.conv4 = nn.Conv2d(64, 128, 3, 1, 1)
        self.fc = nn.Linear(128, 1)

    def forward(self, x):
        x = F.max_pool2d(F.leaky_relu(self.conv1(x), 0.2), 2)
        x = F.max_pool2d(F.leaky_relu(self.conv2(x), 0.2), 2)
        x = F.max_pool2d(F.leaky_relu(self.conv3(x), 0.2), 2)
        x = F.max_pool2d(F.leaky_relu(self.conv4(x), 0.2), 4)
        x = x.view(x.size(0), -1)
        return torch.sigmoid(self.fc(x)).view(-1)


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, 1, 0), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(32, 16, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(16, 1, 4, 2, 1), nn.Tanh())

    def forward(self, z):
        return self.layers(z.view(-1, 128, 1, 1))


class GAN:
    def __init__(self):
        torch.manual_seed(2)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.D = Discriminator().to(self.device)
        self.G = Generator().to(self.device)
        self.D_optimizer = optim.Adam(self.D.parameters(), lr=2e-4)
        self.G_optimizer = optim.Adam(self.G.parameters(), lr=1e-3)
        self.batch_size = 64
        self.bce = nn.BCELoss()

    def calculate_V(self, x, z):
        d_real = self.D(x)
        d_fake = self.D(self.G(z))
        return -(self.bce(d_real, torch.ones_like(d_real)) + self.bce(d_fake, torch.zeros_like(d_fake)))

    def train(self, num_epochs=10):
        data_loader = get_data_loader(self.batch_size)
        for epoch in range(num_epochs):
            for i, (x, _) in enumerate(data_loader):
                x = x.to(self.device)
                z = torch.randn(x.shape[0], 128, device=self.device)
                self.D_optimizer.zero_grad()
                loss = -self.calculate_V(x, z)
                loss.backward()
                self.D_optimizer.step()
                self.G_optimizer.zero_grad()
                loss = self.calculate_V(x, z)
                loss.backward()
                self.G_optimizer.step()


if __name__ == "__main__":
    GAN().train()
'''

STUDENT_HW2 = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, num_channels):
        super().__init__()
        self.conv1 = nn.Conv2d(num_channels, num_channels, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.conv2 = nn.Conv2d(num_channels, num_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(x + out)


class ResNet(nn.Module):
    def __init__(self, num_channels, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(1, num_channels, 3, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(num_channels)
        self.pool = nn.MaxPool2d(2)
        self.block = Block(num_channels)
        self.avg = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(num_channels, num_classes)

    def forward(self, x):
        x = self.pool(F.relu(self.bn(self.conv(x))))
        x = self.block(x)
        x = self.avg(x).view(x.size(0), -1)
        return self.fc(x)
'''

BASE = {"hw5": STUDENT_HW5, "hw2": STUDENT_HW2}

# name: (assignment, [(old, new), ...], checks that must score 0 - every other check full marks)
MUTANTS = {
    # ---- hw5
    "D without Sigmoid": ("hw5", [("return torch.sigmoid(self.fc(x)).view(-1)", "return self.fc(x).view(-1)")],
                          {"D_shape", "D_layers", "D_function"}),
    "D: default LeakyReLU slope and last max-pool 2": ("hw5", [
        ("F.leaky_relu(self.conv1(x), 0.2)", "F.leaky_relu(self.conv1(x))"),
        ("F.leaky_relu(self.conv3(x), 0.2)", "F.leaky_relu(self.conv3(x))"),
        ("F.max_pool2d(F.leaky_relu(self.conv4(x), 0.2), 4)", "F.max_pool2d(F.leaky_relu(self.conv4(x), 0.2), 2)")],
        {"D_shape", "D_layers", "D_function"}),
    "D LeakyReLU 0.01": ("hw5", [("F.leaky_relu(self.conv1(x), 0.2)", "F.leaky_relu(self.conv1(x), 0.01)")],
                         {"D_layers", "D_function"}),
    "D MaxPool 2 in place of 4": ("hw5", [("F.leaky_relu(self.conv4(x), 0.2), 4)", "F.leaky_relu(self.conv4(x), 0.2), 2)")],
                                  {"D_shape", "D_layers", "D_function"}),
    "D returns (N, 1)": ("hw5", [("torch.sigmoid(self.fc(x)).view(-1)", "torch.sigmoid(self.fc(x))")], {"D_shape"}),
    "G ReLU in place of LeakyReLU": ("hw5", [("nn.ConvTranspose2d(128, 64, 4, 1, 0), nn.LeakyReLU(0.2)",
                                              "nn.ConvTranspose2d(128, 64, 4, 1, 0), nn.ReLU()")],
                                     {"G_layers", "G_function"}),
    "G without Tanh": ("hw5", [("nn.ConvTranspose2d(16, 1, 4, 2, 1), nn.Tanh())", "nn.ConvTranspose2d(16, 1, 4, 2, 1))")],
                       {"G_shape", "G_layers", "G_function"}),
    "missing class Generator": ("hw5", [("class Generator(nn.Module)", "class Generater(nn.Module)")],
                                {"G_shape", "G_layers", "G_params", "G_function"}),
    "V with the wrong sign": ("hw5", [("return -(self.bce(d_real", "return (self.bce(d_real")], {"V_value", "V_grads"}),
    "V summed, not averaged": ("hw5", [("self.bce = nn.BCELoss()", "self.bce = nn.BCELoss(reduction='sum')")],
                               {"V_value", "V_grads"}),
    "V detaches G(z)": ("hw5", [("d_fake = self.D(self.G(z))", "d_fake = self.D(self.G(z).detach())")],
                        {"V_grads"}),  # train runs with the reference V: one mistake, one check
    "G_optimizer lr 1e-4": ("hw5", [("lr=1e-3", "lr=1e-4")], {"G_optimizer"}),
    "D_optimizer over G's parameters": ("hw5", [("optim.Adam(self.D.parameters()", "optim.Adam(self.G.parameters()")],
                                        {"D_optimizer", "train"}),  # and then train never updates D
    "train never steps G": ("hw5", [("                self.G_optimizer.step()\n", "")], {"train"}),
    "train downloads with urllib": ("hw5", [("        data_loader = get_data_loader(self.batch_size)\n",
                                             "        import urllib.request\n"
                                             "        urllib.request.urlopen('http://yann.lecun.com/exdb/mnist/')\n"
                                             "        data_loader = get_data_loader(self.batch_size)\n")],
                                    {"train"}),
    # the train check recomputes the one D step and G step on the trusted copy of the weights
    "train: D descends V": ("hw5", [("loss = -self.calculate_V(x, z)", "loss = self.calculate_V(x, z)")], {"train"}),
    "train: D's last layer frozen": ("hw5", [("        data_loader = get_data_loader(self.batch_size)\n",
                                              "        data_loader = get_data_loader(self.batch_size)\n"
                                              "        list(self.D.parameters())[-2].requires_grad_(False)\n")], {"train"}),
    "train: no D zero_grad": ("hw5", [("                self.D_optimizer.zero_grad()\n", "")], {"train"}),
    "train: no G zero_grad": ("hw5", [("                self.G_optimizer.zero_grad()\n", "")], {"train"}),
    "train: D trained on noise, not the loader's images": ("hw5", [
        ("                x = x.to(self.device)\n",
         "                x = x.to(self.device)\n                x = torch.rand(64, 1, 32, 32) * 2 - 1\n")], {"train"}),
    "train: uniform z": ("hw5", [("                z = torch.randn(x.shape[0], 128, device=self.device)\n",
                                  "                z = torch.rand(x.shape[0], 128, device=self.device)\n")], {"train"}),
    "train: D step at twice the learning rate": ("hw5", [
        ("                self.D_optimizer.zero_grad()\n",
         "                self.D_optimizer.zero_grad()\n                self.D_optimizer.param_groups[0]['lr'] = 4e-4\n")],
        {"train"}),
    "train: G ascends V": ("hw5", [("                loss = self.calculate_V(x, z)\n",
                                    "                loss = -self.calculate_V(x, z)\n")], {"train"}),
    "train: G step through a detached G(z)": ("hw5", [("                loss = self.calculate_V(x, z)\n",
                                                       "                loss = torch.log(1 - self.D(self.G(z).detach())).mean()\n"
                                                       "                loss.requires_grad_(True)\n")], {"train"}),
    "prints at import": ("hw5", [("import torch\n", "import torch\nprint('loading my GAN')\n")], {"import_quiet"}),
    # ---- hw2
    "Block conv with bias": ("hw2", [("self.conv1 = nn.Conv2d(num_channels, num_channels, 3, 1, 1, bias=False)",
                                      "self.conv1 = nn.Conv2d(num_channels, num_channels, 3, 1, 1, bias=True)")],
                             {"Block_no_bias"}),  # the bias is zeroed for the function checks
    "Block BN before the conv": ("hw2", [("out = F.relu(self.bn1(self.conv1(x)))", "out = F.relu(self.conv1(self.bn1(x)))")],
                                 {"Block_layers", "Block_train", "Block_eval"}),
    "Block without the skip connection": ("hw2", [("return F.relu(x + out)", "return F.relu(out)")],
                                          {"Block_layers", "Block_train", "Block_eval"}),
    "Block BN without running statistics": ("hw2", [("self.bn2 = nn.BatchNorm2d(num_channels)",
                                                     "self.bn2 = nn.BatchNorm2d(num_channels, track_running_stats=False)")],
                                            {"Block_eval"}),
    "ResNet without the max-pool": ("hw2", [("x = self.pool(F.relu(self.bn(self.conv(x))))", "x = F.relu(self.bn(self.conv(x)))")],
                                    {"ResNet_layers", "ResNet_train", "ResNet_eval"}),
    "ResNet first conv stride 1": ("hw2", [("nn.Conv2d(1, num_channels, 3, 2, 1, bias=False)",
                                            "nn.Conv2d(1, num_channels, 3, 1, 1, bias=False)")],
                                   {"ResNet_layers", "ResNet_train", "ResNet_eval"}),
    "ResNet first conv with bias": ("hw2", [("nn.Conv2d(1, num_channels, 3, 2, 1, bias=False)",
                                             "nn.Conv2d(1, num_channels, 3, 2, 1)")],
                                    {"ResNet_no_bias"}),
    "missing class ResNet": ("hw2", [("class ResNet(nn.Module)", "class ResidualNet(nn.Module)")],
                             {"ResNet_shape", "ResNet_no_bias", "ResNet_layers", "ResNet_params", "ResNet_train",
                              "ResNet_eval"}),
}

# equivalent rewrites that must keep full marks (the checks must not be too strict)
EQUIVALENT = {
    "layers registered in another order": ("hw5", [
        ("        self.conv1 = nn.Conv2d(1, 16, 3, 1, 1)\n",
         "        self.fc = nn.Linear(128, 1)\n        self.conv1 = nn.Conv2d(1, 16, 3, 1, 1)\n"),
        ("        self.conv4 = nn.Conv2d(64, 128, 3, 1, 1)\n        self.fc = nn.Linear(128, 1)\n",
         "        self.conv4 = nn.Conv2d(64, 128, 3, 1, 1)\n")]),
    "train: a no_grad logging call of D before the D step": ("hw5", [
        ("                self.D_optimizer.zero_grad()\n                loss = -self.calculate_V(x, z)\n",
         "                with torch.no_grad():\n                    accuracy = (self.D(x[:8]) > 0.5).float().mean()\n"
         "                self.D_optimizer.zero_grad()\n                loss = -self.calculate_V(x, z)\n")]),
    "train builds normalized MNIST itself": ("hw5", [("        data_loader = get_data_loader(self.batch_size)\n",
                                                      "        data_loader = torch.utils.data.DataLoader(datasets.MNIST("
                                                      "'./data', download=True, transform=transforms.Compose(["
                                                      "transforms.Resize(32), transforms.ToTensor(), "
                                                      "transforms.Normalize((0.5,), (0.5,))])), batch_size=64)\n")]),
    "train builds MNIST itself": ("hw5", [("        data_loader = get_data_loader(self.batch_size)\n",
                                           "        data_loader = torch.utils.data.DataLoader(datasets.MNIST('./data', "
                                           "download=True, transform=transforms.Compose([transforms.Resize(32), "
                                           "transforms.ToTensor()])), batch_size=64)\n")]),
    "train: module zero_grad, a detached fake in the D step, its own Adam in train": ("hw5", [
        ("                self.D_optimizer.zero_grad()\n                loss = -self.calculate_V(x, z)\n",
         "                self.D.zero_grad()\n                fake = self.G(z).detach()\n"
         "                loss = -(torch.log(self.D(x)).mean() + torch.log(1 - self.D(fake)).mean())\n")]),
    "BN modules registered before the convs": ("hw2", [
        ("        self.conv1 = nn.Conv2d(num_channels, num_channels, 3, 1, 1, bias=False)\n        self.bn1",
         "        self.bn2 = nn.BatchNorm2d(num_channels)\n        self.conv1 = nn.Conv2d(num_channels, num_channels, "
         "3, 1, 1, bias=False)\n        self.bn1"),
        ("        self.conv2 = nn.Conv2d(num_channels, num_channels, 3, 1, 1, bias=False)\n        self.bn2 = "
         "nn.BatchNorm2d(num_channels)\n",
         "        self.conv2 = nn.Conv2d(num_channels, num_channels, 3, 1, 1, bias=False)\n")]),
    "mean over H, W in place of AdaptiveAvgPool2d": ("hw2", [("x = self.avg(x).view(x.size(0), -1)",
                                                              "x = x.mean((2, 3))")]),
}


def _apply(assignment, edits, tmp_path, name):
    src = BASE[assignment]
    for old, new in edits:
        assert src.count(old) >= 1, f"mutant {name!r}: {old!r} not found in the base solution"
        src = src.replace(old, new, 1)
    folder = tmp_path / name.replace(" ", "_").replace("'", "").replace(",", "").replace("(", "").replace(")", "")
    folder.mkdir()
    path = folder / checks.ASSIGNMENTS[assignment]["file"]
    path.write_text(src)
    return str(path)


def _scores(results):
    return {r["check"]: r["score"] for r in results}


def _full(assignment):
    return {k: float(p) for k, p, _ in checks.POINTS[assignment]}


def _run_cli(*args, timeout=120):
    return subprocess.run([sys.executable, AUTOGRADE, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


# ----------------------------------------------------------------------------- point table
def test_point_table_sums_to_100_and_every_check_exists():
    for assignment, rows in checks.POINTS.items():
        assert sum(p for _, p, _ in rows) == 100 == checks.total_points(assignment)
        keys = [k for k, _, _ in rows]
        assert len(keys) == len(set(keys))
        for k in keys:
            assert k in ("import", "import_quiet") or callable(checks.CHECKS[assignment][k].run), k


def test_docs_document_the_point_table():
    """docs/autograder.md's tables are the checks files' rows: key, points and description."""
    page = open(os.path.join(ROOT, "docs", "autograder.md"), encoding="utf-8").read()
    section = page[page.index("## Checks and points"):]
    for assignment, rows in checks.POINTS.items():
        for key, points, description in rows:
            assert f"| `{key}` | {points} | {registry.render(description)} |" in section, (assignment, key)


def test_each_number_of_the_handout_appears_once_in_the_grader():
    """The learning rates, the LeakyReLU slope and the parameter
    counts are written once (in the spec of their checks file), as number tokens."""
    import ast
    import tokenize

    numbers = []
    for folder, _, files in os.walk(os.path.join(ROOT, "autograder")):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name), "rb") as f:
                    numbers += [ast.literal_eval(t.string) for t in tokenize.tokenize(f.readline)
                                if t.type == tokenize.NUMBER]
    for value in (2e-4, 1e-3, 97281, 172401, 0.2):
        assert numbers.count(value) == 1, (value, numbers.count(value))


# ------------------------------------------------------------------------ in-process checks
@pytest.mark.parametrize("assignment", ["hw5", "hw2"])
def test_student_style_base_solutions_get_full_marks(assignment, tmp_path):
    path = _apply(assignment, [], tmp_path, f"base_{assignment}")
    results = runner.grade_in_process(assignment, path)
    assert _scores(results) == _full(assignment), [r for r in results if r["score"] < r["max_score"]]


@pytest.mark.parametrize("name", sorted(EQUIVALENT))
def test_equivalent_rewrites_keep_full_marks(name, tmp_path):
    assignment, edits = EQUIVALENT[name]
    results = runner.grade_in_process(assignment, _apply(assignment, edits, tmp_path, name))
    assert _scores(results) == _full(assignment), [r for r in results if r["score"] < r["max_score"]]


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_loses_exactly_its_points(name, tmp_path):
    assignment, edits, lost = MUTANTS[name]
    results = runner.grade_in_process(assignment, _apply(assignment, edits, tmp_path, name))
    want = {k: (0.0 if k in lost else p) for k, p in _full(assignment).items()}
    assert _scores(results) == want, [(r["check"], r["score"], r["output"]) for r in results]
    for r in results:
        if r["check"] in lost:
            assert r["output"] and r["output"] != "ok"


def test_a_block_that_raises_is_told_the_input_shape_once(tmp_path):
    """Before: "Block(1)(x) for x of shape (3, 1, 6, 6) for x of shape (3, 1, 6, 6) raised ..."."""
    path = _apply("hw2", [("        out = F.relu(self.bn1(self.conv1(x)))",
                           "        raise ValueError('unfinished')")], tmp_path, "block raises")
    message = {r["check"]: r["output"] for r in runner.grade_in_process("hw2", path, checks=["Block_shape"])}
    assert message["Block_shape"].startswith("Block(1)(x) for x of shape (3, 1, 6, 6) raised ValueError: unfinished"), \
        message
    assert message["Block_shape"].count("for x of shape") == 1


def test_mutant_messages_name_the_mistake(tmp_path):
    def output(name, check):
        assignment, edits, _ = MUTANTS[name]
        folder = tmp_path / check
        folder.mkdir(exist_ok=True)
        results = runner.grade_in_process(assignment, _apply(assignment, edits, folder, name), checks=[check])
        return {r["check"]: r["output"] for r in results}[check]

    assert "-V" in output("V with the wrong sign", "V_value")
    assert "sum" in output("V summed, not averaged", "V_value")
    assert "no gradient reaches G" in output("V detaches G(z)", "V_grads")
    assert "LeakyReLU(slope 0.01)" in output("D LeakyReLU 0.01", "D_layers")
    assert "bias" in output("Block conv with bias", "Block_no_bias")
    assert "conv1.bias) set to zero" in output("Block conv with bias", "Block_train")
    assert "not counting your convolution biases" in output("ResNet first conv with bias", "ResNet_params")
    assert "learning rate 0.0001, expected 0.001" in output("G_optimizer lr 1e-4", "G_optimizer")
    assert "download" in output("train downloads with urllib", "train")
    assert "the D step descends V" in output("train: D descends V", "train")
    assert "none frozen" in output("train: D's last layer frozen", "train")
    assert "D_optimizer.zero_grad()" in output("train: no D zero_grad", "train")
    assert "G_optimizer.zero_grad()" in output("train: no G zero_grad", "train")
    # the zero_grad() hint only for the stale-gradient pattern (issue 24)
    assert "not the data loader's images" in output("train: D trained on noise, not the loader's images", "train")
    assert "N(0, I)" in output("train: uniform z", "train")
    fast = output("train: D step at twice the learning rate", "train")
    assert "differs from the starter's" in fast and "zero_grad" not in fast, fast
    assert "skip connection" in output("Block without the skip connection", "Block_layers")
    both = output("D: default LeakyReLU slope and last max-pool 2", "D_layers")  # every mismatch, not the first
    assert "layer 2 is LeakyReLU(slope 0.01)" in both and "layer 8 is LeakyReLU(slope 0.01)" in both, both
    assert "layer 12 is MaxPool2d(kernel 2" in both, both
    assert "the G step ascends V" in output("train: G ascends V", "train")
    assert "printed" in output("prints at import", "import_quiet")
    assert "defines no ResNet" in output("missing class ResNet", "ResNet_shape")


def test_reference_modules_agree_with_the_graders_formula():
    """The V formula of the grader equals the reference's calculate_V (an independent path)."""
    import torch

    import hw5

    torch.manual_seed(0)
    gan = hw5.GAN(seed=0, verbose=False) if "verbose" in hw5.GAN.__init__.__code__.co_varnames else hw5.GAN()
    x, z = torch.rand(5, 1, 32, 32) * 2 - 1, torch.randn(5, 128)
    real, fake, _ = hw5checks._v_reference(gan.D, gan.G, x, z, torch.float64)
    assert gan.calculate_V(x, z).item() == pytest.approx((real + fake).item(), abs=1e-5)


# ----------------------------------------------------------------- sandboxed: reference files
def test_reference_hw5_gets_full_marks_through_the_sandbox(tmp_path, mount_namespaces):
    """(The hw2 reference goes through the sandbox in the Gradescope bundle test below.)"""
    out = tmp_path / "results.json"
    proc = _run_cli(os.path.join(ROOT, "hw5.py"), "--results", out, "--timeout", 60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["score"] == 100.0, [t for t in report["tests"] if t["score"] < t["max_score"]]
    assert set(report) == {"score", "execution_time", "output", "tests"}
    assert isinstance(report["execution_time"], int)
    assert len(report["tests"]) == len(checks.POINTS["hw5"])
    for t in report["tests"]:
        assert set(t) == {"name", "number", "score", "max_score", "output", "visibility"}
        assert t["score"] == t["max_score"] and t["visibility"] == "visible"
        assert isinstance(t["number"], str) and isinstance(t["name"], str)
    assert report["score"] == sum(t["score"] for t in report["tests"])
    assert "total" in proc.stdout and "100" in proc.stdout  # the readable table
    if mount_namespaces:  # the notes: as root, nobody, grader hidden
        assert "worker as nobody" in proc.stdout and "host folder(s) hidden" in proc.stdout


# ----------------------------------------------------------------- sandboxed: hostile files
HOSTILE = {
    # name: (file name, source, timeout, checks expected > 0, words expected in the import message)
    "infinite loop (printing) at import": ("hw5.py", "while True:\n    print('spam')\n", 3, set(), "time limit"),
    "sys.exit at import": ("hw5.py", "import sys\nsys.exit(3)\n", 20, set(), "sys.exit(3)"),
    "os._exit at import": ("hw5.py", "import os\nos._exit(7)\n", 20, set(), "status 7"),
    "100 GB allocation": ("hw5.py", "data = bytearray(100 * 10**9)\n", 20, set(), "memory"),
    "syntax error": ("hw2_ResNet.py", "class Block(nn.Module:\n    pass\n", 20, set(), "SyntaxError"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_import_gives_zeros_in_bounded_time(name, tmp_path):
    """Through the sandbox, called in-process (the command line has its own tests)."""
    filename, source, timeout, _, words = HOSTILE[name]
    (tmp_path / filename).write_text(source)
    assignment = checks.FILE_TO_ASSIGNMENT[filename]
    t0 = time.monotonic()
    g = runner.grade_assignment(assignment, str(tmp_path / filename), timeout=timeout)
    elapsed = time.monotonic() - t0
    assert elapsed < timeout + 10
    report = reporting.results_json([g], elapsed)
    assert report["score"] == 0.0
    assert len(report["tests"]) == len(checks.POINTS[assignment])
    assert all(t["score"] == 0.0 for t in report["tests"])
    assert words in report["tests"][0]["output"], report["tests"][0]["output"]
    assert all(t["output"] for t in report["tests"])


def test_crash_hang_and_missing_class_mid_way_through_the_sandbox(tmp_path):
    """Block's first eval-mode forward kills the process (os._exit), its second one hangs, every
    forward prints 100 kB, and the class ResNet is missing. Block_train (whose weight matching
    runs in eval mode) scores 0 for the crash, Block_eval for the hang (stopped at the per-check
    limit); the checks before keep their points, new workers grade the rest, the ResNet checks
    score 0 with a message, and the output kept is capped."""
    src = STUDENT_HW2.replace("class ResNet(nn.Module)", "class ResidualNet(nn.Module)").replace(
        "        out = F.relu(self.bn1(self.conv1(x)))\n",
        "        print('x' * 100_000)\n"
        "        import os\n"
        "        if not self.training and not os.path.exists('crashed'):\n"
        "            open('crashed', 'w').close()\n"
        "            os._exit(9)\n"
        "        if not self.training and not os.path.exists('hung'):\n"
        "            open('hung', 'w').close()\n"
        "            while True:\n"
        "                pass\n"
        "        out = F.relu(self.bn1(self.conv1(x)))\n")
    (tmp_path / "hw2_ResNet.py").write_text(src)
    t0 = time.monotonic()
    g = runner.grade_assignment("hw2", str(tmp_path / "hw2_ResNet.py"), timeout=60, check_limit=1.5)
    assert time.monotonic() - t0 < 40
    report = reporting.results_json([g], time.monotonic() - t0)
    by_key = dict(zip([k for k, _, _ in checks.POINTS["hw2"]], report["tests"]))
    zero = [k for k, t in by_key.items() if t["score"] == 0]
    resnet = [k for k in by_key if k.startswith("ResNet")]
    # the first eval-mode forward is Block_layers' skip probe (it crashes), the second Block_train's trace
    assert zero == ["Block_layers", "Block_train"] + resnet, [(k, t["output"]) for k, t in by_key.items()]
    assert "status 9" in by_key["Block_layers"]["output"]
    assert "longer than its limit of 1.5 s" in by_key["Block_train"]["output"]
    assert all("defines no ResNet" in by_key[k]["output"] for k in resnet)
    assert report["score"] == 100 - 10 - 12 - 52 == sum(t["score"] for t in report["tests"])
    assert len(g["output"]) < runner.OUTPUT_CAP + 1000 and "more bytes" in g["output"]
    assert not os.path.exists(tmp_path / "crashed")  # it ran in the sandbox's folder, not next to the file


def test_without_namespaces_the_sandbox_still_holds(tmp_path, monkeypatch):
    """Where unshare is unavailable (e.g. a Docker container) the grader runs without namespaces."""
    monkeypatch.setenv("AUTOGRADE_NO_UNSHARE", "1")
    monkeypatch.setattr(sandbox, "_NAMESPACE_CACHE", [])  # the probes are cached per process
    monkeypatch.setattr(sandbox, "_PLAN_CACHE", {})
    for source, words in (("import os\nos._exit(7)\n", "status 7"), ("x = bytearray(100 * 10**9)\n", "memory"),
                          ("while True:\n    pass\n", "time limit")):
        (tmp_path / "hw5.py").write_text(source)
        g = runner.grade_assignment("hw5", str(tmp_path / "hw5.py"), timeout=1.5)
        assert sum(r["score"] for r in g["results"]) == 0 and words in g["results"][0]["output"]
        assert "no namespaces" in g["notes"][-1], g["notes"]


def test_import_side_effects_are_reported(tmp_path):
    """Writing a file and opening a connection at import cost import_quiet only; the network is blocked."""
    src = STUDENT_HW2 + (
        "\nopen('side_effect.txt', 'w').write('x')\n"
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('example.com', 80), timeout=2)\n"
        "    NETWORK = True\n"
        "except OSError:\n"
        "    NETWORK = False\n")
    path = tmp_path / "hw2_ResNet.py"
    path.write_text(src)
    results = runner.grade_in_process("hw2", str(path), checks=["import", "import_quiet"])
    quiet = {r["check"]: r for r in results}["import_quiet"]
    assert quiet["score"] == 0 and "side_effect.txt" in quiet["output"] and "network" in quiet["output"]
    assert {r["check"]: r for r in results}["import"]["score"] == 4
    assert not (tmp_path / "side_effect.txt").exists()


# ------------------------------------------------------------- visibility and hidden answers
def test_hide_expected_hides_the_expected_values_and_only_them(tmp_path):
    cases = [("G_optimizer lr 1e-4", "G_optimizer", "expected 0.001", "learning rate 0.0001"),
             ("D LeakyReLU 0.01", "D_layers", "expected LeakyReLU(slope 0.2)", "is LeakyReLU(slope 0.01)"),
             ("ResNet first conv stride 1", "ResNet_layers", "expected Conv2d(1->", "is Conv2d(1->"),
             # a forward that stops early must not reveal the next layer either
             ("Block stops after conv1", "Block_layers", "BatchNorm2d", "1 layers ran"),
             # the worker's weight-loading message names the reference's shapes only when allowed
             ("D conv3 kernel 5", "D_function", "(64, 32, 3, 3)", "yours has extra 1 x (64, 32, 5, 5)")]
    mutants = dict(MUTANTS, **{
        "Block stops after conv1": ("hw2", [("out = F.relu(self.bn1(self.conv1(x)))", "return self.conv1(x)")], None),
        "D conv3 kernel 5": ("hw5", [("self.conv3 = nn.Conv2d(32, 64, 3, 1, 1)", "self.conv3 = nn.Conv2d(32, 64, 5, 1, 2)")],
                             None)})
    for name, check, answer, mistake in cases:
        assignment, edits, _ = mutants[name]
        path = _apply(assignment, edits, tmp_path, name)
        shown, = runner.grade_in_process(assignment, path, checks=[check])
        hidden, = runner.grade_in_process(assignment, path, checks=[check], hide_expected=True)
        assert answer in shown["output"] and answer not in hidden["output"], (shown, hidden)
        assert ("[hidden]" in hidden["output"] or "lacks 1 of the reference's tensors" in hidden["output"]) \
            and mistake in hidden["output"], hidden
        assert hidden["score"] == shown["score"] == 0.0
    # the markers are the grader's own: a reply (the submission's text) cannot hide or fake them
    assert protocol._parse("a\x02b\x03c", str) == "abc"
    assert registry.render(f"x {registry._exp(5)} y", hide_expected=True) == "x [hidden] y"
    # the check names carry values too (results.json's test names)
    names = {r["check"]: r["name"] for r in reporting._missing_file_grading("hw5", ROOT, hide_expected=True)["results"]}
    assert names["D_params"] == "Discriminator: [hidden] parameters" and "2e-4" not in names["D_optimizer"]
    shown = {r["check"]: r["name"] for r in reporting._missing_file_grading("hw5", ROOT)["results"]}
    assert shown["D_params"] == "Discriminator: 97,281 parameters"


def test_visibility_is_declared_per_check_and_can_be_overridden():
    for rows in checks.POINTS.values():
        for key, _, _ in rows:
            assert checks.VISIBILITY[key] in registry.VISIBILITY_LEVELS, key
    v = reporting.parse_visibility(["hidden", "train=after_published,D_layers=visible"])
    assert v["train"] == "after_published" and v["D_layers"] == "visible" and v["V_value"] == "hidden"
    assert reporting.parse_visibility(None) == {}
    assert reporting.parse_visibility(["train=hidden,"]) == {"train": "hidden"}
    for bad in ("secret", "nosuch=hidden", "train=Hidden", "train=", "=hidden"):
        with pytest.raises(ValueError):
            reporting.parse_visibility([bad])
    g = reporting._missing_file_grading("hw5", ROOT)
    for r in g["results"]:
        r["score"] = r["max_score"] if r["check"] in ("import", "train") else 0.0
    report = reporting.results_json([g], 1.0, {"train": "hidden"})
    keys = [k for k, _, _ in checks.POINTS["hw5"]]
    assert [t["visibility"] for t in report["tests"]] == ["hidden" if k == "train" else "visible" for k in keys]
    # the summary line counts only what students see (else the hidden check's score is a subtraction away)
    assert report["output"].startswith("hw5.py: 4 / 90 points in the 14 visible checks (1 more not shown yet)")
    assert report["score"] == 14


# ----------------------------------------------------------------------------------- CLI
def test_cli_misuse_exits_non_zero_with_a_message(tmp_path):
    cases = [
        ([tmp_path / "nope.py"], "no such file"),
        ([tmp_path / "hw3.py"], "cannot tell the assignment"),
        ([tmp_path], "neither hw5.py nor hw2_ResNet.py"),
        ([os.path.join(ROOT, "hw2_ResNet.py"), "--results", tmp_path / "missing" / "r.json"], "cannot write"),
        ([os.path.join(ROOT, "hw2_ResNet.py"), "--timeout", "0"], "--timeout"),
        (["--gradescope-bundle", "hw7", tmp_path / "x.zip"], "hw5 or hw2"),
        (["--gradescope-bundle", "hw5", tmp_path / "missing" / "x.zip"], "cannot write"),
        (["--gradescope-bundle", "hw5", tmp_path / "x.zip", "--visibility", "train=secret"], "--visibility"),
        ([os.path.join(ROOT, "hw2_ResNet.py"), "--visibility", "nosuch=hidden"], "no check is called 'nosuch'"),
        ([os.path.join(ROOT, "hw2_ResNet.py"), "--visibility", ""], "give LEVEL (every check) or KEY=LEVEL"),
        ([os.path.join(ROOT, "hw2_ResNet.py"), "--results", tmp_path], "is a folder; name the JSON file"),
        # the grader's own files are never overwritten (they were: every later grading broke)
        ([os.path.join(ROOT, "hw2_ResNet.py"), "--results", os.path.join(ROOT, "autograde_worker.py")],
         "is one of the grader's own files"),
        (["--gradescope-bundle", "hw5", os.path.join(ROOT, "hw5.py")], "is one of the grader's own files"),
        ([], "SUBMISSION"),
    ]
    (tmp_path / "hw3.py").write_text("x = 1\n")
    for args, words in cases:
        proc = _run_cli(*args, timeout=30)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert words in proc.stderr, (args, proc.stderr)


def test_assignment_flag_with_a_folder_lacking_the_file_gives_zeros(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    out = tmp_path / "r.json"
    proc = _run_cli(tmp_path, "--assignment", "hw2", "--results", out, "--json-only", timeout=30)
    assert proc.returncode == 0
    report = json.loads(proc.stdout)
    assert report == json.loads(out.read_text())
    assert report["score"] == 0 and "no hw2_ResNet.py" in report["tests"][0]["output"]


# ------------------------------------------------------------------------ gradescope bundle
def test_gradescope_bundle_runs_against_a_fake_autograder_tree(tmp_path):
    bundle = tmp_path / "hw2.zip"
    proc = _run_cli("--gradescope-bundle", "hw2", bundle, "--visibility", "ResNet_eval=after_published",
                    "--hide-expected", timeout=30)
    assert proc.returncode == 0, proc.stderr
    root = tmp_path / "autograder"
    source = root / "source"
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        assert {"setup.sh", "run_autograder", "autograde.py", "hw2_ResNet.py"} <= names
        for name in ("setup.sh", "run_autograder"):
            mode = z.getinfo(name).external_attr >> 16
            assert mode & stat.S_IXUSR, name
        z.extractall(source)
    for name in ("setup.sh", "run_autograder"):  # extractall drops modes; restore them as Gradescope does
        os.chmod(source / name, 0o755)
    setup = (source / "setup.sh").read_text()
    pins = bundling._read_pins(os.path.join(ROOT, "requirements.txt"))
    bundled = (source / "requirements.txt").read_text()
    for pkg in ("torch", "torchvision", "numpy"):
        assert f"{pkg}=={pins[pkg]}" in bundled.splitlines()
    assert "requirements.txt" in setup and "download.pytorch.org/whl/cpu" in setup
    for name in ("setup.sh", "run_autograder"):  # the scripts are the repository's files, as they are
        with open(os.path.join(ROOT, "gradescope", name), encoding="utf-8") as f:
            assert (source / name).read_text() == f.read()
    assert (source / "grading.env").read_text() == ("ASSIGNMENT=hw2\nTIMEOUT=60\nVISIBILITY=ResNet_eval=after_published\n"
                                                    "HIDE_EXPECTED=1\n")
    assert subprocess.run(["bash", "-n", str(source / "setup.sh")]).returncode == 0
    with open(os.path.join(ROOT, "hw2_ResNet.py"), encoding="utf-8") as f:
        assert (source / "hw2_ResNet.py").read_text() == f.read()
    (root / "submission").mkdir()
    shutil.copy(os.path.join(ROOT, "hw2_ResNet.py"), root / "submission" / "hw2_ResNet.py")
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable)
    run = subprocess.run([str(source / "run_autograder")], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    report = json.loads((root / "results" / "results.json").read_text())
    assert report["score"] == 100.0 and len(report["tests"]) == len(checks.POINTS["hw2"])
    assert [t["visibility"] for t in report["tests"]].count("after_published") == 1
    # a zipped folder (hw2/HW2_ResNet.py) importing an allowed extra package, with one mistake:
    # the same scores and messages as the local grader with the bundle's flags
    mutant = _apply("hw2", MUTANTS["ResNet first conv stride 1"][1], tmp_path, "zipped")
    os.remove(root / "submission" / "hw2_ResNet.py")
    (root / "submission" / "hw2").mkdir()
    upload = root / "submission" / "hw2" / "HW2_ResNet.py"
    upload.write_text("import scipy.special\n" + open(mutant, encoding="utf-8").read())
    local = runner.grade_in_process("hw2", str(upload), hide_expected=True)
    run = subprocess.run([str(source / "run_autograder")], env=env, capture_output=True, text=True, timeout=120)
    report = json.loads((root / "results" / "results.json").read_text())
    assert [t["score"] for t in report["tests"]] == [r["score"] for r in local] and report["score"] == 68.0
    assert [t["output"] for t in report["tests"]] == [r["output"] for r in local]
    assert report["output"].startswith("hw2_ResNet.py: 68 / 92 points in the 12 visible checks (1 more not "
                                       "shown yet)\ngraded hw2/HW2_ResNet.py")
    assert "[hidden]" in [t["output"] for t in report["tests"] if t["name"].endswith(checks.POINTS["hw2"][9][2])][0]
    shutil.rmtree(root / "submission" / "hw2")
    # a wrong upload: still a results file, with zeros and a message
    os.remove(root / "results" / "results.json")
    (root / "submission" / "notes.md").write_text("oops")
    run = subprocess.run([str(source / "run_autograder")], env=env, capture_output=True, text=True, timeout=60)
    report = json.loads((root / "results" / "results.json").read_text())
    assert report["score"] == 0 and "no hw2_ResNet.py" in report["tests"][0]["output"]
