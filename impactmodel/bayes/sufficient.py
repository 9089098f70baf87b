"""Sufficient statistics of the gaussian scale-score likelihood: one pass over the rows.

The scale-score model (:mod:`impactmodel.bayes.gaussian`) gives row ``i`` (a respondent's
score in cell ``c``, population ``p``, department ``d``) the mean ``a_h + x_i . s_h`` with

    a_h = alpha[c, p] + u[m(c), d],    s_h = e[c] + f[p] + g[d]

constant within the row's *design cell* ``h = (c, p, d)``. The respondent traits are
integrated out, which couples the rows of one *unit*: a respondent (traits correlated
across impacts) or a respondent x impact pair (independent traits). By the Woodbury
identity a unit's rows enter only through its per-impact residual sums
``R_m = Y_m - A_m - x_i . B_m``, with ``Y_m`` the sum of its scores on impact ``m`` and

    A_m = sum_{c in S_m} alpha[c, p] + n_m u[m, d],    B_m = sum_{c in S_m} e[c] + n_m (f[p] + g[d])

for the set ``S_m`` of ``n_m`` cells of impact ``m`` it answered. These sums depend only
on the unit's *pattern* ``(p, S)``; units sharing pattern and department form a *class*.

Both pieces of the log-density are sums of cross-products of residuals
``r = v - a - S x`` over units sharing ``(a, S)``; with ``w = (1, x, v)`` and
``Theta = [-a, -S, I]``, ``r = Theta w``, so ``sum r r' = Theta (sum w w') Theta'``: the
moment matrix ``sum w w'`` (:func:`moment_matrices`) per design cell (of the scores) and
per class (of the vectors ``Y``) carries everything the likelihood needs: after
this pass, a gradient costs the same at 10,000 and at 1,000,000 respondents (the numbers
of design cells, patterns and classes are bounded by the questionnaire and the
territories).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from impactmodel.bayes.model_data import ScoreData


def moment_matrices(block: NDArray[np.integer], n_blocks: int, v: NDArray[np.float64],
                    x: NDArray[np.float64], weights: NDArray[np.float64] | None = None,
                    source: NDArray[np.integer] | None = None) -> NDArray[np.float64]:
    """Per block, the moment matrix ``sum c w w'`` of ``w = (1, x, v)`` over its units.

    Parameters
    ----------
    block : ndarray of int, shape (units,)
        Block of each unit, in ``0 .. n_blocks - 1``.
    n_blocks : int
    v : ndarray, shape (units,) or (units, q)
        One value per unit (``q = 1``) or ``q`` values.
    x : ndarray, shape (units, practices)
    weights : ndarray, shape (units,), optional
        Each unit's weight ``c`` in the sums (default 1: a weighted pseudo-likelihood
        multiplies each unit's log-density by its weight, and the log-density is
        quadratic in ``w``).
    source : ndarray of int, shape (units,), optional
        When given, ``x`` and ``weights`` have one row per *source* (a respondent) and
        unit ``i`` reads row ``source[i]``: the same as passing ``x[source]`` and
        ``weights[source]``, without building them (16 million rows of a national
        survey).

    Returns
    -------
    ndarray, shape (n_blocks, 1 + practices + q, 1 + practices + q)
        Symmetric; entry ``[0, 0]`` is the block's number (sum of weights) of units.
    """
    block64 = np.asarray(block, dtype=np.int64)
    if len(block64) and (block64.min() < 0 or block64.max() >= n_blocks):
        raise ValueError(f"blocks must be in 0 .. {n_blocks - 1}")
    if source is None:
        rows = np.arange(len(block64), dtype=np.int64)
    else:
        rows = np.asarray(source, dtype=np.int64)
        if len(rows) != len(block64) or (len(rows) and (rows.min() < 0
                                                        or rows.max() >= len(x))):
            raise ValueError(f"source must give each unit a row of x, in 0 .. {len(x) - 1}")
    c = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    return _accumulate_moments(block64, n_blocks, np.ascontiguousarray(x, dtype=np.float64),
                               rows, np.ascontiguousarray(v, dtype=np.float64).reshape(
                                   len(block64), -1), c)


@numba.njit(cache=True, nogil=True)
def _accumulate_moments(block: NDArray[np.int64], n_blocks: int, x: NDArray[np.float64],
                        rows: NDArray[np.int64], v: NDArray[np.float64],
                        c: NDArray[np.float64]) -> NDArray[np.float64]:
    """One pass over the units for :func:`moment_matrices` (upper triangle, mirrored).

    Unit ``i`` reads ``x[rows[i]]`` and ``c[rows[i]]``.
    """
    n_x, n_v = x.shape[1], v.shape[1]
    size = 1 + n_x + n_v
    out = np.zeros((n_blocks, size, size))
    w = np.empty(size)
    w[0] = 1.0
    for i in range(len(block)):
        r = rows[i]
        for j in range(n_x):
            w[1 + j] = x[r, j]
        for j in range(n_v):
            w[1 + n_x + j] = v[i, j]
        m = out[block[i]]
        for j in range(size):
            cw = c[r] * w[j]
            for k in range(j, size):
                m[j, k] += cw * w[k]
    for b in range(n_blocks):
        for j in range(size):
            for k in range(j):
                out[b, j, k] = out[b, k, j]
    return out


def dense_codes(key: NDArray[np.integer], size: int
                ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``np.unique(key, return_inverse=True)`` for keys in ``0 .. size - 1``, in one pass.

    Counting instead of sorting: linear in the number of keys (16 million design-cell keys
    of a national survey in about 0.2 s against 3 s for a sort). When the key range is
    much wider than the keys (many answer patterns x departments), the counts would not
    fit in memory, so it sorts instead.
    """
    if size > 4 * len(key) + 1_000_000:
        codes, inverse = np.unique(key, return_inverse=True)
        return codes.astype(np.int64), inverse.astype(np.int64)
    present = np.bincount(key, minlength=size) > 0
    codes = np.flatnonzero(present)
    position = np.cumsum(present) - 1
    return codes, position[key]


@dataclass(frozen=True)
class ScoreStatistics:
    """Everything the scale-score likelihood needs, reduced from the rows.

    Attributes
    ----------
    cell, population, department : ndarray of int, shape (design_cells,)
        The design cells present in the data.
    rows : ndarray, shape (design_cells, 2 + practices, 2 + practices)
        Per design cell, the moment matrix of ``(1, x, score)``.
    class_pattern, class_population, class_department : ndarray of int, shape (classes,)
        Each class's pattern, population and department.
    classes : ndarray, shape (classes, 1 + practices + q, 1 + practices + q)
        Per class, the moment matrix of ``(1, x, Y)``, ``Y`` a unit's per-impact score
        sums (``q`` = impacts when units are respondents, 1 when respondent x impact).
    pattern_population : ndarray of int, shape (patterns,)
    pattern_counts : ndarray of int, shape (patterns, impacts)
        Cells of each impact in the pattern (``n_m``).
    pattern_units : ndarray, shape (patterns,)
        Units with the pattern (the sum of their weights when weighted).
    member_pattern, member_cell : ndarray of int
        Pairs (pattern, cell): the cells ``S`` of each pattern.
    n_rows : float
        Number of rows (the sum of their weights when weighted).
    """

    cell: NDArray[np.integer]
    population: NDArray[np.integer]
    department: NDArray[np.integer]
    rows: NDArray[np.float64]
    class_pattern: NDArray[np.integer]
    class_population: NDArray[np.integer]
    class_department: NDArray[np.integer]
    classes: NDArray[np.float64]
    pattern_population: NDArray[np.integer]
    pattern_counts: NDArray[np.integer]
    pattern_units: NDArray[np.float64]
    member_pattern: NDArray[np.integer]
    member_cell: NDArray[np.integer]
    n_rows: float


def design_cells(data: ScoreData) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Return the design cells present and each row's position among them.

    Keys are ``(cell * populations + population) * departments + department``, increasing.
    """
    n_pop, n_dept = len(data.coords["population"]), len(data.coords["department"])
    row_key = _design_keys(np.asarray(data.cell, dtype=np.int64),
                           np.asarray(data.respondent, dtype=np.int64),
                           np.asarray(data.population, dtype=np.int64),
                           np.asarray(data.department, dtype=np.int64), n_pop, n_dept)
    return dense_codes(row_key, len(data.coords["cell"]) * n_pop * n_dept)


@numba.njit(cache=True, nogil=True)
def _design_keys(cell: NDArray[np.int64], respondent: NDArray[np.int64],
                 population: NDArray[np.int64], department: NDArray[np.int64], n_pop: int,
                 n_dept: int) -> NDArray[np.int64]:
    """``(cell * n_pop + population) * n_dept + department`` of each row, in one pass."""
    key = np.empty(len(cell), dtype=np.int64)
    for i in range(len(cell)):
        r = respondent[i]
        key[i] = (cell[i] * n_pop + population[r]) * n_dept + department[r]
    return key


def score_statistics(data: ScoreData, couple_impacts: bool) -> ScoreStatistics:
    """Reduce :class:`ScoreData` to :class:`ScoreStatistics` (see the module docstring).

    Parameters
    ----------
    data : ScoreData
    couple_impacts : bool
        Units are respondents (traits correlated across impacts) if True, respondent x
        impact pairs (independent traits) if False.

    With ``data.weight`` (a weighted pseudo-likelihood), every sum is weighted by the
    respondent's weight: the log-density of a unit is multiplied by it.

    Returns
    -------
    ScoreStatistics
    """
    n_cells, n_impacts = len(data.coords["cell"]), len(data.coords["impact"])
    n_pop, n_dept = len(data.coords["population"]), len(data.coords["department"])
    keys, design_cell = design_cells(data)
    weight = data.respondent_weight
    rows = moment_matrices(design_cell, len(keys), data.y, data.regressors, weight,
                           source=data.respondent)

    row_unit = data.respondent if couple_impacts else data.group
    n_units = int(row_unit.max()) + 1
    unit_respondent = np.zeros(n_units, dtype=np.int64)
    unit_respondent[row_unit] = data.respondent
    unit_pop = data.population[unit_respondent]
    # a pattern: the population and the set of cells answered (bit mask words)
    masks = _cell_masks(row_unit, data.cell, n_units, n_cells)
    patterns, unit_pattern = _patterns(unit_pop, masks, n_pop)
    class_codes, unit_class = dense_codes(
        unit_pattern * n_dept + data.department[unit_respondent], len(patterns) * n_dept)
    class_rows = np.column_stack([class_codes // n_dept, class_codes % n_dept])
    n_slots = n_impacts if couple_impacts else 1
    row_slot = (row_unit * n_slots + data.cell_impact[data.cell] if couple_impacts
                else row_unit)
    sums = np.bincount(row_slot, weights=data.y, minlength=n_units * n_slots).reshape(
        n_units, n_slots)
    classes = moment_matrices(unit_class, len(class_rows), sums, data.regressors, weight,
                              source=unit_respondent)
    members = [_cells_of_mask(words) for words in patterns[:, 1:]]
    counts = np.array([np.bincount(data.cell_impact[m], minlength=n_impacts)
                       for m in members], dtype=np.int64)
    return ScoreStatistics(
        cell=keys // (n_pop * n_dept), population=(keys // n_dept) % n_pop,
        department=keys % n_dept, rows=rows, class_pattern=class_rows[:, 0],
        class_population=patterns[class_rows[:, 0], 0], class_department=class_rows[:, 1],
        classes=classes, pattern_population=patterns[:, 0], pattern_counts=counts,
        pattern_units=np.bincount(unit_pattern, weights=weight[unit_respondent],
                                  minlength=len(patterns)),
        member_pattern=np.repeat(np.arange(len(members)), [len(m) for m in members]),
        member_cell=np.concatenate(members),
        n_rows=float(weight @ np.bincount(data.respondent, minlength=len(weight))))


_WORD = 62  # bits used per int64 word of a cell mask


def _patterns(unit_pop: NDArray[np.integer], masks: NDArray[np.int64], n_pop: int
              ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Distinct rows ``(population, mask words)`` sorted, and each unit's row among them.

    The same as ``np.unique`` of the stacked columns with ``axis=0``, which sorts rows
    as records (slow on millions of units); with one mask word, the usual case, the words
    are hashed (``pandas.factorize``) and only the distinct ones sorted.
    """
    if masks.shape[1] != 1:
        return np.unique(np.column_stack([unit_pop, masks]), axis=0, return_inverse=True)
    unit_word, words = pd.factorize(masks[:, 0], sort=True)
    codes, unit_pattern = dense_codes(unit_pop * len(words) + unit_word,
                                      n_pop * len(words))
    return np.column_stack([codes // len(words), words[codes % len(words)]]), unit_pattern


def _cell_masks(group: NDArray[np.integer], cell: NDArray[np.integer], n_groups: int,
                n_cells: int) -> NDArray[np.int64]:
    """Per group, the answered cells as ``ceil(n_cells / 62)`` int64 bit-mask words."""
    n_words = -(-n_cells // _WORD)
    masks = np.zeros((n_groups, n_words), dtype=np.int64)
    _set_cell_bits(np.asarray(group, dtype=np.int64), np.asarray(cell, dtype=np.int64), masks)
    return masks


@numba.njit(cache=True, nogil=True)
def _set_cell_bits(group: NDArray[np.int64], cell: NDArray[np.int64],
                   masks: NDArray[np.int64]) -> None:
    """Set bit ``cell % 62`` of word ``cell // 62`` of each row's group, in one pass."""
    for i in range(len(group)):
        c = cell[i]
        masks[group[i], c // _WORD] |= np.int64(1) << np.int64(c % _WORD)


def _cells_of_mask(words: NDArray[np.int64]) -> NDArray[np.int64]:
    """Cell indices whose bits are set in ``words`` (inverse of :func:`_cell_masks`)."""
    return np.array([w * _WORD + b for w, word in enumerate(words) for b in range(_WORD)
                     if (int(word) >> b) & 1], dtype=np.int64)
