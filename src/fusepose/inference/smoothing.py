"""The One-Euro filter (Casiez, Roussel and Vogel, CHI 2012), element-wise on arrays.

A first-order low-pass filter whose cutoff rises with the signal's speed: slow signals are
smoothed hard (little jitter), fast ones lightly (little lag). For a sample ``x_i`` at time
``t_i`` (seconds), with ``T = t_i - t_{i-1}``:

    alpha(fc) = 1 / (1 + tau / T),   tau = 1 / (2 pi fc)
    dx_i  = (x_i - x̂_{i-1}) / T,      dx̂_i = dx̂_{i-1} + alpha(d_cutoff) (dx_i - dx̂_{i-1})
    fc_i  = min_cutoff + beta |dx̂_i|
    x̂_i  = x̂_{i-1} + alpha(fc_i) (x_i - x̂_{i-1})

``min_cutoff`` (Hz) sets the smoothing at rest, ``beta`` (1 / signal unit, here 1 / pixel) how
fast the cutoff opens with speed (units / s), ``d_cutoff`` (Hz) the smoothing of the speed.
"""

from __future__ import annotations

import math

import numpy as np

from fusepose.errors import ConfigError

__all__ = ["OneEuroFilter"]


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filter of an array signal (every element filtered on its own).

    Args:
        min_cutoff: cutoff frequency at rest, Hz (> 0). Lower: less jitter, more lag.
        beta: speed coefficient, 1 / signal unit (>= 0). Higher: less lag when moving.
        d_cutoff: cutoff of the speed estimate, Hz (> 0).

    ``filter(x, t, valid)``: ``x`` any shape (e.g. keypoints ``(K, 2)`` in pixels), ``t`` in
    seconds, increasing; ``valid`` (broadcastable to ``x``, bool) marks the elements measured
    this time: the others are passed through unfiltered and their state is dropped, so a joint
    that comes back after a gap starts afresh instead of being dragged from where it was.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0) -> None:
        if not min_cutoff > 0:
            raise ConfigError(f"One-Euro min_cutoff {min_cutoff}: must be > 0 (Hz)")
        if not beta >= 0:
            raise ConfigError(f"One-Euro beta {beta}: must be >= 0")
        if not d_cutoff > 0:
            raise ConfigError(f"One-Euro d_cutoff {d_cutoff}: must be > 0 (Hz)")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        self.x_hat: np.ndarray | None = None  # last filtered value
        self.dx_hat: np.ndarray | None = None  # last filtered speed (units / s)
        self.known: np.ndarray | None = None  # elements with a state
        self.t: float | None = None

    def __call__(self, x: np.ndarray, t: float, valid: np.ndarray | None = None) -> np.ndarray:
        return self.filter(x, t, valid)

    def filter(self, x: np.ndarray, t: float, valid: np.ndarray | None = None) -> np.ndarray:
        """The filtered value of ``x`` measured at ``t`` seconds (same shape as ``x``)."""
        x = np.asarray(x, dtype=np.float64)
        ok = np.ones(x.shape, bool) if valid is None else np.broadcast_to(valid, x.shape).copy()
        if self.x_hat is None or self.x_hat.shape != x.shape or self.t is None:
            self.x_hat, self.dx_hat = x.copy(), np.zeros_like(x)
            self.known, self.t = ok, float(t)
            return x.copy()
        dt = float(t) - self.t
        if dt <= 0:  # a repeated or out-of-order timestamp: nothing to filter against
            return np.where(self.known & ok, self.x_hat, x)
        self.t = float(t)
        dx = (x - self.x_hat) / dt
        dx_hat = self.dx_hat + _alpha(self.d_cutoff, dt) * (dx - self.dx_hat)
        cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
        x_hat = self.x_hat + _alpha(cutoff, dt) * (x - self.x_hat)
        old = self.known & ok  # filtered; new or re-appearing elements start from x
        self.x_hat = np.where(old, x_hat, x)
        self.dx_hat = np.where(old, dx_hat, 0.0)
        self.known = ok
        return np.where(ok, self.x_hat, x)
