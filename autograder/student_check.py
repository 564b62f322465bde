"""The students' self-check: one standalone file a TA hands out (``check_hw5.py``,
``check_hw2.py``) that runs the grader's public checks on a student's file, on the student's
own machine, offline, with the grader's check names and messages.

It is made from the grader's own code, so that a change of a check or a message in the grader
changes the self-check: ``student_check_template.py`` (beside this file) is the skeleton, and
``write_student_check`` fills it with the handout's spec as data (the layer tables, counts,
learning rates) and the source of the grader's functions (its checks, message helpers, layer
tracer and the worker's request handlers). Where the grader uses something the self-check must
not hold (the reference solution, its stand-in nets built from the tables, its own V), the
template puts the student's own code, and says so; the few lines of the grader's functions that
change for that are listed in ``SUBSTITUTIONS``, each asserted to apply. The file holds no
class or function that answers the assignment (``FORBIDDEN``; asserted on every file written).

See docs/student_check.md.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import os
import re
import symtable
import textwrap

import autograde_worker

from . import protocol, registry, report, runner
from .checks import ALLOWED_MODULES, ASSIGNMENTS, CHECKS, SPECS

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "student_check_template.py")

# where "#@ embed module:name" takes the source from ("checks": the assignment's checks file)
EMBED_FROM = {"worker": autograde_worker, "registry": registry, "protocol": protocol, "report": report,
              "runner": runner}

# checks the self-check cannot run (they compare with the reference's outputs, given its weights),
# with what it says of them
_NEEDS_REFERENCE = ("not run here: it compares your code with the reference solution, given its weights, which "
                    "this file does not have (Gradescope runs it)")
NOT_RUN = {"hw5": dict.fromkeys(("D_function", "G_function"), _NEEDS_REFERENCE),
           "hw2": dict.fromkeys(("Block_train", "Block_eval", "ResNet_train", "ResNet_eval"), _NEEDS_REFERENCE)}

# the handout's spec, written into the file as data: (name, comment); a name in _SOURCE_SPEC is
# copied as the grader writes it (NET holds how the checks draw their inputs: lambdas)
SPEC = {
    "hw5": [("Z_DIM", "G: (N, 128) -> (N, 1, 32, 32); D: (N, 1, 32, 32) -> (N,)"), ("IMAGE", None),
            ("TABLE1", "the Discriminator, in order (Table 1 of the handout)"),
            ("TABLE2", "the Generator, in order (Table 2; its input z viewed as (N, 128, 1, 1))"),
            ("D_PARAMS", "the parameter counts of Tables 1 and 2"), ("G_PARAMS", None),
            ("LR", "the starter's Adam learning rates"), ("BATCH", "the starter's batch (and the rows of its z)"),
            ("V_TERMS", "V = mean log D(x) + mean log(1 - D(G(z))), as the grader writes it"),
            ("SHAPE_BATCHES", "how the grader probes (its choices, not the handout's)"), ("TRAIN_BATCH", None),
            ("TOL_V", "relative tolerances"), ("TOL_GRADS", None), ("TOL_IMAGE", None), ("GARBAGE_SEED", None)],
    "hw2": [("IN_CHANNELS", "ResNet(C): (N, 1, H, W) -> (N, 10)"), ("CLASSES", None),
            ("BLOCK_TABLE", "Block(C), in order: f(x) = BN(Conv3x3(ReLU(BN(Conv3x3(x))))), output ReLU(x + f(x))"),
            ("RESNET_TABLE", "ResNet(C), in order: the stem, one Block, global average pooling, the classifier"),
            ("RESNET_PARAMS_TEXT", None),
            ("BLOCK_CHANNELS", "how the grader probes (its choices, not the handout's)"), ("RESNET_SIZES", None),
            ("TOL_FUNCTION", "relative tolerance (of the skip-connection probe)")],
}
_SOURCE_SPEC = {"hw5": ["NET"], "hw2": []}
_TABLES = {"TABLE1", "TABLE2", "BLOCK_TABLE", "RESNET_TABLE"}

# where the self-check's copy of a grader function differs from it: (old, new, times), each
# asserted; the comment is written above the function in the file
SUBSTITUTIONS = {
    "checks:check_V_grads": (
        "the expected gradients come from your own D and G, by the chain rule: this file has no V",
        [("    real, fake, _ = _v_reference(D, G, x, z, torch.float32)\n    (real + fake).backward()\n",
          "    _expected_V_gradients(D, G, x, z)\n", 1)]),
    "checks:_check_train_steps": (
        "the starter's iteration is redone with your calculate_V, which V_value and V_grads check first",
        [("_v_reference(", "_v_by_your_calculate_V(", 2)]),
    "worker:Worker._train_once": (
        "your calculate_V stays in place, where the grader puts its own V",
        [('        terms = req["v_terms"]\n'
          '        if callable(getattr(gan, "calculate_V", None)):  # a wrong V costs the V checks only\n'
          '            gan.calculate_V = lambda x, z: v_from_terms(terms, gan.D, gan.G, x, z)\n', "", 1)]),
}
_W_PREFIX = re.compile(r"\bW\.")  # the grader calls the worker's functions as W.name: here they are in the file

# no definition of these names may appear in the file: they would be (part of) an answer
FORBIDDEN = ("Discriminator", "Generator", "GAN", "calculate_V", "Block", "ResNet")


# ------------------------------------------------------------------------------------------
def write_student_check(assignment: str, out_path: str) -> list[str]:
    """Write the self-check of ``assignment`` ("hw5" or "hw2") to ``out_path`` (atomically; one
    of the grader's own files is refused). Returns the keys of the checks it runs, in the
    grader's order (the others, listed in ``NOT_RUN``, need the reference's weights)."""
    from common import atomic_write_bytes

    from .bundle import grader_files

    if assignment not in SPECS:
        raise ValueError(f"the assignment must be one of {', '.join(SPECS)}, got {assignment!r}")
    target = os.path.realpath(out_path)
    if any(target == os.path.realpath(os.path.join(runner.HERE, f)) for f in grader_files()):
        raise ValueError(f"{out_path} is one of the grader's own files; choose another name (e.g. check_{assignment}.py)")
    source = build_source(assignment)
    atomic_write_bytes(out_path, source)
    return [key for key in CHECKS[assignment] if key not in NOT_RUN[assignment]]


def build_source(assignment: str) -> str:
    """The text of the self-check of ``assignment``, checked: it compiles, names nothing it
    does not define, defines none of ``FORBIDDEN``, and runs or lists every check of the grader."""
    module = SPECS[assignment]
    with open(TEMPLATE, encoding="utf-8") as f:
        template = f.read().splitlines(keepends=True)
    out, keep, last = [], True, [None]  # last: the file the previous embedded code came from
    for line in template:
        directive = line.strip()
        if not directive.startswith("#@"):
            if keep:
                out.append(line)
            continue
        if directive.startswith("#@#"):  # a comment of the template's own
            continue
        word, *args = directive[2:].split()
        if word == "if":
            keep = args[0] == assignment
        elif word == "end":
            keep = True
        elif not keep:
            continue
        elif word == "header":
            out.append(_header(assignment))
        elif word == "spec":
            out.append(_spec(assignment))
        elif word == "tests":
            out.append(_tests(assignment))
        elif word == "embed":
            out.append(_embed(args, module, last))
        else:
            raise ValueError(f"unknown template directive {directive!r}")
    source = "".join(out)
    _assert_sound(source, assignment)
    return source


# ------------------------------------------------------------------------------------------
def _header(assignment):
    info = ASSIGNMENTS[assignment]
    file, title, check = info["file"], info["title"], f"check_{assignment}.py"
    rows = [(key, str(c.points), registry.render(c.description)) for key, c in CHECKS[assignment].items()]
    width = max(len(r[0]) for r in rows)
    table = "\n".join(f"    {key:<{width}}  {points:>3}  {text}" + ("  [not run here]" if key in NOT_RUN[assignment] else "")
                      for key, points, text in rows)
    hw5 = assignment == "hw5"
    not_run = list(NOT_RUN[assignment])
    not_run = ", ".join(not_run[:-1]) + " and " + not_run[-1]
    paragraphs = [
        f"It needs torch{' and torchvision' if hw5 else ''}, nothing else: no network, a few seconds. It imports "
        f"your file in a temporary folder (the network blocked{', MNIST replaced by 16 images in memory' if hw5 else ''}, "
        "on the CPU) and runs the autograder's checks on it: the same check names and the same messages as on "
        "Gradescope. One line per check: PASS, FAIL (with the grader's message), SKIP (it waits for another check "
        "to pass) or N/A (not run here, see below); then a count. Exit status: 0 when every check it runs passed, "
        "1 otherwise, 2 for a wrong argument, 130 on Ctrl-C.",
        f"Not run here: {not_run} compare your code with the reference solution, given its weights, which this "
        "file does not have; Gradescope runs them. So passing every check here does not guarantee full marks: the "
        "layer checks see which layers run and in which order, not how forward() combines their results. "
        + ("The V, optimizer and train checks run on your own D and G here (the grader uses nets of its own), so "
           "they wait for your D and G to run; train waits for V_value and V_grads." if hw5 else
           "The ResNet checks give your ResNet a placeholder in place of your Block, as the grader gives it its "
           "own Block: a mistake in your Block costs only the Block checks."),
        f"Generated by `python autograde.py --student-check {assignment} {check}` from the autograder's own code "
        "(autograder/, autograde_worker.py): the functions below are copied from it, with the handout's numbers "
        "as data. It holds no solution. Do not edit it; ask your TA for a new one.",
    ]
    usage = (f"    python {check:<14}                 checks ./{file}\n"
             f"    python {check} path/to/{file}\n"
             f"    pytest {check:<14}                 the same checks as tests (CHECK_FILE=path/to/{file})")
    wrap = [textwrap.fill(p, 96) for p in paragraphs]
    return (f'#!/usr/bin/env python3\n"""Self-check for {title}: run it before you submit your {file}.\n\n{usage}\n\n'
            f"{wrap[0]}\n\n    {'check':<{width}}  pts  what it checks\n{table}\n\n{wrap[1]}\n\n{wrap[2]}\n" + '"""\n')


def _literal(value):
    text = repr(value)
    assert ast.literal_eval(text) == value, f"{value!r} is not literal data"
    return text


def _spec(assignment):
    module = SPECS[assignment]
    info = ASSIGNMENTS[assignment]
    values = {"BLOCK_TABLE": module._block_table("C"), "RESNET_TABLE": module._resnet_table("C")} if assignment == "hw2" else {}
    lines = [_banner(f"THE SPEC: the handout's numbers, as data (autograder/checks/{assignment}.py)"),
             f"ASSIGNMENT, FILE, TITLE = {assignment!r}, {info['file']!r}, {info['title']!r}"]
    for name, comment in SPEC[assignment]:
        value = values[name] if name in values else getattr(module, name)
        if name in _TABLES:
            rows = "".join(f"    {_literal(op)},  # {i}\n" for i, op in enumerate(value, 1))
            lines.append(f"{name} = [  # {comment}\n{rows}]")
        else:
            lines.append(f"{name} = {_literal(value)}" + (f"  # {comment}" if comment else ""))
    for name in _SOURCE_SPEC[assignment]:
        lines.append(_source(module, name).rstrip("\n"))
    if assignment == "hw5":
        lines.append("STANDIN = None  # (the grader sends its stand-in nets here; this file uses yours)")
    else:
        lines.append("BLOCK_STANDIN = 'the placeholder'  # (the grader's own Block; this file uses a placeholder)")
    lines.append(f"ALLOWED_MODULES = {_literal(ALLOWED_MODULES)}  # what your file may import (and the standard library)")
    lines.append("OTHER_FILES = " + _literal({i['file']: a for a, i in ASSIGNMENTS.items() if a != assignment}))
    rows = "".join(f"    ({key!r}, {c.points}, {registry.render(c.description)!r}),\n" for key, c in CHECKS[assignment].items())
    lines.append(f"CHECKS = [  # the grader's checks, in its order: (key, points, what it checks)\n{rows}]")
    rows = "".join(f"    {key!r}: {text!r},\n" for key, text in NOT_RUN[assignment].items())
    lines.append(f"NOT_RUN = {{  # the checks this file cannot run\n{rows}}}")
    return "\n".join(lines) + "\n"


def _banner(title):
    rule = "# " + "=" * 90
    return f"\n{rule}\n# {title}\n{rule}"


def _tests(assignment):
    out = []
    for key, c in CHECKS[assignment].items():
        out.append(f'def test_{key}():\n    """{registry.render(c.description)}"""\n    _pytest_result({key!r})\n')
    return "\n\n".join(out)


def _embed(refs, module, last):
    """The source of each ``module:name`` (``checks``: the assignment's checks file) as the grader
    writes it, with ``W.`` dropped and the substitutions applied; a comment names the file it
    comes from (when it differs from ``last[0]``'s) and each change."""
    blocks = []
    for ref in refs:
        where, _, name = ref.partition(":")
        source_module = module if where == "checks" else EMBED_FROM[where]
        text = _W_PREFIX.sub("", _source(source_module, name))
        origin = os.path.relpath(inspect.getsourcefile(source_module), runner.HERE)
        notes = [f"# (copied from {origin})"] if origin != last[0] else []
        last[0] = origin
        if ref in SUBSTITUTIONS:
            why, changes = SUBSTITUTIONS[ref]
            for old, new, times in changes:
                assert text.count(old) == times, f"{ref}: expected {times} x {old!r} in the grader's code"
                text = text.replace(old, new)
            notes.append(f"# (changed here: {why})")
        indent = re.match(r"[ ]*", text).group()
        blocks.append("".join(f"{indent}{note}\n" for note in notes) + text)
    gap = "\n" if "." in refs[0].partition(":")[2] else "\n\n"  # methods: one blank line; functions: two
    return gap + gap.join(blocks)


def _source(module, qualname):
    """The lines of ``qualname`` (a function, class, method or module-level assignment) in
    ``module``'s file, decorators included."""
    path = inspect.getsourcefile(module)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = text.splitlines(keepends=True)
    body, node = ast.parse(text).body, None
    for part in qualname.split("."):
        node = next((n for n in body if _defines(n, part)), None)
        if node is None:
            raise LookupError(f"{path} defines no {qualname}")
        body = getattr(node, "body", [])
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "".join(lines[start - 1:node.end_lineno])


def _defines(node, name):
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return node.name == name
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
    return False


# ------------------------------------------------------------------------------------------
def defined_names(source):
    """Every name a ``def`` or ``class`` of ``source`` defines (at any depth), and every
    module-level assignment."""
    names = set()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    for node in tree.body:
        for target in getattr(node, "targets", []):
            names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def undefined_names(source):
    """Global names the functions of ``source`` read that neither the file nor builtins define."""
    top = symtable.symtable(source, "<self-check>", "exec")
    known = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()} | set(dir(builtins))
    known |= {"__file__", "__doc__", "__name__"}
    missing = set()

    def walk(table):
        for s in table.get_symbols():
            if (s.is_global() or (table is top and s.is_referenced())) and s.get_name() not in known:
                missing.add(s.get_name())
        for child in table.get_children():
            walk(child)

    walk(top)
    return missing


def _assert_sound(source, assignment):
    compile(source, f"check_{assignment}.py", "exec")
    missing = undefined_names(source)
    assert not missing, f"the self-check uses names it does not define: {sorted(missing)}"
    answers = defined_names(source) & set(FORBIDDEN)
    assert not answers, f"the self-check defines {sorted(answers)}"
    tree = ast.parse(source)
    run = next(n.value for n in tree.body if isinstance(n, ast.Assign) and any(
        isinstance(t, ast.Name) and t.id == "RUN" for t in n.targets))
    keys = {ast.literal_eval(k) for k in run.keys} | {"import", "import_quiet"} | set(NOT_RUN[assignment])
    assert keys == set(CHECKS[assignment]), f"checks neither run nor listed: {set(CHECKS[assignment]) ^ keys}"
