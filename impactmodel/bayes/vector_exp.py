"""The exponential of every value of an array, in a form numba's compiler vectorises.

numba compiles ``np.exp`` of a float to a call of the C library's scalar ``exp``, one
value at a time: in the cumulative-logit loop (:mod:`impactmodel.bayes.cumulative_logit`)
the table of ``exp(person)`` for 244,413 respondent x impact entries took 1.1 ms of each
gradient at 81,471 respondents. :func:`exp_into` does only arithmetic, which LLVM turns
into SIMD instructions: 0.26 ms for the same array (numpy's own vectorised ``np.exp``:
0.20 ms; ``benchmarks/README.md``, session of 2026-12-07, second).

The method is the textbook one (Cody and Waite's argument reduction; e.g. Muller,
*Elementary Functions*, 3rd ed., 2016, ch. 11):

- ``x = k ln 2 + r`` with ``k = round(x / ln 2)`` and ``|r| <= ln 2 / 2``, where ``k ln 2``
  is subtracted in two parts, ``LN2_HI`` (whose multiples by any such ``k`` are exact)
  and ``LN2_LO`` (the values of fdlibm's ``e_exp.c``);
- ``exp(r)`` by its Taylor polynomial of degree 13 in Horner form: the first term left
  out, ``r^14 / 14!``, is below ``3.7e-18`` relative, under 0.02 of a unit in the last
  place;
- ``exp(x) = exp(r) 2^k``, with ``2^k`` built from its bits as two factors ``2^(k - k //
  2)`` and ``2^(k // 2)``, each a normal number, so that a result beyond the normal
  range overflows to ``inf`` or goes subnormal or to 0 by the multiplications, as
  ``exp`` does. ``x`` is first clipped to ``[-746, 710]``, beyond which ``exp`` is 0 or
  ``inf`` anyway; ``NaN`` stays ``NaN``.

Measured against numpy's ``np.exp`` (``tests/test_vector_exp.py``): at most one unit
in the last place apart over ``[-708, 709.7]``, where the results are normal numbers;
the subnormal results tested (at -708.5, -740 and -745.1) agree to 1e-3 relative,
and from -746 down the result is 0.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

#: ``ln 2`` in two parts (fdlibm, ``e_exp.c``): ``LN2_HI`` has 32 significant bits
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e+00
#: beyond these ``exp`` is 0 (``exp(-746) < 2^-1075``) or ``inf`` (``exp(710) > 2^1024``)
LOWEST, HIGHEST = -746.0, 710.0
_C = tuple(1.0 / math.factorial(k) for k in range(14))
_C0 = _C[0]
_HORNER = _C[12:0:-1]

#: digest of this file, for the cache keys of the compiled loops that call it
SOURCE_KEY = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


@numba.njit(cache=True, nogil=True, boundscheck=False, fastmath={"contract"})
def exp_into(x: Any, out: Any) -> Any:  # pragma: no cover - compiled by numba
    """Write ``exp(x)`` into ``out`` (1-D float64 arrays of one length) and return it."""
    n = x.shape[0]
    exponent_bits = np.empty(2 * n, dtype=np.int64)
    for i in range(n):
        v = min(max(x[i], LOWEST), HIGHEST)
        k = np.floor(v * INV_LN2 + 0.5)
        r = (v - k * LN2_HI) - k * LN2_LO
        p = _C[13]
        for coefficient in _HORNER:  # 1 / 12!, ..., 1 / 1!
            p = p * r + coefficient
        out[i] = p * r + _C0
        whole = np.int64(k)
        half = whole >> 1
        exponent_bits[2 * i] = (half + 1023) << 52
        exponent_bits[2 * i + 1] = (whole - half + 1023) << 52
    powers = exponent_bits.view(np.float64)
    for i in range(n):
        out[i] = out[i] * powers[2 * i] * powers[2 * i + 1]
    return out


def vector_exp(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Return ``exp(x)`` for a 1-D float64 array (the numba loop, called from Python).

    Parameters
    ----------
    x : ndarray of float64, shape (n,)

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    values = np.ascontiguousarray(x, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"vector_exp takes a 1-D array, got {values.ndim} dimensions")
    return np.asarray(exp_into(values, np.empty_like(values)))


__all__ = ["HIGHEST", "LN2_HI", "LN2_LO", "LOWEST", "SOURCE_KEY", "exp_into", "vector_exp"]
