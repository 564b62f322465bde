"""Benchmark: grading a class with ``autograde.py --class`` vs one ``autograde.py FILE`` per student.

The class (written to a temporary Gradescope-style export, ``submission_metadata.yml`` and one
``submission_<id>/`` folder each): every file of the grader's test corpus for the assignment
(correct files and the usual mistakes, ``tests/corpus/``), a few hostile files (one that kills
every process it can, one that exits at import, one that allocates without bound, one that
leaves a daemon behind, one that writes 2,000 files, one whose ``GAN.calculate_V`` (hw5) or
``Block.forward`` (hw2) loops forever), then copies of the correct starter up to ``--n`` submissions.

Modes, each a fresh process of the real command line, one after another:

* ``serial``: ``python autograde.py FILE --json-only`` per submission (what a TA's wrapper
  script did before ``--class``): the trusted side imports torch for every student;
* ``class -j N`` for each N of ``--jobs``: one command for the whole class.

It prints wall seconds and seconds per submission for each mode, the ratio to ``serial``, and
checks that every mode gave every student the same score, check by check.

Run: ``python bench/bench_autograde.py [--assignment hw5] [--n 40] [--jobs 1 2] [--serial-n 40]``
(``--serial-n`` grades only the first N students one at a time, to save time; the serial
seconds per submission are then measured on those).
"""

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)
from autograder.checks import ASSIGNMENTS  # noqa: E402

HOSTILE = {  # name -> code appended to the correct starter (hw5 and hw2 alike)
    "kill_everything": "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\n",
    "exit_at_import": "import os\nos._exit(3)\n",
    "allocate_forever": "blocks = []\nwhile True:\n    blocks.append(bytearray(1 << 26))\n",
    "daemon_left_behind": ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(3600)\n"
                           "    os._exit(0)\n"),
    "many_files": "import os\nfor i in range(2000):\n    open(f'junk_{i}.txt', 'w').write('x')\n",
}
LOOP = {"hw5": "\n\ndef _forever(self, *args, **kwargs):\n    while True:\n        pass\n\n\nGAN.calculate_V = _forever\n",
        "hw2": "\n\n_Block = Block\n\n\nclass Block(_Block):\n    def forward(self, x):\n        while True:\n"
               "            pass\n"}


def make_class(folder, assignment, n):
    """A Gradescope-style export of ``n`` submissions; returns the student names in order."""
    corpus = os.path.join(HERE, "tests", "corpus", assignment)
    label = ASSIGNMENTS[assignment]["file"]
    with open(os.path.join(corpus, "starter_correct.py"), encoding="utf-8") as f:
        correct = f.read()
    files = {name[:-3]: open(os.path.join(corpus, name), encoding="utf-8").read()
             for name in sorted(os.listdir(corpus)) if name.endswith(".py")}
    files.update({f"hostile_{k}": correct + "\n" + v for k, v in HOSTILE.items()})
    files[f"hostile_loop_in_a_check"] = correct + LOOP[assignment]
    names = list(files)[:n]
    names += [f"copy_{i}" for i in range(n - len(names))]
    meta = []
    for i, name in enumerate(names):
        sub = f"submission_{1000 + i}"
        os.makedirs(os.path.join(folder, sub))
        with open(os.path.join(folder, sub, label), "w", encoding="utf-8") as f:
            f.write(files.get(name, correct))
        meta.append(f"{sub}:\n  :submitters:\n  - :name: {name}\n    :email: {name}@example.edu\n")
    with open(os.path.join(folder, "submission_metadata.yml"), "w", encoding="utf-8") as f:
        f.write("".join(meta))
    return names


def run(cmd):
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return time.monotonic() - t0, proc


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--assignment", choices=sorted(ASSIGNMENTS), default="hw5")
    p.add_argument("--n", type=int, default=40, help="submissions in the class")
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="the -j values to time")
    p.add_argument("--serial-n", type=int, default=None, help="grade only this many one at a time (default: all)")
    args = p.parse_args()
    if args.n < 1 or any(j < 1 for j in args.jobs):
        p.error("--n and --jobs must be at least 1")
    tmp = tempfile.mkdtemp(prefix="bench-autograde-")
    try:
        export = os.path.join(tmp, "export")
        names = make_class(export, args.assignment, args.n)
        label = ASSIGNMENTS[args.assignment]["file"]
        scores, rows = {}, []
        serial_n = min(args.n, args.serial_n or args.n)
        t_serial = 0.0
        for i, name in enumerate(names[:serial_n]):
            dt, proc = run([sys.executable, "autograde.py", os.path.join(export, f"submission_{1000 + i}", label),
                            "--json-only"])
            t_serial += dt
            report = json.loads(proc.stdout)
            scores.setdefault("serial", {})[name] = [t["score"] for t in report["tests"]]
        rows.append(("serial (one command per file)", serial_n, t_serial))
        for j in args.jobs:
            out = os.path.join(tmp, f"j{j}")
            dt, proc = run([sys.executable, "autograde.py", "--class", export, "--assignment", args.assignment,
                            "--gradebook", out + ".csv", "--feedback-dir", out, "-j", str(j)])
            if proc.returncode != 0:
                sys.exit(f"--class -j {j} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
            with open(out + ".csv", encoding="utf-8") as f:
                book = list(csv.DictReader(f))
            keys = list(book[0])[6:-1]
            scores[f"j{j}"] = {r["student"]: [float(r[k]) for k in keys] for r in book}
            rows.append((f"--class -j {j}", args.n, dt))
        base = t_serial / serial_n
        print(f"{args.assignment}: a class of {args.n} ({len(HOSTILE) + 1} hostile), {os.cpu_count()} CPU(s)")
        print(f"{'mode':<32} {'submissions':>11} {'wall s':>8} {'s/submission':>13} {'speed-up':>9}")
        for mode, n, dt in rows:
            print(f"{mode:<32} {n:>11} {dt:>8.1f} {dt / n:>13.2f} {base / (dt / n):>8.2f}x")
        differ = [(mode, name) for mode in scores if mode != "serial" for name in scores["serial"]
                  if scores[mode].get(name) != scores["serial"][name]]
        print("scores: identical in every mode, check by check" if not differ else f"scores DIFFER: {differ[:10]}")
        return 1 if differ else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
