"""Taylor-linearisation variance of totals of influence scores, stage by stage.

The estimator of R ``survey``'s ``svyrecvar`` (Lumley 2010, *Complex Surveys*, §2.2 and
appendix C): at each stage, within each stratum ``h`` with ``n_h`` sampled clusters and
finite population correction ``f_h = (N_h - n_h) / N_h`` (1 when unknown),

    V_h = f_h * n_h / (n_h - 1) * sum_c (Z_c - mean_h Z)(Z_c - mean_h Z)'

where ``Z_c`` are the cluster totals of the scores; the strata add up. When the design
gives an fpc for every stage, the next stage's variance, computed within each sampled
cluster, is added after multiplication by that cluster's stage sampling fraction
``n_h / N_h`` (so stages compound). Strata with one sampled cluster follow the
``lonely_psu`` rule of R's ``survey.lonely.psu`` option.

A numpy/scipy kernel: rows of ``scores`` are respondents; nothing here knows pandas.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise
from typing import Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from impactmodel.errors import ImpactModelError

LonelyPSU = Literal["fail", "certainty", "remove", "adjust", "average"]
LONELY_PSU_RULES: tuple[str, ...] = ("fail", "certainty", "remove", "adjust", "average")


class LonelyPSUError(ImpactModelError):
    """A stratum has a single sampled PSU and the rule is ``fail``."""


@dataclass(frozen=True)
class Stage:
    """One sampling stage, as integer codes per respondent.

    Attributes
    ----------
    stratum : ndarray of int, shape (n,)
        Stratum code, unique over the whole design (nested in the previous stage's cluster).
    cluster : ndarray of int, shape (n,)
        Cluster code at this stage, unique over the whole design.
    n_sampled : ndarray of float, shape (n_strata,)
        Sampled clusters per stratum code.
    population : ndarray of float, shape (n_strata,) or None
        Population clusters per stratum code (``inf`` = unknown); ``None`` without fpc.
    stratum_labels : tuple of str
        Labels of the stratum codes, for error messages.
    parent : ndarray of int, shape (n_strata,)
        The previous stage's cluster code containing each stratum (0 at stage 1).
    """

    stratum: NDArray[np.integer]
    cluster: NDArray[np.integer]
    n_sampled: NDArray[np.floating]
    population: NDArray[np.floating] | None
    stratum_labels: tuple[str, ...]
    parent: NDArray[np.integer]

    @property
    def fpc_factor(self) -> NDArray[np.float64]:
        """``(N_h - n_h) / N_h`` per stratum code (1 without fpc)."""
        if self.population is None:
            return np.ones_like(self.n_sampled)
        with np.errstate(invalid="ignore", divide="ignore"):
            f = (self.population - self.n_sampled) / self.population
        return np.where(np.isinf(self.population), 1.0, f)

    @cached_property
    def n_clusters(self) -> int:
        """Number of cluster codes."""
        return int(self.cluster.max()) + 1

    @cached_property
    def cluster_indicator(self) -> sp.csr_matrix:
        """Sparse (clusters x respondents) 0/1 matrix: cluster totals are one product."""
        n = len(self.cluster)
        return sp.csr_matrix((np.ones(n), (self.cluster, np.arange(n))),
                             shape=(self.n_clusters, n))

    @cached_property
    def cluster_stratum(self) -> NDArray[np.integer]:
        """The stratum code of each cluster code."""
        out = np.zeros(self.n_clusters, dtype=int)
        out[self.cluster] = self.stratum
        return out

    @cached_property
    def stratum_indicator(self) -> sp.csr_matrix:
        """Sparse (strata x clusters) 0/1 matrix."""
        k = self.n_clusters
        return sp.csr_matrix((np.ones(k), (self.cluster_stratum, np.arange(k))),
                             shape=(len(self.n_sampled), k))

    @property
    def sampling_fraction(self) -> NDArray[np.float64]:
        """``n_h / N_h`` per stratum code (0 when ``N_h`` is unknown)."""
        if self.population is None:
            return np.zeros_like(self.n_sampled)
        return self.n_sampled / self.population


def _crossprod(deviations: NDArray[np.float64], scale: NDArray[np.float64], diagonal: bool
               ) -> NDArray[np.float64]:
    if diagonal:
        return np.einsum("ck,c,ck->k", deviations, scale, deviations)
    return np.asarray((deviations * scale[:, None]).T @ deviations)


def stage_covariance(scores: NDArray[np.float64] | sp.spmatrix, stage: Stage,
                     lonely_psu: LonelyPSU, stage_number: int = 1, *,
                     diagonal: bool = False) -> NDArray[np.float64]:
    """Between-cluster covariance of one stage (see the module docstring).

    Parameters
    ----------
    scores : ndarray or sparse matrix, shape (n, k)
    stage : Stage
    lonely_psu : {"fail", "certainty", "remove", "adjust", "average"}
    stage_number : int
        For messages.
    diagonal : bool
        Return only the variances, shape (k,), without forming the k x k matrix.

    Returns
    -------
    ndarray, shape (k, k), or (k,) when ``diagonal``
    """
    product = stage.cluster_indicator @ scores
    totals = np.asarray(product.toarray() if sp.issparse(product) else product)
    cluster_stratum = stage.cluster_stratum
    n_h = stage.n_sampled[cluster_stratum]
    f_h = stage.fpc_factor[cluster_stratum]
    # a stratum sampled whole (f ~ 0) is self-representing: no variance, lonely or not
    lonely = (n_h == 1) & (f_h >= 1e-7)
    present = None
    if lonely.any() and lonely_psu in ("fail", "average"):
        # which strata hold respondents of each column (a domain, or the rows a model used):
        # R works on the subset, so a stratum outside it is neither lonely nor counted
        if sp.issparse(scores):  # the structure marks the rows in use (zeros included)
            marks = sp.csr_matrix(scores, copy=True)
            marks.data[:] = 1.0
        else:
            marks = (np.asarray(scores) != 0).astype(float)
        support = stage.cluster_indicator @ marks
        support = np.asarray(support.toarray() if sp.issparse(support) else support) > 0
        present = (np.asarray(stage.stratum_indicator @ support) > 0)  # strata x k
    if present is not None and lonely_psu == "fail":
        lonely_strata = np.unique(cluster_stratum[lonely])
        hit = lonely_strata[present[lonely_strata].any(axis=1)]
        if len(hit):
            labels = sorted({stage.stratum_labels[s] for s in hit})
            shown = ", ".join(map(repr, labels[:5])) + (", ..." if len(labels) > 5 else "")
            what = (f"stratum {shown} has" if len(labels) == 1
                    else f"{len(labels)} strata ({shown}) have")
            raise LonelyPSUError(
                f"{what} only one PSU at stage {stage_number}; choose lonely_psu="
                "'certainty', 'remove', 'adjust' or 'average'")
    sums = stage.stratum_indicator @ totals
    means = sums / stage.n_sampled[:, None]
    deviations = totals - means[cluster_stratum]
    if lonely_psu == "adjust":
        deviations[lonely] = totals[lonely]  # R: a lonely PSU is not centred
    elif lonely.any():
        deviations[lonely] = 0.0  # certainty / remove: no contribution; average: rescaled below
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(n_h > 1, f_h * n_h / (n_h - 1), f_h)
    # self-representing strata (all f ~ 0) contribute nothing
    scale = np.where(f_h < 1e-7, 0.0, scale)
    cov = _crossprod(deviations, scale, diagonal)
    if lonely_psu == "average" and present is not None:
        # R: within each parent cluster, the sum over the strata present is scaled by
        # n_strata / n_ok_strata (NaN when no stratum there has two PSUs)
        stratum_lonely = (stage.n_sampled == 1) & (stage.fpc_factor >= 1e-7)
        n_parents = int(stage.parent.max()) + 1
        parent_of = sp.csr_matrix((np.ones(len(stage.parent)),
                                   (stage.parent, np.arange(len(stage.parent)))),
                                  shape=(n_parents, len(stage.parent)))
        n_all = np.asarray(parent_of @ present.astype(float))
        n_ok = np.asarray(parent_of @ (present & ~stratum_lonely[:, None]).astype(float))
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(n_all > 0, n_all / n_ok, 0.0)  # parents x k
        weight = ratio[stage.parent[cluster_stratum]]  # clusters x k
        weighted = deviations * np.sqrt(np.where(np.isfinite(weight), weight, np.nan))
        cov = _crossprod(weighted, scale, diagonal)
    return cov


def design_covariance(scores: NDArray[np.float64] | sp.spmatrix, stages: tuple[Stage, ...],
                      lonely_psu: LonelyPSU = "fail", *, diagonal: bool = False
                      ) -> NDArray[np.float64]:
    """Covariance of the totals of ``scores`` under a (multi-stage) design.

    Parameters
    ----------
    scores : ndarray or sparse matrix, shape (n, k)
        Influence scores (e.g. ``w_i (y_i - mean) / sum(w)`` for a mean).
    stages : tuple of Stage
    lonely_psu : {"fail", "certainty", "remove", "adjust", "average"}
    diagonal : bool
        Return only the variances, shape (k,).

    Returns
    -------
    ndarray, shape (k, k), or (k,) when ``diagonal``
    """
    cov = stage_covariance(scores, stages[0], lonely_psu, 1, diagonal=diagonal)
    factor = np.ones(len(stages[0].cluster))
    for number, (previous, stage) in enumerate(pairwise(stages), start=2):
        if previous.population is None:
            break
        factor = factor * previous.sampling_fraction[previous.stratum]
        if not np.any(factor > 0):
            break
        scaled = sp.diags(np.sqrt(factor)) @ scores
        cov = cov + stage_covariance(scaled, stage, lonely_psu, number, diagonal=diagonal)
    return cov
