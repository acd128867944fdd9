"""Reading and writing frames: canonical labels, GPUMD conventions, and clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_file, water_box
from polarff.data import Frame
from polarff.errors import InputError
from polarff.io import read_frames, require_labels, write_frames

GOOD = """3
Lattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3:REF_charges:R:1 pbc="T T T" total_charge=0.0
O 0.0 0.0 0.0 -0.8
H 0.96 0.0 0.0 0.4
H -0.24 0.93 0.0 0.4
"""


def write(tmp_path, text, name="f.xyz"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_reads_ref_labels_and_total_charge(tmp_path):
    (frame,) = read_frames(write(tmp_path, GOOD))
    assert frame.symbols == ["O", "H", "H"]
    np.testing.assert_allclose(frame.labels["charges"], [-0.8, 0.4, 0.4])
    assert frame.periodic and frame.cell.shape == (3, 3)


def test_charges_moved_into_calculator_by_ase_are_read(tmp_path):
    text = GOOD.replace("REF_charges", "charges")
    (frame,) = read_frames(write(tmp_path, text))
    np.testing.assert_allclose(frame.labels["charges"], [-0.8, 0.4, 0.4])


def test_write_read_round_trip(tmp_path):
    frame = water_box(n_side=2, seed=1, ions=1)
    frame.labels["charges"] = np.linspace(-1, 1, frame.n_atoms) - np.linspace(-1, 1, frame.n_atoms).mean()
    frame.labels["polarizabilities"] = np.full(frame.n_atoms, 0.7)
    frame.labels["dipole"] = np.array([0.1, -0.2, 0.3])
    frame.labels["polarizability"] = np.arange(9.0).reshape(3, 3)
    frame.labels["born_charges"] = np.arange(frame.n_atoms * 9.0).reshape(frame.n_atoms, 3, 3) / 100
    path = tmp_path / "rt.xyz"
    write_frames(path, [frame, frame])
    back = read_frames(path)
    assert len(back) == 2
    for name, value in frame.labels.items():
        np.testing.assert_allclose(back[1].labels[name], value, atol=1e-8)
    np.testing.assert_allclose(back[0].positions, frame.positions, atol=1e-8)
    assert not list(tmp_path.glob(".*.tmp")), "atomic write left a temporary file behind"


@pytest.mark.parametrize("text, field, needle", [
    ("not an xyz file\n", None, "cannot parse"),
    (GOOD.replace('Lattice="5 0 0 0 5 0 0 0 5" ', ""), "cell", "periodic frame without a valid cell"),
    (GOOD.replace("0.96 0.0 0.0", "nan 0.0 0.0"), "positions", "NaN"),
    (GOOD.replace("-0.8", "-0.5"), "charges", "do not sum"),
    (GOOD.replace("REF_charges", "REF_spin"), "REF_spin", "unknown label name"),
    (GOOD.replace("H -0.24 0.93 0.0 0.4\n", ""), None, "cannot parse"),
])
def test_bad_input_names_file_field_expected_found(tmp_path, text, field, needle):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as err:
        read_frames(path)
    msg = str(err.value)
    assert path in msg and needle in msg
    if field is not None:
        assert f"field '{field}'" in msg and "frame 0" in msg and "expected" in msg and "found" in msg


def test_wrong_label_length_in_memory_is_rejected():
    frame = water_box(n_side=2)
    frame.labels["charges"] = np.zeros(frame.n_atoms - 1)
    with pytest.raises(InputError, match=r"wrong shape.*expected \(24,\), found \(23,\)"):
        frame.validate()


def test_missing_file_and_unknown_requested_label(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_frames(tmp_path / "absent.xyz")
    frames = [water_box(n_side=2)]
    with pytest.raises(InputError, match="unknown label name"):
        require_labels(frames, ["charge"])
    with pytest.raises(InputError, match="no frame carries"):
        require_labels(frames, ["charges"])


def test_tnep_dipole_file_conventions():
    frames = read_frames(shared_file("tnep-water", "dipole", "train.xyz"))
    assert len(frames) == 80
    f = frames[0]
    assert f.n_atoms == 192 and f.info["convention"] == "GPUMD/TNEP"
    mask = f.label_masks["molecular_dipoles"]
    assert mask.sum() == 64 and all(f.symbols[i] == "O" for i in np.nonzero(mask)[0])
    mu = np.linalg.norm(f.labels["molecular_dipoles"][mask], axis=1)
    assert 0.5 < mu.mean() < 0.75  # e·Å: liquid water ≈ 2.4–3.6 D
    np.testing.assert_allclose(f.labels["gpumd_dipole"], [2.005, 3.410, -0.030])
    np.testing.assert_allclose(f.labels["dipole"], f.labels["molecular_dipoles"].sum(axis=0))


def test_tnep_polarizability_file_conventions():
    frames = read_frames(shared_file("tnep-water", "polarizability", "test.xyz"))
    assert len(frames) == 60
    f = frames[0]
    assert "dipole" not in f.labels  # the all-zero placeholder is dropped, and said so
    assert "placeholder" in f.info["dropped"]
    alpha = f.labels["polarizability"]
    np.testing.assert_allclose(alpha, f.labels["molecular_polarizabilities"].sum(axis=0), atol=0.05)
    assert 1.5 < np.trace(alpha) / 3 / 64 < 2.5
