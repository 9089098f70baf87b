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
    if lonely.any() and lonely_psu == "fail":
        labels = sorted({stage.stratum_labels[s] for s in cluster_stratum[lonely]})
        shown = ", ".join(map(repr, labels[:5])) + (", ..." if len(labels) > 5 else "")
        what = (f"stratum {shown} has" if len(labels) == 1
                else f"{len(labels)} strata ({shown}) have")
        raise LonelyPSUError(
            f"{what} only one PSU at stage {stage_number}; choose lonely_psu='certainty', "
            "'remove', 'adjust' or 'average'")
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
    if lonely_psu == "average" and lonely.any():
        # R: within each parent cluster, the strata's sum is scaled by n_strata / n_ok_strata
        strata_present = np.unique(cluster_stratum)
        parents = stage.parent[strata_present]
        ok = stage.n_sampled[strata_present] > 1
        n_all = np.bincount(parents, minlength=int(stage.parent.max()) + 1)
        n_ok = np.bincount(parents[ok], minlength=len(n_all))
        ratio = np.divide(n_all, n_ok, out=np.zeros(len(n_all)), where=n_ok > 0)
        weight = ratio[stage.parent[cluster_stratum]]
        cov = _crossprod(deviations, scale * weight, diagonal)
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
