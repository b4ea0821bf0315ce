"""Synthetic(alpha, beta) federated dataset of Li et al., "Federated Optimization in Heterogeneous Networks" (MLSys 2020), Sec. 5.1."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SyntheticData", "generate_synthetic"]


@dataclass(frozen=True)
class SyntheticData:
    """A generated federated dataset, all users' rows stacked.

    Attributes
    ----------
    x : numpy.ndarray
        Features, shape ``(n, num_features)``, dtype ``float32``.
    y : numpy.ndarray
        Labels in ``0..num_classes-1``, shape ``(n,)``, dtype ``int64``.
    user : numpy.ndarray
        Owning user of each row, shape ``(n,)``, dtype ``int64``, values
        ``0..num_users-1``. Rows are grouped by user in increasing order
        (all rows of user 0 first, then user 1, ...).
    """

    x: np.ndarray
    y: np.ndarray
    user: np.ndarray


def generate_synthetic(
    alpha: float,
    beta: float,
    *,
    iid: bool = False,
    num_users: int = 30,
    num_features: int = 60,
    num_classes: int = 10,
    seed: int = 0,
) -> SyntheticData:
    """Generate the Synthetic(alpha, beta) dataset of FedProx (Li et al. 2020).

    Follows the FedProx reference scripts
    (``data/synthetic_*/generate_synthetic.py`` and
    ``data/synthetic_iid/generate_iid.py``). Throughout, ``N(m, s)`` means a
    normal with mean ``m`` and *standard deviation* ``s`` (the ``scale`` of
    ``numpy.random.Generator.normal``), exactly as in the reference script,
    so ``alpha`` and ``beta`` are standard deviations, not variances.

    For every user ``k`` the number of samples is
    ``int(lognormal(mean=4, sigma=2)) + 50``. With ``d = num_features``,
    ``Sigma`` is diagonal with ``Sigma_jj = j ** -1.2`` for ``j = 1..d``.

    Non-IID (``iid=False``), per user ``k``:

    - ``u_k ~ N(0, alpha)``; ``W_k`` (``d x num_classes``) and ``b_k``
      (``num_classes``) elementwise ``~ N(u_k, 1)``;
    - ``B_k ~ N(0, beta)``; ``v_k ~ N(B_k, 1)`` elementwise (``d``-vector);
    - ``x ~ N(v_k, Sigma)`` and ``y = argmax(softmax(W_k^T x + b_k))``.

    IID (``iid=True``): one global ``W``, ``b`` elementwise ``~ N(0, 1)``
    shared by all users, ``v_k = 0`` for every user, same ``Sigma`` and
    sample-size law; ``alpha`` and ``beta`` are validated but otherwise
    unused (as in ``generate_iid.py``).

    Parameters
    ----------
    alpha : float
        Standard deviation of the per-user model mean ``u_k``; must be >= 0.
    beta : float
        Standard deviation of the per-user feature-mean offset ``B_k``;
        must be >= 0.
    iid : bool, default False
        Generate the IID variant instead of the non-IID one.
    num_users : int, default 30
        Number of users (devices); must be >= 1.
    num_features : int, default 60
        Feature dimension ``d``; must be >= 1.
    num_classes : int, default 10
        Number of classes; must be >= 2.
    seed : int, default 0
        Seed of the ``numpy.random.default_rng`` generator used for every
        draw. numpy's global random state is never read or modified.

    Returns
    -------
    SyntheticData
        All users' samples, rows grouped by user in increasing order.

    Raises
    ------
    ValueError
        If an argument is outside its documented range.

    Notes
    -----
    ``x`` is drawn as ``v_k + z * sqrt(diag(Sigma))`` with ``z`` standard
    normal, which has the law ``N(v_k, Sigma)`` because ``Sigma`` is diagonal.
    Labels are the argmax of the logits ``x @ W_k + b_k`` (softmax is
    monotone), computed in float64 before ``x`` is stored as float32.
    """
    if not alpha >= 0:
        raise ValueError(f"alpha must be a non-negative number, got {alpha!r}.")
    if not beta >= 0:
        raise ValueError(f"beta must be a non-negative number, got {beta!r}.")
    if num_users < 1:
        raise ValueError(f"num_users must be at least 1, got {num_users!r}.")
    if num_features < 1:
        raise ValueError(f"num_features must be at least 1, got {num_features!r}.")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes!r}.")

    rng = np.random.default_rng(seed)
    samples_per_user = rng.lognormal(4.0, 2.0, num_users).astype(np.int64) + 50

    # Sigma_jj = j^-1.2 for j = 1..d; only its square root is needed.
    std_x = np.power(np.arange(1, num_features + 1, dtype=np.float64), -1.2) ** 0.5

    if iid:
        w_global = rng.normal(0.0, 1.0, (num_features, num_classes))
        b_global = rng.normal(0.0, 1.0, num_classes)
        mean_x = np.zeros((num_users, num_features))
    else:
        mean_w = rng.normal(0.0, alpha, num_users)  # u_k; the mean of b_k is the same u_k
        offset = rng.normal(0.0, beta, num_users)  # B_k
        mean_x = rng.normal(offset[:, None], 1.0, (num_users, num_features))  # v_k

    total = int(samples_per_user.sum())
    x = np.empty((total, num_features), dtype=np.float32)
    y = np.empty(total, dtype=np.int64)
    user = np.repeat(np.arange(num_users, dtype=np.int64), samples_per_user)

    start = 0
    for k in range(num_users):
        n_k = int(samples_per_user[k])
        if iid:
            w, b = w_global, b_global
        else:
            w = rng.normal(mean_w[k], 1.0, (num_features, num_classes))
            b = rng.normal(mean_w[k], 1.0, num_classes)
        xx = mean_x[k] + rng.standard_normal((n_k, num_features)) * std_x
        stop = start + n_k
        y[start:stop] = np.argmax(xx @ w + b, axis=1)
        x[start:stop] = xx
        start = stop

    return SyntheticData(x=x, y=y, user=user)
