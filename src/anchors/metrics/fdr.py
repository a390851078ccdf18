"""False discovery rate control across the sentences of a trace (Benjamini–Hochberg, via scipy)."""

from __future__ import annotations

import numpy as np
from jaxtyping import Bool, Float


def benjamini_hochberg(p_values: Float[np.ndarray, " sent"], q: float = 0.05) -> tuple[Float[np.ndarray, " sent"], Bool[np.ndarray, " sent"]]:
    """(BH-adjusted p-values, rejected at level q). NaN p-values (no test possible) are left out of the family:
    their adjusted value is NaN and they are never rejected."""
    from scipy.stats import false_discovery_control

    p_values = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p_values, np.nan)
    tested = np.isfinite(p_values)
    if tested.any():
        adjusted[tested] = false_discovery_control(np.clip(p_values[tested], 0.0, 1.0), method="bh")
    return adjusted, np.where(tested, adjusted <= q, False)
