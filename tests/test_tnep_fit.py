"""Learning TNEP targets through charges and polarizabilities (polarff.tnep_fit).

Synthetic GPUMD-format files are written in code: whole waters whose molecular dipoles and
polarizability tensors come from known charges and polarizabilities through the Thole response, so the
conventions (adipole = ½(Σ_H (r_H − r_O) − μ), apol on O) and the learning are checked without
../shared. Comparisons with the real TNEP models skip when the shared data are absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import water_box
from polarff.errors import ConfigError, InputError, ModelError
from polarff.response import FrameGeometry, response
from polarff import tnep_fit
from polarff.tnep_fit import (TNEPFitConfig, TNEPLoss, WaterTopology, batched_response, stack_frame_inputs,
                              thole_response_dense)

SHARED_TNEP = Path(__file__).resolve().parents[2] / "shared" / "data" / "tnep-water"
needs_shared = pytest.mark.skipif(not SHARED_TNEP.is_dir(), reason=f"shared TNEP water data not found at "
                                  f"{SHARED_TNEP} (../shared/data beside the checkout)")

#: "True" physics of the synthetic files: charges (e) and polarizabilities (Å³) of O and H.
TRUE_Q = {"O": -0.84, "H": 0.42}
TRUE_ALPHA = {"O": 1.1, "H": 0.35}
#: Small boxes (6.2 Å) need a response cutoff below half the cell width.
SMALL_SWITCH = {"response_cutoff": 3.0, "response_switch_on": 2.4}


def _random_physics(frame, seed):
    rng = np.random.default_rng(seed)
    q = np.array([TRUE_Q[s] for s in frame.symbols]) + rng.normal(0, 0.03, frame.n_atoms)
    q -= q.mean()
    alpha = np.array([TRUE_ALPHA[s] for s in frame.symbols]) * (1 + 0.2 * rng.random(frame.n_atoms))
    return q, alpha


def _cluster(seed=0):
    """An isolated (non-periodic) cluster of 8 waters."""
    from polarff.data import Frame

    box = water_box(n_side=2, seed=seed)
    return Frame(box.symbols, box.positions, cell=None, pbc=[False] * 3).validate()


def _gpumd_text(frames, kind: str) -> str:
    """GPUMD extxyz text whose labels follow from TRUE_Q / TRUE_ALPHA (0.01 Å jitter on positions)."""
    lines = []
    for frame in frames:
        geometry = FrameGeometry.from_frame(frame, cutoff=SMALL_SWITCH["response_cutoff"],
                                            switch_on=SMALL_SWITCH["response_switch_on"])
        q = np.array([TRUE_Q[s] for s in frame.symbols])
        alpha = np.array([TRUE_ALPHA[s] for s in frame.symbols])
        result = response(geometry, q, alpha)
        per_atom = np.zeros((frame.n_atoms, 9 if kind == "polarizability" else 3))
        weights = np.array([1.0 if s == "H" else -2.0 for s in frame.symbols])
        for m, o in enumerate(geometry.label_atoms):
            members = geometry.molecule_index == m
            if kind == "dipole":
                nuclear = weights[members] @ geometry.relative_positions[members]
                per_atom[o] = 0.5 * (nuclear - result.molecular_dipoles[m])
            else:
                per_atom[o] = result.molecular_polarizabilities[m].ravel()
        total = per_atom.sum(axis=0)
        lattice = " ".join(f"{v:.6f}" for v in frame.cell.ravel())
        column, key = ("adipole:R:3", "dipole") if kind == "dipole" else ("apol:R:9", "pol")
        extra = ' dipole="0 0 0"' if kind == "polarizability" else ""
        lines.append(str(frame.n_atoms))
        lines.append(f'Lattice="{lattice}" Properties=species:S:1:pos:R:3:{column} '
                     f'{key}="{" ".join(f"{v:.8f}" for v in total)}"{extra} pbc="T T T"')
        for s, r, values in zip(frame.symbols, frame.positions, per_atom):
            lines.append(f"{s} {r[0]:.8f} {r[1]:.8f} {r[2]:.8f} " + " ".join(f"{v:.8f}" for v in values))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def gpumd_files(tmp_path_factory):
    """Synthetic GPUMD files of 8-water boxes in the tnep-water layout: {name: path}, plus 'root'."""
    root = tmp_path_factory.mktemp("gpumd")
    frames = [water_box(n_side=2, seed=s, jitter=0.1) for s in range(10)]
    files = {"dipole_train": (frames[:6], "dipole", "dipole/train.xyz"),
             "pol_train": (frames[2:8], "polarizability", "polarizability/train.xyz"),
             "dipole_test": (frames[8:], "dipole", "dipole/test.xyz"),
             "pol_test": (frames[8:], "polarizability", "polarizability/test.xyz")}
    out = {"root": root}
    for name, (subset, kind, relative) in files.items():
        out[name] = root / relative
        out[name].parent.mkdir(exist_ok=True)
        out[name].write_text(_gpumd_text(subset, kind))
    return out


TINY_PLAN = """
models:
  water:
    train: [dipole, polarizability]
    config:
      response_cutoff: 3.0
      response_switch_on: 2.4
      validation_fraction: 0.25
      seed: 1
      fit: {epochs: 12, eval_every: 1, hidden: [16], n_bins: 8, batch_frames: 2, cutoff: 3.0,
            n_radial: 4, n_angular: 2, learning_rate: 5.0e-3}
"""


@pytest.fixture(scope="module")
def trained(gpumd_files, tmp_path_factory):
    """A joint model fitted for a few epochs by examples/tnep_water.py: (model, report, path)."""
    import importlib.util
    import json

    from polarff.artifact import load_model

    out = tmp_path_factory.mktemp("tnep_model")
    config = out / "tiny.yaml"
    config.write_text(TINY_PLAN)
    script = Path(__file__).resolve().parents[1] / "examples" / "tnep_water.py"
    spec = importlib.util.spec_from_file_location("tnep_water_example", script)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main(["--data", str(gpumd_files["root"]), "--config", str(config), "--out", str(out),
                         "--repeats", "1"]) == 0
    report = json.loads((out / "water-report.json").read_text())
    comparison = json.loads((out / "comparison.json").read_text())
    assert [row["kind"] for row in comparison["rows"]] == ["dipole", "polarizability"]
    assert (out / "tnep-water-dipole-parity.png").exists() and (out / "comparison.md").exists()
    return load_model(out / "water.pff"), report, out / "water.pff"


# ----------------------------------------------------------------------------------------- physics
def test_batched_response_matches_numpy_response_with_padding():
    import tensorflow as tf

    frames = [water_box(n_side=2, seed=3), _cluster(seed=4), water_box(n_side=3, seed=5)]
    loss = TNEPLoss(TNEPFitConfig(**SMALL_SWITCH))
    physics = [_random_physics(f, k) for k, f in enumerate(frames)]
    stacked = stack_frame_inputs([loss.frame_inputs(f) for f in frames])
    batch = {"tnep_" + k: tf.constant(v) for k, v in stacked.items()}
    out = batched_response(batch, tf.constant(np.concatenate([p[0] for p in physics])),
                           tf.constant(np.concatenate([p[1] for p in physics])))
    start = 0
    for frame, (q, alpha) in zip(frames, physics):
        geometry = FrameGeometry.from_frame(frame, cutoff=3.0, switch_on=2.4)
        ref = response(geometry, q, alpha)
        m = geometry.n_molecules
        np.testing.assert_allclose(out["molecular_dipoles"].numpy()[start:start + m], ref.molecular_dipoles,
                                   atol=1e-12)
        np.testing.assert_allclose(out["molecular_polarizabilities"].numpy()[start:start + m],
                                   ref.molecular_polarizabilities, atol=1e-12)
        start += m
    assert start == out["molecular_dipoles"].shape[0]


def test_cached_batch_inputs_equal_numpy_stacking_with_padding():
    from types import SimpleNamespace

    frames = [water_box(n_side=3, seed=1), water_box(n_side=2, seed=2), _cluster(seed=3)]
    loss = TNEPLoss(TNEPFitConfig(**SMALL_SWITCH))
    data = SimpleNamespace(frames=frames)
    for selection in ([1], [0, 1, 2], [2, 0]):
        batch = loss.batch_inputs(data, np.array(selection))
        reference = stack_frame_inputs([loss.frame_inputs(frames[k]) for k in selection])
        assert set(batch) == {"tnep_" + k for k in reference}
        for key, value in reference.items():
            np.testing.assert_allclose(batch["tnep_" + key].numpy(), value, atol=0, err_msg=key)
    assert len(loss._cache) == 3  # geometry computed once per frame


@pytest.mark.parametrize("periodic", [True, False])
def test_dense_inference_response_matches_reference_and_gpumd_convention(periodic):
    from polarff.tnep import gpumd_dipole_from_molecular

    frame = water_box(n_side=3, seed=7) if periodic else _cluster(seed=8)
    q, alpha = _random_physics(frame, 9)
    ref = response(FrameGeometry.from_frame(frame, cutoff=4.0, switch_on=3.0), q, alpha)
    out = thole_response_dense(frame.positions, frame.cell if periodic else None, WaterTopology.from_frame(frame),
                               q, alpha, cutoff=4.0, switch_on=3.0)
    np.testing.assert_allclose(out["molecular_dipoles"], ref.molecular_dipoles, atol=1e-12)
    np.testing.assert_allclose(out["polarizability"], ref.polarizability, atol=1e-11)
    np.testing.assert_allclose(out["molecular_polarizabilities"], ref.molecular_polarizabilities, atol=1e-12)
    np.testing.assert_allclose(out["gpumd_dipole"], gpumd_dipole_from_molecular(frame, ref.molecular_dipoles),
                               atol=1e-12)


def test_dense_response_reports_polarization_catastrophe():
    frame = _cluster(seed=2)
    q = np.zeros(frame.n_atoms)
    with pytest.raises(InputError, match="polarization catastrophe"):
        thole_response_dense(frame.positions, None, WaterTopology.from_frame(frame), q,
                             np.full(frame.n_atoms, 40.0), thole_a=50.0)  # undamped, huge α


def test_dipole_term_gradient_matches_finite_differences():
    """d(loss)/dq and d(loss)/dα of the dipole terms equal central differences (float64)."""
    import tensorflow as tf

    frames = [water_box(n_side=2, seed=11), _cluster(seed=12)]
    rng = np.random.default_rng(0)
    for f in frames:  # targets: the physics of slightly different parameters
        q, alpha = _random_physics(f, 21)
        geometry = FrameGeometry.from_frame(f, cutoff=3.0, switch_on=2.4)
        f.labels["molecular_dipoles"] = geometry.molecular_to_atoms(response(geometry, q, alpha).molecular_dipoles)
        f.label_masks["molecular_dipoles"] = geometry.label_mask()
    cfg = TNEPFitConfig(**SMALL_SWITCH, polarizability_molecular_weight=0.0, polarizability_frame_weight=0.0,
                        dipole_frame_weight=3.0, loss_scale=1.0)
    term = TNEPLoss(cfg)
    batch = {"tnep_" + k: tf.constant(v) for k, v in stack_frame_inputs([term.frame_inputs(f) for f in frames]).items()}
    q0 = np.concatenate([_random_physics(f, 5)[0] for f in frames])
    a0 = np.concatenate([_random_physics(f, 6)[1] for f in frames])

    def loss(q, a):
        return term(None, tf.constant(q), tf.constant(a), batch)

    qv, av = tf.Variable(q0), tf.Variable(a0)
    with tf.GradientTape() as tape:
        value = term(None, qv, av, batch)
    grad_q, grad_a = (g.numpy() for g in tape.gradient(value, [qv, av]))
    assert float(value) > 0
    for k in rng.choice(len(q0), size=6, replace=False):
        h = 1e-6
        e = np.zeros_like(q0)
        e[k] = h
        fd_q = (float(loss(q0 + e, a0)) - float(loss(q0 - e, a0))) / (2 * h)
        fd_a = (float(loss(q0, a0 + e)) - float(loss(q0, a0 - e))) / (2 * h)
        assert grad_q[k] == pytest.approx(fd_q, rel=1e-5, abs=1e-9)
        assert grad_a[k] == pytest.approx(fd_a, rel=1e-5, abs=1e-9)
    assert np.abs(grad_a).max() > 0 and np.abs(grad_q).max() > 0


def test_loss_is_zero_at_the_true_parameters(gpumd_files):
    import tensorflow as tf

    frames = tnep_fit.read_tnep_frames([gpumd_files["dipole_train"]], [gpumd_files["pol_train"]])
    term = TNEPLoss(TNEPFitConfig(**SMALL_SWITCH))
    batch = {"tnep_" + k: tf.constant(v) for k, v in stack_frame_inputs([term.frame_inputs(f) for f in frames]).items()}
    q = np.concatenate([[TRUE_Q[s] for s in f.symbols] for f in frames])
    alpha = np.concatenate([[TRUE_ALPHA[s] for s in f.symbols] for f in frames])
    parts = term.parts(tf.constant(q), tf.constant(alpha), batch)
    assert all(float(v) < 1e-12 for v in parts.values())
    wrong = term.parts(tf.constant(q * 1.1), tf.constant(alpha * 1.2), batch)
    assert all(float(v) > 1e-6 for v in wrong.values())


# ------------------------------------------------------------------------------------- data, config
def test_read_tnep_frames_merges_identical_configurations(gpumd_files):
    frames = tnep_fit.read_tnep_frames([gpumd_files["dipole_train"]], [gpumd_files["pol_train"]])
    assert len(frames) == 8  # 6 dipole frames, 4 of them shared with the 6 polarizability frames
    both = [f for f in frames if {"gpumd_dipole", "polarizability"} <= set(f.labels)]
    assert len(both) == 4
    assert tnep_fit.frame_kinds(frames) == ["dipole", "polarizability"]


def test_read_tnep_frames_rejects_a_file_of_the_other_kind(gpumd_files):
    with pytest.raises(InputError, match="lacks the GPUMD dipole labels"):
        tnep_fit.read_tnep_frames([gpumd_files["pol_train"]])
    with pytest.raises(InputError, match="no training file"):
        tnep_fit.read_tnep_frames()


def test_config_errors_name_the_option(tmp_path):
    with pytest.raises(ConfigError, match="unknown option"):
        TNEPFitConfig.from_dict({"dipole_weight": 1.0})
    with pytest.raises(ConfigError, match="validation_fraction"):
        TNEPFitConfig.from_dict({"validation_fraction": 1.5})
    bad = tmp_path / "bad.yaml"
    bad.write_text("fit:\n  epochz: 3\n")
    with pytest.raises(ConfigError, match="epochz"):
        tnep_fit.load_tnep_config(str(bad)).fit_config()


# --------------------------------------------------------------------------------------- training
def test_fit_lowers_the_loss_and_records_units(trained):
    model, report, path = trained
    history = report["fit"]["history"]
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert set(report["validation"]) == {"dipole", "polarizability"}
    card = model.card["tnep"]
    assert card["trained_on"] == ["dipole", "polarizability"]
    assert card["units"]["dipole"].startswith("Å") and card["response"]["cutoff"] == 3.0
    assert not set(card["split"]["train"]) & set(card["split"]["validation"])


def test_numpy_network_equals_keras_prediction(trained, gpumd_files):
    from polarff.descriptors import compute_descriptors
    from polarff.io import read_frames
    from polarff.model import predict

    model, _, _ = trained
    frames = read_frames(gpumd_files["dipole_test"])
    keras_out = predict(model, frames)
    network = tnep_fit.NumpyNetwork(model)
    q, alpha = network(compute_descriptors(model.descriptor, frames[0]),
                       model.descriptor.species_index(frames[0].symbols))
    n = frames[0].n_atoms
    np.testing.assert_allclose(q, keras_out["charges"][:n], atol=2e-5)
    np.testing.assert_allclose(alpha, keras_out["polarizabilities"][:n], atol=2e-5)
    assert abs(q.sum()) < 1e-12


def test_eval_without_tnep_model_and_model_kind_check(trained, gpumd_files, tmp_path):
    from polarff.artifact import load_model

    _, _, path = trained
    rows = tnep_fit.eval_tnep(path, [gpumd_files["dipole_test"], gpumd_files["pol_test"]], repeats=1)
    assert [r.kind for r in rows] == ["dipole", "polarizability"]
    for row in rows:
        assert row.tnep_rmse is None and np.isfinite(row.polarff_rmse) and row.polarff_ms_per_frame > 0
        expected = tnep_fit.rmse_in_file_units(load_model(path), tnep_fit.read_tnep_frames(
            **{("dipole_files" if row.kind == "dipole" else "polarizability_files"): [row.test_file]}), row.kind)
        assert row.polarff_rmse == pytest.approx(expected, rel=1e-10)
    assert "—" in tnep_fit.format_comparison(rows)
    model = load_model(path)
    model.card["tnep"]["trained_on"] = ["dipole"]
    only_dipole = tmp_path / "dipole_only.pff"
    model.save(only_dipole)
    with pytest.raises(ModelError, match="polarizability"):
        tnep_fit.eval_tnep(only_dipole, [gpumd_files["pol_test"]], repeats=1)


def test_cli_tnep_eval_writes_table_and_plots(trained, gpumd_files, tmp_path, capsys):
    from polarff.cli import main

    _, _, path = trained
    code = main(["tnep-eval", str(path), "--test", str(gpumd_files["dipole_test"]), "--repeats", "1",
                 "--plots", str(tmp_path / "img"), "--markdown", str(tmp_path / "table.md")])
    assert code == 0
    assert "dipole" in capsys.readouterr().out
    assert (tmp_path / "img" / "tnep-water-dipole-parity.png").stat().st_size > 1000
    assert (tmp_path / "table.md").read_text().startswith("| target")
    assert main(["fit-tnep", "-o", str(tmp_path / "x.pff")]) == 2  # no files: one-line error


# ------------------------------------------------------------------------------ real TNEP models
@needs_shared
def test_side_by_side_table_has_both_models_on_the_same_frames(trained, tmp_path):
    from polarff.io import read_frames

    _, _, path = trained
    test_file = str(SHARED_TNEP / "dipole" / "test.xyz")
    frames = read_frames(test_file, index=slice(0, 4))
    rows = tnep_fit.eval_tnep(path, [test_file], repeats=1, frames={test_file: frames})
    (row,) = rows
    assert row.n_frames == 4 and row.tnep_model.endswith("nep.txt")
    assert row.tnep_rmse < 0.15 and np.isfinite(row.polarff_rmse)
    assert row.tnep_ms_per_frame > 0 and row.polarff_ms_per_frame > 0
    assert row.tnep_predictions.shape == row.polarff_predictions.shape == (4, 3)
    table = tnep_fit.format_comparison(rows, markdown=True)
    assert f"{row.tnep_rmse:.4f}" in table and f"{row.polarff_rmse:.4f}" in table
    assert len(tnep_fit.parity_plots(rows, tmp_path)) == 1


@needs_shared
def test_shared_training_files_carry_both_kinds_after_merging():
    frames = tnep_fit.read_tnep_frames([SHARED_TNEP / "dipole" / "train.xyz"],
                                       [SHARED_TNEP / "polarizability" / "train.xyz"])
    both = sum({"gpumd_dipole", "polarizability"} <= set(f.labels) for f in frames)
    assert len(frames) == 79 and both == 59  # the files repeat 1 dipole and 1 α frame
