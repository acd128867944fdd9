"""Active learning: scoring, uncertain + diverse selection, the resumable loop, budgets, CLI."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from polarff.active import (ActiveConfig, reduce_per_frame, run_active, select_diverse, select_random)
from polarff.errors import ConfigError

from conftest import synthetic_labels, water_box


# ------------------------------------------------------------------------------------ selection
def test_first_pick_is_the_most_uncertain_and_near_duplicates_are_skipped():
    rng = np.random.default_rng(0)
    fingerprints = rng.normal(size=(10, 6))
    fingerprints[1] = fingerprints[0] + 1e-3  # near-duplicates of the most uncertain frame
    fingerprints[2] = fingerprints[0] - 1e-3
    fingerprints[3] = fingerprints[0] + 8.0  # uncertain and far away from frame 0
    scores = np.array([1.0, 0.99, 0.98, 0.9, 0.1, 0.2, 0.15, 0.05, 0.3, 0.12])
    assert select_diverse(scores, fingerprints, 2, diversity=1.0) == [0, 3]
    assert select_diverse(scores, fingerprints, 2, diversity=0.0) == [0, 1]  # pure ranking
    chosen = select_diverse(scores, fingerprints, 4, diversity=1.0)
    assert chosen[:2] == [0, 3] and len(set(chosen)) == 4 and not {1, 2} & set(chosen[:3])
    # order of candidates does not matter: permuting them permutes the choice
    perm = rng.permutation(10)
    permuted = select_diverse(scores[perm], fingerprints[perm], 2, diversity=1.0)
    assert [int(perm[i]) for i in permuted] == [0, 3]
    assert select_diverse(scores, fingerprints, 50) == select_diverse(scores, fingerprints, 10)


def test_random_selection_is_seeded_and_distinct():
    a = select_random(20, 5, seed=3)
    assert a == select_random(20, 5, seed=3) and len(set(a)) == 5 and max(a) < 20
    assert a != select_random(20, 5, seed=4)


def test_per_frame_reductions():
    values = np.array([0.1, 0.9, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 5.0, 1.0])
    frame_index = np.array([0] * 10 + [1, 1])
    np.testing.assert_allclose(reduce_per_frame(values, frame_index, 2, "mean"), [0.55, 3.0])
    np.testing.assert_allclose(reduce_per_frame(values, frame_index, 2, "max"), [1.0, 5.0])
    np.testing.assert_allclose(reduce_per_frame(values, frame_index, 2, "top", top_fraction=0.2), [0.95, 5.0])


def test_config_errors_name_the_option():
    with pytest.raises(ConfigError, match="strategy"):
        ActiveConfig(strategy="greedy")
    with pytest.raises(ConfigError, match="candidates_per_round"):
        ActiveConfig(frames_per_round=5, candidates_per_round=2)
    with pytest.raises(ConfigError, match="unknown option"):
        ActiveConfig.from_dict({"round": 3})


# ---------------------------------------------------------------------------------------- the loop
def _fit_config():
    from polarff.model import FitConfig

    return FitConfig(epochs=4, eval_every=2, hidden=[16], n_bins=8, cutoff=3.5, n_radial=3, n_angular=1,
                     batch_frames=4, seed=1)


@pytest.fixture(scope="module")
def small_sets():
    """Initial (water + 1 pair), pool (water + 1 pair, other seeds) and held-out frames, synthetic labels."""
    initial = synthetic_labels([water_box(n_side=3, seed=s, ions=1) for s in range(4)])
    pool = synthetic_labels([water_box(n_side=3, seed=100 + s, ions=1, jitter=0.1 + 0.05 * (s % 3))
                             for s in range(7)])
    heldout = synthetic_labels([water_box(n_side=3, seed=200 + s, ions=1) for s in range(2)])
    return initial, pool, heldout


class CountingLabeller:
    """Returns pool frames with their (synthetic) labels; counts calls; can fail after N calls."""

    def __init__(self, fail_after: int | None = None):
        self.calls, self.fail_after = 0, fail_after

    def __call__(self, frame):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt  # as if the job were killed during labelling
        self.calls += 1
        return copy.deepcopy(frame)


def _config(**changes):
    base = dict(rounds=2, frames_per_round=2, candidates_per_round=None, sampler="pool", retrain_epochs=2, seed=5)
    base.update(changes)
    return ActiveConfig(**base)


def _selected_pool_indices(run_dir, rounds):
    return [json.loads((run_dir / f"round_{r:03d}" / "selection.json").read_text())["pool_index"]
            for r in range(1, rounds + 1)]


@pytest.fixture(scope="module")
def uninterrupted(small_sets, tmp_path_factory):
    initial, pool, heldout = small_sets
    run_dir = tmp_path_factory.mktemp("active") / "run"
    labeller = CountingLabeller()
    result = run_active(run_dir, initial, heldout, _fit_config(), _config(), pool=pool, labeller=labeller,
                        progress=False)
    return result, labeller, run_dir


def test_loop_writes_models_selections_and_one_metrics_row_per_round(uninterrupted):
    result, labeller, run_dir = uninterrupted
    assert result.status == "done"
    assert [row["round"] for row in result.metrics] == [0, 1, 2]
    assert [row["n_labelled"] for row in result.metrics] == [0, 2, 4]
    assert labeller.calls == 4
    picked = _selected_pool_indices(run_dir, 2)
    assert len(set(picked[0]) | set(picked[1])) == 4  # a pool frame is never selected twice
    for r in range(3):
        assert (run_dir / f"round_{r:03d}" / "model_0.pff").exists()
    rows = (run_dir / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 4 and rows[0].startswith("round,")
    assert (run_dir / "metrics.png").stat().st_size > 1000
    for row in result.metrics:
        assert np.isfinite(row["heldout_charge_mae"]) and row["heldout_mean_entropy"] > 0
    # the active strategy picked the most uncertain candidate of round 1 first
    scores = json.loads((run_dir / "round_001" / "scores.json").read_text())
    chosen = json.loads((run_dir / "round_001" / "selection.json").read_text())["chosen"]
    assert chosen[0] == int(np.argmax(scores["score"]))


def test_resume_after_interruptions_neither_repeats_nor_loses_a_round(small_sets, uninterrupted, tmp_path):
    initial, pool, heldout = small_sets
    reference, _, ref_dir = uninterrupted
    run_dir = tmp_path / "run"
    labeller = CountingLabeller()
    statuses, total_steps = [], 0
    for _ in range(20):  # stop after every 3 steps, then resume
        result = run_active(run_dir, initial, heldout, _fit_config(), _config(), pool=pool, labeller=labeller,
                            stop_after_steps=3, progress=False)
        statuses.append(result.status)
        total_steps += result.steps_run
        if result.status == "done":
            break
    assert statuses[-1] == "done" and statuses.count("interrupted") >= 4
    assert total_steps == 2 + 2 * 6  # every step ran exactly once
    assert labeller.calls == 4
    assert [row["round"] for row in result.metrics] == [0, 1, 2]
    assert _selected_pool_indices(run_dir, 2) == _selected_pool_indices(ref_dir, 2)
    for a, b in zip(result.metrics, reference.metrics):
        assert a["heldout_charge_mae"] == pytest.approx(b["heldout_charge_mae"], rel=1e-6)


def test_interruption_inside_labelling_keeps_the_labelled_frames(small_sets, tmp_path):
    initial, pool, heldout = small_sets
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_active(run_dir, initial, heldout, _fit_config(), _config(rounds=1), pool=pool,
                   labeller=CountingLabeller(fail_after=1), progress=False)
    from polarff.io import read_frames

    assert len(read_frames(run_dir / "round_001" / "selected.xyz")) == 1
    resumed = CountingLabeller()
    result = run_active(run_dir, initial, heldout, _fit_config(), _config(rounds=1), pool=pool, labeller=resumed,
                        progress=False)
    assert result.status == "done" and resumed.calls == 1  # only the frame not labelled yet
    assert len(read_frames(run_dir / "round_001" / "selected.xyz")) == 2


def test_budgets_and_changed_settings(small_sets, uninterrupted, tmp_path):
    initial, pool, heldout = small_sets
    result = run_active(tmp_path / "run", initial, heldout, _fit_config(), _config(wall_time_s=1e-9), pool=pool,
                        labeller=CountingLabeller(), progress=False)
    assert result.status == "wall-time budget spent" and result.steps_run == 0
    _, _, ref_dir = uninterrupted
    with pytest.raises(ConfigError, match="different settings"):
        run_active(ref_dir, initial, heldout, _fit_config(), _config(diversity=0.5), pool=pool, progress=False)
    # more rounds than the pool can feed: stops cleanly, labelling budget per round respected
    small = run_active(tmp_path / "small", initial, heldout, _fit_config(), _config(rounds=5, frames_per_round=3),
                       pool=pool[:4], labeller=CountingLabeller(), progress=False)
    assert small.status == "pool exhausted"
    assert [row["n_labelled"] for row in small.metrics] == [0, 3, 4]


def test_random_strategy_uses_the_same_budget(small_sets, tmp_path):
    initial, pool, heldout = small_sets
    result = run_active(tmp_path / "random", initial, heldout, _fit_config(), _config(strategy="random", rounds=1),
                        pool=pool, labeller=CountingLabeller(), progress=False)
    assert result.metrics[-1]["n_labelled"] == 2 and result.metrics[-1]["strategy"] == "random"


@pytest.mark.slow
def test_committee_disagreement_is_scored(small_sets, tmp_path):
    initial, pool, heldout = small_sets
    cfg = _config(committee=2, rounds=1, entropy_weight=0.0)
    result = run_active(tmp_path / "committee", initial, heldout, _fit_config(), cfg,
                        pool=pool, labeller=CountingLabeller(), progress=False)
    scores = json.loads((tmp_path / "committee" / "round_001" / "scores.json").read_text())
    assert min(scores["disagreement"]) > 0  # two members trained with different seeds disagree
    assert (tmp_path / "committee" / "round_001" / "model_1.pff").exists()
    assert result.status == "done"
    assert result.metrics[1]["selected_mean_disagreement"] >= result.metrics[1]["candidates_mean_disagreement"]
    from polarff.active import uncertainty_diagnostics
    from polarff.artifact import load_model

    models = [load_model(tmp_path / "committee" / "round_000" / f"model_{k}.pff") for k in range(2)]
    diag = uncertainty_diagnostics(models, pool)
    assert set(diag) == {"mae", "entropy", "committee"} and set(diag["entropy"]) == {"all", "H", "O", "Na", "Cl"}
    assert all(-1 <= v <= 1 for v in diag["committee"].values())
    assert diag["mae"]["all"] > 0


def test_cli_registers_commands():
    from polarff.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["active", "a.xyz", "--heldout", "h.xyz", "-o", "run", "--pool", "p.xyz"])
    assert args.per_round == 5 and args.pool == "p.xyz"
    for name in ("clusters", "calibrate-alpha"):
        assert parser.parse_args([name, "x.xyz", "-o", "y"]).command == name


@pytest.mark.slow
def test_candidates_from_polarff_md_with_the_current_model(small_sets, tmp_path):
    """The 'polarff' sampler runs OpenMM MD with the round's model (no silent fallback to classical MD)."""
    pytest.importorskip("openmm")
    pytest.importorskip("openmmtorch")
    initial, _, heldout = small_sets
    cfg = _config(rounds=1, sampler="polarff", n_pairs=1, n_waters=16, candidates_per_round=3,
                  md_equilibration_ps=0.02, md_interval_ps=0.01)
    result = run_active(tmp_path / "md", initial, heldout, _fit_config(), cfg, progress=False,
                        labeller=lambda f: synthetic_labels([copy.deepcopy(f)])[0])
    state = json.loads((tmp_path / "md" / "state.json").read_text())
    assert state["sampler_used"]["1"] == "polarff", state["sampler_used"]["1"]
    from polarff.io import read_frames

    candidates = read_frames(tmp_path / "md" / "round_001" / "candidates.xyz")
    assert len(candidates) == 3 and candidates[0].symbols.count("Na") == 1
    assert "polarff" in candidates[0].info["sampler"]
    assert result.status == "done" and result.metrics[-1]["n_labelled"] == 2


@pytest.mark.slow
def test_example_runs_quick(tmp_path):
    """examples/active_learning.py --quick: sampling, GFN2-xTB labelling, active vs random table and plot."""
    import importlib.util
    from pathlib import Path

    pytest.importorskip("tblite")
    path = Path(__file__).resolve().parents[1] / "examples" / "active_learning.py"
    spec = importlib.util.spec_from_file_location("active_learning_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--out", str(tmp_path / "demo"), "--quick"]) == 0
    table = (tmp_path / "demo" / "runs" / "comparison.md").read_text()
    assert table.count("\n| ") == 3  # header row excluded: rounds 0, 1, 2
    assert (tmp_path / "demo" / "runs" / "active_vs_random.png").stat().st_size > 1000
