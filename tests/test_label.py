"""Reference labels: GFN2-xTB charges (tblite), D4 polarizabilities (dftd4), resumable file labelling."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tblite")
pytest.importorskip("dftd4")

from polarff.data import Frame  # noqa: E402
from polarff.errors import ConfigError, InputError  # noqa: E402
from polarff.io import read_frames, write_frames  # noqa: E402
from polarff.label import (BOHR3_TO_A3, LabelError, d4_polarizabilities, gfn2_charges,  # noqa: E402
                           label_file)

# Water dimer near its minimum (Å): donor O1-H1...O2.
DIMER = (["O", "H", "H", "O", "H", "H"],
         np.array([[-1.551, -0.115, 0.000], [-1.934, 0.763, 0.000], [-0.600, 0.041, 0.000],
                   [1.351, 0.111, 0.000], [1.680, -0.374, -0.759], [1.680, -0.374, 0.759]]))

#: Electronic polarizabilities of the ions (Å^3) from refraction of alkali-halide crystals: J. R. Tessman,
#: A. H. Kahn and W. Shockley, Phys. Rev. 92, 890 (1953). Used as the reference for the hydrated ions:
#: cation polarizabilities are the same free, in crystals and in water, and the aqueous anion value is close
#: to the in-crystal one (N. C. Pyper, C. G. Pike and P. P. Edwards, Mol. Phys. 76, 353 (1992);
#: J. J. Molina et al., J. Chem. Phys. 134, 014511 (2011)).
LITERATURE_ALPHA_A3 = {"Li": 0.03, "Na": 0.41, "K": 1.33, "Cl": 2.96}
#: Experimental static polarizability of a water molecule (Å^3), gas phase.
WATER_ALPHA_A3 = 1.45


def _water_box_with_ion(ion: str, seed: int = 1) -> Frame:
    from polarff.build import sample_ion_frames

    return sample_ion_frames(ion, 1, 16, 1, seed, equilibration_ps=0.2, interval_ps=0.1, progress=False)[0]


@pytest.fixture(scope="module")
def nacl_box() -> Frame:
    pytest.importorskip("openmm")
    return _water_box_with_ion("NaCl")


def _rotation(seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def test_gfn2_water_dimer_charges_are_physical_and_invariant():
    symbols, pos = DIMER
    q = gfn2_charges(Frame(symbols, pos))
    assert abs(q.sum()) < 1e-10
    assert np.all((q[[0, 3]] > -0.7) & (q[[0, 3]] < -0.5))
    assert np.all((q[[1, 2, 4, 5]] > 0.25) & (q[[1, 2, 4, 5]] < 0.35))
    assert q[2] > q[1]  # the H-bonded donor hydrogen is more positive than the free one
    moved = pos @ _rotation(3).T + np.array([4.0, -2.0, 7.5])
    np.testing.assert_allclose(gfn2_charges(Frame(symbols, moved)), q, atol=1e-6)


def test_gfn2_periodic_large_cell_equals_cluster():
    symbols, pos = DIMER
    cluster = gfn2_charges(Frame(symbols, pos))
    periodic = gfn2_charges(Frame(symbols, pos + 10.0, cell=np.eye(3) * 25.0, pbc=True))
    np.testing.assert_allclose(periodic, cluster, atol=2e-3)


def test_gfn2_charges_of_a_cation_cluster_sum_to_plus_one():
    rng = np.random.default_rng(0)
    symbols, positions = ["Na"], [np.zeros(3)]
    for direction in np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / np.sqrt(3):
        o = 2.35 * direction  # Na-O 2.35 Å, hydrogens pointing away
        perp = np.cross(direction, rng.normal(size=3))
        perp /= np.linalg.norm(perp)
        h_dir1 = np.cos(np.radians(52.26)) * direction + np.sin(np.radians(52.26)) * perp
        h_dir2 = np.cos(np.radians(52.26)) * direction - np.sin(np.radians(52.26)) * perp
        symbols += ["O", "H", "H"]
        positions += [o, o + 0.9572 * h_dir1, o + 0.9572 * h_dir2]
    frame = Frame(symbols, np.array(positions), total_charge=1.0)
    q = gfn2_charges(frame)
    assert q.sum() == pytest.approx(1.0, abs=1e-10)
    assert 0.5 < q[0] < 1.0
    assert np.all(q[1::3] < -0.4)


def test_gfn2_periodic_ion_box(nacl_box):
    q = gfn2_charges(nacl_box)
    symbols = np.array(nacl_box.symbols)
    assert abs(q.sum()) < 1e-10
    assert 0.4 < q[symbols == "Na"][0] < 1.0 and -1.0 < q[symbols == "Cl"][0] < -0.5
    assert np.all((q[symbols == "O"] > -0.75) & (q[symbols == "O"] < -0.45))
    assert np.all((q[symbols == "H"] > 0.2) & (q[symbols == "H"] < 0.4))


def test_scf_failure_names_the_frame():
    symbols, pos = DIMER
    frame = Frame(symbols, pos, info={"source": "dimer.xyz", "index": 7})
    with pytest.raises(LabelError, match="dimer.xyz, frame 7.*not converged"):
        gfn2_charges(frame, max_iter=2)


def test_d4_water_polarizability_matches_experiment():
    symbols, pos = DIMER
    alpha = d4_polarizabilities(Frame(symbols, pos))
    assert BOHR3_TO_A3 == pytest.approx(0.1481847, rel=1e-6)
    assert np.all(alpha > 0)
    per_molecule = alpha.reshape(2, 3).sum(axis=1)
    # tolerance: a factor 1.1 around the experimental 1.45 Å^3
    assert np.all(per_molecule / WATER_ALPHA_A3 < 1.1) and np.all(per_molecule / WATER_ALPHA_A3 > 1 / 1.1)


@pytest.mark.parametrize("ion", ["NaCl", "KCl", "LiCl"])
def test_d4_ion_polarizabilities_in_water_against_literature(ion):
    """The known weakness of D4 atomic polarizabilities, measured.

    Cl- agrees within a factor 1.5 of the literature value; the cations are overestimated by a factor
    3 to 150 (D4 in water: Li+ 1.2-2.4, Na+ ~4.3, K+ ~5.8 Å^3 against 0.03, 0.41, 1.33; the value depends on
    the coordination number): D4 interpolates neutral-atom reference values and its charge scaling does
    not reach the closed-shell cation. If dftd4 ever
    changes this, this test fails and polarff/data/README.md must be updated.
    """
    pytest.importorskip("openmm")
    frame = _water_box_with_ion(ion)
    alpha = d4_polarizabilities(frame)
    symbols = np.array(frame.symbols)
    assert np.all(alpha > 0)
    cation = [s for s in ("Li", "Na", "K") if s in symbols][0]
    ratio_anion = alpha[symbols == "Cl"][0] / LITERATURE_ALPHA_A3["Cl"]
    ratio_cation = alpha[symbols == cation][0] / LITERATURE_ALPHA_A3[cation]
    assert 1 / 1.5 < ratio_anion < 1.5, f"Cl-: D4/literature = {ratio_anion:.2f}"
    assert 3.0 < ratio_cation < 150.0, f"{cation}+: D4/literature = {ratio_cation:.2f}"


def _cluster_frames(n: int) -> list[Frame]:
    symbols, pos = DIMER
    rng = np.random.default_rng(42)
    return [Frame(symbols, pos + rng.normal(scale=0.03, size=pos.shape), info={"tag": k}) for k in range(n)]


def test_label_file_resumes_without_duplicates(tmp_path):
    source, out, ref = tmp_path / "in.xyz", tmp_path / "out.xyz", tmp_path / "ref.xyz"
    write_frames(source, _cluster_frames(3))
    assert label_file(source, out, max_frames=2, progress=False) == 2  # "interrupted" after 2 frames
    assert len(read_frames(out)) == 2
    assert label_file(source, out, progress=False) == 1  # the rerun labels only the missing frame
    assert label_file(source, out, progress=False) == 0
    assert label_file(source, ref, progress=False) == 3  # uninterrupted run
    resumed, fresh, inputs = read_frames(out), read_frames(ref), read_frames(source)
    assert len(resumed) == 3
    assert [f.info["tag"] for f in resumed] == [0, 1, 2]
    for a, b, c in zip(resumed, fresh, inputs):
        np.testing.assert_allclose(a.positions, c.positions, atol=1e-8)
        np.testing.assert_allclose(a.labels["charges"], b.labels["charges"], atol=1e-10)
        np.testing.assert_allclose(a.labels["polarizabilities"], b.labels["polarizabilities"], atol=1e-10)
        assert abs(a.labels["charges"].sum()) < 1e-7  # extxyz stores 8 decimals
        assert a.info["label_method"].startswith("GFN2-xTB/tblite ") and "D4/dftd4 " in a.info["label_method"]


def test_label_file_refuses_a_foreign_output_and_bad_methods(tmp_path):
    source, out = tmp_path / "in.xyz", tmp_path / "out.xyz"
    frames = _cluster_frames(2)
    write_frames(source, frames)
    write_frames(out, [Frame(frames[0].symbols, frames[0].positions + 0.5)])
    with pytest.raises(InputError, match="does not match"):
        label_file(source, out, progress=False)
    assert label_file(source, out, resume=False, polarizabilities=None, progress=False) == 2
    assert "polarizabilities" not in read_frames(out)[0].labels
    with pytest.raises(ConfigError, match="unknown charge method"):
        label_file(source, out, charges="mulliken", progress=False)
