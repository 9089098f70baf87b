"""Sufficient statistics of the gaussian scale-score likelihood: one pass over the rows.

The scale-score model (:mod:`impactmodel.bayes.gaussian`) gives row ``i`` (a respondent's
score in cell ``c``, population ``p``, department ``d``) the mean ``a_h + x_i . s_h`` with

    a_h = alpha[c, p] + u[m(c), d],    s_h = e[c] + f[p] + g[d]

constant within the row's *design cell* ``h = (c, p, d)``. The respondent trait per
impact is integrated out, which couples the rows of one respondent x impact *group*; a
group's rows enter only through their sum ``Y_g``, whose mean is ``A + x_i . B`` with

    A = sum_{c in S} alpha[c, p] + n u[m, d],    B = sum_{c in S} e[c] + n (f[p] + g[d])

for the set ``S`` of ``n`` cells the group answered. The sums over ``S`` depend only on
the group's *pattern* ``(p, S)``; groups sharing impact, pattern and department form a
*class*.

Both pieces of the log-density are sums of the quadratic form
``sum (v - a - x.s)^2 = Svv - 2 a Sv - 2 s.Sxv + n a^2 + 2 a s.Sx + s' Sxx s``
over units sharing ``(a, s)``, so the statistics ``n, Sv, Svv, Sx, Sxv, Sxx`` per design
cell and per class carry everything the likelihood needs: after this pass, a gradient
costs the same at 10,000 and at 1,000,000 respondents (the numbers of design cells,
patterns and classes are bounded by the questionnaire and the territories).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from impactmodel.bayes.model_data import ScoreData


@dataclass(frozen=True)
class QuadraticStats:
    """Statistics of ``sum (v - a - x.s)^2`` over the units of each of ``n`` blocks."""

    n: NDArray[np.float64]  # (blocks,)
    sv: NDArray[np.float64]  # (blocks,)
    svv: NDArray[np.float64]  # (blocks,)
    sx: NDArray[np.float64]  # (blocks, practices)
    sxv: NDArray[np.float64]  # (blocks, practices)
    sxx: NDArray[np.float64]  # (blocks, practices, practices)


def quadratic_stats(block: NDArray[np.integer], n_blocks: int, v: NDArray[np.float64],
                    x: NDArray[np.float64]) -> QuadraticStats:
    """Accumulate :class:`QuadraticStats` of values ``v`` with covariates ``x`` by block.

    Parameters
    ----------
    block : ndarray of int, shape (units,)
        Block of each unit, in ``0 .. n_blocks - 1``.
    n_blocks : int
    v : ndarray, shape (units,)
    x : ndarray, shape (units, practices)

    Returns
    -------
    QuadraticStats
    """
    def total(w: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.bincount(block, weights=w, minlength=n_blocks)

    n_x = x.shape[1]
    sxx = np.empty((n_blocks, n_x, n_x))
    for j in range(n_x):
        for k in range(j, n_x):
            sxx[:, j, k] = sxx[:, k, j] = total(x[:, j] * x[:, k])
    return QuadraticStats(
        n=total(np.ones(len(v))), sv=total(v), svv=total(v * v),
        sx=np.column_stack([total(x[:, j]) for j in range(n_x)]).reshape(n_blocks, n_x),
        sxv=np.column_stack([total(x[:, j] * v) for j in range(n_x)]).reshape(n_blocks, n_x),
        sxx=sxx)


@dataclass(frozen=True)
class ScoreStatistics:
    """Everything the scale-score likelihood needs, reduced from the rows.

    Attributes
    ----------
    cell, population, department : ndarray of int, shape (design_cells,)
        The design cells present in the data.
    rows : QuadraticStats
        Per design cell, of the scores.
    class_pattern, class_impact, class_population, class_department, class_size :
        ndarray of int, shape (classes,)
        Each class's pattern, impact, population, department and number of cells.
    groups : QuadraticStats
        Per class, of the group sums ``Y_g``.
    pattern_population : ndarray of int, shape (patterns,)
    member_pattern, member_cell : ndarray of int
        Pairs (pattern, cell): the cells ``S`` of each pattern.
    n_rows, n_groups : int
    """

    cell: NDArray[np.integer]
    population: NDArray[np.integer]
    department: NDArray[np.integer]
    rows: QuadraticStats
    class_pattern: NDArray[np.integer]
    class_impact: NDArray[np.integer]
    class_population: NDArray[np.integer]
    class_department: NDArray[np.integer]
    class_size: NDArray[np.integer]
    groups: QuadraticStats
    pattern_population: NDArray[np.integer]
    member_pattern: NDArray[np.integer]
    member_cell: NDArray[np.integer]
    n_rows: int
    n_groups: int


def design_cells(data: ScoreData) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Return the design cells present and each row's position among them.

    Keys are ``(cell * populations + population) * departments + department``, increasing.
    """
    n_pop, n_dept = len(data.coords["population"]), len(data.coords["department"])
    row_key = ((data.cell * n_pop + data.population[data.respondent]) * n_dept
               + data.department[data.respondent])
    keys, row_cell = np.unique(row_key, return_inverse=True)
    return keys, row_cell


def score_statistics(data: ScoreData) -> ScoreStatistics:
    """Reduce :class:`ScoreData` to :class:`ScoreStatistics` (see the module docstring).

    Parameters
    ----------
    data : ScoreData

    Returns
    -------
    ScoreStatistics
    """
    n_cells = len(data.coords["cell"])
    n_pop, n_dept = len(data.coords["population"]), len(data.coords["department"])
    keys, design_cell = design_cells(data)
    rows = quadratic_stats(design_cell, len(keys), data.y, data.x[data.respondent])

    n_groups = int(data.group.max()) + 1
    group_respondent = np.zeros(n_groups, dtype=np.int64)
    group_respondent[data.group] = data.respondent
    g_pop = data.population[group_respondent]
    g_dept = data.department[group_respondent]
    # a pattern: the population and the set of cells answered (bit mask words)
    masks = _cell_masks(data.group, data.cell, n_groups, n_cells)
    patterns, group_pattern = np.unique(np.column_stack([g_pop, masks]), axis=0,
                                        return_inverse=True)
    class_rows, group_class = np.unique(
        np.column_stack([group_pattern, data.group_impact, g_dept]), axis=0,
        return_inverse=True)
    groups = quadratic_stats(group_class, len(class_rows),
                             np.bincount(data.group, weights=data.y, minlength=n_groups),
                             data.x[group_respondent])
    members = [_cells_of_mask(words) for words in patterns[:, 1:]]
    class_size = np.array([len(members[k]) for k in class_rows[:, 0]], dtype=np.int64)
    return ScoreStatistics(
        cell=keys // (n_pop * n_dept), population=(keys // n_dept) % n_pop,
        department=keys % n_dept, rows=rows, class_pattern=class_rows[:, 0],
        class_impact=class_rows[:, 1], class_population=patterns[class_rows[:, 0], 0],
        class_department=class_rows[:, 2], class_size=class_size, groups=groups,
        pattern_population=patterns[:, 0],
        member_pattern=np.repeat(np.arange(len(members)), [len(m) for m in members]),
        member_cell=np.concatenate(members), n_rows=len(data.y), n_groups=n_groups)


_WORD = 62  # bits used per int64 word of a cell mask


def _cell_masks(group: NDArray[np.integer], cell: NDArray[np.integer], n_groups: int,
                n_cells: int) -> NDArray[np.int64]:
    """Per group, the answered cells as ``ceil(n_cells / 62)`` int64 bit-mask words."""
    n_words = -(-n_cells // _WORD)
    masks = np.zeros((n_groups, n_words), dtype=np.int64)
    for w in range(n_words):
        in_word = (cell // _WORD) == w
        np.bitwise_or.at(masks[:, w], group[in_word],
                         np.left_shift(1, cell[in_word] % _WORD).astype(np.int64))
    return masks


def _cells_of_mask(words: NDArray[np.int64]) -> NDArray[np.int64]:
    """Cell indices whose bits are set in ``words`` (inverse of :func:`_cell_masks`)."""
    return np.array([w * _WORD + b for w, word in enumerate(words) for b in range(_WORD)
                     if (int(word) >> b) & 1], dtype=np.int64)
