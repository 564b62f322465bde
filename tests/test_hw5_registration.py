"""Tests for hw5_registration.py: hw5 Q1, registration by a translation.

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

import hw5_registration as reg  # noqa: E402

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)



# ------------------------------------------------------------------------------------------
# helpers: literal references
# ------------------------------------------------------------------------------------------
def literal_log_n(p, q, T, sigma):
    """Eq. (1), one pair at a time."""
    d2 = sum((p[d] + T[d] - q[d]) ** 2 for d in range(len(p)))
    return -math.log(math.sqrt(2 * math.pi) * sigma) - d2 / (2 * sigma**2)


def literal_registration_e_step(P, Q, T, Pi, sigma):
    N = len(P)
    R = np.zeros((N, N))
    for i in range(N):
        w = [Pi[i, j] * math.exp(literal_log_n(P[i], Q[j], T, sigma)) for j in range(N)]
        s = sum(w)
        for j in range(N):
            R[i, j] = w[j] / s
    return R


def literal_registration_q(P, Q, R, T, Pi, sigma):
    total = 0.0
    N = len(P)
    for i in range(N):
        for j in range(N):
            if R[i, j] > 0:
                total += R[i, j] * (math.log(Pi[i, j]) + literal_log_n(P[i], Q[j], T, sigma))
    return total


def random_prior(rng, N, zeros=True):
    Pi = rng.dirichlet(np.ones(N), size=N)
    if zeros and N > 2:
        Pi[rng.random((N, N)) < 0.3] = 0.0
        Pi[np.arange(N), rng.integers(0, N, N)] += 0.1
        Pi /= Pi.sum(axis=1, keepdims=True)
    return Pi


def random_registration(rng, N=6, D=2):
    P = rng.normal(size=(N, D)) * 2
    Q = rng.normal(size=(N, D)) * 2
    T = rng.normal(size=D)
    return P, Q, T



# ------------------------------------------------------------------------------------------
# A. registration
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("N", [6, 7])
def test_special_case_1b_ii_closed_form(N):
    """1(b)(ii): first floor(N/2) points matched to q_1, the rest to q_2."""
    rng = np.random.default_rng(N)
    P, Q, T = random_registration(rng, N, 2)
    half = N // 2
    Pi = np.zeros((N, N))
    Pi[:half, 0] = 1.0
    Pi[half:, 1] = 1.0
    R = reg.registration_e_step(P, Q, T, Pi, sigma=0.7)
    np.testing.assert_array_equal(R, Pi)  # a deterministic prior is its own posterior
    T_new, Pi_new = reg.registration_m_step(P, Q, R)
    expected = (half * Q[0] + (N - half) * Q[1]) / N - P.mean(axis=0)
    np.testing.assert_allclose(T_new, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(Pi_new, R)


def test_special_case_1a_ii_identity_matching():
    """1(a)(ii): Z = I gives sum_i log Pi_ii - N log(sqrt(2 pi) s) - sum ||p_i+T-q_i||^2 / 2s^2."""
    rng = np.random.default_rng(1)
    N, D, sigma = 9, 2, 0.8
    P, Q, T = random_registration(rng, N, D)
    Pi = random_prior(rng, N, zeros=False)
    expected = (
        np.sum(np.log(np.diag(Pi)))
        - N * (LOG_SQRT_2PI + math.log(sigma))
        - np.sum((P + T - Q) ** 2) / (2 * sigma**2)
    )
    got = reg.registration_complete_log_likelihood(P, Q, np.eye(N), T, Pi, sigma)
    assert got == pytest.approx(expected, rel=1e-12)


def test_complete_log_likelihood_literal_and_zero_log_zero():
    rng = np.random.default_rng(2)
    N, sigma = 7, 1.3
    P, Q, T = random_registration(rng, N, 3)
    Pi = random_prior(rng, N)
    Z = np.zeros((N, N))
    for i in range(N):  # one match per row, only where Pi > 0
        Z[i, rng.choice(np.flatnonzero(Pi[i] > 0))] = 1
    expected = sum(
        math.log(Pi[i, j]) + literal_log_n(P[i], Q[j], T, sigma)
        for i in range(N)
        for j in range(N)
        if Z[i, j]
    )
    got = reg.registration_complete_log_likelihood(P, Q, Z, T, Pi, sigma)
    assert np.isfinite(got)  # Pi_ij = 0 where Z_ij = 0 contributes 0 * log 0 = 0
    assert got == pytest.approx(expected, rel=1e-12)
    i, j = np.argwhere(Pi == 0)[0]
    Z[i] = 0
    Z[i, j] = 1
    assert reg.registration_complete_log_likelihood(P, Q, Z, T, Pi, sigma) == -np.inf


@pytest.mark.parametrize("seed", range(4))
def test_registration_e_step_and_q_match_literal_loops(seed):
    rng = np.random.default_rng(seed)
    N, D = 6 + seed, 1 + seed % 3
    P, Q, T = random_registration(rng, N, D)
    Pi = random_prior(rng, N)
    sigma = float(rng.uniform(0.5, 3.0))
    R = reg.registration_e_step(P, Q, T, Pi, sigma)
    R_ref = literal_registration_e_step(P, Q, T, Pi, sigma)
    np.testing.assert_allclose(R, R_ref, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(R.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(R[Pi == 0] == 0)
    q = reg.registration_expected_log_likelihood(P, Q, R, T, Pi, sigma)
    assert q == pytest.approx(literal_registration_q(P, Q, R, T, Pi, sigma), rel=1e-10)
    ll = reg.registration_log_likelihood(P, Q, T, Pi, sigma)
    ll_ref = sum(
        math.log(sum(Pi[i, j] * math.exp(literal_log_n(P[i], Q[j], T, sigma)) for j in range(N)))
        for i in range(N)
    )
    assert ll == pytest.approx(ll_ref, rel=1e-10)


def test_registration_m_step_maximises_q():
    rng = np.random.default_rng(5)
    N, D, sigma = 8, 2, 0.9
    P, Q, T_old = random_registration(rng, N, D)
    Pi_old = random_prior(rng, N)
    R = reg.registration_e_step(P, Q, T_old, Pi_old, sigma)
    T, Pi = reg.registration_m_step(P, Q, R)
    q_best = reg.registration_expected_log_likelihood(P, Q, R, T, Pi, sigma)
    for _ in range(20):  # perturb T: Q never increases
        T_pert = T + rng.normal(size=D) * rng.choice([1e-3, 1e-1, 1.0])
        assert reg.registration_expected_log_likelihood(P, Q, R, T_pert, Pi, sigma) <= q_best
    for eps in [1e-4, 1e-2, 0.3, 1.0]:  # perturb Pi along the simplex: Q never increases
        Pi_pert = (1 - eps) * Pi + eps * random_prior(rng, N, zeros=False)
        assert reg.registration_expected_log_likelihood(P, Q, R, T, Pi_pert, sigma) <= q_best
    # scipy.optimize on Q(T) agrees with the closed form
    opt = minimize(lambda t: -reg.registration_expected_log_likelihood(P, Q, R, t, Pi, sigma),
                   x0=np.zeros(D), method="BFGS", options={"gtol": 1e-10})
    np.testing.assert_allclose(opt.x, T, atol=1e-5)
    # and on Q(Pi) for one row, parametrised by a softmax
    i = 3

    def neg_q_row(z):
        Pi_try = Pi.copy()
        Pi_try[i] = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        return -reg.registration_expected_log_likelihood(P, Q, R, T, Pi_try, sigma)

    opt = minimize(neg_q_row, x0=np.zeros(N), method="BFGS")
    np.testing.assert_allclose(np.exp(opt.x) / np.exp(opt.x).sum(), R[i], atol=1e-4)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    N=st.integers(2, 15),
    D=st.integers(1, 3),
    sigma=st.floats(0.05, 5.0),
    update_prior=st.booleans(),
)
def test_registration_log_likelihood_never_decreases(seed, N, D, sigma, update_prior):
    rng = np.random.default_rng(seed)
    P, Q, T0 = random_registration(rng, N, D)
    res = reg.register_translation(P, Q, sigma, T0=T0, Pi0=random_prior(rng, N), max_iter=30,
                                  tol=0.0, update_prior=update_prior)
    ll = res.log_likelihoods
    assert ll.shape == (res.n_iter + 1,) and np.all(np.isfinite(ll))
    assert np.all(np.diff(ll) >= -1e-9 * (1 + np.abs(ll[:-1])))
    assert np.all(np.isfinite(res.R)) and np.allclose(res.R.sum(axis=1), 1)
    np.testing.assert_array_equal(res.matches, res.R.argmax(axis=1))


def test_registration_annealed_recovers_and_literal_locks_in():
    """The measured finding of the issue: N=200 uniform in 10x10, T=(1.5,-0.7), noise 0.05."""
    T_true = np.array([1.5, -0.7])
    P, Q, perm = reg.make_registration_problem(200, T_true, 0.05, "random", seed=0)
    with pytest.warns(reg.ConvergenceWarning,
                      match="register_translation stopped at max_iter=500 without converging"):
        literal = reg.register_translation(P, Q, 0.5)
    assert not literal.converged
    annealed = reg.register_translation(P, Q, 0.5, anneal=5.0)
    assert np.max(np.abs(annealed.T - T_true)) < 0.01
    assert np.mean(annealed.matches == perm) > 0.95
    assert annealed.converged
    # literal EM: locked onto wrong matches far from the truth
    assert np.linalg.norm(literal.T - T_true) > 0.5
    assert np.mean(literal.matches == perm) < 0.15
    # ... and at a worse optimum of the same likelihood
    assert annealed.log_likelihoods[-1] > literal.log_likelihoods[-1]
    # an explicit schedule behaves like the start value
    schedule = np.geomspace(5.0, 0.5, reg.ANNEAL_STEPS)
    explicit = reg.register_translation(P, Q, 0.5, anneal=schedule)
    np.testing.assert_allclose(explicit.T, annealed.T, atol=1e-12)
    np.testing.assert_allclose(explicit.sigmas[: reg.ANNEAL_STEPS], schedule)


def test_registration_shuffled_l_shape_noisy():
    T_true = np.array([-0.8, 1.1])
    P, Q, perm = reg.make_registration_problem(150, T_true, 0.05, "l", seed=3)
    res = reg.register_translation(P, Q, 0.3, anneal=5.0)
    assert np.max(np.abs(res.T - T_true)) < 0.01


def test_registration_no_nan_tiny_sigma_far_points():
    rng = np.random.default_rng(7)
    N = 20
    P = rng.normal(size=(N, 2)) + 1e6  # far from the origin
    Q = P[rng.permutation(N)] + 3.0
    Pi = np.full((N, N), 1.0 / N)
    for sigma in [1e-3, 1e-8, 1e-100]:
        R = reg.registration_e_step(P, Q, np.zeros(2), Pi, sigma)
        assert np.all(np.isfinite(R))
        np.testing.assert_allclose(R.sum(axis=1), 1.0)
        ll = reg.registration_log_likelihood(P, Q, np.zeros(2), Pi, sigma)
        assert np.isfinite(ll)
        res = reg.register_translation(P, Q, sigma, max_iter=5, tol=0.0)
        assert np.all(np.isfinite(res.T)) and np.all(np.isfinite(res.log_likelihoods))
    # Q = P exactly: R is the identity even with a tiny sigma
    R = reg.registration_e_step(P, P, np.zeros(2), Pi, 1e-6)
    np.testing.assert_allclose(R, np.eye(N), atol=1e-12)
    # ... and with Pi = I each log N_ii is Eq. (1) at distance 0 (distances clipped at 0; the
    # expansion's rounding error ~1e-16 * ||a||^2 / (2 sigma^2) is what limits tiny sigma)
    for sigma in [1e-3, 1.0]:
        ll = reg.registration_log_likelihood(P, P, np.zeros(2), np.eye(N), sigma)
        assert ll == pytest.approx(-N * math.log(math.sqrt(2 * math.pi) * sigma), rel=1e-9)


@pytest.mark.parametrize("sigma", [1e-170, 1e-200, 5e-324])
def test_registration_sigma_so_small_that_2_sigma_squared_is_0_raises_value_error(sigma):
    """2 sigma^2 underflows to 0 for sigma <~ 1.5e-162: a ValueError, not ZeroDivisionError."""
    P = np.zeros((4, 2))
    Pi = np.full((4, 4), 0.25)
    for call in [lambda: reg.registration_e_step(P, P, np.zeros(2), Pi, sigma),
                 lambda: reg.registration_log_likelihood(P, P, np.zeros(2), Pi, sigma),
                 lambda: reg.register_translation(P, P, sigma, max_iter=2),
                 lambda: reg.register_translation(P, P, 1.0, anneal=[2.0, sigma])]:
        with pytest.raises(ValueError, match=r"too small: 1 / \(2 (sigma|anneal)\^2\) over"):
            call()


def test_registration_tiny_sigma_far_apart_points_never_nan():
    """sigma = 1e-150 passes validation; with points ~1e5 apart the squared distances in units
    of sigma overflow: a ValueError naming sigma, never an all-NaN R or a NaN log-likelihood.
    Wherever a result is returned it is finite (R: the nearest-neighbour permutation)."""
    rng = np.random.default_rng(3)
    N = 6
    P = rng.uniform(0.0, 1e5, size=(N, 2))
    perm = rng.permutation(N)
    Q = P[perm]
    Pi = np.full((N, N), 1.0 / N)
    T = np.zeros(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow/invalid RuntimeWarning either
        with pytest.raises(ValueError, match="sigma.*too small for the spread of the points"):
            reg.registration_e_step(P, Q, T, Pi, 1e-150)
        with pytest.raises(ValueError, match="sigma.*too small for the spread of the points"):
            reg.registration_log_likelihood(P, Q, T, Pi, 1e-150)
        with pytest.raises(ValueError, match="sigma.*too small for the spread of the points"):
            reg.register_translation(P, Q, 1e-150, max_iter=2)
        n_ok = 0
        for sigma in [1e-100, 1e-140, 1e-145, 1e-148, 1e-150, 1e-155, 1e-160]:
            for scale in [1.0, 1e-3]:
                try:
                    R = reg.registration_e_step(P * scale, Q * scale, T, Pi, sigma)
                    ll = reg.registration_log_likelihood(P * scale, Q * scale, T, Pi, sigma)
                except ValueError as err:
                    assert "sigma" in str(err)
                    continue
                n_ok += 1
                assert np.all(np.isfinite(R)) and np.isfinite(ll)
                np.testing.assert_array_equal(R, np.eye(N)[perm.argsort()])
        assert n_ok >= 4  # the check rejects only what overflows


def test_registration_memory_no_nnd_temporaries():
    """Peak memory of a fit is ~2 (N, N) float64 arrays (log Pi -> Pi, and R), never N*N*D."""
    N = 1500  # points are 2-D
    P, Q, _ = reg.make_registration_problem(N, (1.5, -0.7), 0.05, "random", seed=1)
    tracemalloc.start()
    reg.register_translation(P, Q, 0.5, max_iter=3, tol=0.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    nn = N * N * 8
    assert peak < 2.3 * nn, f"peak {peak / nn:.2f} x N^2 float64"
    assert reg.register_translation(P, Q, 0.5, max_iter=2, tol=0.0).R.dtype == np.float64


@pytest.mark.slow
def test_registration_n10000_within_4gb():
    N = 10_000
    P, Q, _ = reg.make_registration_problem(N, (1.5, -0.7), 0.05, "random", seed=1)
    tracemalloc.start()
    res = reg.register_translation(P, Q, 0.5, max_iter=2)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4e9 and np.all(np.isfinite(res.T))


# bad input
# ------------------------------------------------------------------------------------------
_P = np.zeros((4, 2))
_Pi = np.full((4, 4), 0.25)
_FAR = np.array([[1e200, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])  # finite, far apart




@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: reg.registration_e_step(_P, np.zeros((3, 2)), np.zeros(2), _Pi, 1.0),
         ValueError, "N_P == N_Q"),
        (lambda: reg.registration_e_step(_P, np.zeros((4, 3)), np.zeros(2), _Pi, 1.0),
         ValueError, "dimension D"),
        (lambda: reg.registration_e_step(_P, _P, np.zeros(3), _Pi, 1.0), ValueError,
         r"T must have shape \(2,\) to match the points, got \(3,\)"),
        (lambda: reg.registration_e_step(_P, _P, np.zeros(2), _Pi, 0.0), ValueError,
         "sigma must be a finite number > 0, got 0.0"),
        (lambda: reg.registration_e_step(_P, _P, np.zeros(2), _Pi, -1.0), ValueError,
         "sigma must be a finite number > 0, got -1.0"),
        (lambda: reg.registration_e_step(_P, _P, np.zeros(2), _Pi, "1"), TypeError,
         "sigma must be a real number, got str"),
        (lambda: reg.registration_e_step(_P, _P, np.zeros(2), _Pi * 2, 1.0), ValueError,
         "Pi rows must sum to 1"),
        (lambda: reg.registration_e_step(_P, _P, np.zeros(2), _Pi[:3], 1.0), ValueError,
         r"Pi must have shape \(4, 4\), got \(3, 4\)"),
        (lambda: reg.registration_e_step(np.full((4, 2), np.nan), _P, np.zeros(2), _Pi, 1.0),
         ValueError, "P contains NaN"),
        (lambda: reg.registration_e_step(np.zeros(4), _P, np.zeros(2), _Pi, 1.0), ValueError,
         "P must be 2-D"),
        (lambda: reg.registration_m_step(_P, _P, _Pi[::-1] * 1.5), ValueError, "R rows"),
        (lambda: reg.registration_complete_log_likelihood(_P, _P, _Pi, np.zeros(2), _Pi, 1.0),
         ValueError, "Z must be binary"),
        (lambda: reg.register_translation(_P, _P, 1.0, anneal=0.5), ValueError,
         r"anneal start value \(0.5\) must be larger than sigma \(1.0\)"),
        (lambda: reg.register_translation(_P, _P, 1.0, max_iter=0), ValueError,
         "max_iter must be >= 1, got 0"),
        (lambda: reg.register_translation(_P, _P, 1.0, Pi0=_Pi + 1), ValueError,
         "Pi0 rows must sum to 1, but row 0 sums to 5.0"),
        (lambda: reg.make_registration_problem(5, noise=float("nan")), ValueError,
         r"noise must be a finite number >= 0, got nan"),
        (lambda: reg.make_registration_problem(5, noise=-1.0), ValueError,
         r"noise must be a finite number >= 0, got -1.0"),
        (lambda: reg.make_registration_problem(5, noise=float("inf")), ValueError,
         "noise must be a finite number >= 0"),
        (lambda: reg.make_registration_problem(5, noise="0.1"), TypeError,
         "noise must be a real number, got str"),
        (lambda: reg.make_registration_problem(5, noise=1e308), ValueError,
         r"Q overflows float64: translation=\[1.5, -0.7\] and noise=1e\+308"),
        (lambda: reg.make_registration_problem(5, seed=-1), ValueError,
         r"seed must be in 0..2\*\*63-1, got -1"),
        (lambda: reg.make_registration_problem(5, seed=1.5), TypeError,
         r"seed must be an int in 0..2\*\*63-1, got float"),
        (lambda: reg.registration_complete_log_likelihood(_FAR, _P, np.eye(4), np.zeros(2),
                                                          _Pi, 1.0),
         ValueError, r"sigma=1.0 is too small for the spread of the points"),
        (lambda: reg.registration_expected_log_likelihood(_FAR, _P, _Pi, np.zeros(2), _Pi,
                                                          1.0),
         ValueError, r"sigma=1.0 is too small for the spread of the points"),
        (lambda: reg.registration_m_step(np.full((4, 2), 1.7e308), np.full((4, 2), -1.7e308),
                                        _Pi), ValueError, "T overflows float64"),
    ],
)
def test_bad_input_raises_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ------------------------------------------------------------------------------------------
# command line (issue 18: flag combinations and sizes checked at parsing, Ctrl-C, broken pipe)
# ------------------------------------------------------------------------------------------
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402


def test_cli_runs_and_writes_figure_and_numbers(tmp_path, capsys):
    paths = reg.main(["--n-points", "40", "--max-iter", "60", "--out-dir", str(tmp_path)])
    printed = capsys.readouterr().out
    for name in ["registration.png", "registration.json", "registration_loglik.csv",
                 "registration_points.csv"]:
        assert (tmp_path / name).stat().st_size > 0 and name in printed
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in paths)
    assert set(json.loads((tmp_path / "registration.json").read_text())) >= {"literal", "annealed"}


def _must_not_run(args):
    raise AssertionError("the demo ran although the flags were bad")


@pytest.mark.parametrize("argv, message", [
    (["--max-iter", "20"], "argument --max-iter: must be larger than the 30 annealing steps"),
    (["--anneal-from", "0.4"], "argument --anneal-from: must be larger than --sigma"),
    (["--n-points", "200000"], "--n-points=200000 needs about"),
    (["--noise", "nan"], "argument --noise: expected a finite number >= 0, got 'nan'"),
])
def test_cli_bad_flags_fail_at_parsing_with_one_line(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(reg, "run_registration_demo", _must_not_run)
    with pytest.raises(SystemExit) as exc:
        reg.main(argv + ["--out-dir", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err.strip().splitlines()[-1] and "Traceback" not in err


def test_register_translation_refuses_what_does_not_fit_in_memory():
    P = np.zeros((200_000, 2))
    with pytest.raises(MemoryError, match="N=200000 needs about .* GB"):
        reg.register_translation(P, P, 1.0)


def _start(args, tmp_path):
    return subprocess.Popen([sys.executable, "hw5_registration.py", *args, "--out-dir",
                             str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_ctrl_c_exits_130_without_traceback(tmp_path):
    proc = _start(["--n-points", "2500", "--max-iter", "500"], tmp_path)
    assert proc.stdout.readline().startswith("registration:")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err


def test_broken_pipe_exits_quietly(tmp_path):
    proc = _start(["--n-points", "30", "--max-iter", "40"], tmp_path)
    proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 1 and "Traceback" not in err


@pytest.mark.parametrize("redirect", ["2>&-", "2</dev/null"])  # no stderr; a read-only fd 2 (a shell shim's)
def test_cli_runs_without_stderr(tmp_path, redirect):
    """Issue 27: with no usable stderr, tqdm's bar failed and the run exited 1 with nothing written."""
    out = subprocess.run(["sh", "-c", f'exec "$0" "$@" {redirect}', sys.executable, "hw5_registration.py",
                          "--n-points", "20", "--out-dir", str(tmp_path)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout
    assert "registration.json" in out.stdout and (tmp_path / "registration.json").is_file()


@pytest.mark.parametrize("blocked", ["registration.json", "registration.png", "registration_points.csv"])
def test_cli_outputs_are_checked_before_the_runs(tmp_path, capsys, monkeypatch, blocked):
    """Issue 27: an output name that is a folder was found only after both EM runs."""
    (tmp_path / blocked).mkdir()
    monkeypatch.setattr(reg, "register_translation", lambda *a, **k: pytest.fail("ran before checking"))
    with pytest.raises(SystemExit) as exc:
        reg.main(["--n-points", "20", "--out-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and out == "" and f"{tmp_path / blocked} cannot be written: it exists and is a folder" in err


def test_cli_drops_a_bogus_mplbackend_before_the_runs(tmp_path):
    """Issue 27: MPLBACKEND=bogus ran both EMs, then failed writing the figure with exit 2."""
    out = subprocess.run([sys.executable, "hw5_registration.py", "--n-points", "20", "--out-dir", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, env=dict(os.environ, MPLBACKEND="bogus"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.index("MPLBACKEND='bogus' is not a matplotlib backend") < out.stdout.index("registration:")
    assert (tmp_path / "registration.png").read_bytes()[:4] == b"\x89PNG"
