#@# The template of the students' self-check (``python autograde.py --student-check hw5|hw2 OUT.py``).
#@#
#@# autograder/student_check.py fills it in; it is not run as it is. Lines starting with "#@" are
#@# directives: "#@ header", "#@ spec" and "#@ tests" become the file's docstring, the handout's
#@# data and the pytest functions; "#@ embed REF ..." the source of the grader's own functions
#@# (REF: module:name, see student_check.EMBED_FROM); "#@ if hw5" ... "#@ end" a part for one
#@# assignment only; "#@#" a comment of the template's. Everything else is copied as it is.
#@ header
import contextlib
import copy
import errno
import functools
import itertools
import math
import os
import re
import shutil
import stat
import sys
import tempfile
import traceback
import types
import warnings

#@ spec


# ==========================================================================================
# THE CHECKS: the grader's own functions (autograder/checks/), run on your file in this process
# ==========================================================================================
# A check is a function of ``c``, your file (see _YourFile below): it returns None (or a note)
# when it passes and raises CheckFail with the message you see when it fails. ``c.ask(op, ...)``
# is a request the grader sends to its worker process; here _YourFile answers it directly.
#@ if hw5
#@ embed checks:_check_net_shape checks:_check_net_layers checks:_check_net_params
#@ embed checks:check_D_shape checks:check_D_layers checks:check_D_params
#@ embed checks:check_G_shape checks:check_G_layers checks:check_G_params
#@ embed checks:check_V_value checks:check_V_grads
#@ embed checks:_adam checks:_check_adam checks:check_D_optimizer checks:check_G_optimizer
#@ embed checks:_tiny_images checks:check_train checks:_loader_images checks:_check_train_data
#@ embed checks:_check_train_steps


# ------------------------------------------------------------------------------------------
# What this self-check puts where the grader uses its own nets or the reference
# ------------------------------------------------------------------------------------------
def _standin(name, seed):
    """Your own ``Discriminator()`` or ``Generator()``, built after ``torch.manual_seed(seed)``.
    (The grader builds its stand-ins here, the handout's tables as nets, so that a mistake in
    your D or G costs only the D and G checks; this file has no such nets and uses yours.)"""
    import torch

    with _YOURS.student_side():
        torch.manual_seed(seed)
        try:
            return _YOURS.build(name, [])
        except Fail as e:
            raise CheckFail(str(e)) from None


def _v_setup():
    """D, G, x and z of the V checks. The grader's: its stand-in nets with the bias of D's last
    Linear raised by 1 (so that D(x) is not 1/2 and the real and fake terms of V differ), 6
    images, 6 latents. Here: your nets, built with the same seeds, treated the same way; or,
    once V is right on yours, hand-set ones (``_YOURS.v_nets == "hand-set"``)."""
    import torch
    from torch import nn

    x, z = _rand(6, *IMAGE, seed=22, kind="uniform"), _rand(6, Z_DIM, seed=23)
    if _YOURS.v_nets == "hand-set":
        D, G = _hand_set_nets()
        return D, G, x.abs().to(_YOURS.dtype), z.to(_YOURS.dtype)
    D, G = _standin("Discriminator", 21), _standin("Generator", 22)
    linears = [m for m in D.modules() if isinstance(m, nn.Linear) and m.bias is not None]
    if linears:
        with torch.no_grad():
            linears[-1].bias.add_(1.0)
    return D, G, as_input(D, x), as_input(G, z)


def _hand_set_nets():
    """A D and a G that are not networks: G(z) is an image of -0.5 everywhere, D(x) is 0.8 for
    an image of mean > 0 (the real images of the check) and 0.3 for any other (G's). So
    V = log 0.8 + log(1 - 0.3) = -0.580: V is a sum of logs of probabilities, never positive."""
    import torch
    from torch import nn

    class HandSetD(nn.Module):
        def forward(self, x):
            real = x.reshape(len(x), -1).mean(dim=1) > 0
            return torch.where(real, 0.8, 0.3).to(x.dtype)

    class HandSetG(nn.Module):
        def forward(self, z):
            return torch.full((len(z), *IMAGE), -0.5, dtype=z.dtype)

    return HandSetD(), HandSetG()


def _v_reference(D, G, x, z, dtype):
    """The three terms the V checks compare with, from D's outputs (float64, no gradient):
    mean log D(x), mean log(1 - D(G(z))) and mean log D(G(z)), each log clamped at -100 as the
    grader (and BCELoss) does. The grader computes them on its stand-ins; here on your nets."""
    import numpy as np
    import torch

    with _YOURS.student_side(), torch.no_grad():
        d_real = D(x).detach().cpu().double().numpy().reshape(-1)
        d_fake = D(G(z)).detach().cpu().double().numpy().reshape(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.maximum(np.log(d_real), -100).mean(), np.maximum(np.log(1 - d_fake), -100).mean(),
                np.maximum(np.log(d_fake), -100).mean())


def _expected_V_gradients(D, G, x, z):
    """Fills the .grad of D's and G's parameters with the gradient of
    V = mean log D(x) + mean log(1 - D(G(z))) (the grader backpropagates its own V here): by the
    chain rule from D's outputs, dV/dD(x)_i = 1 / (N D(x)_i) and
    dV/dD(G(z))_j = -1 / (M (1 - D(G(z))_j)), then back through your D and G."""
    import torch

    with _YOURS.student_side():
        for p in itertools.chain(D.parameters(), G.parameters()):
            p.grad = None
        d_real, d_fake = D(x).reshape(-1), D(G(z)).reshape(-1)
        torch.autograd.backward([d_real, d_fake], [1 / (d_real.numel() * d_real.detach()),
                                                   -1 / (d_fake.numel() * (1 - d_fake.detach()))])


def _v_by_your_calculate_V(D, G, x, z, dtype):
    """Where the grader's train check redoes the starter's iteration with its own V, this file
    uses your calculate_V (train is checked only once V_value and V_grads pass): returned as the
    grader's three terms, (your V, 0, None), computed on these D and G."""
    gan = _YOURS.gan_for_V()
    nets = getattr(gan, "D", None), getattr(gan, "G", None)
    gan.D, gan.G = D, G
    try:
        with _YOURS.student_side(dtype=x.dtype):
            return _YOURS.call("calculate_V(x, z)", gan.calculate_V, x, z), 0.0, None
    except Fail as e:
        raise CheckFail(str(e)) from None
    finally:
        gan.D, gan.G = nets


def _ask_v(c, D, G, x, z, grads):
    """The grader's V request (its worker puts its stand-ins in a GAN() of yours): here your
    calculate_V(x, z) in a GAN() of yours whose D and G are these nets."""
    return c.ask("V", D=D, G=G, x=x, z=z, grads=grads)


def _check_V_value_twice(c):
    """V_value: the grader's check on your D and G, then on hand-set ones (V's sign)."""
    c.v_nets = "yours"
    check_V_value(c)
    c.v_nets = "hand-set"
    try:
        check_V_value(c)
    except CheckFail as e:
        raise CheckFail(f"with a hand-set D (D(x) = 0.8 on the real images, 0.3 on G's): {e}") from None
    finally:
        c.v_nets = "yours"


def _check_train_and_V(c):
    """train: the grader's check (your train(1) on one batch equals the starter's iteration),
    then how V moved: up in the D step, down in the G step."""
    c.v_nets = "yours"
    check_train(c)
    req, r = c.last_train
    D0, G0, D1, G1 = (_standin(name, 0) for name in ("Discriminator", "Generator", "Discriminator", "Generator"))
    for net, tensors in ((D0, req["D"]), (G0, req["G"]), (D1, r["D"]), (G1, r["G"])):
        with _YOURS.student_side():
            _YourFile.set_params(net, tensors)
    x, z_d, z_g = r["reals"][0], r["zs"][0], r["zs"][-1]

    def V(D, G, z):
        x_in, z_in = as_input(D, x), as_input(G, z.reshape(-1, Z_DIM))
        real, fake, _ = _v_reference(D, G, x_in, z_in, None)
        return float(real + fake)

    before_d, after_d = V(D0, G0, z_d), V(D1, G0, z_d)
    before_g, after_g = V(D1, G0, z_g), V(D1, G1, z_g)
    if not after_d > before_d:
        raise CheckFail(f"the D step did not raise V (from {before_d:.6f} to {after_d:.6f}): D must maximize V")
    if not after_g < before_g:
        raise CheckFail(f"the G step did not lower V (from {before_g:.6f} to {after_g:.6f}): G must minimize V")
    return (f"ok: the D step raised V from {before_d:.6f} to {after_d:.6f}, the G step lowered it from "
            f"{before_g:.6f} to {after_g:.6f}")


def _nets_build(session):
    """None when Discriminator() and Generator() can be built (GAN() holds them), else why not."""
    for name in ("Discriminator", "Generator"):
        try:
            _standin(name, 0)
        except CheckFail as e:
            return (f"not checked: {e}; this check runs your GAN() with your own D and G (the grader uses its "
                    f"own), so they must be built first")
    return None


def _nets_run(session):
    """None when your D and G can stand in for the grader's in the V checks: D(x), G(z) and
    D(G(z)) are tensors, D's values in (0, 1); else why not."""
    import torch

    why = _nets_build(session)
    if why:
        return why
    D, G = _standin("Discriminator", 21), _standin("Generator", 22)
    x, z = as_input(D, _rand(6, *IMAGE, seed=22, kind="uniform")), as_input(G, _rand(6, Z_DIM, seed=23))
    problem = None
    with _YOURS.student_side(), torch.no_grad():
        try:
            outs = {"D(x)": D(x), "G(z)": G(z)}
            if isinstance(outs["G(z)"], torch.Tensor):
                outs["D(G(z))"] = D(outs["G(z)"])
        except (Exception, SystemExit) as e:  # noqa: BLE001 - your code's error, reported
            problem = f"they raised {_YOURS.exc(e)}"
    if problem is None:
        for what, out in outs.items():
            if not isinstance(out, torch.Tensor) or not out.numel():
                problem = f"{what} is not a tensor with values"
            elif what != "G(z)" and not ((out > 0) & (out < 1)).all():
                problem = f"{what} has values outside (0, 1)"
            if problem:
                break
    if problem:
        return (f"not checked: your D and G must run first ({problem}; see D_shape and G_shape): the V checks run "
                f"on your own D and G here (the grader uses its own)")
    return None


def _v_checks_passed(session):
    failed = [k for k in ("V_value", "V_grads") if session.result(k)[0] != "PASS"]
    if failed:
        return (f"not checked: train() runs your calculate_V, which must pass {' and '.join(failed)} first (the "
                f"grader checks train with its own V)")
    return _nets_run(session)


RUN = {  # check -> (how this file runs it, what must hold first: a function giving why not, or None)
    "D_shape": (check_D_shape, None), "D_layers": (check_D_layers, None), "D_params": (check_D_params, None),
    "G_shape": (check_G_shape, None), "G_layers": (check_G_layers, None), "G_params": (check_G_params, None),
    "V_value": (_check_V_value_twice, _nets_run), "V_grads": (check_V_grads, _nets_run),
    "D_optimizer": (check_D_optimizer, _nets_build), "G_optimizer": (check_G_optimizer, _nets_build),
    "train": (_check_train_and_V, _v_checks_passed),
}
#@ end
#@ if hw2
#@ embed checks:RESNET_PARAMS checks:_hw2_request checks:_hw2_input
#@ embed checks:check_Block_shape checks:_check_no_bias checks:_check_layers checks:check_Block_no_bias
#@ embed checks:check_Block_layers checks:_check_skip
#@ embed checks:check_ResNet_shape checks:check_ResNet_no_bias checks:check_ResNet_layers checks:check_ResNet_params


# ------------------------------------------------------------------------------------------
# What this self-check puts where the grader uses its own Block or the reference
# ------------------------------------------------------------------------------------------
def _with_C(table, c):
    """A table of the spec with its channel count "C" set to ``c``."""
    return [{k: (c if v == "C" else v) for k, v in op.items()} for op in table]


def _block_table(c):
    return _with_C(BLOCK_TABLE, c)


def _resnet_table(c):
    return _with_C(RESNET_TABLE, c)


def _layer_params(op):
    """The number of parameters of one layer of a table."""
    k = op.get("kernel", 1)
    k = k * k if isinstance(k, int) else k[0] * k[1]
    if op["type"] in ("Conv2d", "ConvTranspose2d"):
        return op["in"] * op["out"] * k + (op["out"] if op["bias"] else 0)
    if op["type"] == "Linear":
        return op["in"] * op["out"] + (op["out"] if op["bias"] else 0)
    if op["type"] == "BatchNorm2d":
        return 2 * op["features"]
    return 0


def _placeholder_block_ran(x, channels):
    """Returns x. Called by the placeholder Block below; the layer trace records the call (it
    goes through torch's function dispatch) and reads the handout's Block layers in its place."""
    import torch

    if torch.overrides.has_torch_function((x,)):
        return torch.overrides.handle_torch_function(_placeholder_block_ran, (x,), x, channels)
    return x


def _placeholder_block_class():
    """What your ResNet(C) gets as ``Block`` in the ResNet checks, as the grader gives it its own
    Block there (so that a mistake in your Block costs only the Block checks). It is not a Block:
    it returns its input unchanged. It holds one unused tensor with the Block's parameter count
    (for ResNet_params), and in the layer trace it stands for the handout's Block layers."""
    import torch
    from torch import nn

    class PlaceholderBlock(nn.Module):
        def __init__(self, num_channels):
            super().__init__()
            self.channels = num_channels
            self.unused = nn.Parameter(torch.zeros(sum(map(_layer_params, _block_table(num_channels)))))

        def forward(self, x):
            return _placeholder_block_ran(x, self.channels)

    return PlaceholderBlock


def _with_block_layers(ops):
    """The layer trace with each call of the placeholder Block replaced by the handout's Block layers."""
    return [o for op in ops for o in (_block_table(op["channels"]) if op["type"] == "Block placeholder" else [op])]


def _your_block_without_biases(C):
    """What the grader's _check_skip reads from its reference (``c.ref.Block(C)``): only the list
    of weights, whose convolutions it sets to zero. Here: your own Block(C) (float32, as the
    grader's reference), its convolutions' biases removed (the check then zeroes yours too)."""
    import torch
    from torch import nn

    with _YOURS.student_side():
        try:
            block = _YOURS.build("Block", [C])
        except Fail as e:
            raise CheckFail(str(e)) from None
        for m in block.modules():
            if isinstance(m, nn.modules.conv._ConvNd) and isinstance(m.bias, torch.Tensor):
                m.bias = None
        return block.float()


RUN = {  # check -> (how this file runs it, what must hold first: a function giving why not, or None)
    "Block_shape": (check_Block_shape, None), "Block_no_bias": (check_Block_no_bias, None),
    "Block_layers": (check_Block_layers, None), "ResNet_shape": (check_ResNet_shape, None),
    "ResNet_no_bias": (check_ResNet_no_bias, None), "ResNet_layers": (check_ResNet_layers, None),
    "ResNet_params": (check_ResNet_params, None),
}
#@ end


# ==========================================================================================
# MESSAGES AND LAYERS: the grader's helpers (autograder/registry.py, protocol.py, report.py)
# ==========================================================================================
#@ embed registry:CheckFail registry:WorkerLost registry:_EXPECTED registry:_exp registry:render registry:sci
#@ embed protocol:_Value protocol:_rand protocol:_fmt_op protocol:_compare_layers protocol:_outputs
#@ if hw2
#@ embed protocol:_compare_outputs protocol:_weights_in_use_order
#@ end
#@ embed report:_CONTROL report:_printable


# ==========================================================================================
# RUNNING YOUR FILE: the grader's worker (autograde_worker.py), in this process
# ==========================================================================================
# The grader imports your file in a separate, sandboxed process; on your own machine this file
# imports it itself, in a temporary folder holding a copy of it, with the network blocked,
#@ if hw5
# MNIST replaced by a few images in memory, and the modules next to your file out of reach (the
# grader receives your file alone).
#@ end
#@ if hw2
# and the modules next to your file out of reach (the grader receives your file alone).
#@ end
#@ embed worker:MESSAGE_CAP worker:short worker:exc_message worker:Fail worker:_MEMORY_SIGNS worker:out_of_memory
#@ embed worker:NETWORK_LOG
#@ embed worker:install_network_block worker:AllowedImports worker:load_module worker:patched
#@ embed worker:_arg worker:_norm worker:_conv_padding worker:describe_op worker:trace worker:as_input
#@ if hw2
#@ embed worker:ordered_tensors worker:load_by_order

_handout_describe_op = describe_op  # the grader's, above


def describe_op(name, args, kwargs):
    """The grader's describe_op, and one more entry: the placeholder Block (see
    _placeholder_block_class) in your ResNet's layer trace."""
    if name == "_placeholder_block_ran":
        return {"type": "Block placeholder", "channels": int(args[1])}
    return _handout_describe_op(name, args, kwargs)
#@ end
#@ if hw5
#@ embed worker:MNIST_STANDIN_SEED worker:install_data_stubs worker:PatchOnImport
#@ end
#@ embed runner:_CappedText runner:_snapshot


def decode_tensor(t):
    """(The grader sends tensors to its worker as bytes; in one process they pass as they are.)"""
    return t


def encode_tensor(t):
    return t.detach().cpu().clone()


def _enc(t):
    return encode_tensor(t)


def _encs(tensors):
    return [encode_tensor(t) for t in tensors]


def encode_value(v):
    """A value your code returned, as the grader's checks receive it."""
    import torch

    if isinstance(v, torch.Tensor):
        return _Value("tensor", encode_tensor(v))
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return _Value("number", float(v))
    return _Value("type", type(v).__name__)


_YOURS = None  # the _YourFile being checked


class _YourFile:
    """Your file, imported here, answering the checks' requests (``c.ask``) as the grader's worker
    does. The methods marked "(the worker's)" are the worker's own, copied."""

    def __init__(self, path):
        self.original = os.path.abspath(path)
        self.work = tempfile.mkdtemp(prefix=f"check_{ASSIGNMENT}_")
        self.label = FILE  # the grader copies your file under this name: its messages name it so
        self.path = os.path.join(self.work, FILE)
        shutil.copyfile(path, self.path)
        self.mod = None
        self.dtype = None  # torch's default dtype as your file left it
        self.printed = _CappedText()  # what your code printed (kept out of this file's report)
        self.hide_expected = False  # (the grader's --hide-expected: here every expected value is shown)
#@ if hw5
        self.v_nets, self.last_train, self._gan = "yours", None, None
#@ end
#@ if hw2
        self.ref = types.SimpleNamespace(Block=_your_block_without_biases)  # what _check_skip reads as the reference
#@ end

    # -- where your code runs: a temporary folder, no network, only your file, prints kept
    @contextlib.contextmanager
    def surroundings(self):
        """Around your code, as the grader's worker has it: the work folder as the current
        folder, the network blocked, only the course's modules importable (nothing next to your
        file: the grader receives your file alone), prints kept out of the report, the CPU."""
        import torch

        cwd, path, out, err, bytecode = os.getcwd(), list(sys.path), sys.stdout, sys.stderr, sys.dont_write_bytecode
        hidden = {os.path.realpath(p) for p in ("", cwd, os.path.dirname(self.original),
                                                os.path.dirname(os.path.abspath(__file__)))}
        sys.path[:] = [p for p in sys.path if os.path.realpath(p) not in hidden]
        undo_network = install_network_block()
        undo_imports = AllowedImports(self.path, ALLOWED_MODULES).install()
        sys.stdout = sys.stderr = self.printed
        sys.dont_write_bytecode = True
        os.chdir(self.work)
        try:
            no = {name: functools.wraps(getattr(module, "is_available"))(lambda: False)  # (torch reads __wrapped__)
                  for name, module in (("cuda", torch.cuda), ("mps", torch.backends.mps))}
            with patched(torch.cuda, is_available=no["cuda"]), patched(torch.backends.mps, is_available=no["mps"]):
                yield
        finally:
            os.chdir(cwd)
            sys.stdout, sys.stderr, sys.dont_write_bytecode = out, err, bytecode
            undo_imports()
            undo_network()
            sys.path[:] = path

    @contextlib.contextmanager
    def student_side(self, dtype=None):
        """Your code runs with torch's default dtype as your file set it (or ``dtype``); the
        checks' own code with float32, as on the grader's side."""
        import torch

        mine = torch.get_default_dtype()
        torch.set_default_dtype(dtype or self.dtype or torch.float32)
        try:
            yield
        finally:
            if dtype is None:
                self.dtype = torch.get_default_dtype()
            torch.set_default_dtype(mine)

    def import_file(self):
        """Import your file: (ok, the import check's message, the import_quiet check's message)."""
        import torch

        before = _snapshot([self.work])
        self.printed, network = _CappedText(), len(NETWORK_LOG)
        sys.stdout = sys.stderr = self.printed
        name = f"your_{ASSIGNMENT}_{len(_IMPORTED)}"
        _IMPORTED.append(name)
        undo = install_mnist_stand_in()  # a download at import gets the images in memory
        try:
            with warnings.catch_warnings(), self.student_side():  # library warnings are not your prints
                warnings.simplefilter("ignore")
                self.mod = load_module(name, self.path)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 - SystemExit, MemoryError, anything your file raised
            return False, f"importing your {self.label} failed: {exc_message(e, self.path, self.label)}", ""
        finally:
            undo()
        torch.set_num_threads(1)  # as the grader's worker: the nets are small
        side = []
        if self.printed.total:
            text = self.printed.text()[:400].strip()
            side.append(f"it printed {self.printed.total} characters"
                        + (f", starting with: {text[:200]!r}" if text else ""))
        after = _snapshot([self.work])
        changed = sorted(p for p in after if before.get(p) != after[p]) + sorted(p for p in before if p not in after)
        if changed:
            shown = ", ".join(os.path.relpath(p, self.work) for p in changed[:3])
            side.append(f"it created or changed {len(changed)} file(s): {shown}")
        if NETWORK_LOG[network:]:
            side.append(f"it tried to open a network connection ({NETWORK_LOG[network]}, blocked)")
        return True, "ok", ("importing your file must only define things, but " + "; ".join(side)) if side else ""

    def close(self):
        if self.mod is not None:
            sys.modules.pop(self.mod.__name__, None)
        shutil.rmtree(self.work, ignore_errors=True)

    # -- the requests of the checks
    def ask(self, op, **req):
        """One request of a grader's check, answered here: the reply, or CheckFail with the
        message the grader's worker would give."""
        fn = getattr(self, f"op_{op}")
        with self.student_side():
            try:
                reply = fn(req)
            except Fail as e:
                raise CheckFail(short(str(e))) from None
            except KeyboardInterrupt:
                raise
            except BaseException as e:  # noqa: BLE001 - your code raised
                raise CheckFail(short(f"raised {self.exc(e)}")) from None
#@ if hw2
        if op == "trace":
            reply["ops"] = _with_block_layers(reply["ops"])
#@ end
#@ if hw5
        if op == "train":
            self.last_train = req, reply
#@ end
        return reply

    def model(self, req):
        """(The worker's ``model``: your class, built after ``torch.manual_seed(seed)``.)"""
        import torch

        torch.manual_seed(int(req.get("seed", 0)))
#@ if hw2
        # ResNet gets the placeholder as its Block, where the grader gives it its own Block
        classes = {"Block": _placeholder_block_class()} if req.get("standin") else {}
        with patched(self.mod, **classes):
            return self.build(req["cls"], req.get("args", []))
#@ end
#@ if hw5
        return self.build(req["cls"], req.get("args", []))
#@ end
#@ embed worker:Worker.exc worker:Worker.need worker:Worker.build worker:Worker.call worker:Worker.set_params
#@ embed worker:Worker.op_forward worker:Worker.op_trace
#@ if hw2
#@ embed worker:Worker.op_function
#@ end
#@ if hw5
#@ embed worker:Worker.op_optimizer worker:Worker.op_train worker:Worker._train_once

    def make_gan(self, req, fallback=False):
        """(The worker's ``make_gan``: your GAN(); the grader puts its stand-in D and G in it, here
        they are yours. Data loading is stubbed: no MNIST download.)"""
        import torch

        cls = self.need("GAN")
        classes = {name: self.need(name) for name in ("Discriminator", "Generator")}
        undo = install_data_stubs(self.mod, _tiny_images().to(torch.get_default_dtype()))
        try:
            return cls(), classes
        except Exception as e:  # noqa: BLE001
            if not fallback:
                raise Fail(f"GAN() raised {self.exc(e)}") from None
            gan = cls.__new__(cls)  # calculate_V can still be checked without __init__
            gan.D, gan.G = classes["Discriminator"](), classes["Generator"]()
            return gan, classes
        finally:
            for fn in reversed(undo):
                fn()

    def op_V(self, req):
        """(The worker's ``op_V``, with these D and G in place of its stand-ins.)"""
        import torch

        gan, _ = self.make_gan(req, fallback=True)
        D, G = req["D"], req["G"]
        gan.D, gan.G = D, G
        for p in itertools.chain(D.parameters(), G.parameters()):
            p.grad = None
        x, z = as_input(D, req["x"]), as_input(G, req["z"])
        V = self.call("calculate_V(x, z)", gan.calculate_V, x, z)
        reply = {"value": encode_value(V), "requires_grad": isinstance(V, torch.Tensor) and bool(V.requires_grad),
                 "grads_D": None, "grads_G": None}
        if req.get("grads") and reply["requires_grad"] and V.numel() == 1:
            self.call("calculate_V(x, z).backward()", V.reshape(()).backward)
            reply["grads_D"] = [encode_value(p.grad) for p in D.parameters()]
            reply["grads_G"] = [encode_value(p.grad) for p in G.parameters()]
        return reply

    def gan_for_V(self):
        """A GAN() of yours, built once, whose calculate_V the train check uses."""
        if self._gan is None:
            with self.student_side():
                try:
                    self._gan = self.make_gan({}, fallback=True)[0]
                except Fail as e:
                    raise CheckFail(str(e)) from None
        return self._gan
#@ end


def install_mnist_stand_in():
    """While your file is imported, torchvision's MNIST serves a few images from memory."""
#@ if hw5
    import torch

    undo = install_data_stubs(types.SimpleNamespace(), _tiny_images().to(torch.get_default_dtype()))
    return lambda: [fn() for fn in reversed(undo)]
#@ end
#@ if hw2
    return lambda: None
#@ end


_IMPORTED = []  # the module names your file was imported under (one per run)


# ==========================================================================================
# RUNNING THE CHECKS: `python check_<hw>.py [FILE]` and `pytest check_<hw>.py`
# ==========================================================================================
class _Session:
    """The checks of one file, each run once, in the grader's order."""

    def __init__(self, path):
        global _YOURS
        self.results = {}
        self.yours = _YOURS = _YourFile(path)
        self.imported = None

    def result(self, key):
        """(status, message): status PASS, FAIL, SKIP (it needs another check to pass first) or
        N/A (this file cannot run it)."""
        if key not in self.results:
            self.results[key] = self._run(key)
        return self.results[key]

    def _run(self, key):
        if key in NOT_RUN:
            return "N/A", NOT_RUN[key]
        if self.imported is None:
            with self.yours.surroundings():
                self.imported = self.yours.import_file()
        ok, message, quiet = self.imported
        if key == "import":
            return ("PASS" if ok else "FAIL"), message
        if not ok:
            return "FAIL", "not graded: import failed (see the import check)"
        if key == "import_quiet":
            return ("FAIL", quiet) if quiet else ("PASS", "ok")
        check, needs = RUN[key]
        with self.yours.surroundings():
            why = needs(self) if needs else None
            if why:
                return "SKIP", why
            try:
                return "PASS", check(self.yours) or "ok"
            except CheckFail as e:
                return "FAIL", str(e)
            except WorkerLost as e:
                return "FAIL", f"{e} during this check"
            except KeyboardInterrupt:
                raise
            except Exception as e:  # noqa: BLE001 - something this file did not foresee
                where = traceback.extract_tb(e.__traceback__)[-1]
                return "FAIL", (f"this self-check could not use your code's answer ({type(e).__name__}: {short(e, 300)}"
                                f", line {where.lineno} of {os.path.basename(where.filename)})")

    def close(self):
        global _YOURS
        self.yours.close()
        _YOURS = None


def run_checks(path):
    """Every check of the grader on the file at ``path``: [(status, check, message)], in order."""
    import torch

    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    session = _Session(path)
    try:
        results = []
        for key, _, _ in CHECKS:
            status, message = session.result(key)
            results.append((status, key, render(message)))
        return results
    finally:
        session.close()
        torch.set_default_dtype(dtype)
        torch.set_num_threads(threads)


def _report_line(status, key, message, width):
    first, *rest = _printable(message).split("\n")
    return "\n".join([f"{status:<4}  {key:<{width}}  {first}"] + [" " * (width + 8) + "| " + line for line in rest])


def _file_to_check(args, prog):
    """The path to check, or (None, the one line that says what is wrong)."""
    if len(args) > 1 or (args and args[0].startswith("-")):
        return None, f"{prog}: usage: python {prog} [path/to/{FILE}]"
    path = args[0] if args else os.environ.get("CHECK_FILE") or FILE
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, FILE)):
            return None, f"{prog}: no {FILE} in the folder {path}"
        path = os.path.join(path, FILE)
    if not os.path.exists(path):
        return None, (f"{prog}: no such file: {path} (run it in the folder of your {FILE}, or give its path: "
                      f"python {prog} path/to/{FILE})")
    if not os.path.isfile(path):
        return None, f"{prog}: {path} is not a regular file"
    if not os.access(path, os.R_OK):
        return None, f"{prog}: cannot read {path}"
    name = os.path.basename(path)
    if name in OTHER_FILES:
        return None, f"{prog}: {name} is {OTHER_FILES[name]}'s file; this self-check is for {FILE} ({ASSIGNMENT})"
    if not name.endswith(".py"):
        return None, f"{prog}: {path} is not a Python file (.py); give your {FILE}"
    return path, ""


def main(argv=None):
    """The command line: one line per check, then the count. Returns the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    prog = os.path.basename(sys.argv[0]) if argv is None else f"check_{ASSIGNMENT}.py"
    if args in (["-h"], ["--help"]):
        print(__doc__.strip())
        return 0
    path, problem = _file_to_check(args, prog)
    if path is None:
        print(problem, file=sys.stderr)
        return 2
    if os.path.basename(path) != FILE:
        print(f"note: Gradescope grades a file named {FILE}; checking {path} as if it had that name")
    results = run_checks(path)
    width = max(len(key) for _, key, _ in results)
    for status, key, message in results:
        print(_report_line(status, key, message, width), flush=True)
    counts = {s: sum(1 for r in results if r[0] == s) for s in ("PASS", "FAIL", "SKIP", "N/A")}
    ran = len(results) - counts["N/A"]
    not_run = ", ".join(key for status, key, _ in results if status == "N/A")
    print(f"{FILE}: {counts['PASS']} of {ran} checks passed, {counts['FAIL']} failed, {counts['SKIP']} skipped"
          + (f"; not run here: {not_run} (the grader compares them with the reference solution)" if not_run else ""))
    return 0 if counts["PASS"] == ran else 1


# -- under pytest: one test per check (the file from CHECK_FILE, else ./<FILE>)
_PYTEST = {}


def _pytest_result(key):
    import pytest

    if "session" not in _PYTEST:
        path, problem = _file_to_check([], f"check_{ASSIGNMENT}.py")
        if path is None:
            pytest.exit(problem + f" (under pytest: CHECK_FILE=path/to/{FILE} pytest {__file__})", returncode=2)
        _PYTEST["session"] = _Session(path)
    status, message = _PYTEST["session"].result(key)
    message = _printable(render(message))
    if status == "FAIL":
        pytest.fail(f"{key}: {message}", pytrace=False)
    if status in ("SKIP", "N/A"):
        pytest.skip(f"{key}: {message}")


def teardown_module(module):
    if "session" in _PYTEST:
        _PYTEST.pop("session").close()


#@ tests


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print(f"\n{os.path.basename(sys.argv[0])}: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # the output went to a pipe that closed (| head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
