"""Segmented regression (interrupted time series) of a monthly series around an intervention.

    y_t = b0 + b1·t + b2·D_t + b3·(t − t0)·D_t + e_t,   D_t = 1 for t ≥ t0

``t`` counts months from the start of the series (months left out keep their place), ``t0`` is
the first month after the intervention. Ordinary least squares; standard errors from
s²(XᵀX)⁻¹ with s² = RSS / (n − 4); intervals and p-values from Student's t with n − 4 degrees of
freedom. What the office reads:

- level before: b0 + b1·t0, where the trend before would have been at the intervention;
- trend before: b1 per month;
- level change: b2, the jump at the intervention;
- trend change: b3 per month;
- level after: b0 + b1·t0 + b2;  trend after: b1 + b3.

Each is a linear combination cᵀb with standard error √(cᵀVc). The Durbin-Watson statistic of the
residuals is given so that strong autocorrelation (which makes the intervals too narrow) shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

PARAMETERS = 4


@dataclass(frozen=True)
class Estimate:
    value: float
    se: float
    low: float
    high: float
    p: float | None  # two-sided, for the null hypothesis of zero; None when undefined


@dataclass(frozen=True)
class Segmented:
    coefficients: tuple[float, float, float, float]
    t0: int
    level_before: Estimate
    trend_before: Estimate
    level_change: Estimate
    trend_change: Estimate
    level_after: Estimate
    trend_after: Estimate
    fitted: list[float]
    r_squared: float | None
    durbin_watson: float | None
    dof: int

    def counterfactual(self, t: int) -> float:
        """The value the trend before would have reached at month ``t``."""
        b0, b1, _b2, _b3 = self.coefficients
        return b0 + b1 * t


def design(ts: Sequence[int], t0: int) -> np.ndarray:
    t = np.asarray(ts, dtype=float)
    after = (t >= t0).astype(float)
    return np.column_stack([np.ones_like(t), t, after, (t - t0) * after])


def segmented(
    ts: Sequence[int], ys: Sequence[float], t0: int, confidence: float = 0.95
) -> Segmented:
    """Fit the model; needs at least two points on each side and more points than parameters."""
    if len(ts) != len(ys):
        raise ValueError("ts and ys differ in length")
    n = len(ts)
    before = sum(1 for t in ts if t < t0)
    if before < 2 or n - before < 2 or n <= PARAMETERS:
        raise ValueError("too few points on one side of the intervention")
    x = design(ts, t0)
    y = np.asarray(ys, dtype=float)
    xtx_inv = np.linalg.inv(x.T @ x)
    b = xtx_inv @ x.T @ y
    fitted = x @ b
    resid = y - fitted
    dof = n - PARAMETERS
    rss = float(resid @ resid)
    s2 = rss / dof
    cov = s2 * xtx_inv
    q = float(sps.t.ppf(0.5 + confidence / 2, dof))

    def combo(c: Sequence[float]) -> Estimate:
        cv = np.asarray(c, dtype=float)
        value = float(cv @ b)
        se = math.sqrt(max(float(cv @ cov @ cv), 0.0))
        p = float(2 * sps.t.sf(abs(value) / se, dof)) if se > 0 else None
        return Estimate(value, se, value - q * se, value + q * se, p)

    tss = float(((y - y.mean()) ** 2).sum())
    dw = float((np.diff(resid) ** 2).sum() / rss) if rss > 0 else None
    return Segmented(
        coefficients=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
        t0=t0,
        level_before=combo([1, t0, 0, 0]),
        trend_before=combo([0, 1, 0, 0]),
        level_change=combo([0, 0, 1, 0]),
        trend_change=combo([0, 0, 0, 1]),
        level_after=combo([1, t0, 1, 0]),
        trend_after=combo([0, 1, 0, 1]),
        fitted=[float(v) for v in fitted],
        r_squared=1 - rss / tss if tss > 0 else None,
        durbin_watson=dw,
        dof=dof,
    )
