"""Tests for the FedProx Synthetic(alpha, beta) generator (Li et al. 2020, Sec. 5.1)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from fedsim.data.synthetic import SyntheticData, generate_synthetic

F = 60  # default feature dimension
C = 10  # default number of classes


def _sigma_diag(num_features: int = F) -> np.ndarray:
    """Diagonal of Sigma written out independently: Sigma_jj = j^-1.2, j = 1..d."""
    return np.array([(j + 1) ** -1.2 for j in range(num_features)])


def _counts(d: SyntheticData) -> np.ndarray:
    return np.bincount(d.user)


def _user_means(d: SyntheticData) -> np.ndarray:
    """Per-user feature means in float64, shape (num_users, num_features)."""
    x = d.x.astype(np.float64)
    sums = np.zeros((d.user.max() + 1, x.shape[1]))
    np.add.at(sums, d.user, x)
    return sums / _counts(d)[:, None]


def _label_hist(d: SyntheticData, num_classes: int = C) -> np.ndarray:
    h = np.zeros((d.user.max() + 1, num_classes))
    np.add.at(h, (d.user, d.y), 1.0)
    return h


def _mean_tv_to_pooled(d: SyntheticData) -> float:
    """Mean over users of the total-variation distance between the user's
    label histogram and the pooled label histogram."""
    h = _label_hist(d)
    pooled = h.sum(0) / h.sum()
    per_user = h / h.sum(1, keepdims=True)
    return float(0.5 * np.abs(per_user - pooled).sum(1).mean())


def _fit_softmax_regression(x: np.ndarray, y: np.ndarray, num_classes: int, steps: int = 300):
    """Full-batch gradient descent on the multinomial logistic loss (standardised
    features plus bias). Returns a predict function."""
    mu, sd = x.mean(0), x.std(0)

    def design(z: np.ndarray) -> np.ndarray:
        return np.hstack([(z - mu) / sd, np.ones((len(z), 1))])

    xd = design(x)
    onehot = np.eye(num_classes)[y]
    w = np.zeros((xd.shape[1], num_classes))
    for _ in range(steps):
        logits = xd @ w
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        # Standardised, nearly uncorrelated features: the loss Hessian has norm <~ 1,
        # so step size 1 is stable.
        w -= xd.T @ (p - onehot) / len(xd)
    return lambda z: np.argmax(design(z) @ w, axis=1)


def _cross_user_accuracy(d: SyntheticData) -> tuple[float, float]:
    """Train on even users, test on odd users; return (accuracy, majority-class rate)."""
    train = d.user % 2 == 0
    test = ~train
    predict = _fit_softmax_regression(d.x[train].astype(np.float64), d.y[train], C)
    acc = float((predict(d.x[test].astype(np.float64)) == d.y[test]).mean())
    majority = float(np.bincount(d.y[test], minlength=C).max() / test.sum())
    return acc, majority


# --------------------------------------------------------------------------- structure


@pytest.mark.parametrize("iid", [False, True])
def test_shapes_dtypes_and_user_grouping(iid: bool) -> None:
    d = generate_synthetic(0.5, 0.5, iid=iid, seed=1)
    n = len(d.y)
    assert isinstance(d, SyntheticData)
    assert d.x.shape == (n, F) and d.x.dtype == np.float32
    assert d.y.shape == (n,) and d.y.dtype == np.int64
    assert d.user.shape == (n,) and d.user.dtype == np.int64
    assert np.isfinite(d.x).all()
    assert d.y.min() >= 0 and d.y.max() < C
    # Rows grouped by user in increasing order, every user 0..29 present.
    assert (np.diff(d.user) >= 0).all()
    np.testing.assert_array_equal(np.unique(d.user), np.arange(30))
    assert (_counts(d) >= 50).all()


def test_custom_sizes() -> None:
    d = generate_synthetic(1.0, 1.0, num_users=7, num_features=5, num_classes=3, seed=4)
    assert d.x.shape[1] == 5
    np.testing.assert_array_equal(np.unique(d.user), np.arange(7))
    assert set(np.unique(d.y)) <= {0, 1, 2}


def test_result_is_frozen() -> None:
    d = generate_synthetic(0.0, 0.0, num_users=2, seed=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.x = d.x  # type: ignore[misc]


def test_samples_per_user_follow_lognormal_plus_50() -> None:
    """n_k - 50 = floor(L) with L ~ lognormal(4, 2), so for an integer t >= 1,
    P(n_k - 50 >= t) = P(L >= t) = 1 - Phi((ln t - 4) / 2), and
    P(n_k = 50) = P(L < 1) = Phi(-2). Each empirical frequency over K users has
    standard error sqrt(p(1-p)/K); a 5-sigma band over 6 checks fails by chance
    with probability < 1e-5."""
    k = 4000
    d = generate_synthetic(0.0, 0.0, num_users=k, num_features=1, num_classes=2, seed=0)
    extra = _counts(d) - 50
    assert extra.min() >= 0

    def phi(z: float) -> float:
        return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))

    checks = [(float((extra == 0).mean()), phi(-2.0))]
    for t in (2, 20, 55, 150, 1000):
        checks.append((float((extra >= t).mean()), 1.0 - phi((math.log(t) - 4.0) / 2.0)))
    for freq, p in checks:
        assert abs(freq - p) < 5 * math.sqrt(p * (1 - p) / k), (freq, p)


# --------------------------------------------------------------------------- seeding


def test_same_seed_gives_identical_arrays() -> None:
    a = generate_synthetic(1.0, 1.0, seed=7)
    b = generate_synthetic(1.0, 1.0, seed=7)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.user, b.user)


def test_different_seed_gives_different_arrays() -> None:
    a = generate_synthetic(1.0, 1.0, seed=7)
    b = generate_synthetic(1.0, 1.0, seed=8)
    assert a.x.shape != b.x.shape or not np.array_equal(a.x, b.x)
    # Even the first row (same user 0, sizes >= 50) differs.
    assert not np.array_equal(a.x[:50], b.x[:50])


def test_numpy_global_random_state_untouched() -> None:
    np.random.seed(12345)
    before = np.random.get_state()
    d1 = generate_synthetic(1.0, 1.0, seed=3)
    generate_synthetic(0.0, 0.0, iid=True, seed=3)
    after = np.random.get_state()
    assert before[0] == after[0]
    np.testing.assert_array_equal(before[1], after[1])
    assert before[2:] == after[2:]
    # ...and the output does not depend on the global state either.
    np.random.seed(999)
    d2 = generate_synthetic(1.0, 1.0, seed=3)
    np.testing.assert_array_equal(d1.x, d2.x)
    np.testing.assert_array_equal(d1.y, d2.y)


def test_iid_variant_ignores_alpha_and_beta() -> None:
    """As in generate_iid.py, the IID variant draws nothing from alpha/beta."""
    a = generate_synthetic(0.0, 0.0, iid=True, seed=5)
    b = generate_synthetic(2.0, 3.0, iid=True, seed=5)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)


def test_alpha_shift_cancels_in_argmax() -> None:
    """W_k = u_k + E_k and b_k = u_k + f_k share one scalar mean u_k, so the
    logits x^T W_k + b_k = x^T E_k + f_k + u_k (sum(x) + 1) differ from the
    alpha = 0 ones by the same amount in every class: the argmax, hence y, does
    not depend on alpha (a property of the reference recipe). With the same seed
    the features and labels must therefore coincide."""
    a = generate_synthetic(0.0, 1.0, num_users=40, seed=2)
    b = generate_synthetic(3.0, 1.0, num_users=40, seed=2)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)


# --------------------------------------------------------------------------- features


def test_within_user_feature_covariance_is_sigma() -> None:
    """Pooled within-user sample variance per feature, with N - K degrees of
    freedom, estimates Sigma_jj = j^-1.2 with relative standard error
    sqrt(2 / (N - K)) (Gaussian data). A 5-sigma band over 60 features fails by
    chance with probability ~60 * 5.7e-7. Within-user correlations between two
    features have standard error 1 / sqrt(N - K); a 5.5-sigma band over 1770
    pairs fails with probability ~7e-5. float32 storage (relative error 6e-8)
    is negligible."""
    d = generate_synthetic(1.0, 1.0, num_users=100, seed=0)
    k = 100
    dof = len(d.y) - k
    assert dof >= 20_000  # keeps the bands below tight (~4% / ~4e-2)
    centred = d.x.astype(np.float64) - _user_means(d)[d.user]
    cov = centred.T @ centred / dof
    expected = _sigma_diag()
    rel_err = np.diag(cov) / expected - 1.0
    assert np.abs(rel_err).max() < 5 * math.sqrt(2.0 / dof), np.abs(rel_err).max()
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    off = corr[~np.eye(F, dtype=bool)]
    assert np.abs(off).max() < 5.5 / math.sqrt(dof), np.abs(off).max()


def test_iid_user_means_are_zero() -> None:
    """In the IID variant v_k = 0, so z_kj = mean_kj * sqrt(n_k / Sigma_jj) are
    K*F = 1800 independent N(0, 1) values: max |z| < 5.5 (chance failure ~7e-5)
    and mean(z^2) = 1 within 5 standard errors, 5 * sqrt(2 / 1800) = 0.167."""
    d = generate_synthetic(1.0, 1.0, iid=True, seed=11)
    z = _user_means(d) * np.sqrt(_counts(d)[:, None] / _sigma_diag()[None, :])
    assert np.abs(z).max() < 5.5, np.abs(z).max()
    assert abs((z**2).mean() - 1.0) < 5 * math.sqrt(2.0 / z.size)


def test_non_iid_user_means_spread_grows_with_beta() -> None:
    """Non-IID: mean_kj ~ N(B_k, 1 + Sigma_jj / n_k) with B_k ~ N(0, beta).
    beta = 0: the normalised squares mean_kj^2 / (1 + Sigma_jj / n_k) average 1
    (6000 chi^2_1 values; 5-sigma band 5 * sqrt(2 / 6000) = 0.091).
    The per-user average over features m_k = mean_j mean_kj has variance about
    beta^2 + 1/60 across users, so std(m_k) grows from ~0.13 (beta = 0) to ~1.0
    (beta = 1), a ratio ~7.8; with K = 100 each sample std has ~7% relative
    error, so requiring a ratio > 3 is far outside chance."""
    k = 100
    d0 = generate_synthetic(0.0, 0.0, num_users=k, seed=21)
    d1 = generate_synthetic(0.0, 1.0, num_users=k, seed=22)
    m0, m1 = _user_means(d0), _user_means(d1)

    normalised = m0**2 / (1.0 + _sigma_diag()[None, :] / _counts(d0)[:, None])
    assert abs(normalised.mean() - 1.0) < 5 * math.sqrt(2.0 / normalised.size)

    spread0 = m0.mean(1).std(ddof=1)
    spread1 = m1.mean(1).std(ddof=1)
    assert spread1 > 3 * spread0, (spread0, spread1)
    assert 0.05 < spread0 < 0.25  # sqrt(1/60) = 0.129, +-7% per sd
    assert 0.6 < spread1 < 1.4  # sqrt(1 + 1/60) = 1.008, plus B_k sampling noise


# --------------------------------------------------------------------------- labels


def test_iid_labels_are_learnable_by_one_linear_model() -> None:
    """IID: every user labels with the same (W, b), so a softmax regression fitted
    on the even users predicts the odd users far better than the majority class.
    In the non-IID variant each user has its own W_k, and the same procedure does
    no better than guessing."""
    acc_iid, maj_iid = _cross_user_accuracy(generate_synthetic(0.0, 0.0, iid=True, seed=0))
    assert acc_iid >= 0.8, acc_iid
    assert acc_iid >= maj_iid + 0.3, (acc_iid, maj_iid)

    acc_niid, maj_niid = _cross_user_accuracy(generate_synthetic(1.0, 1.0, seed=0))
    assert acc_niid < acc_iid - 0.3, (acc_niid, acc_iid)


def test_label_heterogeneity_across_users() -> None:
    """Mean total-variation distance between each user's label histogram and the
    pooled one. IID users share one labelling of identically distributed x, so
    the distance is only multinomial noise (~0.1); non-IID users are far apart
    (~0.8). Synthetic(1, 1) is only slightly more skewed than Synthetic(0, 0)
    (alpha has no effect on labels, see test_alpha_shift_cancels_in_argmax;
    beta shifts v_k), so the comparison is paired on 8 seeds with 100 users:
    per-seed differences have mean ~0.02 and sd ~0.014 (measured over 60 seeds),
    and we require the mean difference to exceed 2 standard errors of itself."""
    iid = _mean_tv_to_pooled(generate_synthetic(0.0, 0.0, iid=True, num_users=100, seed=0))
    non_iid = _mean_tv_to_pooled(generate_synthetic(0.0, 0.0, num_users=100, seed=0))
    assert iid < 0.2 and non_iid > 0.6, (iid, non_iid)

    diffs = np.array(
        [
            _mean_tv_to_pooled(generate_synthetic(1.0, 1.0, num_users=100, seed=s))
            - _mean_tv_to_pooled(generate_synthetic(0.0, 0.0, num_users=100, seed=s))
            for s in range(8)
        ]
    )
    assert diffs.mean() > 0.0
    assert diffs.mean() > 2 * diffs.std(ddof=1) / math.sqrt(len(diffs)), diffs


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alpha": -0.1},
        {"beta": -1.0},
        {"alpha": float("nan")},
        {"num_users": 0},
        {"num_features": 0},
        {"num_classes": 1},
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict) -> None:
    args = {"alpha": 1.0, "beta": 1.0, **kwargs}
    alpha, beta = args.pop("alpha"), args.pop("beta")
    with pytest.raises(ValueError):
        generate_synthetic(alpha, beta, **args)
