"""TNEP reference harness (calorine) on the GPUMD water data in ../shared/data/tnep-water."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from polarff.data import Frame
from polarff.errors import ConfigError, InputError
from polarff import tnep

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tnep-water"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared TNEP water data not found at {DATA} "
                                "(../shared/data beside the checkout)")


@pytest.fixture(scope="module")
def dipole_frames():
    from polarff.io import read_frames
    return read_frames(DATA / "dipole" / "test.xyz")


@pytest.fixture(scope="module")
def polarizability_frames():
    from polarff.io import read_frames
    return read_frames(DATA / "polarizability" / "test.xyz")


@needs_data
def test_dipole_test_file_labels(dipole_frames):
    assert len(dipole_frames) == 80
    norms = []
    for frame in dipole_frames:
        assert {"gpumd_dipole", "molecular_dipoles", "dipole"} <= set(frame.labels)
        mask = frame.label_masks["molecular_dipoles"]
        assert mask.sum() == 64 and all(frame.symbols[i] == "O" for i in np.nonzero(mask)[0])
        norms.append(np.linalg.norm(frame.labels["molecular_dipoles"][mask], axis=1))
    norms = np.concatenate(norms)
    # liquid water: ~2.5-3.3 D (1 e·Å = 4.803 D); every molecule a physical dipole
    assert 0.50 < norms.mean() < 0.70, norms.mean()
    assert norms.min() > 0.3 and norms.max() < 0.9


@needs_data
def test_gpumd_dipole_round_trip_is_exact(dipole_frames):
    import ase.io

    raw = ase.io.read(DATA / "dipole" / "test.xyz", index=":")
    for frame, atoms in zip(dipole_frames, raw):
        per_atom = frame.labels["molecular_dipoles"]
        back = tnep.gpumd_dipole_from_molecular(frame, per_atom)
        np.testing.assert_allclose(back, atoms.arrays["adipole"].sum(axis=0), atol=1e-10)
        per_molecule = per_atom[frame.label_masks["molecular_dipoles"]]
        np.testing.assert_allclose(tnep.gpumd_dipole_from_molecular(frame, per_molecule), back, atol=1e-12)
        # the file's frame key is the same sum, rounded to 3 decimals
        np.testing.assert_allclose(back, frame.labels["gpumd_dipole"], atol=0.02)


@needs_data
def test_tnep_dipole_rmse_reproduced(dipole_frames):
    pred, seconds = tnep.tnep_predict(dipole_frames, DATA / "dipole" / "nep.txt", "dipole")
    assert pred.shape == (80, 3)
    rmse = tnep.component_rmse(pred, tnep.gpumd_targets(dipole_frames, "dipole"))
    print(f"TNEP dipole: test RMSE {rmse:.4f} Å, {1e3 * seconds:.1f} ms/frame (calorine, CPU)")
    assert rmse == pytest.approx(0.049, rel=0.1)
    assert 0 < seconds < 1.0


@needs_data
def test_tnep_polarizability_rmse_reproduced(polarizability_frames):
    pred, seconds = tnep.tnep_predict(polarizability_frames, DATA / "polarizability" / "nep.txt",
                                      "polarizability")
    assert pred.shape == (60, 3, 3)
    np.testing.assert_allclose(pred, np.swapaxes(pred, 1, 2), atol=1e-12)
    rmse = tnep.component_rmse(pred, tnep.gpumd_targets(polarizability_frames, "polarizability"))
    print(f"TNEP polarizability: test RMSE {rmse:.3f}, {1e3 * seconds:.1f} ms/frame (calorine, CPU)")
    assert rmse == pytest.approx(0.94, rel=0.1)
    assert 0 < seconds < 1.0


def test_round_trip_on_a_built_water_pair():
    """Forward GPUMD convention on made-up offsets, then back: exact, also across a periodic face."""
    rng = np.random.default_rng(0)
    box = 10.0
    o1, o2 = np.array([0.2, 5.0, 5.0]), np.array([5.0, 2.0, 8.0])
    positions = np.array([o1, o1 + [-0.76, 0.59, 0.0], o1 + [0.76, 0.59, 0.0],
                          o2, o2 + [0.0, 0.59, 0.76], o2 + [0.0, 0.59, -0.76]]) % box
    frame = Frame(["O", "H", "H"] * 2, positions, cell=np.eye(3) * box, pbc=True)
    adipole = rng.normal(scale=0.2, size=(2, 3))
    whole = [np.array([o1, o1 + [-0.76, 0.59, 0.0], o1 + [0.76, 0.59, 0.0]]),
             np.array([o2, o2 + [0.0, 0.59, 0.76], o2 + [0.0, 0.59, -0.76]])]
    mu = np.array([w[1] + w[2] - 2 * w[0] - 2 * d for w, d in zip(whole, adipole)])
    np.testing.assert_allclose(tnep.gpumd_dipole_from_molecular(frame, mu), adipole.sum(axis=0), atol=1e-12)


def test_bad_input_raises(tmp_path):
    frame = Frame(["Na", "Cl"], np.array([[0.0, 0, 0], [3.0, 0, 0]]))
    with pytest.raises(InputError, match="whole water"):
        tnep.gpumd_dipole_from_molecular(frame, np.zeros((2, 3)))
    with pytest.raises(InputError, match="wrong shape"):
        tnep.gpumd_dipole_from_molecular(frame, np.zeros(3))
    with pytest.raises(ConfigError):
        tnep.tnep_predict([frame], "nep.txt", "charge")
    with pytest.raises(InputError, match="not found"):
        tnep.tnep_predict([frame], tmp_path / "missing.txt", "dipole")
    model = tmp_path / "nep.txt"
    model.write_text("nep4_polarizability 2 O H\n")
    with pytest.raises(InputError, match="another kind"):
        tnep.tnep_predict([frame], model, "dipole")
    with pytest.raises(InputError, match="species"):
        tnep.tnep_predict([frame], model, "polarizability")
    with pytest.raises(InputError, match="lacks"):
        tnep.gpumd_targets([frame], "dipole")
