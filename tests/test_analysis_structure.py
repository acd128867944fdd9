"""g(r), first-peak positions and density against cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from polarff.analysis.structure import density_g_cm3, first_peak, radial_distribution
from polarff.errors import InputError


def test_ideal_gas_has_g_equal_to_one():
    rng = np.random.default_rng(1)
    length = 3.0
    frames = rng.uniform(0.0, length, size=(40, 400, 3))
    boxes = np.repeat(np.eye(3)[None] * length, 40, axis=0)
    symbols = ["O"] * 200 + ["Na"] * 200
    r, g = radial_distribution(frames, boxes, symbols, "Na", "O", r_max_nm=1.4, bin_nm=0.05)
    assert np.abs(g[r > 0.5].mean() - 1.0) < 0.01
    r, g = radial_distribution(frames, boxes, symbols, "O", "O", r_max_nm=1.4, bin_nm=0.05)
    assert np.abs(g[r > 0.5].mean() - 1.0) < 0.01  # like pairs: self-distances excluded, N(N-1) normalisation


def test_first_peak_of_a_jittered_lattice_is_the_spacing():
    spacing = 0.31
    grid = np.stack(np.meshgrid(*[np.arange(6) * spacing] * 3, indexing="ij"), -1).reshape(-1, 3)
    frames = grid[None] + np.random.default_rng(0).normal(0.0, 0.008, size=(10, len(grid), 3))
    boxes = np.repeat(np.eye(3)[None] * 6 * spacing, 10, axis=0)
    position, height = first_peak(*radial_distribution(frames, boxes, ["O"] * len(grid), "O", "O", 0.4, 0.002))
    assert position == pytest.approx(3.1, abs=0.02) and height > 3


def test_density_of_water_and_missing_species():
    masses = np.array([15.999, 1.008, 1.008] * 216)
    rho, err = density_g_cm3(masses, np.repeat(np.eye(3)[None] * 1.8646, 10, axis=0))
    assert rho == pytest.approx(0.997, abs=0.002) and err == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(InputError, match="species missing for g\\(r\\)"):
        radial_distribution(np.zeros((1, 2, 3)), np.eye(3)[None], ["O", "H"], "Cl", "O")


def test_energy_per_water_counts_molecules_by_oxygen():
    from polarff.analysis.structure import energy_per_water

    symbols = ["O", "H", "H"] * 4 + ["Na", "Cl"]
    assert energy_per_water(np.array([-100.0, -140.0]), symbols) == pytest.approx(-30.0)


def test_ion_environment_charge_adds_the_molecules_within_r_across_the_periodic_boundary():
    from polarff.analysis.structure import ion_environment_charge

    edge = 2.0
    ion = np.array([[0.1, 0.1, 0.1]])
    # water A: centroid 0.25 nm from the ion, net +0.1; water B: unwrapped at x ≈ 1.95 + 2 (two images away),
    # 0.25 nm by minimum image, net +0.2; water C: 0.8 nm away, net −1.0; a counter-ion 0.2 nm away is no solvent
    shape = np.array([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0], [-0.05, 0.0, 0.0]])
    a = shape + [0.35, 0.1, 0.1]
    b = shape + [0.1 - 0.25 + 2 * edge, 0.1, 0.1]
    c = shape + [0.1, 0.9, 0.1]
    frame = np.concatenate([ion, a, b, c, ion + [0.0, 0.2, 0.0]])
    positions = np.stack([frame + 0.01 * k for k in range(4)])
    boxes = np.stack([np.eye(3) * edge] * 4)
    q = np.array([0.7, -0.6, 0.35, 0.35, -0.6, 0.4, 0.4, -1.0, 0.0, 0.0, -0.7])
    residues = np.array([0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4])
    inner, outer, small = ion_environment_charge(positions, boxes, np.stack([q] * 4), residues, 0, [0.3, 0.9, 0.2],
                                                 n_blocks=2)
    assert inner[0] == pytest.approx(1.0) and outer[0] == pytest.approx(0.0) and small[0] == pytest.approx(0.7)
    assert inner[1] == pytest.approx(0.0, abs=1e-12)  # the same in both blocks
    # fixed charges are broadcast over the frames
    assert ion_environment_charge(positions, boxes, q, residues, 0, [0.3], n_blocks=2)[0][0] == pytest.approx(1.0)
    with pytest.raises(InputError, match="half the smallest box edge"):
        ion_environment_charge(positions, boxes, q, residues, 0, [1.2])
    with pytest.raises(InputError, match="shapes disagree"):
        ion_environment_charge(positions, boxes, q[:5], residues, 0, [0.3])


def test_shell_offset_is_zero_in_a_regular_cage_and_the_displacement_off_it():
    """An ion at the centre of an octahedron of O at 0.3 nm (split across the box boundary) has no offset and
    six neighbours; moved by 0.05 nm inside the cage, its offset is 0.05 nm; an empty shell gives NaN."""
    from polarff.analysis.structure import coordination_number, shell_offset

    box = np.eye(3) * 1.5
    octahedron = 0.3 * np.vstack([np.eye(3), -np.eye(3)])
    ion = np.array([0.05, 1.45, 0.7])  # the cage wraps around the x and y faces
    shifted = ion + np.array([0.05, 0.0, 0.0])
    far = ion + np.array([0.7, 0.0, 0.0])
    frames = np.array([np.vstack([p, (ion + octahedron) % 1.5]) for p in (ion, shifted, far)])
    boxes = np.array([box] * 3)
    offsets = shell_offset(frames, boxes, 0, range(1, 7), 0.38)
    np.testing.assert_allclose(offsets[:2], [0.0, 0.05], atol=1e-12)
    assert np.isnan(offsets[2])
    assert coordination_number(frames[:1], boxes[:1], [0], range(1, 7), 0.38) == 6


def test_residence_time_of_fixed_stays_and_the_excursion_tolerance():
    """A water that stays 1 ps at a time (then 0.5 ps away) has C(t) = 1 − t/1 ps and τ(0.5 ps) = 0.375 ps;
    a 0.05 ps excursion ends a stay only when it is longer than the tolerance t*."""
    from polarff.analysis.residence import residence_time, shell_correlation, shell_membership

    stays = np.tile(np.r_[np.ones(100, bool), np.zeros(50, bool)], 20)[:, None]  # 0.01 ps frames
    lags, c = shell_correlation(stays, 0.01, 0.5, tolerance_ps=0.2)
    np.testing.assert_allclose(c, 1.0 - lags / 1.0, atol=1e-12)
    assert residence_time(lags, c) == pytest.approx(0.375)

    broken = stays.copy()
    for start in range(45, 3000, 150):
        broken[start:start + 5] = False  # a 0.05 ps excursion in every stay
    short, tolerant = (shell_correlation(broken, 0.01, 0.5, tolerance_ps=t)[1] for t in (0.02, 0.1))
    assert short[50] == 0.0 and tolerant[50] > 0.4  # after 0.5 ps only the bridged stays survive
    assert residence_time(lags, short) < residence_time(lags, tolerant) < 0.375
    with pytest.raises(Exception, match="shorter than the run"):
        shell_correlation(stays, 0.01, 40.0)

    # membership uses the minimum image: an O 0.3 nm from the ion across the boundary is in the shell
    frames = np.array([[[0.05, 0.5, 0.5], [1.25, 0.5, 0.5]], [[0.05, 0.5, 0.5], [0.6, 0.5, 0.5]]])
    inside = shell_membership(frames, np.array([np.eye(3) * 1.5] * 2), 0, [1], 0.38)
    assert inside[:, 0].tolist() == [True, False]


def test_ion_pairing_nearest_partner_contact_and_random_reference():
    from polarff.analysis.structure import ion_pairing

    edge = 2.0
    boxes = np.repeat(np.eye(3)[None] * edge, 3, axis=0)
    # three like ions: 0 and 1 are 0.30 nm apart across the periodic boundary (x = 0.05 and 1.75, the latter two
    # boxes away, unwrapped); 2 is 0.90 nm from 0 (one box away in z) and 0.95 nm from 1
    frame = np.array([[0.05, 0.5, 0.5], [1.75 + 2 * edge, 0.5, 0.5], [0.05, 1.4, 0.5 - edge]])
    positions = np.repeat(frame[None], 3, axis=0)
    like = ion_pairing(positions, boxes, [0, 1, 2], [0, 1, 2], 0.40)
    assert like["nearest_nm"] == pytest.approx((0.30 + 0.30 + 0.90) / 3)
    assert like["contact_fraction"] == pytest.approx(2 / 3)
    shell = 4 / 3 * np.pi * 0.4 ** 3 / edge ** 3
    assert like["random_contact_fraction"] == pytest.approx(1 - (1 - shell) ** 2)  # two partners besides itself
    unlike = ion_pairing(positions, boxes, [0], [1, 2], 0.40)
    assert unlike["nearest_nm"] == pytest.approx(0.30) and unlike["contact_fraction"] == 1.0

    # uniformly random ions: the measured contact fraction is the ideal-solution reference
    rng = np.random.default_rng(3)
    random_frames = rng.uniform(0.0, edge, size=(4000, 5, 3))
    boxes = np.repeat(np.eye(3)[None] * edge, 4000, axis=0)
    ideal = ion_pairing(random_frames, boxes, range(5), range(5), 0.5)
    assert ideal["contact_fraction"] == pytest.approx(ideal["random_contact_fraction"], abs=0.02)

    with pytest.raises(InputError, match="partner other than itself"):
        ion_pairing(positions, boxes[:3], [0], [0], 0.4)
    with pytest.raises(InputError, match="half the shortest box edge"):
        ion_pairing(positions, boxes[:3], [0], [1], 1.0)


def test_benchmark_flags_like_ion_aggregation_against_random_and_baseline():
    from polarff.benchmark import aggregation_sentence

    def pairing(na_na, cl_cl):
        return {"pairing": {"Na-Na": {"contact_fraction": na_na, "random_contact_fraction": 0.10},
                            "Cl-Cl": {"contact_fraction": cl_cl, "random_contact_fraction": 0.19}}}

    text = aggregation_sentence({"polarff-nacl": pairing(0.87, 0.30), "formal-nacl": pairing(0.0, 0.10)})
    assert "Na-Na 0.87" in text and "Cl-Cl" not in text  # 0.30 < 2 × 0.19
    assert aggregation_sentence({"polarff-nacl": pairing(0.87, 0.30), "formal-nacl": pairing(0.5, 0.10)}) == ""
    assert aggregation_sentence({"polarff-nacl": {"Na": {}}, "formal-nacl": pairing(0.0, 0.0)}) == ""
    alone = aggregation_sentence({"polarff-nacl": pairing(0.87, 0.30)})  # no baseline ran: random is the reference
    assert "Na-Na 0.87 (random 0.10)" in alone and "formal-charge baseline" not in alone
