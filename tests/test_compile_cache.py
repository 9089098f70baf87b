"""Compiled models kept on disk: a hit loads without compiling and computes the same density.

References: for a tiny model, PyTensor's own C-compiled ``logp`` / ``dlogp`` (a separate
compile path from the numba callbacks under test); for the package's models, the PyTensor
function of a fresh compile called from Python, against the callback loaded from disk.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
import time

import numpy as np
import pymc as pm
import pytest

from impactmodel import load_survey
from impactmodel.bayes.compile_cache import (
    compile_cached,
    graph_fingerprint,
    prune,
    structure_key,
)
from impactmodel.bayes.gaussian import scale_score_model
from impactmodel.bayes.item_data import build_item_data
from impactmodel.bayes.model_data import build_score_data
from impactmodel.bayes.ordinal import ordinal_item_model
from impactmodel.simulate import SimulationSettings, simulate, write_simulation

PRACTICES = ["partners", "mode_cooperation", "maturity"]


def callback_density(compiled, x: np.ndarray) -> tuple[float, np.ndarray]:
    """Log-density and gradient from the compiled C callback nutpie calls."""
    pointer = ctypes.POINTER(ctypes.c_double)
    x = np.ascontiguousarray(x, dtype=float)
    grad, logp = np.zeros(compiled.n_dim), np.zeros(())
    code = compiled.compiled_logp_func.ctypes(
        compiled.n_dim, x.ctypes.data_as(pointer), grad.ctypes.data_as(pointer),
        logp.ctypes.data_as(pointer), ctypes.c_void_p(compiled.user_data.ctypes.data))
    assert code == 0
    return float(logp), grad


def reference_density(model: pm.Model, compiled, x: np.ndarray) -> tuple[float, np.ndarray]:
    """PyTensor's C backend on the same point (unflattened as nutpie flattens it)."""
    names, slices, shapes = compiled.shape_info
    point = {name: x[s].reshape(shape) for name, s, shape in zip(names, slices, shapes,
                                                                  strict=False)
             if name in {v.name for v in model.value_vars}}
    logp = model.compile_logp(mode="FAST_RUN")(point)
    grad = model.compile_dlogp(mode="FAST_RUN")(point)
    return float(logp), np.asarray(grad)


def assert_same_density(reference, compiled, seed: int = 0) -> None:
    """``reference(x)`` gives the log-density and gradient the callback must give."""
    rng = np.random.default_rng(seed)
    for _ in range(3):
        x = rng.normal(0.0, 0.3, compiled.n_dim)
        logp, grad = callback_density(compiled, x)
        expected_logp, expected_grad = reference(x)
        assert logp == pytest.approx(expected_logp, rel=1e-9)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-7,
                                   atol=1e-9 * np.abs(expected_grad).max())


def tiny_model(values: np.ndarray, prior_sd: float = 10.0) -> pm.Model:
    with pm.Model() as model:
        y = pm.Data("y_values", values)
        mu = pm.Normal("mu", 0.0, prior_sd)
        sigma = pm.HalfNormal("sigma", 5.0)
        pm.Deterministic("mu_twice", 2 * mu)
        pm.Normal("y", mu, sigma, observed=y)
    return model


def test_tiny_model_miss_then_hit_then_new_data(tmp_path):
    values = np.array([1.0, 2.5, 0.5, 3.0])
    model = tiny_model(values)
    structure = ("tiny", 1)
    first, report = compile_cached(model, structure, {"y_values": values}, root=tmp_path)
    assert not report.loaded and (report.folder / "manifest.json").is_file()
    start = time.perf_counter()
    second, report = compile_cached(model, structure, {"y_values": values}, root=tmp_path)
    assert report.loaded and time.perf_counter() - start < 5.0
    for compiled in (first, second):
        assert_same_density(lambda x: reference_density(model, second, x), compiled)
    # nutpie's own data swap works on a loaded model: the density is the new data's
    other = np.array([10.0, 12.0, 9.5])
    swapped = second.with_data(y_values=other)
    assert_same_density(lambda x: reference_density(tiny_model(other), second, x), swapped)


def test_a_damaged_or_foreign_entry_is_compiled_afresh(tmp_path):
    values = np.array([1.0, 2.0])
    model = tiny_model(values)
    _, report = compile_cached(model, ("tiny", 2), {"y_values": values}, root=tmp_path)
    manifest = report.folder / "manifest.json"
    manifest.write_text("{ not json")
    compiled, report = compile_cached(model, ("tiny", 2), {"y_values": values}, root=tmp_path)
    assert not report.loaded
    json.loads(manifest.read_text())  # rewritten whole
    assert_same_density(lambda x: reference_density(model, compiled, x), compiled)
    # a manifest whose free variables are not the model's is not used
    entry = json.loads(manifest.read_text())
    entry["names"][0] = "not_mu"
    manifest.write_text(json.dumps(entry))
    _, report = compile_cached(model, ("tiny", 2), {"y_values": values}, root=tmp_path)
    assert not report.loaded


def test_a_cache_that_cannot_be_written_falls_back_to_nutpies_compile(tmp_path):
    values = np.array([1.0, 2.0, 4.0])
    model = tiny_model(values)
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder should be")
    compiled, report = compile_cached(model, ("tiny", 5), {"y_values": values},
                                      root=not_a_folder)
    assert report.folder is None and not report.loaded
    assert_same_density(lambda x: reference_density(model, compiled, x), compiled)


def test_omitted_coordinates_are_not_stored_and_the_other_draws_are_unchanged(tmp_path):
    """Leaving a free variable out of the stored draws changes nothing else: the sampler
    is the same, so the same seed gives the same draws of every stored variable (the
    reference is the compile that stores everything, as nutpie's own does)."""
    import nutpie

    values = np.array([1.0, 2.5, 0.5, 3.0, 1.5])
    model = tiny_model(values)
    every, _ = compile_cached(model, ("tiny", 6), {"y_values": values}, root=tmp_path)
    some, report = compile_cached(model, ("tiny", 6), {"y_values": values}, root=tmp_path,
                                  omit=("mu",))
    assert not report.loaded  # its own entry: the callbacks differ
    again, report = compile_cached(tiny_model(values), ("tiny", 6), {"y_values": values},
                                   root=tmp_path, omit=("mu",))
    assert report.loaded

    def draws(compiled):
        return nutpie.sample(compiled, draws=50, tune=50, chains=2, seed=3,
                             progress_bar=False)["posterior"]

    full = draws(every)
    assert {"mu", "sigma", "mu_twice"} <= set(full.data_vars)
    for compiled in (some, again):
        reduced = draws(compiled)
        assert "mu" not in reduced.data_vars
        assert set(reduced.data_vars) == set(full.data_vars) - {"mu"}
        for name in reduced.data_vars:
            np.testing.assert_array_equal(reduced[name].values, full[name].values)
        # the omitted variable is still sampled: its deterministic is twice its draws
        np.testing.assert_allclose(reduced["mu_twice"].values, 2 * full["mu"].values)


def test_the_least_recently_used_entries_are_pruned(tmp_path):
    values = np.array([1.0, 2.0])
    model = tiny_model(values)
    folders = [compile_cached(model, ("tiny", k), {"y_values": values}, root=tmp_path)[1].folder
               for k in (3, 4)]
    _, report = compile_cached(model, ("tiny", 3), {"y_values": values}, root=tmp_path)
    assert report.loaded  # ("tiny", 3) is now the most recently used
    assert prune(tmp_path, keep=1) == [folders[1]]
    assert folders[0].is_dir() and not folders[1].exists()


def test_the_key_follows_the_structure_and_the_graph():
    assert structure_key(("a", 1)) == structure_key(("a", 1))
    assert structure_key(("a", 1)) != structure_key(("a", 2))
    # the containers' values are not part of the graph; a prior's constant is
    same_graph = graph_fingerprint(tiny_model(np.ones(3)))
    assert graph_fingerprint(tiny_model(np.zeros(5))) == same_graph
    assert graph_fingerprint(tiny_model(np.ones(3), prior_sd=11.0)) != same_graph


FINGERPRINT_IN_A_NEW_PROCESS = """
import numpy as np, pymc as pm
from impactmodel.bayes.compile_cache import graph_fingerprint
with pm.Model() as model:
    y = pm.Data("y_values", np.ones(3))
    mu = pm.Normal("mu", 0.0, 10.0)
    sigma = pm.HalfNormal("sigma", 5.0)
    pm.Deterministic("mu_twice", 2 * mu)
    pm.Normal("y", mu, sigma, observed=y)
print(graph_fingerprint(model))
"""


def test_the_fingerprint_is_the_same_in_every_process():
    """Nothing process-specific (object addresses, say) may enter it, or nothing would
    ever load from the cache."""
    prints = {subprocess.run([sys.executable, "-c", FINGERPRINT_IN_A_NEW_PROCESS],
                             capture_output=True, text=True, check=True).stdout.strip()
              for _ in range(2)}
    assert len(prints) == 1
    assert prints == {graph_fingerprint(tiny_model(np.ones(3)))}


@pytest.fixture(scope="module")
def small_survey(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compile-cache")
    paths = write_simulation(simulate(SimulationSettings(seed=7, respondents=600)), folder)
    return load_survey(paths["respondents"], paths["codebook"])


@pytest.mark.parametrize("model_name", ["scale_score", "ordinal"])
def test_package_models_load_from_the_cache_with_the_same_density(model_name, small_survey,
                                                                  tmp_path):
    def build():
        if model_name == "scale_score":
            return scale_score_model(build_score_data(small_survey, PRACTICES))
        return ordinal_item_model(build_item_data(small_survey, PRACTICES))

    built = build()
    fresh, _ = compile_cached(built.model, built.structure, built.data, root=tmp_path)
    # as a new process would: the model built again (compiling rewrites some of a model's
    # shape computations in place, so its graph's fingerprint is taken before)
    rebuilt = build()
    start = time.perf_counter()
    loaded, report = compile_cached(rebuilt.model, rebuilt.structure, rebuilt.data,
                                    root=tmp_path)
    assert report.loaded and time.perf_counter() - start < 10.0
    # the reference: the PyTensor function the fresh compile built, called from Python
    # with the model's own data (a C-compiled reference costs minutes at this size; the
    # densities themselves are checked against formulas in the models' own tests)
    assert_same_density(lambda x: tuple(np.asarray(v) for v in fresh.logp_func(x)), loaded)


def test_every_op_kernel_of_the_package_is_in_the_compiled_sources():
    """A graph names the package's own Ops, not their code: the modules defining them
    must be hashed into the key (COMPILED_SOURCES), or an edited kernel would be served
    stale from the cache."""
    import importlib
    import inspect
    import pkgutil

    from pytensor.graph.op import Op

    import impactmodel.bayes
    from impactmodel.bayes.compile_cache import COMPILED_SOURCES

    defining = set()
    for info in pkgutil.iter_modules(impactmodel.bayes.__path__):
        module = importlib.import_module(f"impactmodel.bayes.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Op) and cls.__module__ == module.__name__:
                defining.add(f"{info.name}.py")
    assert defining == {"cumulative_logit.py", "locations.py", "residual_squares.py"}
    assert defining <= set(COMPILED_SOURCES)
