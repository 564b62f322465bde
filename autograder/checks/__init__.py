"""One checks file per assignment, each with its spec first. ``SPECS`` names them in the order a
folder holding both files is graded; the tables below are derived from their ``CHECKS``."""

from . import hw2, hw5

SPECS = {"hw5": hw5, "hw2": hw2}

ASSIGNMENTS = {a: {"file": m.FILE, "number": m.NUMBER, "title": m.TITLE} for a, m in SPECS.items()}
FILE_TO_ASSIGNMENT = {info["file"]: a for a, info in ASSIGNMENTS.items()}
CHECKS = {a: {c.key: c for c in m.CHECKS} for a, m in SPECS.items()}  # in grading order
POINTS = {a: tuple((c.key, c.points, c.description) for c in m.CHECKS) for a, m in SPECS.items()}
VISIBILITY = {c.key: c.visibility for m in SPECS.values() for c in m.CHECKS}


def total_points(assignment):
    return sum(points for _, points, _ in POINTS[assignment])


# what a submission may import besides the standard library: the course's requirements (the
# worker refuses other top-level modules); setup.sh installs the same packages, as pinned in
# requirements.txt, so local and Gradescope grading agree
ALLOWED_MODULES = ("torch", "torchvision", "numpy", "scipy", "sklearn", "PIL", "matplotlib", "tqdm")
ALLOWED_PYPI = ("numpy", "scipy", "scikit-learn", "pillow", "matplotlib", "tqdm")  # (torch/torchvision apart)
