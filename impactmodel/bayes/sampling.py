"""Draw from a PyMC model; every fit is checked for convergence.

nutpie by default, PyMC's NUTS as fallback, ADVI as an explicit approximate mode. Seeds
come from the caller. A model built as a :class:`BuiltModel` (its data in ``pm.Data``
containers, its structure summarised by a hashable key) is compiled by nutpie once per
structure: a second fit of the same structure on new data swaps the data into the compiled
model instead of compiling again, and a new process loads the compiled model from disk
(:mod:`impactmodel.bayes.compile_cache`).

nutpie runs its chains in threads, one per core; BLAS and LAPACK calls inside a gradient
(matrix products, the triangular solve of the respondents' locations) run single-threaded
meanwhile. With OpenBLAS's own threads on top, the chains' threads and BLAS's oversubscribed
the cores: at 9,202 respondents, the ordinal model's leapfrog steps took 7.8 ms instead of
2.7 ms.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import nutpie
import pandas as pd
import pymc as pm
import xarray as xr
import zarr
from threadpoolctl import threadpool_limits

from impactmodel.bayes.compile_cache import compile_cached
from impactmodel.bayes.diagnostics import Convergence, Thresholds, check_convergence
from impactmodel.errors import ImpactModelError

Sampler = Literal["nutpie", "pymc", "advi"]
SAMPLERS: tuple[str, ...] = ("nutpie", "pymc", "advi")
Adaptation = Literal["diag", "low_rank"]
ADAPTATIONS: tuple[str, ...] = ("diag", "low_rank")
Trajectory = Literal["euclidean", "microcanonical"]
TRAJECTORIES: tuple[str, ...] = ("euclidean", "microcanonical")
DrawStorage = Literal["auto", "memory", "disk"]
DRAW_STORAGES: tuple[str, ...] = ("auto", "memory", "disk")
#: under ``draw_storage="auto"``, nutpie's draws go through a store on disk from this many
#: bytes of stored draws (kept in memory, they peak at about 2.7 times their size:
#: benchmarks/README.md, session of 2026-12-07)
DISK_FROM_BYTES = 2 * 2**30


class SamplingError(ImpactModelError):
    """The sampler cannot run as asked."""


@dataclass(frozen=True)
class SamplerSettings:
    """How to sample.

    Attributes
    ----------
    sampler : {"nutpie", "pymc", "advi"}
        ``nutpie`` (default, compiled with numba), ``pymc`` (PyMC's own NUTS) or ``advi``
        (mean-field variational approximation: fast, approximate, never "converged").
    draws, tune, chains : int
        ``tune``: warm-up steps per chain, 300 by default as in nutpie
        (benchmarks/README.md, session 9: with the reparametrised effects every measured
        seed passed at 81,471 and 814,710 respondents with 300 steps; 1,000 brought
        nothing there, and the small-survey failures do not depend on it).
    seed : int
    target_accept : float, optional
        NUTS target acceptance. Default: the model's (:attr:`BuiltModel.target_accept`;
        0.8, nutpie's and PyMC's default, for a plain ``pm.Model``). Raise it if a fit
        reports divergences.
    adaptation : {"diag", "low_rank"}
        nutpie's mass-matrix adaptation: diagonal (default, as Stan and PyMC) or
        low-rank-modified diagonal (learns a few correlated directions of the posterior).
    max_depth : int, optional
        Largest NUTS tree depth (at most ``2**max_depth - 1`` leapfrog steps per draw).
        Default: the model's (:attr:`BuiltModel.max_depth`; 10, nutpie's and PyMC's
        default, for a plain ``pm.Model``).
    trajectory : {"euclidean", "microcanonical"}, optional
        The dynamics of nutpie's NUTS trajectories: ``euclidean``, the usual leapfrog
        with Gaussian momenta (Stan's, PyMC's), or ``microcanonical``, isokinetic
        (ESH) dynamics whose velocity stays on the unit sphere (Ver Steeg & Galstyan 2021;
        Robnik et al. 2023), its energy error tracked along the tree and the draw chosen
        from the tree with the same multinomial weights: Metropolis-adjusted, exact as
        the Euclidean one (Robnik et al. 2025, "Metropolis adjusted microcanonical
        Hamiltonian Monte Carlo"); nutpie's ``microcanonical_trajectory``. Default:
        the model's (:attr:`BuiltModel.trajectory`; ``euclidean`` for a plain
        ``pm.Model``). ``microcanonical`` needs the nutpie sampler.
    draw_storage : {"auto", "memory", "disk"}
        Where nutpie keeps the draws while it samples. ``memory``: in its own trace,
        copied into arrays when sampling ends (both copies alive at that moment: the peak
        is about 2.7 times the draws' size). ``disk``: written as they come to a
        temporary zarr store, read into arrays once, and the store deleted (about the
        draws' size at the peak; reading costs a few seconds per GB). The store is in the
        system's temporary folder (``TMPDIR``; where that is a RAM-backed ``tmpfs``,
        point it at a disk) and needs about the draws' size there. ``auto`` (default):
        ``disk`` from :data:`DISK_FROM_BYTES` of draws. The same draws either way.
        ``disk`` needs the nutpie sampler.
    advi_iterations : int
    """

    sampler: Sampler = "nutpie"
    draws: int = 1000
    tune: int = 300
    chains: int = 4
    seed: int = 0
    target_accept: float | None = None
    adaptation: Adaptation = "diag"
    max_depth: int | None = None
    trajectory: Trajectory | None = None
    draw_storage: DrawStorage = "auto"
    advi_iterations: int = 20000

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise SamplingError(f"unknown sampler {self.sampler!r}; choose one of "
                                + ", ".join(SAMPLERS))
        if self.adaptation not in ADAPTATIONS:
            raise SamplingError(f"unknown adaptation {self.adaptation!r}; choose one of "
                                + ", ".join(ADAPTATIONS))
        if self.adaptation != "diag" and self.sampler != "nutpie":
            raise SamplingError(f"adaptation {self.adaptation!r} needs the nutpie sampler, "
                                f"not {self.sampler!r}")
        if self.trajectory is not None and self.trajectory not in TRAJECTORIES:
            raise SamplingError(f"unknown trajectory {self.trajectory!r}; choose one of "
                                + ", ".join(TRAJECTORIES))
        if self.trajectory == "microcanonical" and self.sampler != "nutpie":
            raise SamplingError(f"trajectory 'microcanonical' needs the nutpie sampler, "
                                f"not {self.sampler!r}")
        if self.draw_storage not in DRAW_STORAGES:
            raise SamplingError(f"unknown draw_storage {self.draw_storage!r}; choose one of "
                                + ", ".join(DRAW_STORAGES))
        if self.draw_storage == "disk" and self.sampler != "nutpie":
            raise SamplingError(f"draw_storage 'disk' needs the nutpie sampler, "
                                f"not {self.sampler!r}")
        if self.target_accept is not None and not 0.0 < self.target_accept < 1.0:
            raise SamplingError(f"target_accept must be in (0, 1), got {self.target_accept}")
        if self.max_depth is not None and self.max_depth < 1:
            raise SamplingError(f"max_depth must be positive, got {self.max_depth}")
        for name in ("draws", "tune", "chains"):
            if getattr(self, name) < (0 if name == "tune" else 1):
                raise SamplingError(f"{name} must be positive, got {getattr(self, name)}")


#: NUTS defaults of a model that sets none (nutpie's and PyMC's own)
DEFAULT_MAX_DEPTH = 10
DEFAULT_TARGET_ACCEPT = 0.8


@dataclass(frozen=True)
class BuiltModel:
    """A PyMC model with its data containers and a key of everything else it depends on.

    Two models with equal ``structure`` differ only in the values of ``data`` (the
    ``pm.Data`` containers of the same names), so one compiled model serves both.
    ``max_depth``, ``target_accept`` and ``trajectory`` are the model's defaults for the
    largest NUTS tree depth, the target acceptance and the trajectories' dynamics
    (:class:`SamplerSettings` overrides them). ``stand_ins`` pairs each free variable that
    is only the sampler's coordinates with the deterministic it stands in for (the
    partially non-centred locations, :mod:`impactmodel.bayes.partial_scaling`): the
    convergence check reads the deterministic instead, and the draws leave the
    coordinates out (nutpie does not store them when the model comes from
    :func:`~impactmodel.bayes.compile_cache.compile_cached`).
    """

    model: pm.Model
    data: dict[str, np.ndarray]
    structure: tuple[Any, ...]
    max_depth: int = DEFAULT_MAX_DEPTH
    target_accept: float = DEFAULT_TARGET_ACCEPT
    trajectory: Trajectory = "euclidean"
    stand_ins: tuple[tuple[str, str], ...] = ()


_COMPILED: dict[tuple[Any, ...], Any] = {}
_COMPILED_MAX = 8


def _compiled(built: BuiltModel) -> Any:
    """Nutpie's compiled model for ``built``, reusing one compiled for the same structure."""
    cached = _COMPILED.get(built.structure)
    if cached is not None:
        return cached.with_data(**built.data)
    compiled, _ = compile_cached(built.model, built.structure, built.data,
                                 omit=tuple(name for name, _ in built.stand_ins))
    if len(_COMPILED) >= _COMPILED_MAX:
        _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[built.structure] = compiled
    return compiled


@dataclass(frozen=True)
class Draws:
    """Posterior draws with their convergence report and the settings as applied.

    ``settings.max_depth``, ``settings.target_accept`` and ``settings.trajectory`` are
    the ones the sampler used (the model's defaults when the settings left them out;
    ``trajectory`` stays unset for PyMC's NUTS and ADVI).
    """

    idata: xr.DataTree
    convergence: Convergence
    settings: SamplerSettings


#: progress callback: (draws done, draws in all, divergences so far, still tuning)
Progress = Callable[[int, int, int, bool], None]


def _nutpie_progress(progress: Progress | None) -> Callable[[list[Any]], None] | None:
    """Adapt ``progress`` to nutpie's per-chain callback."""
    if progress is None:
        return None

    def report(chains: list[Any]) -> None:
        progress(sum(c.finished_draws for c in chains), sum(c.total_draws for c in chains),
                 sum(c.divergences for c in chains), any(c.tuning for c in chains))
    return report


def sample_model(model: pm.Model | BuiltModel, settings: SamplerSettings,
                 thresholds: Thresholds | None = None,
                 var_names: list[str] | None = None,
                 progress: Progress | None = None) -> Draws:
    """Sample ``model`` and check convergence.

    Parameters
    ----------
    model : pymc.Model or BuiltModel
        A :class:`BuiltModel` is compiled once per structure (nutpie only).
    settings : SamplerSettings
    thresholds : Thresholds, optional
    var_names : list of str, optional
        Parameters whose diagnostics decide convergence (default: all free ones).
    progress : callable, optional
        Called while nutpie samples a :class:`BuiltModel` with (draws done, draws in all,
        divergences so far, still tuning), summed over chains.

    Returns
    -------
    Draws
    """
    built = model if isinstance(model, BuiltModel) else None
    pymc_model: pm.Model = built.model if built is not None else model
    defaults = built if built is not None else BuiltModel(pymc_model, {}, ())
    max_depth = settings.max_depth or defaults.max_depth
    target_accept = settings.target_accept or defaults.target_accept
    trajectory = (settings.trajectory or defaults.trajectory
                  if settings.sampler == "nutpie" else None)
    # recorded with the draws
    applied = replace(settings, max_depth=max_depth, target_accept=target_accept,
                      trajectory=trajectory)
    # nutpie's own switch (its settings' trajectory kind)
    dynamics = {"microcanonical_trajectory": True} if trajectory == "microcanonical" else {}
    with pymc_model, warnings.catch_warnings():
        # PyMC warns when draws are few; the convergence report says it instead
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        if settings.sampler == "advi":
            approx = pm.fit(n=settings.advi_iterations, method="advi",
                            random_seed=settings.seed, progressbar=False)
            idata = approx.sample(settings.draws * settings.chains, random_seed=settings.seed)
            return Draws(idata, check_convergence(idata, approximate=True), settings)
        if built is not None and settings.sampler == "nutpie":
            compiled = _compiled(built)
            with threadpool_limits(limits=1, user_api="blas"):
                idata = _nutpie_draws(compiled, settings, target_accept=target_accept,
                                      adaptation=settings.adaptation, maxdepth=max_depth,
                                      progress_callback=_nutpie_progress(progress),
                                      **dynamics)
            idata = _without_coordinates(idata, defaults.stand_ins)
            return Draws(idata, check_convergence(
                idata, var_names or _free_names(pymc_model, defaults.stand_ins), thresholds),
                applied)
        idata = pm.sample(draws=settings.draws, tune=settings.tune, chains=settings.chains,
                          random_seed=settings.seed, target_accept=target_accept,
                          nuts_sampler=settings.sampler, progressbar=False,
                          compute_convergence_checks=False,
                          nuts=({"adaptation": settings.adaptation, "maxdepth": max_depth,
                                 **dynamics}
                                if settings.sampler == "nutpie"
                                else {"max_treedepth": max_depth}))
    idata = _without_coordinates(idata, defaults.stand_ins)
    names = var_names or _free_names(pymc_model, defaults.stand_ins)
    return Draws(idata, check_convergence(idata, names, thresholds), applied)


def _nutpie_draws(compiled: Any, settings: SamplerSettings, **options: Any) -> xr.DataTree:
    """Sample ``compiled`` with nutpie, its draws kept as ``settings.draw_storage`` says.

    ``options`` are nutpie's sampling options beyond the draws, warm-up, chains and seed.
    """
    common = {"draws": settings.draws, "tune": settings.tune, "chains": settings.chains,
              "seed": settings.seed, "progress_bar": False, "save_warmup": False}
    size = 8 * getattr(compiled, "n_expanded", 0) * settings.chains * settings.draws
    if settings.draw_storage == "memory" or (settings.draw_storage == "auto"
                                             and size < DISK_FROM_BYTES):
        return nutpie.sample(compiled, **common, **options)
    _check_room(size * (settings.draws + settings.tune) // settings.draws)
    with tempfile.TemporaryDirectory(prefix="impactmodel-draws-") as folder:
        stored = nutpie.sample(compiled, **common, **options,
                               zarr_store=nutpie.zarr_store.LocalStore(prefix=folder))
        return _read_draws(stored, zarr.open_group(folder, mode="r"),
                           set(compiled.reparameterized_names), compiled.coords)


def _check_room(needed: int) -> None:
    """Refuse before sampling when the temporary folder cannot hold the draws' store.

    ``needed``: the draws and the warm-up's, uncompressed (nutpie writes both; its
    compressed store of a fit of 9,202 respondents took 1.3 GB for 1.2 GB of them).
    A full disk would otherwise end the fit after all its sampling time.
    """
    folder = tempfile.gettempdir()
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise SamplingError(
            f"the draws need about {needed / 2**30:.1f} GiB in the temporary folder "
            f"{folder}, which has {free / 2**30:.1f} GiB free: set TMPDIR to a folder "
            "with room, or [sampler] draw_storage = \"memory\" (about 2.7 times the "
            "draws' size in memory)")


def _read_draws(stored: xr.DataTree, root: zarr.Group, transformed: set[str],
                coords: dict[str, Any]) -> xr.DataTree:
    """Read the draws of nutpie's zarr store ``root`` as its in-memory path returns them.

    ``stored`` is nutpie's lazy view of the store (names and dimensions); every array is
    read whole through zarr (9,202 respondents: 2.3 s for the 0.88 GB of locations, where
    xarray's lazy loading took 7.5 s for the posterior). Kept: the
    posterior without the unconstrained copies of transformed variables (``transformed``)
    and the per-draw sample statistics; the warm-up and the statistics nutpie stores
    only on disk (gradients, positions, divergence records) are left.
    """
    groups = {}
    for group in ("posterior", "sample_stats"):
        lazy = stored[group].ds
        variables = {name: (var.dims, _read_array(root, f"{group}/{name}"))
                     for name, var in lazy.data_vars.items()
                     if name not in transformed
                     and (group == "posterior" or var.dims == ("chain", "draw"))}
        dims = {dim for value_dims, _ in variables.values() for dim in value_dims}
        labels = {dim: pd.Index(values) for dim, values in coords.items() if dim in dims}
        labels |= {"chain": np.arange(lazy.sizes["chain"]), "draw": np.arange(lazy.sizes["draw"])}
        groups[group] = xr.Dataset(variables, coords=labels)
    return xr.DataTree.from_dict(groups)


def _read_array(root: zarr.Group, path: str) -> np.ndarray:
    """Read the array at ``path`` in ``root`` whole."""
    array = root[path]
    if not isinstance(array, zarr.Array):
        raise SamplingError(f"nutpie's store holds a group, not draws, at {path!r}")
    return np.asarray(array[...])


def _free_names(model: pm.Model, stand_ins: tuple[tuple[str, str], ...] = ()) -> list[str]:
    """Return the free variables' names, each sampler coordinate replaced by its stand-in."""
    replaced = dict(stand_ins)
    return [replaced.get(v.name, v.name) for v in model.free_RVs]


def _without_coordinates(idata: xr.DataTree, stand_ins: tuple[tuple[str, str], ...]
                         ) -> xr.DataTree:
    """``idata`` without the draws of the sampler's coordinates named in ``stand_ins``."""
    names = [name for name, _ in stand_ins if name in idata["posterior"].data_vars]
    if not names:
        return idata
    return idata.assign(posterior=xr.DataTree(idata["posterior"].ds.drop_vars(names)))
