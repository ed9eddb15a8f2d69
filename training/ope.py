"""Off-policy estimators: what a candidate policy would have achieved on logged decisions.

For logged decisions i (context x_i, action a_i taken with probability mu_i by the logging policy,
reward r_i) and a candidate policy pi (a distribution over actions per decision):

- IPS = mean(w_i r_i), w_i = pi(a_i | x_i) / mu_i;
- SNIPS = sum(w_i r_i) / sum(w_i) (self-normalised: bounded, slightly biased);
- DR = mean(sum_a pi(a | x_i) q(x_i, a) + w_i (r_i - q(x_i, a_i))), q an outcome model: unbiased
  when either q or mu is right, and far less variable than IPS when q is good.

- switch-DR (:func:`switch_to_logging`, then DR): where the candidate's weight on an action,
  pi(a | x) / mu(a | x), would pass ``tau``, that share of the policy is switched to the logging
  policy (whose value there is what was logged). The textbook switch estimator falls back on the
  outcome model q instead; here q's optimism about actions seldom logged in a context is the risk
  (an estimated propensity of a few percent for an action never taken there leaves q's direct
  term uncorrected), so the candidate gets no credit beyond the logging policy's where the logs
  cannot check it, and every weight is at most ``tau + 1``.

Each comes with a bootstrap 95 % interval (decisions resampled with replacement, seeded) and the
effective sample size of the weights, (sum w)^2 / sum w^2: how many decisions of the logging
policy the estimate is worth. Pure numpy; the callers (``policies.evaluation``,
``training.effects``) assemble pi, mu, r and q.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

ESTIMATORS = ("ips", "snips", "dr")


@dataclass(frozen=True)
class Estimate:
    """One estimator's point value and bootstrap 95 % interval."""

    value: float
    low: float
    high: float

    def covers(self, truth: float) -> bool:
        return self.low <= truth <= self.high


@dataclass(frozen=True)
class PolicyEstimates:
    """IPS, SNIPS and DR for one policy and one reward, with the weights' effective sample size."""

    ips: Estimate
    snips: Estimate
    dr: Estimate
    ess: float  # effective sample size of the importance weights
    decisions: int
    max_weight: float

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        out: dict[str, float] = {
            f"{prefix}ess": round(self.ess, 1),
            f"{prefix}decisions": self.decisions,
            f"{prefix}max_weight": round(self.max_weight, 2),
        }
        for name in ESTIMATORS:
            estimate: Estimate = getattr(self, name)
            out.update(
                {
                    f"{prefix}{name}": estimate.value,
                    f"{prefix}{name}_low": estimate.low,
                    f"{prefix}{name}_high": estimate.high,
                }
            )
        return out


def _terms(
    pi: np.ndarray, logged: np.ndarray, mu: np.ndarray, reward: np.ndarray, q: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = np.arange(len(logged))
    w = pi[rows, logged] / mu
    if q is None:
        direct = np.zeros(len(logged))
        residual = reward
    else:
        qq = np.nan_to_num(q, nan=0.0)
        direct = (pi * qq).sum(axis=1)
        residual = reward - qq[rows, logged]
    return w, w * reward, direct + w * residual


def off_policy(
    pi: np.ndarray,
    logged: np.ndarray,
    mu: np.ndarray,
    reward: np.ndarray,
    q: np.ndarray | None = None,
    boot: int = 500,
    seed: int = 0,
) -> PolicyEstimates:
    """IPS, SNIPS and DR of ``pi`` ((decisions, actions) probabilities) from decisions that took
    ``logged`` (action index) with probability ``mu`` and earned ``reward``; ``q`` (decisions,
    actions) is the outcome model's estimate (DR equals IPS without it)."""
    mu = np.asarray(mu, dtype=np.float64)
    if len(mu) and (np.any(~np.isfinite(mu)) or np.any(mu <= 0)):
        raise ValueError("every logged decision needs a propensity in (0, 1]")
    reward = np.asarray(reward, dtype=np.float64)
    w, ips_terms, dr_terms = _terms(np.asarray(pi, dtype=np.float64), np.asarray(logged), mu, reward, q)
    n = len(w)
    if n == 0:
        nan = Estimate(float("nan"), float("nan"), float("nan"))
        return PolicyEstimates(nan, nan, nan, 0.0, 0, float("nan"))

    def snips(index: np.ndarray | slice) -> float:
        total = w[index].sum()
        return float(ips_terms[index].sum() / total) if total > 0 else float("nan")

    rng = np.random.default_rng(seed)
    draws = np.empty((boot, 3))
    for b in range(boot):
        index = rng.integers(0, n, n)
        draws[b] = (ips_terms[index].mean(), snips(index), dr_terms[index].mean())
    with warnings.catch_warnings():  # a resample without any weight leaves SNIPS undefined: NaN, skipped
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(draws, 2.5, axis=0), np.nanpercentile(draws, 97.5, axis=0)
    points = (float(ips_terms.mean()), snips(slice(None)), float(dr_terms.mean()))
    estimates = [Estimate(p, float(lo), float(hi)) for p, lo, hi in zip(points, low, high, strict=True)]
    ess = float(w.sum() ** 2 / (w**2).sum()) if (w**2).sum() > 0 else 0.0
    return PolicyEstimates(estimates[0], estimates[1], estimates[2], ess=ess, decisions=n, max_weight=float(w.max()))


def dr_difference(
    pi_a: np.ndarray,
    pi_b: np.ndarray,
    logged: np.ndarray,
    mu: np.ndarray,
    reward: np.ndarray,
    q: np.ndarray,
    boot: int = 500,
    seed: int = 0,
) -> Estimate:
    """DR(pi_a) - DR(pi_b) on the same decisions, with a paired bootstrap 95 % interval."""
    _, _, a = _terms(pi_a, logged, mu, reward, q)
    _, _, b = _terms(pi_b, logged, mu, reward, q)
    diff = a - b
    rng = np.random.default_rng(seed)
    draws = np.array([diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(boot)])
    return Estimate(float(diff.mean()), float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5)))


def snips_difference(
    pi_a: np.ndarray,
    pi_b: np.ndarray,
    logged: np.ndarray,
    mu: np.ndarray,
    reward: np.ndarray,
    boot: int = 500,
    seed: int = 0,
) -> Estimate:
    """SNIPS(pi_a) - SNIPS(pi_b) on the same decisions, with a paired bootstrap 95 % interval."""
    rows = np.arange(len(logged))
    w_a, w_b = pi_a[rows, logged] / mu, pi_b[rows, logged] / mu

    def value(index: np.ndarray | slice) -> float:
        total_a, total_b = w_a[index].sum(), w_b[index].sum()
        if total_a <= 0 or total_b <= 0:
            return float("nan")
        return float((w_a[index] * reward[index]).sum() / total_a - (w_b[index] * reward[index]).sum() / total_b)

    rng = np.random.default_rng(seed)
    draws = np.array([value(rng.integers(0, len(rows), len(rows))) for _ in range(boot)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(draws, 2.5), np.nanpercentile(draws, 97.5)
    return Estimate(value(slice(None)), float(low), float(high))


def switch_to_logging(pi: np.ndarray, logging: np.ndarray, tau: float) -> np.ndarray:
    """``pi`` (decisions x actions) with its mass on every action whose weight ``pi / logging``
    exceeds ``tau`` given to the logging policy's distribution ``logging`` (decisions x actions,
    rows summing to 1) instead; rows of ``logging`` summing to 0 keep ``pi``."""
    pi = np.asarray(pi, dtype=np.float64)
    logging = np.asarray(logging, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        off = (pi > 0) & ~(pi <= tau * logging)
    moved = np.where(off, pi, 0.0).sum(axis=1)
    total = logging.sum(axis=1)
    moved = np.where(total > 0, moved, 0.0)
    off &= (total > 0)[:, None]
    share = np.divide(logging, total[:, None], out=np.zeros_like(logging), where=total[:, None] > 0)
    return np.where(off, 0.0, pi) + moved[:, None] * share


def greedy(values: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """The deterministic policy taking, per decision, the allowed action of highest value (ties:
    lowest index); a decision with nothing allowed keeps an all-zero row."""
    score = np.where(allowed, np.nan_to_num(values, nan=-np.inf), -np.inf)
    best = np.argmax(score, axis=1)
    out = np.zeros(values.shape)
    has = allowed.any(axis=1)
    out[np.flatnonzero(has), best[has]] = 1.0
    return out
