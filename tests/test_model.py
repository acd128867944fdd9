"""Keras classifier: learning, exact neutrality, masked heads, determinism, save/load, Keras-vs-torch parity."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import synthetic_labels, water_box
from polarff.artifact import load_model, read_card
from polarff.model import FitConfig, fit, predict


def test_learns_charges_better_than_species_means(trained_model, labelled_boxes):
    model, report, _ = trained_model
    test = report["test"]
    # baseline: predicting each species' mean charge
    q = np.concatenate([f.labels["charges"] for f in labelled_boxes])
    sym = np.concatenate([f.symbols for f in labelled_boxes])
    baseline = np.mean([np.mean(np.abs(q[sym == s] - q[sym == s].mean())) for s in ("O", "H")])
    assert test["charge_mae"] < 0.5 * baseline, (test["charge_mae"], baseline)
    assert 0.0 <= test["charge_accuracy"] <= 1.0
    assert report["history"][-1]["train_loss"] < report["history"][0]["train_loss"]


def test_predicted_charges_are_exactly_neutral(trained_model, labelled_boxes):
    model, _, _ = trained_model
    charged = water_box(n_side=3, seed=99, ions=1)
    charged.total_charge = 0.0
    pred = predict(model, labelled_boxes[:3] + [charged])
    sums = np.bincount(pred["frame_index"], weights=pred["charges"])
    assert np.max(np.abs(sums)) < 1e-6
    assert np.max(np.abs(pred["charges_raw"] - pred["charges"])) > 0  # neutralisation did something
    k = model.bins["charges"].n_classes
    assert np.all(pred["entropy_charges"] >= 0) and np.all(pred["entropy_charges"] <= np.log(k) + 1e-9)


def test_save_load_round_trip_and_card(trained_model, labelled_boxes):
    model, _, path = trained_model
    back = load_model(path)
    a, b = predict(model, labelled_boxes[:2]), predict(back, labelled_boxes[:2])
    np.testing.assert_array_equal(a["charges"], b["charges"])
    np.testing.assert_array_equal(a["polarizabilities"], b["polarizabilities"])
    card = read_card(path)
    assert card["species"] == ["H", "O", "Na", "Cl"] and card["seed"] == 3
    assert len(card["training_data_sha256"]) == 64 and "tensorflow" in card["versions"]
    assert card["units"]["charges"] == "e" and "test" in card["metrics"]


def test_per_species_thole_round_trip_and_clear_errors(trained_model, tmp_path):
    import copy
    import zipfile

    from polarff.errors import ModelError

    model, _, path = trained_model
    assert load_model(path).thole is None
    assert load_model(path).thole_per_atom(["O", "Cl"]) == [0.39, 0.39]
    variant = copy.copy(model)
    variant.thole = {"a": {"Cl": 0.12}, "basis": "test"}
    out = tmp_path / "thole.pff"
    variant.save(out)
    back = load_model(out)
    assert back.thole == {"a": {"Cl": 0.12}, "basis": "test"}
    assert back.thole_per_atom(["O", "H", "Cl", "Na"]) == [0.39, 0.39, 0.12, 0.39]
    assert back.thole_per_atom(["O", "Cl"], default=0.3) == [0.3, 0.12]
    for bad, message in (({"a": {"Cl": -1.0}}, "a.Cl.*> 0.*-1.0"), ({"a": {"Br": 0.1}}, "'Br' is not one"),
                         ({"values": {}}, "field 'a'")):
        broken = tmp_path / "broken.pff"
        with zipfile.ZipFile(out) as source, zipfile.ZipFile(broken, "w") as target:
            for item in source.namelist():
                if item != "thole.json":
                    target.writestr(item, source.read(item))
            target.writestr("thole.json", __import__("json").dumps(bad))
        with pytest.raises(ModelError, match=f"broken.pff: thole.json.*{message}"):
            load_model(broken)


def test_keras_and_torch_twin_agree(trained_model, labelled_boxes):
    torch = pytest.importorskip("torch")
    from polarff.runtime.network import ChargeModel

    model, _, _ = trained_model
    frame = labelled_boxes[1]
    pred = predict(model, [frame])
    twin = ChargeModel(model, frame.symbols, frame.total_charge)
    q, alpha = twin(torch.tensor(frame.positions), torch.tensor(frame.cell), True)
    assert np.max(np.abs(q.detach().numpy() - pred["charges"])) < 1e-5
    assert np.max(np.abs(alpha.detach().numpy() - pred["polarizabilities"])) < 1e-5
    scripted = torch.jit.script(twin)
    q2, _ = scripted(torch.tensor(frame.positions), torch.tensor(frame.cell), True)
    assert torch.allclose(q, q2)


def test_same_seed_same_model_and_masked_heads():
    frames = synthetic_labels([water_box(n_side=2, seed=s) for s in range(8)], seed=1)
    for f in frames[::2]:
        del f.labels["polarizabilities"]  # α head trained only where labels exist
    cfg = FitConfig(epochs=4, eval_every=2, hidden=[16], n_bins=6, cutoff=4.0, n_radial=3, n_angular=2,
                    batch_frames=2, seed=11, validation_fraction=0.25, test_fraction=0.0)
    split = (np.arange(6), np.array([6, 7]), np.array([], dtype=int))  # frame 7 has α labels, 6 has not
    m1, r1 = fit(frames, cfg, progress=False, split=split)
    m2, r2 = fit(frames, cfg, progress=False, split=split)
    for name in m1.weights:
        np.testing.assert_array_equal(m1.weights[name], m2.weights[name])
    assert r1["validation"] == r2["validation"]
    assert r1["validation"]["polarizability_per_species"]["O"]["n"] == 8  # only frame 7's atoms scored
    assert np.isfinite(r1["validation"]["polarizability_mae"])
