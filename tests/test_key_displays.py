"""The key's displayed formulas, its checked inline formulas and its `claim` blocks.

docs/written_answers.md states each final answer twice: as LaTeX for the reader and as an
```answer``` block for the machine (checked in test_written_answers.py). This file ties the LaTeX
to the blocks. Each $$display$$ is split at its top-level relations (=, <=, :=, =>) into
segments; a small LaTeX evaluator below (sums, products, fractions, indexed symbols such as
p^{(i)}_x, functions such as N(q | mu, sigma)) evaluates every segment that is not a name at
random points, and the test checks
  - each segment the spec ties to a reference equals it (the part's answer block, evaluated
    from the key, or an independent computation: autograd, scipy, finite differences);
  - consecutive segments of one derivation satisfy the relation between them (a step that
    does not follow from the previous one fails);
  - conditions such as "... = 0 => x = ..." hold when the stated solution is substituted.
sympy's parse_latex is not used: with either backend it rejects most of these displays (\\Big(,
\\mid, \\pi after a digit, indexed p^{(i)}_x, \\sum_{i,j}), so the evaluator is a few lines here.
A display that cannot be evaluated carries `<!-- unchecked: reason -->` right after it.

The display-mutation test plants sign flips, index swaps, factors of 2 and swapped fractions in
every checked formula and requires >= 90% of them to fail a check; the six errors of issue 26 are
planted in the key's text and each must fail.
"""

import itertools
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from test_written_answers import KEY, _blocks, _ev, _fields

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"

# ==========================================================================================
# A LaTeX evaluator for the notation of the key
# ==========================================================================================
TOKEN = re.compile(r"\\[A-Za-z]+|\\.|:=|\S")
NOISE = {r"\,", r"\;", r"\:", r"\!", r"\ ", r"\quad", r"\big", r"\Big", r"\bigg", r"\Bigg",
         r"\left", r"\right", "~", r"\displaystyle"}
RELATIONS = {"=", ":=", r"\le", r"\leq", r"\ge", r"\geq", "<", ">", r"\ne"}
STATEMENT_BREAKS = {r"\qquad", r"\Rightarrow", r"\implies"}
OPEN, CLOSE = {"(", "[", "{", r"\lVert", r"\lvert", r"\lfloor"}, {")", "]", "}", r"\rVert",
                                                                   r"\rvert", r"\rfloor"}
GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "eta", "lambda", "mu", "nu", "pi", "Pi",
         "psi", "phi", "sigma", "theta", "tau"}
FUNCS = {r"\log": np.log, r"\ln": np.log, r"\exp": np.exp}
COORD = {"x": 0, "y": 1}


class Fn:
    """A function symbol of the env (called when followed by a bracket)."""

    def __init__(self, f):
        self.f = f

    def __call__(self, *a):
        return self.f(*a)


class TV:
    """w^T: its product with a vector is the dot product."""

    def __init__(self, v):
        self.v = np.asarray(v, dtype=float)


def _mul(a, b):
    if isinstance(a, TV):
        return a.v @ np.asarray(b, dtype=float)
    if isinstance(b, TV):
        return TV(a * b.v)
    return a * b


def _neg(a):
    return TV(-a.v) if isinstance(a, TV) else -a


def tokens(s):
    """(token, start, end) of a LaTeX string, spacing commands dropped."""
    return [(m.group(), m.start(), m.end()) for m in TOKEN.finditer(s) if m.group() not in NOISE]


def split(s):
    """A display -> statements -> [(relation before it, [tokens])] at depth 0."""
    stmts, segs, cur, rel, depth = [], [], [], None, 0
    for t in tokens(s):
        x = t[0]
        if x in OPEN:
            depth += 1
        elif x in CLOSE:
            depth -= 1
        if depth == 0 and (x in RELATIONS or x in STATEMENT_BREAKS):
            segs.append((rel, cur))
            cur = []
            if x in STATEMENT_BREAKS:
                stmts.append(segs)
                segs, rel = [], None
            else:
                rel = x
            continue
        cur.append(t)
    segs.append((rel, cur))
    stmts.append(segs)
    out = []
    for segs in stmts:  # drop trailing punctuation and empty pieces a break leaves behind
        segs = [(r, [t for t in c]) for r, c in segs]
        while segs and segs[-1][1] and segs[-1][1][-1][0] in (".", ",", ";"):
            segs[-1][1].pop()
        if segs == [(None, [])]:
            continue
        out.append(segs)
    return out


class Parser:
    def __init__(self, toks):
        self.t = [x[0] for x in toks]
        self.i = 0

    def peek(self, k=0):
        return self.t[self.i + k] if self.i + k < len(self.t) else None

    def next(self):
        x = self.peek()
        if x is None:
            raise SyntaxError("unexpected end")
        self.i += 1
        return x

    def expect(self, x):
        if self.next() != x:
            raise SyntaxError(f"expected {x} at {self.i}: {self.t}")

    def parse(self):
        e = self.expr()
        if self.peek() is not None:
            raise SyntaxError(f"left over: {self.t[self.i:]}")
        return e

    def expr(self):
        terms = []
        sign = 1
        if self.peek() in ("+", "-"):
            sign = -1 if self.next() == "-" else 1
        terms.append((sign, self.term()))
        while self.peek() in ("+", "-"):
            s = -1 if self.next() == "-" else 1
            terms.append((s, self.term()))

        def ev(env):
            total = None
            for s, t in terms:
                v = t(env) if s > 0 else _neg(t(env))
                total = v if total is None else total + v
            return total
        return ev

    def starts_factor(self, x):
        if x is None:
            return False
        if x in ("(", "[", "{") or x.isalnum():
            return True
        return x.startswith("\\") and x not in RELATIONS | STATEMENT_BREAKS | CLOSE | {
            r"\cdot", r"\times", r"\mid", r"\in"}

    def term(self):
        fs = [(None, self.factor())]
        while True:
            x = self.peek()
            if x in (r"\cdot", r"\times", "*", "/"):
                self.next()
                fs.append((x, self.factor()))
            elif self.starts_factor(x):
                fs.append((None, self.factor()))
            else:
                break

        def ev(env):
            v = fs[0][1](env)
            for op, f in fs[1:]:
                v = v / f(env) if op == "/" else _mul(v, f(env))
            return v
        return ev

    def factor(self):
        a = self.atom()
        while self.peek() == "^":
            self.next()
            if self.peek() == r"\top":
                self.next()
                a = (lambda a: lambda env: TV(a(env)))(a)
                continue
            e = self.arg()
            a = (lambda a, e: lambda env: a(env) ** e(env))(a, e)
        return a

    def arg(self):
        """A brace group (an expression) or a single token (a number or a symbol)."""
        if self.peek() == "{":
            self.next()
            e = self.expr()
            self.expect("}")
            return e
        x = self.next()
        if x.isdigit():
            return lambda env: int(x)
        self.i -= 1
        return self.symbol()

    def raw_group(self):
        """The tokens of a brace group (or one token), unparsed."""
        if self.peek() != "{":
            return [self.next()]
        self.next()
        depth, out = 1, []
        while True:
            x = self.next()
            depth += (x == "{") - (x == "}")
            if depth == 0:
                return out
            out.append(x)

    @staticmethod
    def atoms(raw):
        out = []
        for x in raw:
            if x in ("{", "}", "(", ")", "^", ","):
                continue
            if x == "'" and out:
                out[-1] += "'"
            else:
                out.append(x.lstrip("\\"))
        return out

    def symbol(self):
        x = self.next()
        if x in (r"\tilde", r"\hat", r"\bar", r"\mathcal", r"\mathbb", r"\mathrm"):
            inner = self.raw_group()
            name = {"\\tilde": "tilde_", "\\hat": "hat_", "\\bar": "bar_", "\\mathcal": "cal_",
                    "\\mathbb": "bb_", "\\mathrm": ""}[x] + "".join(t.lstrip("\\") for t in inner)
        elif x.startswith("\\") and x[1:] in GREEK or (len(x) == 1 and x.isalpha()):
            name = x.lstrip("\\")
        else:
            raise SyntaxError(f"not a symbol: {x}")
        sub, sup = [], []
        while True:
            if self.peek() == "_":
                self.next()
                sub += self.atoms(self.raw_group())
            elif self.peek() == "^" and self.peek(1) == "{" and self.peek(2) == "(":
                # ^{(i)}: an index, not a power (find the matching brace)
                j, depth = self.i + 1, 0
                while True:
                    depth += (self.t[j] == "{") - (self.t[j] == "}")
                    if depth == 0:
                        break
                    j += 1
                if self.t[j - 1] != ")":
                    break
                self.next()
                sup += self.atoms(self.raw_group())
            else:
                break
        if "t" in sup:  # ^{(t)}, ^{(t+1)}: the iteration, not an index
            sup = []
        key = name + ("_" + "".join(sub) if sub else "") + ("^" + "".join(sup) if sup else "")

        def ev(env):
            loop = env["_loop"]
            if not sub and not sup and name in loop:
                return loop[name]
            if key in env:
                return env[key]
            v = env[name]
            idx = []
            for a in sup + sub:
                if a in loop:
                    idx.append(loop[a] - 1)
                elif a.isdigit():
                    idx.append(int(a) - 1)
                elif a in COORD:
                    idx.append(COORD[a])
                else:
                    raise KeyError(f"{key}: index {a}")
            return v[tuple(idx)] if idx else v
        return ev

    def brackets(self):
        """( ... ) or [ ... ]: the comma / semicolon / \\mid separated expressions."""
        o = self.next()
        c = {"(": ")", "[": "]", "{": "}"}[o]
        args = [self.expr()]
        while self.peek() in (",", ";", r"\mid"):
            self.next()
            args.append(self.expr())
        self.expect(c)
        return o, args

    def atom(self):
        x = self.peek()
        if x is None:
            raise SyntaxError("missing operand")
        if x.isdigit():
            digits = ""
            while self.peek() is not None and self.peek().isdigit():
                digits += self.next()
            return lambda env: int(digits)
        if x in ("(", "[", "{"):
            o, args = self.brackets()
            if len(args) == 1:
                return args[0]
            if o != "[":
                raise SyntaxError("a tuple outside a function call")
            return lambda env: np.array([a(env) for a in args], dtype=float)
        if x in (r"\frac", r"\tfrac", r"\dfrac"):
            self.next()
            a, b = self.arg(), self.arg()
            return lambda env: a(env) / b(env)
        if x == r"\sqrt":
            self.next()
            a = self.arg()
            return lambda env: np.sqrt(a(env))
        if x in FUNCS:
            self.next()
            f, a = FUNCS[x], self.factor()
            return lambda env: f(a(env))
        if x in (r"\max", r"\min"):
            self.next()
            _, args = self.brackets()
            f = np.maximum if x == r"\max" else np.minimum
            return lambda env: f(args[0](env), args[1](env))
        if x in (r"\lVert", r"\lvert", r"\lfloor"):
            self.next()
            e = self.expr()
            self.expect({r"\lVert": r"\rVert", r"\lvert": r"\rvert", r"\lfloor": r"\rfloor"}[x])
            f = {r"\lVert": np.linalg.norm, r"\lvert": np.abs, r"\lfloor": np.floor}[x]
            return lambda env: f(e(env))
        if x in (r"\sum", r"\prod"):
            return self.bigop()
        s = self.symbol()
        if self.peek() in ("(", "["):  # f(x) is a call when f is a function of the env
            _, args = self.brackets()

            def ev(env):
                f = s(env)
                if isinstance(f, Fn):
                    return f(*[a(env) for a in args])
                if len(args) != 1:
                    raise SyntaxError("a tuple after a symbol that is not a function")
                return _mul(f, args[0](env))
            return ev
        return s

    def bigop(self):
        op = self.next()
        lo = hi = members = None
        names = []
        if self.peek() == "_":
            self.next()
            raw = self.raw_group()
            if r"\in" in raw:
                k = raw.index(r"\in")
                names = self.atoms(raw[:k])
                members = Parser([(t, 0, 0) for t in raw[k + 1:]]).parse()
            elif "=" in raw:
                k = raw.index("=")
                names = self.atoms(raw[:k])
                lo = Parser([(t, 0, 0) for t in raw[k + 1:]]).parse()
            else:
                names = self.atoms(raw)
        if self.peek() == "^":
            self.next()
            hi = self.arg()
        body = self.term()
        if not names:
            raise SyntaxError("a sum without an index")

        def ev(env):
            if members is not None:
                ranges = [list(members(env))]
            elif lo is not None:
                ranges = [range(int(lo(env)), int(hi(env)) + 1)]
            else:
                ranges = [range(1, env["_range"][n.rstrip("'")] + 1) for n in names]
            total = 0 if op == r"\sum" else 1
            for vals in itertools.product(*ranges):
                e2 = {**env, "_loop": {**env["_loop"], **dict(zip(names, vals))}}
                v = body(e2)
                total = total + v if op == r"\sum" else total * v
            return total
        return ev


def parse(toks):
    return Parser(toks).parse()


# ==========================================================================================
# The key's displays and the inline formulas this file checks
# ==========================================================================================
DISPLAY = re.compile(r"\$\$(.*?)\$\$(\s*<!-- unchecked: ([^>]*?) -->)?", re.S)
ANSWER = re.compile(r"^```answer ([\w.]+)", re.M)


def _part_at(text, pos):
    m = ANSWER.search(text, pos)
    return m.group(1) if m else None


def displays(text):
    """[(part, n, latex, unchecked reason or None)]; a display that starts with \\quad continues
    the previous one (it is parsed joined to it)."""
    out, count = [], {}
    for m in DISPLAY.finditer(text):
        part = _part_at(text, m.end())
        n = count.get(part, 0)
        count[part] = n + 1
        out.append((part, n, m.group(1).strip(), m.group(3)))
    return out


def _section(text, part):
    """The text of a part: from the end of the previous answer block to its own block."""
    end = text.index(f"```answer {part}")
    starts = [m.end() for m in re.finditer(r"^```\s*$", text[:end], re.M)]
    return text[(starts[-1] if starts else 0):end]


def inline(text, part, prefix):
    """The inline $...$ formula of a part that starts with prefix (exactly one)."""
    sec = re.sub(r"\$\$.*?\$\$", "", _section(text, part), flags=re.S)
    found = [m.group(1) for m in re.finditer(r"\$([^$]+)\$", sec) if m.group(1).startswith(prefix)]
    assert len(found) == 1, f"{part}: {len(found)} inline formulas start with {prefix!r}"
    return found[0]


# ---- random points: one env per family of notation
def _B(pid, **ns):
    [(_, body)] = _blocks(_B.text)[pid]
    return _ev(body, ns)


_B.text = None


def _base(rng, **kw):
    return {"_loop": {}, "_range": {}, "e": math.e, **kw}


def _eq1(q, mean, sigma):
    d2 = float(np.sum((np.asarray(mean, dtype=float) - q) ** 2))
    return math.exp(-d2 / (2 * sigma**2)) / (math.sqrt(2 * math.pi) * sigma)


def env_reg(rng, N=4):
    """hw5 Q1: points P, Q, translation T, prior Pi, responsibilities R, free i, j."""
    P, Q = rng.normal(size=(N, 2)), rng.normal(size=(N, 2))
    R = rng.dirichlet(np.ones(N), size=N)
    Z = np.eye(N)[rng.integers(0, N, size=N)]
    i, j = (int(v) + 1 for v in rng.choice(N, size=2, replace=False))  # i != j
    return _base(rng, p=P, q=Q, T=rng.normal(size=2) * 0.5, Pi=rng.dirichlet(np.ones(N), size=N),
                 sigma=0.5 + rng.random(), r=R, R=R, Z=Z, N=N, M=N // 2, pi=math.pi,
                 **{"lambda": -0.5 - rng.random(N)},
                 cal_N=Fn(lambda q, mean, s: _eq1(q, mean, s)),
                 _loop={"i": i, "j": j}, _range={"i": N, "j": N, "k": N})


def _reg_ns(env, **kw):
    return dict(P=env["p"], Q=env["q"], T=env["T"], Pi=env["Pi"], sigma=env["sigma"], Z=env["Z"],
                R=env["R"], N=env["N"], M=env["M"], **kw)


def _ij(env):
    return env["_loop"]["i"] - 1, env["_loop"]["j"] - 1


def _lagrangian(env):
    R, Pi, lam = env["R"], env["Pi"], env["lambda"]
    return float(np.sum(R * np.log(Pi)) + np.sum(lam * (Pi.sum(axis=1) - 1)))


def _with_pi(env, i, j, value):
    Pi = env["Pi"].copy()
    Pi[i, j] = value
    return {**env, "Pi": Pi}


def _lagrange_extra(val, env):
    i, j = _ij(env)
    h = 1e-6
    fd = (val((0, 1), _with_pi(env, i, j, env["Pi"][i, j] + h))
          - val((0, 1), _with_pi(env, i, j, env["Pi"][i, j] - h))) / (2 * h)
    _close(val((1, 1), env), fd, rtol=1e-5)  # the derivative is the derivative of L
    # "= 0 => Pi_ij = ...": the stated solution solves the stated condition
    _close(val((1, 1), _with_pi(env, i, j, val((2, 1), env))), 0.0, atol=1e-9)
    # and with lambda_i = -sum_j r_ij (= -1) it is r_ij
    env2 = {**env, "lambda": -env["R"].sum(axis=1)}
    _close(val((2, 1), env2), env["R"][i, j])


def _grad_t_extra(val, env):
    h = 1e-6
    ns = _reg_ns(env)
    fd = np.array([(_B("hw5.Q1.c.i", **{**ns, "T": env["T"] + h * e})["Qpsi"]
                    - _B("hw5.Q1.c.i", **{**ns, "T": env["T"] - h * e})["Qpsi"]) / (2 * h)
                   for e in np.eye(2)])
    _close(val((0, 1), env), fd, rtol=1e-5, atol=1e-7)
    T_new = _B("hw5.Q1.d.i", **ns)["T_new"]
    _close(val((0, 1), {**env, "T": T_new}), np.zeros(2), atol=1e-9)


def env_kl(rng):
    """hw5 Q2(b): p zero on part of q's support; y_gt, w, x."""
    p = rng.dirichlet(np.ones(8)) * (rng.random(8) < 0.6)
    p[0] = max(p[0], 0.1)
    p /= p.sum()
    q = rng.dirichlet(np.ones(8))
    w, x = rng.normal(size=5), rng.normal(size=5)
    y_gt = int(rng.integers(0, 2))
    a = float(w @ x)
    Qy = {0: 1 / (1 + math.exp(-a)), 1: math.exp(-a) / (1 + math.exp(-a))}  # Eq. (4)
    return _base(rng, p=Fn(lambda x: p[x]), q=Fn(lambda x: q[x]), S=np.flatnonzero(p > 0),
                 D_KL=Fn(lambda p_, q_: stats.entropy(p, q)), _p=p, _q=q, w=w, x=x, y_gt=y_gt,
                 Q=Fn(lambda y, x_: Qy[int(y)]), s=(2 * y_gt - 1) * a)


def env_vae(rng):
    """hw5 Q2(c): mu, sigma, u, g, v, free i."""
    mu, sigma = rng.normal(size=2), 0.3 + rng.random(2) * 2
    return _base(rng, mu=mu, sigma=sigma, u=mu + rng.normal(size=2) * sigma, pi=math.pi,
                 g=rng.normal(size=2), v=rng.normal(size=2), tilde_g=None, tilde_v=None,
                 cal_N=Fn(lambda u, m, c: stats.multivariate_normal(m, c).pdf(u)),
                 Diag=Fn(lambda *d: np.diag(d)), _loop={"i": int(rng.integers(1, 3))},
                 _range={"i": 2})


def _vae(env):
    env["tilde_g"], env["tilde_v"] = env["g"], env["v"]
    return env


def _dlogvar(env):
    """dL/d log(sigma_i^2) by autograd."""
    lv = torch.tensor(np.log(env["sigma"] ** 2), requires_grad=True)
    z = torch.exp(0.5 * lv) * torch.tensor(env["v"]) + torch.tensor(env["mu"])
    z.backward(torch.tensor(env["g"]))
    return lv.grad.numpy()[env["_loop"]["i"] - 1]


def _bern(x, pk):
    return float(np.prod(stats.bernoulli.pmf(x, pk)))


def env_mix(rng, n=4, D=5, K=3):
    """hw2 Q1: data X, parameters p, pi (old) and tilde p, tilde pi (new), eta, one-hot Z."""
    X = (rng.random((n, D)) < 0.5).astype(float)
    p, tp = rng.uniform(0.1, 0.9, size=(K, D)), rng.uniform(0.1, 0.9, size=(K, D))
    pi, tpi = rng.dirichlet(np.ones(K)), rng.dirichlet(np.ones(K))
    eta = rng.dirichlet(np.ones(K), size=n)
    Z = np.eye(K)[rng.integers(0, K, size=n)]

    def P(*a):  # P(x | p_k), P(z | pi), P(x | z, p)
        if len(a) == 3:
            return float(np.prod([_bern(a[0], a[2][k]) ** a[1][k] for k in range(K)]))
        if len(a[0]) == K:
            return float(np.prod(a[1] ** a[0]))
        return _bern(a[0], a[1])
    i, k, d = (int(rng.integers(1, m + 1)) for m in (n, K, D))
    return _base(rng, x=X, p=p, pi=pi, K=K, D=D, tilde_p=tp, tilde_pi=tpi, z=Z, Z=Z, eta=eta,
                 N=eta.sum(axis=0), n=n, P=Fn(P), _X=X, _loop={"i": i, "k": k, "d": d},
                 _range={"i": n, "j": K, "k": K, "d": D})


class _Index:
    """z^{(i)}_k as the index pair (i, k), for eta(z^{(i)}_k)."""

    def __getitem__(self, ik):
        return ik


def _eta_fn(env):
    env["z"] = _Index()
    env["eta"] = Fn(lambda ik, E=env["eta"]: E[ik])
    return env


def _mix_ns(env, **kw):
    return {**dict(X=env["_X"], p=env["p"], pi=env["pi"], Z=env["Z"]), **kw}


def _ci_extra(val, env):
    k = env["_loop"]["k"] - 1
    tp = env["tilde_p"].copy()
    tp[k] = val((1, 1), env)
    _close(val((0, 1), {**env, "tilde_p": tp}), 0.0, atol=1e-9)


def env_deep(rng, n=50):
    """hw2 Q2: w1, w2, w3, x and the forward values; sigma_1, sigma_2 are the sigmoid."""
    w1, w2, w3, x = (rng.normal(scale=2.0, size=n) for _ in range(4))
    sig = Fn(lambda u: 1 / (1 + np.exp(-u)))
    h1 = sig(w1 * x)
    h2 = sig(w2 * h1)
    return _base(rng, w_1=w1, w_2=w2, w_3=w3, x=x, u_1=w1 * x, h_1=h1, u_2=w2 * h1, h_2=h2,
                 sigma_1=sig, sigma_2=sig, u=rng.normal(scale=4.0, size=n), n=n)


def _deep_autograd(env):
    """df/dw1, df/dw2, df/dw3, df/du1, df/du2 by autograd."""
    w1, w2, w3 = (torch.tensor(env[k], requires_grad=True) for k in ("w_1", "w_2", "w_3"))
    u1 = w1 * torch.tensor(env["x"])
    u1.retain_grad()
    u2 = w2 * torch.sigmoid(u1)
    u2.retain_grad()
    (w3 * torch.sigmoid(u2)).sum().backward()
    return {k: t.grad.numpy() for k, t in (("w1", w1), ("w2", w2), ("w3", w3), ("u1", u1),
                                            ("u2", u2))}


def _dsig(env):
    u = torch.tensor(env["u"], requires_grad=True)
    torch.sigmoid(u).sum().backward()
    return u.grad.numpy()


def _deep_ns(env):
    return dict(w1=env["w_1"], w2=env["w_2"], w3=env["w_3"], x=env["x"], h1=env["h_1"],
                h2=env["h_2"], u1=env["u_1"], u2=env["u_2"])


def _with_lambda(env):
    return {**env, "lambda": -env["n"] * (0.5 + np.random.default_rng(9).random())}


def _lagr_pi(env, tpi):
    return float(env["N"] @ np.log(tpi) + env["lambda"] * (tpi.sum() - 1))


def _dl_dpi(env):
    """dL/d tilde pi_k by central differences of the Lagrangian."""
    k, h = env["_loop"]["k"] - 1, 1e-6
    e = np.eye(len(env["tilde_pi"]))[k] * h
    return (_lagr_pi(env, env["tilde_pi"] + e) - _lagr_pi(env, env["tilde_pi"] - e)) / (2 * h)


def _pi_root(env):
    """The root of N_k / pi + lambda = 0 in pi, numerically."""
    from scipy.optimize import brentq

    Nk = env["N"][env["_loop"]["k"] - 1]
    return brentq(lambda t: Nk / t + env["lambda"], 1e-9, 1e9, xtol=1e-14)


class Spec:
    def __init__(self, env, shape, refs, skip=((0, 0),), nochain=(), extra=None, prep=None):
        self.env, self.shape, self.refs = env, shape, refs
        self.skip, self.nochain, self.extra, self.prep = set(skip), set(nochain), extra, prep


R = env_reg
# (part, n) -> Spec for displays; (part, prefix) -> Spec for the inline formulas checked
SPECS = {
    # ---- hw5 Q1
    ("hw5.Q1.a.i", 0): Spec(R, (3,), {(0, 1): lambda e: _eq1(e["q"][_ij(e)[1]], e["p"][_ij(e)[0]]
                                                              + e["T"], e["sigma"]),
                                      (0, 2): lambda e: _eq1(e["q"][_ij(e)[1]], e["p"][_ij(e)[0]]
                                                              + e["T"], e["sigma"])}),
    ("hw5.Q1.a.i", 1): Spec(R, (2,), {(0, 1): lambda e: _B("hw5.Q1.a.i", **_reg_ns(e))["logP"]}),
    ("hw5.Q1.a.ii", 0): Spec(R, (2,), {(0, 1): lambda e: _B("hw5.Q1.a.ii", **_reg_ns(e))["logP"]}),
    ("hw5.Q1.b.i", 0): Spec(R, (3,), {(0, 2): lambda e: _B("hw5.Q1.b.i", **_reg_ns(e))["R"][_ij(e)]},
                            skip=((0, 0), (0, 1))),
    ("hw5.Q1.c.i", 0): Spec(R, (3,), {(0, 2): lambda e: _B("hw5.Q1.c.i", **_reg_ns(e))["Qpsi"]},
                            skip=((0, 0), (0, 1))),
    ("hw5.Q1.c.i", 1): Spec(R, (2,), {(0, 1): lambda e: _B("hw5.Q1.c.i", **_reg_ns(e))["Qpsi"]}),
    ("hw5.Q1.c.ii", 0): Spec(R, (2,), {(0, 1): lambda e: _B("hw5.Q1.c.ii", **_reg_ns(e))["Qpsi"]}),
    ("hw5.Q1.d.i", 0): Spec(R, (2, 3), {(0, 1): lambda e: _B("hw5.Q1.d.i", **_reg_ns(e))["Pi_new"],
                                        (1, 1): lambda e: _B("hw5.Q1.d.i", **_reg_ns(e))["T_new"],
                                        (1, 2): lambda e: _B("hw5.Q1.d.i", **_reg_ns(e))["T_new"]},
                            skip=((0, 0), (1, 0))),
    ("hw5.Q1.d.i", 1): Spec(R, (2, 3, 2), {(0, 1): _lagrangian}, skip=((0, 0), (1, 0), (2, 0)),
                            nochain=((1, 2),), extra=_lagrange_extra,
                            prep=lambda e: {**e, "Pi": e["Pi"] * 1.3}),  # off the constraint
    ("hw5.Q1.d.ii", 0): Spec(R, (2, 2), {(0, 1): lambda e: _B("hw5.Q1.d.ii", **_reg_ns(e))["T_new"],
                                         (1, 0): lambda e: e["N"] // 2}),
    ("hw5.Q1.d.i", r"\lambda_i ="): Spec(R, (3,), {(0, 1): lambda e: -1.0}),
    ("hw5.Q1.d.i", r"\nabla_T Q"): Spec(R, (3,), {}, nochain=((0, 2),), extra=_grad_t_extra),
    ("hw5.Q1.d.ii", r"T^{(t+1)}_x"): Spec(
        R, (2,), {(0, 1): lambda e: _B("hw5.Q1.d.ii", **_reg_ns(e))["T_new"][0]}),
    ("hw5.Q1.d.ii", r"\tfrac12"): Spec(
        R, (1,), {(0, 0): lambda e: _B("hw5.Q1.d.ii", **_reg_ns(e))["T_new"]}, skip=(),
        prep=lambda e: {**e, "bar_p": e["p"].mean(axis=0)}),
    # ---- hw5 Q2
    ("hw5.Q2.b.i", 0): Spec(env_kl, (5,), {(0, 0): lambda e: -stats.entropy(e["_p"], e["_q"]),
                                           (0, 3): lambda e: _B("hw5.Q2.b.i", p=e["_p"],
                                                                q=e["_q"])["bound"]}, skip=()),
    ("hw5.Q2.b.ii", 0): Spec(env_kl, (3,), {(0, 1): lambda e: _B(
        "hw5.Q2.b.ii", y_gt=e["y_gt"], w=e["w"], x=e["x"])["KL"]}),
    ("hw5.Q2.b.ii", r"D_{KL} ="): Spec(env_kl, (2,), {(0, 1): lambda e: _B(
        "hw5.Q2.b.ii", y_gt=e["y_gt"], w=e["w"], x=e["x"])["KL"]}),
    ("hw5.Q2.b.ii", r"-\log Q(0"): Spec(env_kl, (2,), {}, skip=()),
    ("hw5.Q2.b.ii", r"-\log Q(1"): Spec(env_kl, (2,), {}, skip=()),
    ("hw5.Q2.b.ii", r"\max"): Spec(env_kl, (1,), {(0, 0): lambda e: _B(
        "hw5.Q2.b.ii", y_gt=e["y_gt"], w=e["w"], x=e["x"])["KL"]}, skip=()),
    ("hw5.Q2.c.ii", 0): Spec(env_vae, (3,), {
        (0, 1): lambda e: stats.multivariate_normal(np.zeros(2), np.eye(2)).pdf(
            (e["u"] - e["mu"]) / e["sigma"]) / np.prod(e["sigma"]),
        (0, 2): lambda e: (lambda b: stats.multivariate_normal(b["mean"], b["cov"]).pdf(e["u"]))(
            _B("hw5.Q2.c.ii", mu=e["mu"], sigma=e["sigma"]))}),
    ("hw5.Q2.c.iii", 0): Spec(env_vae, (2, 2, 2), {
        (0, 1): lambda e: _B("hw5.Q2.c.iii", g=e["g"], v=e["v"])["dL_dmu"],
        (1, 1): lambda e: _B("hw5.Q2.c.iii", g=e["g"], v=e["v"])["dL_dsigma1"],
        (2, 1): lambda e: _B("hw5.Q2.c.iii", g=e["g"], v=e["v"])["dL_dsigma2"]},
        skip=((0, 0), (1, 0), (2, 0)), prep=_vae),
    ("hw5.Q2.c.iii", r"\partial L/\partial\log"): Spec(env_vae, (2,), {(0, 1): _dlogvar},
                                                      prep=_vae),
    # ---- hw2 Q1
    ("hw2.Q1.a.i", 0): Spec(env_mix, (2,), {(0, 1): lambda e: _B(
        "hw2.Q1.a.i", x=e["x"], q=e["q"])["Px"]}, prep=lambda e: {**e, "x": e["_X"][0],
                                                                  "q": e["p"][0]}),
    ("hw2.Q1.a.ii", 0): Spec(env_mix, (3,), {(0, 1): lambda e: _B(
        "hw2.Q1.a.ii", **_mix_ns(e, x=e["_X"][e["_loop"]["i"] - 1]))["Px"]}),
    ("hw2.Q1.a.iii", 0): Spec(env_mix, (2,), {(0, 1): lambda e: _B("hw2.Q1.a.iii",
                                                                   **_mix_ns(e))["logL"]}),
    ("hw2.Q1.b.i", 0): Spec(env_mix, (2,), {(0, 1): lambda e: _B(
        "hw2.Q1.b.i", pi=e["pi"], z=e["Z"][e["_loop"]["i"] - 1])["Pz"]}),
    ("hw2.Q1.b.ii", 0): Spec(env_mix, (2,), {(0, 1): lambda e: _B(
        "hw2.Q1.b.ii", **_mix_ns(e, x=e["_X"][e["_loop"]["i"] - 1],
                                 z=e["Z"][e["_loop"]["i"] - 1]))["Px_z"]}),
    ("hw2.Q1.b.iii", 0): Spec(env_mix, (3,), {(0, 2): lambda e: _B("hw2.Q1.b.iii",
                                                                   **_mix_ns(e))["PZD"]}),
    ("hw2.Q1.b.iv", 0): Spec(env_mix, (3,), {(0, 1): lambda e: _B("hw2.Q1.b.iv", **_mix_ns(e))[
        "eta"][e["_loop"]["i"] - 1, e["_loop"]["k"] - 1]}),
    ("hw2.Q1.b.v", 0): Spec(env_mix, (2,), {(0, 1): lambda e: math.log(_B("hw2.Q1.b.iii", **_mix_ns(
        e, p=e["tilde_p"], pi=e["tilde_pi"]))["PZD"])},
        extra=lambda val, e: _close(val((0, 1), {**e, "z": e["eta"]}), _B(
            "hw2.Q1.b.v", X=e["_X"], eta=e["eta"], pi_new=e["tilde_pi"], p_new=e["tilde_p"])["EQ"])),
    ("hw2.Q1.c.i", 0): Spec(env_mix, (4, 2), {
        (0, 1): lambda e: _B("hw2.Q1.c.i", X=e["_X"], eta=e["_eta"], p=e["tilde_p"])["dQ_dp"][
            e["_loop"]["k"] - 1, e["_loop"]["d"] - 1],
        (1, 1): lambda e: _B("hw2.Q1.c.i", X=e["_X"], eta=e["_eta"], p=e["tilde_p"])["p_new"][
            e["_loop"]["k"] - 1]},
        skip=((0, 0), (1, 0)), nochain=((0, 3),), extra=_ci_extra,
        prep=lambda e: _eta_fn({**e, "_eta": e["eta"]})),
    ("hw2.Q1.c.ii", 0): Spec(env_mix, (3,), {(0, 1): lambda e: _B(
        "hw2.Q1.c.ii", eta=e["eta"], n=e["n"])["pi_new"][e["_loop"]["k"] - 1]}),
    ("hw2.Q1.c.ii", r"\mathcal L ="): Spec(env_mix, (2,), {(0, 1): lambda e: float(
        np.sum(e["_eta"] @ np.log(e["tilde_pi"])) + e["lambda"] * (e["tilde_pi"].sum() - 1))},
        prep=lambda e: _eta_fn({**e, "_eta": e["eta"], "lambda": -e["n"] * 0.7,
                                "tilde_pi": e["tilde_pi"] * 1.3})),  # off the constraint
    ("hw2.Q1.c.ii", r"\partial\mathcal L"): Spec(env_mix, (3,), {(0, 1): _dl_dpi},
                                                  nochain=((0, 2),), prep=_with_lambda),
    ("hw2.Q1.c.ii", r"\tilde\pi_k = -"): Spec(env_mix, (2,), {(0, 1): _pi_root}, prep=_with_lambda),
    ("hw2.Q1.c.ii", r"\lambda = -\sum"): Spec(env_mix, (3,), {(0, 2): lambda e: _B(
        "hw2.Q1.c.ii", eta=e["eta"], n=e["n"])["lam"]}),
    # ---- hw2 Q2
    ("hw2.Q2.b", 0): Spec(env_deep, (3,), {
        (0, 1): lambda e: _B("hw2.Q2.b", u=e["u"], sigma1=1 / (1 + np.exp(-e["u"])))["form1"],
        (0, 2): _dsig}),
    ("hw2.Q2.b", r"\frac{d}{du}"): Spec(env_deep, (2,), {(0, 1): _dsig}),
    ("hw2.Q2.b", r"\frac{e^{-u}}"): Spec(env_deep, (2,), {(0, 1): lambda e: 1 - 1 / (
        1 + np.exp(-e["u"]))}, skip=()),
    ("hw2.Q2.d", 0): Spec(env_deep, (3,), {(0, 2): lambda e: _B("hw2.Q2.d", **_deep_ns(e))["df_dw3"],
                                           (0, 1): lambda e: _deep_autograd(e)["w3"]}),
    ("hw2.Q2.e", 0): Spec(env_deep, (3,), {(0, 2): lambda e: _B("hw2.Q2.e", **_deep_ns(e))["df_dw2"]},
                          skip=((0, 0), (0, 1))),
    ("hw2.Q2.f", 0): Spec(env_deep, (2,), {(0, 1): lambda e: _B("hw2.Q2.f", **_deep_ns(e))["df_dw1"]}),
    ("hw2.Q2.f", r"\delta_2 ="): Spec(env_deep, (3,), {(0, 2): lambda e: _deep_autograd(e)["u2"]},
                                      skip=((0, 0), (0, 1))),
    ("hw2.Q2.f", r"\delta_1 ="): Spec(env_deep, (3,), {(0, 2): lambda e: _deep_autograd(e)["u1"]},
                                      skip=((0, 0), (0, 1)),
                                      prep=lambda e: {**e, "delta_2": _deep_autograd(e)["u2"]}),
    ("hw2.Q2.f", r"\partial f/\partial w_2 = \delta"): Spec(
        env_deep, (2,), {(0, 1): lambda e: _B("hw2.Q2.e", **_deep_ns(e))["df_dw2"]},
        prep=lambda e: {**e, "delta_2": _deep_autograd(e)["u2"]}),
    ("hw2.Q2.f", r"\partial f/\partial w_1 = \delta"): Spec(
        env_deep, (2,), {(0, 1): lambda e: _B("hw2.Q2.f", **_deep_ns(e))["df_dw1"]},
        prep=lambda e: {**e, "delta_1": _deep_autograd(e)["u1"]}),
    ("hw2.Q2.g", "(28"): Spec(lambda rng: _base(rng), (2,), {(0, 1): lambda e: int(_fields(
        _blocks(_B.text)["hw2.Q2.g"][0][1])["conv"].split("x")[0])}, skip=()),
}


def _close(a, b, rtol=1e-8, atol=1e-13):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert np.all(np.isfinite(a)) and np.allclose(a, b, rtol=rtol, atol=atol), (a, b)


def _holds(rel, a, b):
    if rel in ("=", ":="):
        _close(a, b)
    elif rel in (r"\le", r"\leq"):
        assert np.all(np.asarray(a) <= np.asarray(b) + 1e-12), (a, rel, b)
    elif rel in (r"\ge", r"\geq"):
        assert np.all(np.asarray(a) >= np.asarray(b) - 1e-12), (a, rel, b)
    else:
        raise AssertionError(f"relation {rel} not checked")


def check_formula(latex, spec, text=None, draws=3):
    """Evaluate a display or an inline formula against its spec (raises on any disagreement)."""
    _B.text = text if text is not None else KEY.read_text()
    stmts = split(latex)
    assert tuple(len(s) for s in stmts) == spec.shape, [len(s) for s in stmts]
    nodes = {(si, k): parse(toks) for si, segs in enumerate(stmts)
             for k, (_, toks) in enumerate(segs) if (si, k) not in spec.skip}
    assert spec.refs or spec.extra or len(nodes) >= 2, "nothing ties this formula to anything"
    for draw in range(draws):
        env = spec.env(np.random.default_rng(draw))
        if spec.prep:
            env = spec.prep(env)
        vals = {key: node(env) for key, node in nodes.items()}
        for key, ref in spec.refs.items():
            _close(vals[key], ref(env))
        for si, segs in enumerate(stmts):
            for k in range(1, len(segs)):
                if (si, k - 1) in nodes and (si, k) in nodes and (si, k) not in spec.nochain:
                    _holds(segs[k][0], vals[(si, k - 1)], vals[(si, k)])
        if spec.extra:
            spec.extra(lambda key, e: nodes[key](e), env)


def formulas(text):
    """[(spec key, latex, unchecked reason)] of every display and every registered inline one."""
    out, items = [], displays(text)
    for idx, (part, n, latex, why) in enumerate(items):
        if latex.startswith(r"\quad"):
            continue  # parsed with the display it continues
        nxt = idx + 1
        while nxt < len(items) and items[nxt][2].startswith(r"\quad"):
            latex = latex + " " + items[nxt][2]
            nxt += 1
        out.append(((part, n), latex, why))
    for key in SPECS:
        if isinstance(key[1], str):
            out.append((key, inline(text, *key), None))
    return out


# ==========================================================================================
# Tests: every display is checked or says why not; each check passes on the key
# ==========================================================================================
def test_every_display_is_checked_or_says_why_not():
    text = KEY.read_text()
    items = displays(text)
    assert len(items) >= 28
    unchecked = [(p, n, why) for p, n, latex, why in items if why]
    for part, n, latex, why in items:
        if latex.startswith(r"\quad"):
            assert not why and (part, n - 1) in SPECS, (part, n)  # the continuation of a checked one
        elif why:
            assert (part, n) not in SPECS and len(why.split()) >= 3, (part, n, why)
        else:
            assert (part, n) in SPECS, f"display {n} of {part} has no check and no unchecked note"
    assert {k for k in SPECS if isinstance(k[1], int)} <= {(p, n) for p, n, _, _ in items}
    assert len(unchecked) <= 3, unchecked


@pytest.mark.parametrize("key", sorted(SPECS, key=str), ids=str)
def test_formula_matches_its_block_and_its_steps_follow(key):
    text = KEY.read_text()
    [latex] = [lat for k, lat, _ in formulas(text) if k == key]
    check_formula(latex, SPECS[key], text)


def test_evaluator_negative_controls():
    """The evaluator reads what is written: a few hand-made wrong formulas are rejected."""
    spec = SPECS[("hw2.Q2.f", 0)]
    good = r"\frac{\partial f}{\partial w_1} = w_3\,h_2(1 - h_2)\,w_2\,h_1(1 - h_1)\,x"
    check_formula(good, spec)
    for bad in (good.replace(r"\,x", ""), good.replace("(1 - h_1)", "(1 + h_1)"),
                good.replace("w_2", "w_1"), good.replace(r"h_1(1", r"h_2(1")):
        with pytest.raises((AssertionError, KeyError, SyntaxError)):
            check_formula(bad, spec)
    with pytest.raises(AssertionError):  # a derivation step that does not follow
        check_formula(r"\frac{\partial\sigma_1}{\partial u} = \frac{e^{-u}}{(1 + e^{-u})^2}"
                      r" = \sigma_1(u)\big(1 + \sigma_1(u)\big)", SPECS[("hw2.Q2.b", 0)])


# ==========================================================================================
# Mutations planted in the formulas: sign flips, index swaps, a factor of 2, swapped fractions
# ==========================================================================================
def _frac_args(s, pos):
    """(start, end) of the two brace arguments of the \\frac at pos, or None."""
    j = pos + len(r"\frac")
    spans = []
    for _ in range(2):
        if j >= len(s) or s[j] != "{":
            return None
        depth, k = 0, j
        while True:
            depth += (s[k] == "{") - (s[k] == "}")
            if depth == 0:
                break
            k += 1
        spans.append((j, k + 1))
        j = k + 1
    return spans


def _evaluated_spans(latex, spec):
    """Character spans of the segments the spec evaluates (mutating a name proves nothing)."""
    spans = []
    for si, segs in enumerate(split(latex)):
        for k, (_, toks) in enumerate(segs):
            if (si, k) not in spec.skip and toks:
                spans.append((toks[0][1], toks[-1][2]))
    return spans


def mutants(latex, spec):
    """[(kind, mutated latex)]: up to 3 sign flips, 2 index swaps, 2 factors of 2, 2 fraction swaps,
    all inside evaluated segments."""
    spans = _evaluated_spans(latex, spec)

    def inside(a, b):
        return any(s <= a and b <= e for s, e in spans)

    out = []
    signs = [m.start() for m in re.finditer(r"[+-]", latex) if inside(m.start(), m.end())]
    for p in sorted(set([signs[0], signs[len(signs) // 2], signs[-1]])) if signs else []:
        out.append(("sign", latex[:p] + {"+": "-", "-": "+"}[latex[p]] + latex[p + 1:]))
    idx = [m for m in re.finditer(r"\^\{\((\w)\)\}|_\{?([ijkd])(?![\w])", latex)
           if inside(m.start(), m.end())]
    swap = {"i": "j", "j": "i", "k": "j", "d": "k", "1": "2", "2": "1"}
    for m in (idx[:1] + idx[-1:]) if len(idx) > 1 else idx:
        g = 1 if m.group(1) else 2
        old = m.group(g)
        if old in swap:
            new = swap[old]
            out.append(("index", latex[:m.start(g)] + new + latex[m.end(g):]))
    pair = [m for m in re.finditer(r"_\{(\w)(\w)\}", latex) if inside(m.start(), m.end())]
    for m in pair[:1]:
        out.append(("index", latex[:m.start(1)] + m.group(2) + m.group(1) + latex[m.end(2):]))
    fracs = [m.start() for m in re.finditer(r"\\frac(?=\{)", latex) if inside(m.start(), m.end())]
    for p in fracs[:1] + fracs[-1:] if len(fracs) > 1 else fracs:
        sp = _frac_args(latex, p)
        if sp:
            (a0, a1), (b0, b1) = sp
            if latex[a0:a1] != latex[b0:b1]:
                out.append(("fraction", latex[:a0] + latex[b0:b1] + latex[a0:a1] + latex[b1:]))
    # a factor of 2 on the first evaluated segment, and on a fraction or a term
    for s, e in spans[:1] + spans[-1:] if len(spans) > 1 else spans:
        body = latex[s:e]
        if body.strip() == "0":
            continue  # 2 * 0 = 0: not a mutant
        if body.lstrip().startswith("-"):
            out.append(("factor 2", latex[:s] + "-2" + body.lstrip()[1:] + latex[e:]))
        else:
            out.append(("factor 2", latex[:s] + "2(" + body + ")" + latex[e:]))
    return [(k, m) for k, m in dict.fromkeys(out) if m != latex]


def _caught(latex, spec):
    try:
        with np.errstate(all="ignore"):
            check_formula(latex, spec, draws=2)
    except Exception:  # noqa: BLE001 - a mutant that breaks the parse or a check is caught
        return True
    return False


def test_display_mutations_are_caught():
    text = KEY.read_text()
    total, missed = 0, []
    for key, latex, why in formulas(text):
        if why:
            continue
        muts = mutants(latex, SPECS[key])
        assert muts, key
        for kind, m in muts:
            total += 1
            if not _caught(m, SPECS[key]):
                missed.append((key, kind, m))
    caught = total - len(missed)
    print(f"display mutations caught: {caught}/{total}")
    assert total >= 150
    assert caught >= 0.9 * total, missed


# ==========================================================================================
# Claims that follow from results: ```claim <part>``` blocks, each a sentence of the prose and
# a predicate over docs/results that must hold
# ==========================================================================================
CLAIM = re.compile(r"^```claim ([\w.]+)\n(.*?)^```$", re.M | re.S)


def _results_ns():
    ns = {}
    for name, path in (("", "resnet_seed0_summary.json"),
                       ("seeds", "resnet_seeds1_2_epochs1000_summary.json")):
        runs = json.loads((RESULTS / path).read_text())["runs"]
        if not name:
            ns["train"] = {r["C"]: r["final_train_error"] for r in runs}
            ns["test"] = {r["C"]: r["final_test_error"] for r in runs}
            ns["gap"] = {C: ns["test"][C] - ns["train"][C] for C in ns["train"]}
        else:
            ns["seeds"] = sorted({r["seed"] for r in runs})
            ns["train_s"] = {(r["seed"], r["C"]): r["final_train_error"] for r in runs}
            ns["test_s"] = {(r["seed"], r["C"]): r["final_test_error"] for r in runs}
            ns["gap_s"] = {k: ns["test_s"][k] - ns["train_s"][k] for k in ns["train_s"]}
    return ns


def claims(text):
    out = []
    for m in CLAIM.finditer(text):
        f = dict(line.split(" = ", 1) for line in m.group(2).splitlines() if " = " in line)
        out.append((m.group(1), f.get("says"), f.get("holds"), m.start()))
    return out


def check_claim(text, part, says, holds, pos):
    """The sentence is in the prose of its part (before the block) and the predicate holds."""
    start = text.rfind("\n### ", 0, pos)
    prose = re.sub(r"\s+", " ", text[start:pos])
    assert says and says in prose, f"{part}: the prose no longer says {says!r}"
    ns = _results_ns()
    glob = {"__builtins__": {"all": all, "min": min, "max": max, "abs": abs}, **ns}
    assert eval(holds, glob) is True, f"{part}: {holds} is false on docs/results"


def test_claims_hold_on_the_results():
    text = KEY.read_text()
    cs = claims(text)
    assert len(cs) >= 6 and {c[0] for c in cs} == {"hw2.Q3.c", "hw2.Q3.d"}
    for c in cs:
        check_claim(text, *c)


def test_claim_negative_controls():
    text = KEY.read_text()
    part, says, holds, pos = next(c for c in claims(text) if "widens" in c[1])
    with pytest.raises(AssertionError):  # the predicate reversed
        check_claim(text, part, says, holds.replace("<", ">"), pos)
    bad = text.replace("error widens:", "error narrows:")
    part, says, holds, pos = next(c for c in claims(bad) if "widens" in c[1])
    with pytest.raises(AssertionError):  # the prose changed under the claim
        check_claim(bad, part, says, holds, pos)


# ==========================================================================================
# The six errors of issue 26, planted one at a time in the key's text: each fails a check
# ==========================================================================================
def _all_checks(text):
    for key, latex, why in formulas(text):
        if not why:
            check_formula(latex, SPECS[key], text, draws=2)
    for c in claims(text):
        check_claim(text, *c)
    _check_weight_shape(text)


def _check_weight_shape(text):
    """hw2 Q2(h): the weight shape and filter size the prose states are those of the block's
    layer (torch's Conv2d: out x in x F x F)."""
    [(_, body)] = _blocks(text)["hw2.Q2.h"]
    f = dict(line.split(" = ", 1) for line in body.splitlines() if " = " in line)
    F = tuple(int(v) for v in f["filter"].split("x"))
    conv = torch.nn.Conv2d(int(f["in_channels"]), int(f["out_channels"]), F)
    o, i, a, b = conv.weight.shape
    sec = _section(text, "hw2.Q2.h")
    assert f"weight shape ${o} \\times {i} \\times {a} \\times {b}$" in sec
    assert f"{o} filters of size\n${a} \\times {b} \\times {i}$" in sec or \
        f"{o} filters of size ${a} \\times {b} \\times {i}$" in sec


PLANTED = [
    ("hw5.Q1.d.i", r"\Pi_{ij} = -\frac{r_{ij}}{\lambda_i}", r"\Pi_{ij} = \frac{r_{ij}}{\lambda_i}"),
    ("hw5.Q2.c.iii", r"\tfrac12\,\tilde g_i\,\tilde v_i\,\sigma_i",
     r"\tilde g_i\,\tilde v_i/(2\sigma_i)"),
    ("hw2.Q2.h", r"50 \times 20 \times 5 \times 5", r"20 \times 50 \times 5 \times 5"),
    ("hw2.Q3.c", "training error widens: the wider", "training error narrows: the wider"),
    ("hw2.Q1.b.iv", r"{\sum_j \pi_j \prod_{d}(p^{(j)}_d)^{x^{(i)}_d}(1 - p^{(j)}_d)",
     r"{\sum_j \pi_j \prod_{d}(p^{(k)}_d)^{x^{(i)}_d}(1 - p^{(k)}_d)"),
    ("hw2.Q1.c.i", r"\frac{x^{(i)}_d}{\tilde p^{(k)}_d} - \frac{1 - x^{(i)}_d}",
     r"\frac{x^{(i)}_d}{\tilde p^{(k)}_d} + \frac{1 - x^{(i)}_d}"),
]


def test_the_key_passes_every_check():
    _all_checks(KEY.read_text())


@pytest.mark.parametrize("part, old, new", PLANTED, ids=[p[0] for p in PLANTED])
def test_issue_26_planted_errors_are_caught(part, old, new):
    text = KEY.read_text()
    assert text.count(old) == 1, old
    with pytest.raises(Exception):  # noqa: B017 - any failing check
        _all_checks(text.replace(old, new))
