"""p-values from null distributions, and p to z / -log10(p), with NiMARE's conventions."""

import numpy as np
from scipy import special


def null_to_p(values, null, tail="upper"):
    """p-value of each value against a sample of the null distribution.

    p is the fraction of the null at or above the value (``tail="upper"``), clipped to
    [1/n, 1 - 1/n] so no p is 0 or 1, as NiMARE's ``null_to_p`` does.
    """
    values = np.asarray(values, dtype=float)
    null = np.sort(np.asarray(null, dtype=float))
    if tail == "upper":
        p = 1.0 - np.searchsorted(null, values, side="left") / null.size
    elif tail == "lower":
        p = np.searchsorted(null, values, side="right") / null.size
    elif tail == "two":
        upper = 1.0 - np.searchsorted(null, values, side="left") / null.size
        lower = np.searchsorted(null, values, side="right") / null.size
        p = 2.0 * np.minimum(upper, lower)
    else:
        raise ValueError(f"tail must be 'upper', 'lower' or 'two', got {tail!r}")
    smallest = 1.0 / null.size
    return np.clip(p, smallest, 1.0 - smallest)


#: The smallest p converted: the smallest positive double, a subnormal. An approximate null
#: on thousands of analyses ends in subnormal weights, and NiMARE converts the p-values they
#: give as they are (z up to 38.5), so clipping at the smallest normal double (2.2e-308,
#: z 37.5) would move the z of ALE values beyond the null's support.
SMALLEST_P = np.nextafter(0.0, 1.0)


def p_to_z(p, tail="one"):
    """Unsigned z of a p-value; one-tailed z is floored at 0. Computed in log space."""
    logp = np.log(np.clip(np.asarray(p, dtype=float), SMALLEST_P, 1.0))
    if tail == "one":
        return np.maximum(-special.ndtri_exp(logp), 0.0)
    if tail == "two":
        return -special.ndtri_exp(logp - np.log(2.0)) + 0.0
    raise ValueError(f"tail must be 'one' or 'two', got {tail!r}")


def p_to_logp(p):
    """-log10(p), the map NiMARE names ``logp``."""
    return -np.log10(np.clip(np.asarray(p, dtype=float), SMALLEST_P, 1.0))
