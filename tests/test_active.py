"""Active learning: scoring, uncertain + diverse selection, the resumable loop, budgets, CLI."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from polarff.active import (ActiveConfig, compare_strategies, paired_difference, reduce_per_frame, run_active,
                            select_diverse, select_random)
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


def test_paired_difference_is_a_paired_t_test():
    from scipy.stats import ttest_rel

    active = np.array([7.1, 7.3, 7.0, 7.4, 7.2])
    random = np.array([7.5, 7.4, 7.3, 7.9, 7.2])
    d = paired_difference(active, random)
    diffs = active - random
    assert d["mean"] == pytest.approx(diffs.mean()) and d["n"] == 5 and d["lower"] == 4
    assert d["se"] == pytest.approx(diffs.std(ddof=1) / np.sqrt(5))
    assert d["p"] == pytest.approx(ttest_rel(active, random).pvalue)
    # the pairing matters: the same numbers unpaired (shuffled baseline) give another answer
    assert paired_difference(active, random[::-1])["p"] != pytest.approx(d["p"])
    same = paired_difference(random, random)
    assert same["mean"] == 0 and same["se"] == 0 and np.isnan(same["p"]) and same["lower"] == 0
    assert np.isnan(paired_difference([1.0], [2.0])["se"])


def test_compare_strategies_pairs_seeds_and_shares_start_models(small_sets, tmp_path):
    """Per-seed values are kept, differences are paired by seed, and a second pool reuses the start models."""
    import csv

    initial, pool, heldout = small_sets
    kwargs = dict(rounds=1, per_round=2, seeds=[0, 1], retrain_epochs=2, labeller=CountingLabeller(),
                  progress=False)
    first = compare_strategies(initial, pool, heldout, tmp_path / "a", _fit_config(), **kwargs)
    assert first.complete and [r["round"] for r in first.rows] == [0, 1]
    with open(tmp_path / "a" / "comparison_seeds.csv") as handle:
        per_seed = list(csv.DictReader(handle))
    assert len(per_seed) == 2 * 2 * 2  # rounds × seeds × strategies
    value = {(int(r["round"]), int(r["seed"]), r["strategy"]): float(r["mae"]) for r in per_seed}
    for k, row in enumerate(first.rows):
        diffs = [value[(k, s, "active")] - value[(k, s, "random")] for s in (0, 1)]
        assert row["active_minus_random_mae"] == pytest.approx(np.mean(diffs))
        assert row["random_mae"] == pytest.approx(np.mean([value[(k, s, "random")] for s in (0, 1)]))
        assert row["random_mae_std"] == pytest.approx(np.std([value[(k, s, "random")] for s in (0, 1)], ddof=1))
    assert first.rows[0]["active_minus_random_mae"] == 0  # both strategies start from the same model
    assert value[(0, 0, "random")] != value[(0, 1, "random")]  # seeds give different start models
    assert first.summary["round"] == "1–1"
    assert first.summary["random_mae"] == pytest.approx(first.rows[1]["random_mae"])
    assert "0 (same model)" in first.markdown and "| 1–1 |" in first.markdown

    second = compare_strategies(initial, pool[:5], heldout, tmp_path / "b", _fit_config(),
                                initial_dir=tmp_path / "a", **kwargs)
    assert not list((tmp_path / "b").glob("seed*_initial"))  # start models taken from the first folder
    assert second.rows[0]["random_mae"] == pytest.approx(first.rows[0]["random_mae"], rel=1e-12)

    # a report over a subset of the seeds goes to its own folder; the runs are resumed, not repeated
    only = compare_strategies(initial, pool, heldout, tmp_path / "a", _fit_config(), report_dir=tmp_path / "one",
                              **{**kwargs, "seeds": [1]})
    assert only.rows[1]["random_mae"] == pytest.approx(value[(1, 1, "random")])
    assert (tmp_path / "one" / "comparison.md").exists() and np.isnan(only.rows[1]["random_mae_std"])
    assert "± nan" in (tmp_path / "one" / "comparison.md").read_text()
    assert (tmp_path / "a" / "comparison.md").read_text() == first.markdown + "\n"  # left as it was


def test_spanning_pool_reuses_embedded_charges_with_d4_polarizabilities(tmp_path):
    """examples/active_learning.py: the spanning pool's extra frames keep the embedded GFN2 charges and get
    plain-D4 polarizabilities (as the rest of the demo), every STRIDE-th frame of each composition."""
    pytest.importorskip("dftd4")
    from polarff.io import read_frames
    from polarff.label import d4_polarizabilities

    module = _example_module()
    path = module.prepare_spanning_extra(tmp_path, 35)
    frames = read_frames(path)
    source = read_frames(_repo_root() / "polarff" / "data" / "nacl_aq.xyz")
    assert [int(f.info["n_pairs"]) for f in frames] == [1, 1, 2, 2, 3, 3]
    for frame in frames:
        original = source[int(frame.info["origin"].split()[-1])]
        assert int(original.info["n_pairs"]) == int(frame.info["n_pairs"])
        np.testing.assert_array_equal(frame.labels["charges"], original.labels["charges"])
        water = np.isin(frame.symbols, ["O", "H"])
        np.testing.assert_allclose(frame.labels["polarizabilities"][water],
                                   original.labels["polarizabilities"][water], atol=1e-6)
        na = np.asarray(frame.symbols) == "Na"
        assert np.all(original.labels["polarizabilities"][na] == pytest.approx(0.41))
        # plain D4 for the ions too (coordination-dependent, 0.9–4.4 Å³ for Na here), as the demo's other sets
        np.testing.assert_allclose(frame.labels["polarizabilities"], d4_polarizabilities(original), atol=1e-6)
        assert np.all(np.abs(frame.labels["polarizabilities"][na] - 0.41) > 0.3)
        assert "D4" in frame.info["label_method"] and "Tessman" not in frame.info["label_method"]
    assert [int(f.info["origin"].split()[-1]) for f in frames] == [0, 35, 70, 105, 140, 175]
    assert module.prepare_spanning_extra(tmp_path, 35) == path  # reused, not rebuilt


def _repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


def _example_module():
    import importlib.util

    path = _repo_root() / "examples" / "active_learning.py"
    spec = importlib.util.spec_from_file_location("active_learning_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    """examples/active_learning.py --quick: sampling, GFN2-xTB labelling, active vs random tables and plots,
    on the concentrated and on the spanning pool."""
    pytest.importorskip("tblite")
    module = _example_module()
    out = tmp_path / "demo"
    assert module.main(["--out", str(out), "--quick", "--spanning", "35",
                        "--docs-img", str(tmp_path / "img" / "al.png")]) == 0
    for folder in ("runs", "runs_spanning"):
        table = (out / folder / "comparison.md").read_text()
        first = table.split("**Held-out charge MAE, Na")[0]
        assert [line.split("|")[1].strip() for line in first.splitlines() if line.startswith("| ")][1:] == \
            ["0", "1", "2", "1–2"]  # header, rounds 0, 1, 2 and the mean over rounds 1–2
        assert (out / folder / "active_vs_random.png").stat().st_size > 1000
        composition = (out / folder / "composition.md").read_text()
        rows = [line.split("|")[1].strip() for line in composition.splitlines()[2:]]
        assert rows == ["active", "committee", "random"]
    counts = __import__("json").loads((out / "runs_spanning" / "composition.json").read_text())
    assert all(sum(sum(v) for v in by_key.values()) == 2 for by_key in counts.values())  # 2 rounds × 1 frame
    assert (tmp_path / "img" / "al_spanning.png").exists() and (tmp_path / "img" / "al.png").exists()
