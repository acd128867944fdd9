"""Descriptors: invariances, smoothness at the cutoff, periodic images, numpy/torch twin agreement."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from conftest import water_box
from polarff.data import Frame
from polarff.descriptors import DescriptorConfig, compute_descriptors

CFG = DescriptorConfig(["H", "O", "Na", "Cl"], cutoff=4.0, n_radial=6, n_angular=3)


def cluster(seed=0):
    f = water_box(n_side=2, seed=seed, ions=1)
    return Frame(f.symbols, f.positions, pbc=[False] * 3)


def test_rotation_and_translation_invariance():
    f = cluster()
    ref = compute_descriptors(CFG, f)
    rot = Rotation.random(random_state=1).as_matrix()
    moved = Frame(f.symbols, f.positions @ rot.T + np.array([3.0, -7.0, 11.0]))
    np.testing.assert_allclose(compute_descriptors(CFG, moved), ref, rtol=1e-10, atol=1e-10)
    assert np.abs(ref).max() > 0.1


def test_periodic_translation_and_image_invariance():
    f = water_box(n_side=2, seed=2)
    ref = compute_descriptors(CFG, f)
    shifted = Frame(f.symbols, f.positions + np.array([1.3, -0.4, 2.2]), cell=f.cell, pbc=f.pbc)
    np.testing.assert_allclose(compute_descriptors(CFG, shifted), ref, atol=1e-10)
    wrapped = Frame(f.symbols, f.positions + f.cell[0] * np.array([[1], [0], [-2]] * 8)[:, :1], cell=f.cell,
                    pbc=f.pbc)
    np.testing.assert_allclose(compute_descriptors(CFG, wrapped), ref, atol=1e-10)


def test_permutation_of_like_atoms_permutes_rows():
    f = cluster(seed=3)
    ref = compute_descriptors(CFG, f)
    perm = np.arange(f.n_atoms)
    hs = [i for i, s in enumerate(f.symbols) if s == "H"]
    perm[hs] = np.roll(hs, 3)
    permuted = Frame([f.symbols[i] for i in perm], f.positions[perm])
    np.testing.assert_allclose(compute_descriptors(CFG, permuted), ref[perm], atol=1e-12)


def test_smooth_at_cutoff():
    """A neighbour crossing the cutoff changes the descriptor continuously with vanishing slope."""
    def desc(r):
        return compute_descriptors(CFG, Frame(["O", "H"], [[0, 0, 0], [r, 0.0, 0.0]]))[0]

    rc = CFG.cutoff
    inside, outside = desc(rc - 1e-4), desc(rc + 1e-4)
    assert np.abs(outside).max() == 0.0
    assert np.abs(inside).max() < 1e-7  # value ~ (δ)^2 at the cutoff
    def slope(delta):  # central difference of the descriptor at distance delta inside the cutoff
        return np.abs((desc(rc - delta + 1e-6) - desc(rc - delta - 1e-6)) / 2e-6).max()

    assert slope(1e-4) < 1e-4  # C1 cutoff: the slope vanishes linearly at r_c
    assert slope(1e-3) / slope(1e-2) == pytest.approx(0.1, rel=0.05)
    assert np.abs(desc(rc - 1.0)).max() > 1e-3


def test_torch_twin_matches_numpy():
    torch = pytest.importorskip("torch")
    from polarff.runtime.descriptors import TorchDescriptors

    for f in (water_box(n_side=2, seed=4, ions=1), cluster(seed=5)):
        species = torch.tensor(CFG.species_index(f.symbols))
        td = TorchDescriptors(CFG, species)
        cell = torch.tensor(f.cell if f.cell is not None else np.zeros((3, 3)))
        out = td(torch.tensor(f.positions), cell, f.periodic).numpy()
        np.testing.assert_allclose(out, compute_descriptors(CFG, f), atol=1e-12)


def test_unknown_species_is_a_clear_error():
    from polarff.errors import InputError

    f = Frame(["O", "H", "K"], [[0, 0, 0], [1, 0, 0], [0, 3, 0]])
    with pytest.raises(InputError, match=r"species unknown to the model.*found \['K'\]"):
        compute_descriptors(CFG, f)
