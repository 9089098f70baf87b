"""Versioned runs: manifest contents, agreement with the posterior, immutability,
atomicity, listing and comparing, and the `fit` / `runs` commands."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from conftest import RUN_SPEC
from typer.testing import CliRunner

from impactmodel import runs as runs_module
from impactmodel.bayes.fit import fit_spec
from impactmodel.cli import app
from impactmodel.disclosure import DisclosureRules
from impactmodel.runs import RunError, diff_runs, list_runs, load_run, write_run
from impactmodel.specification import load_spec


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write(project, root, spec=None, fit=None, report=False):
    _, paths, _, default_spec, default_fit = project
    return write_run(fit or default_fit, spec or default_spec, respondents=paths["respondents"],
                     codebook=paths["codebook"], root=root, timings={"fit": 1.5}, report=report)


def test_manifest_records_what_produced_the_run(project, tmp_path):
    _, paths, _, _, fit = project
    run = write(project, tmp_path, report=True)
    manifest = json.loads((run / "manifest.json").read_text())
    assert run.parent.name == "small" and manifest["run"]["version"] == run.name
    assert manifest["run"]["status"] == ("converged" if fit.convergence.converged
                                         else "not converged")
    resolved = manifest["spec"]["resolved"]
    assert resolved["sampler"]["seed"] == 1 and manifest["seed"] == 1
    # the specification leaves the tree depth to the model; the manifest records the
    # depth applied (the scale-score model keeps nutpie's default, 10)
    assert resolved["sampler"]["max_depth"] is None
    assert manifest["sampler"]["max_depth"] == 10
    assert manifest["sampler"]["target_accept"] == (resolved["sampler"]["target_accept"]
                                                    or 0.8)
    assert resolved["priors"]["effect_sd"] == 5.0  # a default, filled in
    assert manifest["spec"]["sha256"] == hashlib.sha256(
        json.dumps(resolved, sort_keys=True).encode()).hexdigest()
    assert manifest["data"]["respondents"]["sha256"] == sha(paths["respondents"])
    assert manifest["data"]["codebook"]["sha256"] == sha(paths["codebook"])
    assert {"python", "impactmodel", "pymc", "nutpie", "arviz"} <= set(manifest["versions"])
    assert manifest["disclosure"]["min_count"] == DisclosureRules().min_count
    assert manifest["convergence"]["max_rhat"] == pytest.approx(fit.convergence.max_rhat)
    assert manifest["timings_seconds"] == {"fit": 1.5}
    for name, digest in manifest["files"].items():  # every file, as written
        assert sha(run / name) == digest
    assert "posterior.nc" in manifest["files"] and "tables/effect_cell.parquet" in manifest[
        "files"]
    assert "report/report.html" in manifest["files"]
    assert manifest["spec"]["resolved"]["report"]["figures"] is True  # a default


def test_loaded_run_agrees_with_the_posterior(project, tmp_path):
    _, _, _, _, fit = project
    run = load_run(write(project, tmp_path))
    loaded = run.posterior["posterior"]["effect_cell"]
    np.testing.assert_array_equal(loaded.values, fit.idata["posterior"]["effect_cell"].values)
    table = run.tables["effect_cell"].set_index(["practice", "impact", "lens", "dimension"])
    means = loaded.mean(("chain", "draw")).to_series()
    np.testing.assert_allclose(table["mean"].to_numpy(),
                               means.reindex(table.index).to_numpy(), rtol=1e-12)
    # per-territory tables went through the gate: counts behind each row, small ones hidden
    scores = run.tables["expected_scores_department"]
    shown = scores[scores["status"].isin(["published", "unreliable"])]
    assert (shown["n"] >= 11).all() and scores.loc[~scores.index.isin(shown.index),
                                                   "mean"].isna().all()
    assert len(shown) > 0 and len(scores) > len(shown)
    # effects are gated by counts but never flagged by CV (meaningless near zero)
    for name in ("effect_population", "effect_population_cell", "effect_region",
                 "effect_department"):
        assert "unreliable" not in set(run.tables[name]["status"]), name
    assert run.manifest["disclosure"]["cv_flag"].startswith("level estimates")


def test_runs_are_never_overwritten(project, tmp_path, monkeypatch):
    fixed = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return fixed

    monkeypatch.setattr(runs_module, "datetime", Frozen)
    first = write(project, tmp_path)
    before = sha(first / "manifest.json")
    with pytest.raises(RunError, match="never overwritten"):
        write(project, tmp_path)  # same time, same content: the same version
    assert sha(first / "manifest.json") == before


def test_a_failed_or_killed_write_leaves_no_run(project, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyboardInterrupt  # interrupted after the posterior was written

    monkeypatch.setattr(runs_module, "run_tables", broken)
    with pytest.raises(KeyboardInterrupt):
        write(project, tmp_path)
    assert not any((tmp_path / "small").iterdir())  # nothing left behind
    # a process killed outright leaves its hidden partial folder: never listed or loaded
    partial = tmp_path / "small" / ".partial-20260101-000000-000000-deadbeef"
    (partial / "tables").mkdir(parents=True)
    (partial / "posterior.nc").write_bytes(b"half")
    assert list_runs(tmp_path).empty
    with pytest.raises(RunError, match="not a complete run"):
        load_run(partial)


def test_list_and_diff_two_runs(project, tmp_path):
    folder, _, survey, _, _ = project
    first = write(project, tmp_path)
    other_spec = load_spec(folder / "seed2.toml")
    second = write(project, tmp_path, other_spec, fit_spec(other_spec, survey))
    listed = list_runs(tmp_path)
    assert list(listed["version"]) == sorted([first.name, second.name])
    assert list(listed["seed"]) == [1, 2]
    changes = diff_runs(load_run(first), load_run(second))
    assert changes["spec"] == {"sampler.seed": (1, 2)}
    assert changes["data"] == {"respondents": False, "codebook": False}
    moves = changes["estimates"]
    assert len(moves) == 2 * 3 * 3 * 6 and (moves["shift"].abs().diff().dropna() <= 0).all()


def test_fit_and_runs_commands(project, tmp_path):
    folder = project[0]
    runner = CliRunner()
    result = runner.invoke(app, ["fit", str(folder / "seed1.toml"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "wrote run" in result.output and "R-hat" in result.output
    (run,) = (tmp_path / "small").iterdir()
    listed = runner.invoke(app, ["runs", "list", "--out", str(tmp_path)])
    assert listed.exit_code == 0 and "small" in listed.output
    shown = runner.invoke(app, ["runs", "show", str(run)])
    assert shown.exit_code == 0 and "Practice effects by population" in shown.output
    same = runner.invoke(app, ["runs", "diff", str(run), str(run)])
    assert same.exit_code == 0 and "specification: unchanged" in same.output
    # user mistakes: a clear message and exit status 2, no traceback, nothing written
    bad = folder / "bad.toml"
    bad.write_text('[model]\nname = "x"\n[sampler]\ndraws = -5\n', encoding="utf-8")
    failed = runner.invoke(app, ["fit", str(bad), "--out", str(tmp_path / "none")])
    assert failed.exit_code == 2 and "sampler.draws" in failed.output
    assert "Traceback" not in failed.output and not (tmp_path / "none").exists()
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder", encoding="utf-8")
    unwritable = runner.invoke(app, ["fit", str(folder / "seed1.toml"), "--out",
                                     str(blocked / "results")])
    assert unwritable.exit_code == 2 and "cannot write to" in unwritable.output
    # a calibrated pseudo-posterior whose frame file is missing: named, exit 2
    calibrated = folder / "no-frame.toml"
    calibrated.write_text((folder / "seed1.toml").read_text(encoding="utf-8")
                          + '[weights]\ntreatment = "pseudo-posterior"\n'
                          'calibration = ["region"]\nframe = "missing.csv"\n',
                          encoding="utf-8")
    missing = runner.invoke(app, ["fit", str(calibrated), "--out", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "missing.csv does not exist" in missing.output
    assert "[weights] frame" in " ".join(missing.output.split())
    assert "Traceback" not in missing.output and not (tmp_path / "none").exists()
    assert "R-hat" not in unwritable.output  # refused before fitting
    missing = runner.invoke(app, ["runs", "show", str(tmp_path)])
    assert missing.exit_code == 2 and "not a complete run" in missing.output


def test_tables_of_two_fits_with_one_seed_are_identical(project, tmp_path):
    """Re-running the same specification on the same data with the same seed."""
    _, _, survey, spec, _ = project
    first = load_run(write(project, tmp_path, spec, fit_spec(spec, survey)))
    second = load_run(write(project, tmp_path, spec, fit_spec(spec, survey)))
    assert first.path != second.path
    for name, table in first.tables.items():
        pd.testing.assert_frame_equal(table, second.tables[name])


def test_fit_without_room_for_its_draws_exits_2_before_sampling(project, tmp_path,
                                                                  monkeypatch):
    """``draw_storage = "disk"`` and a temporary folder with 1,000 bytes free: the fit
    command says so and exits with status 2, before sampling, and writes no run."""
    import shutil
    import tempfile

    folder = project[0]
    spec = folder / "disk.toml"
    spec.write_text(RUN_SPEC.format(seed=1).replace('name = "small"', 'name = "disk"')
                    + 'draw_storage = "disk"\n', encoding="utf-8")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    result = CliRunner().invoke(app, ["fit", str(spec), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "temporary folder" in result.output and "TMPDIR" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "disk").exists()
