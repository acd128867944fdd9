"""Physics tests of polarff.response (numpy) and polarff.response_tf (TensorFlow twin)."""

from __future__ import annotations

import numpy as np
import pytest

from polarff.data import Frame
from polarff.errors import ConfigError, InputError
from polarff import response as rs

ALPHA = {"O": 0.837, "H": 0.496, "Na": 0.15, "Cl": 3.5}   # Å³ (AMOEBA water values; ion values typical)
CHARGE = {"O": -0.834, "H": 0.417, "Na": 1.0, "Cl": -1.0}  # e (TIP3P-like water, unit ions)
R_OH, ANGLE_HOH = 0.9572, 104.52


def water(center: np.ndarray, rotation: np.ndarray, angle: float = ANGLE_HOH) -> np.ndarray:
    """O, H, H positions (Å) of a water molecule with its O at ``center``."""
    half = np.deg2rad(angle) / 2
    local = np.array([[0, 0, 0], [R_OH * np.sin(half), 0, R_OH * np.cos(half)],
                      [-R_OH * np.sin(half), 0, R_OH * np.cos(half)]])
    return center + local @ rotation.T


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def water_system(n_waters: int, rng: np.random.Generator, box: float | None, ions: bool) -> Frame:
    """Randomly placed, randomly oriented waters (+ Na⁺, Cl⁻) in a cubic box or a 9 Å sphere."""
    symbols, positions = [], []
    heavy = []

    def far_enough(points, min_heavy):
        for p in points:
            for h in heavy:
                d = p - h
                if box is not None:
                    d -= box * np.round(d / box)
                if np.linalg.norm(d) < min_heavy:
                    return False
        return True

    def draw_center():
        if box is not None:
            return rng.uniform(0, box, 3)
        while True:
            c = rng.uniform(-4.5, 4.5, 3)
            if np.linalg.norm(c) < 4.5:
                return c

    for ion in (["Na", "Cl"] if ions else []):
        while True:
            c = draw_center()
            if far_enough([c], 3.0):
                break
        symbols.append(ion)
        positions.append(c)
        heavy.append(c)
    while len(symbols) < 3 * n_waters + (2 if ions else 0):
        mol = water(draw_center(), random_rotation(rng))
        if far_enough(mol, 2.7):
            symbols += ["O", "H", "H"]
            positions += list(mol)
            heavy += list(mol)
    positions = np.asarray(positions)
    if box is not None:  # store wrapped positions: molecules may be split across faces
        positions = positions - box * np.floor(positions / box)
        return Frame(symbols, positions, cell=np.eye(3) * box, pbc=True)
    return Frame(symbols, positions)


def params(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([CHARGE[s] for s in frame.symbols]), np.array([ALPHA[s] for s in frame.symbols]))


@pytest.fixture(scope="module")
def cluster() -> Frame:
    return water_system(5, np.random.default_rng(1), box=None, ions=True)


@pytest.fixture(scope="module")
def box() -> Frame:
    return water_system(20, np.random.default_rng(2), box=12.5, ions=True)


def pair(r: float, alpha: float, box: float | None = None, shift: float = 0.0) -> tuple[Frame, np.ndarray]:
    """Two Cl atoms (non-bonded, molecules of their own) at distance r along x."""
    positions = np.array([[shift, 1.0, 1.0], [shift + r, 1.0, 1.0]])
    if box is None:
        return Frame(["Cl", "Cl"], positions), np.full(2, alpha)
    return Frame(["Cl", "Cl"], positions % box, cell=np.eye(3) * box, pbc=True), np.full(2, alpha)


def lambdas(r: float, alpha_i: float, alpha_j: float, a: float = rs.THOLE_A) -> tuple[float, float]:
    """Independent closed form of the exponential Thole damping."""
    u = r / (alpha_i * alpha_j) ** (1 / 6)
    e = np.exp(-a * u**3)
    return 1 - e, 1 - (1 + a * u**3) * e


# --- building blocks -------------------------------------------------------------------------------

def test_switch_is_smooth_and_bounded():
    r_on, r_c, h = 5.0, 6.0, 1e-6
    r = np.linspace(4.0, 7.0, 301)
    s = rs.switch(r, r_on, r_c)
    assert np.all(s[r <= r_on] == 1.0) and np.all(s[r >= r_c] == 0.0)
    assert np.all(np.diff(s) <= 1e-15)
    for edge in (r_on, r_c):
        slope = (rs.switch(edge + h, r_on, r_c) - rs.switch(edge - h, r_on, r_c)) / (2 * h)
        assert abs(slope) < 1e-8
    assert rs.switch(5.5, r_on, r_c) == pytest.approx(0.5)


def test_damping_closed_form():
    lam3, lam5 = rs.thole_damping(np.array([1.2]), np.array([0.9]), np.array([0.4]))
    ref3, ref5 = lambdas(1.2, 0.9, 0.4)
    assert lam3[0] == pytest.approx(ref3, rel=1e-14) and lam5[0] == pytest.approx(ref5, rel=1e-14)
    lam3, lam5 = rs.thole_damping(np.array([1.0]), np.array([0.0]), np.array([0.5]))
    assert lam3[0] == 1.0 and lam5[0] == 1.0  # a point charge is undamped


def test_per_atom_thole_pairs_use_the_smaller_value(cluster):
    """Per-atom a: a pair uses min(a_i, a_j) (AMOEBA's rule); equal values are the global a."""
    geometry = rs.FrameGeometry.from_frame(cluster)
    q, alpha = params(cluster)
    n = cluster.n_atoms
    is_cl = np.array([s == "Cl" for s in cluster.symbols])
    per_atom = np.where(is_cl, 0.05, rs.THOLE_A)
    lam3, lam5 = rs.damping(geometry, alpha, per_atom)
    for i in range(n):
        for j in range(n):
            if i != j:
                ref3, ref5 = lambdas(np.cbrt(geometry.r_cubed[i, j]), alpha[i], alpha[j], min(per_atom[i], per_atom[j]))
                assert lam3[i, j] == pytest.approx(ref3, rel=1e-12) and lam5[i, j] == pytest.approx(ref5, rel=1e-12)
    uniform = rs.response(geometry, q, alpha, a=np.full(n, rs.THOLE_A))
    default = rs.response(geometry, q, alpha)
    np.testing.assert_array_equal(uniform.induced_dipoles, default.induced_dipoles)
    damped = rs.response(geometry, q, alpha, a=per_atom)
    # stronger damping of the Cl pairs: the Cl⁻ field on its neighbours and their coupling shrink
    assert np.abs(damped.induced_dipoles - default.induced_dipoles).max() > 1e-3
    assert np.abs(damped.induced_dipoles[~is_cl]).sum() < np.abs(default.induced_dipoles[~is_cl]).sum()
    # pairs without Cl are unchanged
    plain3, _ = rs.damping(geometry, alpha)
    np.testing.assert_array_equal(lam3[np.ix_(~is_cl, ~is_cl)], plain3[np.ix_(~is_cl, ~is_cl)])
    with pytest.raises(InputError, match="thole a.*shape"):
        rs.response(geometry, q, alpha, a=np.full(n + 1, 0.39))
    with pytest.raises(InputError, match="thole a.*> 0"):
        rs.response(geometry, q, alpha, a=np.where(is_cl, 0.0, 0.39))


def test_dipole_tensor_is_minus_gradient_of_damped_charge_field():
    """T_ij = −∂/∂r (λ3 r/r³): the λ5 factor must be consistent with the λ3 factor."""
    alpha_i, alpha_j = 0.9, 0.5
    r_vec = np.array([0.7, -0.4, 0.55])
    frame = Frame(["Cl", "Cl"], np.array([r_vec, [0.0, 0.0, 0.0]]))
    geometry = rs.FrameGeometry.from_frame(frame)
    tensor = rs.dipole_tensor(geometry, np.array([alpha_i, alpha_j]))[0:3, 3:6]

    def charge_field(v):
        lam3, _ = rs.thole_damping(np.linalg.norm(v), alpha_i, alpha_j)
        return lam3 * v / np.linalg.norm(v) ** 3

    h = 1e-6
    jacobian = np.stack([(charge_field(r_vec + h * e) - charge_field(r_vec - h * e)) / (2 * h)
                         for e in np.eye(3)], axis=1)
    np.testing.assert_allclose(tensor, -jacobian, atol=1e-7)
    np.testing.assert_allclose(tensor, tensor.T, atol=1e-15)


@pytest.mark.parametrize("r, alpha", [(1.4, 1.2), (2.5, 0.8), (8.0, 0.5)])
def test_dimer_matches_analytic_applequist(r, alpha):
    """Two identical atoms: α_∥ = 2α/(1 − α(3λ5 − λ3)/r³), α_⊥ = 2α/(1 + αλ3/r³)."""
    frame, a = pair(r, alpha)
    pol = rs.frame_polarizability(rs.FrameGeometry.from_frame(frame), a)
    lam3, lam5 = lambdas(r, alpha, alpha)
    parallel = 2 * alpha / (1 - alpha * (3 * lam5 - lam3) / r**3)
    perpendicular = 2 * alpha / (1 + alpha * lam3 / r**3)
    np.testing.assert_allclose(pol, np.diag([parallel, perpendicular, perpendicular]), atol=1e-13)
    if r == 8.0:  # undamped limit: the textbook Applequist result
        assert parallel == pytest.approx(2 * alpha / (1 - 2 * alpha / r**3), rel=1e-12)


def test_permanent_field_of_a_point_charge():
    """Na⁺ (α = 0) 4 Å from a polarizable Cl (q = 0): μ_Cl = α q r/r³, frame dipole = q r_Na + μ."""
    frame = Frame(["Na", "Cl"], np.array([[1.0, 2.0, 3.0], [5.0, 2.0, 3.0]]))
    geometry = rs.FrameGeometry.from_frame(frame)
    q, alpha = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    out = rs.response(geometry, q, alpha)
    expected_mu = 2.0 * 1.0 * np.array([4.0, 0, 0]) / 4.0**3
    np.testing.assert_allclose(out.induced_dipoles, [[0, 0, 0], expected_mu], atol=1e-15)
    np.testing.assert_allclose(out.dipole, frame.positions[0] + expected_mu, atol=1e-14)
    np.testing.assert_allclose(out.molecular_dipoles, [[0, 0, 0], expected_mu], atol=1e-15)


def test_intramolecular_charges_do_not_polarize():
    frame = Frame(["O", "H", "H"], water(np.zeros(3), np.eye(3)))
    geometry = rs.FrameGeometry.from_frame(frame)
    q, alpha = params(frame)
    out = rs.response(geometry, q, alpha)
    np.testing.assert_allclose(out.induced_dipoles, 0.0, atol=1e-15)
    np.testing.assert_allclose(out.dipole, q @ frame.positions, atol=1e-14)


# --- applied field: dμ/dE equals the predicted polarizability ----------------------------------------

@pytest.mark.parametrize("system", ["cluster", "box"])
def test_field_derivative_equals_polarizability(system, request):
    frame = request.getfixturevalue(system)
    geometry = rs.FrameGeometry.from_frame(frame)
    q, alpha = params(frame)
    ref = rs.response(geometry, q, alpha)
    h = 1e-2
    d_frame = np.zeros((3, 3))
    d_mol = np.zeros((geometry.n_molecules, 3, 3))
    for b in range(3):
        e = h * np.eye(3)[b]
        plus, minus = rs.response(geometry, q, alpha, e), rs.response(geometry, q, alpha, -e)
        d_frame[:, b] = (plus.dipole - minus.dipole) / (2 * h)
        d_mol[:, :, b] = (plus.molecular_dipoles - minus.molecular_dipoles) / (2 * h)
    np.testing.assert_allclose(d_frame, ref.polarizability, atol=1e-9)
    np.testing.assert_allclose(d_mol, ref.molecular_polarizabilities, atol=1e-9)
    np.testing.assert_allclose(ref.molecular_polarizabilities.sum(axis=0), ref.polarizability, atol=1e-12)
    np.testing.assert_allclose(ref.polarizability, ref.polarizability.T, atol=1e-12)
    # interactions matter here (otherwise the test above would be trivial)
    assert np.abs(ref.polarizability - alpha.sum() * np.eye(3)).max() > 0.1
    assert np.abs(ref.induced_dipoles).max() > 1e-2
    # the standalone functions agree with the combined one
    np.testing.assert_allclose(rs.frame_dipole(geometry, q, alpha), ref.dipole, atol=1e-12)
    np.testing.assert_allclose(rs.molecular_dipoles(geometry, q, alpha), ref.molecular_dipoles, atol=1e-12)
    np.testing.assert_allclose(rs.molecular_polarizabilities(geometry, alpha),
                               ref.molecular_polarizabilities, atol=1e-12)


def test_rotation_and_translation(cluster):
    q, alpha = params(cluster)
    ref = rs.response(rs.FrameGeometry.from_frame(cluster), q, alpha)
    rotation = random_rotation(np.random.default_rng(7))
    moved = Frame(cluster.symbols, cluster.positions @ rotation.T + np.array([3.0, -1.0, 20.0]))
    out = rs.response(rs.FrameGeometry.from_frame(moved), q, alpha)
    # net-neutral frame: translation does not change the dipole
    np.testing.assert_allclose(out.dipole, rotation @ ref.dipole, atol=1e-11)
    np.testing.assert_allclose(out.polarizability, rotation @ ref.polarizability @ rotation.T, atol=1e-11)
    np.testing.assert_allclose(out.molecular_dipoles, ref.molecular_dipoles @ rotation.T, atol=1e-11)
    np.testing.assert_allclose(out.molecular_polarizabilities,
                               rotation @ ref.molecular_polarizabilities @ rotation.T, atol=1e-11)


@pytest.mark.parametrize("system", ["cluster", "box"])
def test_point_charges_reduce_to_sum_q_r(system, request):
    frame = request.getfixturevalue(system)
    geometry = rs.FrameGeometry.from_frame(frame)
    q, alpha = params(frame)
    exact = rs.response(geometry, q, np.zeros_like(alpha))
    np.testing.assert_allclose(exact.induced_dipoles, 0.0, atol=0)
    np.testing.assert_allclose(exact.polarizability, 0.0, atol=0)
    np.testing.assert_allclose(exact.dipole, q @ geometry.dipole_positions, atol=1e-13)
    near = rs.response(geometry, q, 1e-9 * alpha)
    np.testing.assert_allclose(near.dipole, exact.dipole, atol=1e-7)
    if not frame.periodic:
        np.testing.assert_allclose(exact.dipole, q @ frame.positions, atol=1e-12)


def test_iterative_solver_matches_direct(box):
    geometry = rs.FrameGeometry.from_frame(box)
    q, alpha = params(box)
    field = np.array([0.01, -0.02, 0.005])
    np.testing.assert_allclose(rs.induced_dipoles_iterative(geometry, q, alpha, field, tol=1e-13),
                               rs.induced_dipoles(geometry, q, alpha, field), atol=1e-11)


# --- periodic frames ---------------------------------------------------------------------------------

def test_minimum_image_and_cutoff():
    """A pair straddling a face interacts through the nearest image, switched, and not beyond the cutoff."""
    alpha, box = 1.0, 13.0
    for r in (3.0, 5.5, 6.2):
        frame, a = pair(r, alpha, box=box, shift=box - r / 2)  # atom 0 near x = L, atom 1 near x = 0
        geometry = rs.FrameGeometry.from_frame(frame)
        assert geometry.pair_distances[0, 1] == pytest.approx(r)
        pol = rs.frame_polarizability(geometry, a)
        lam3, lam5 = lambdas(r, alpha, alpha)
        s = rs.switch(r, 5.0, 6.0)
        parallel = 2 * alpha / (1 - s * alpha * (3 * lam5 - lam3) / r**3)
        np.testing.assert_allclose(pol[0, 0], parallel, rtol=1e-13)
        if r > 6.0:
            np.testing.assert_allclose(pol, 2 * alpha * np.eye(3), atol=1e-15)


def test_split_molecule_is_made_whole(box):
    """Translating and re-wrapping a periodic frame (molecules split differently) changes no molecular value."""
    q, alpha = params(box)
    ref = rs.response(rs.FrameGeometry.from_frame(box), q, alpha)
    shifted = Frame(box.symbols, (box.positions + np.array([6.1, 3.3, -2.2])) % 12.5, cell=box.cell, pbc=True)
    geometry = rs.FrameGeometry.from_frame(shifted)
    out = rs.response(geometry, q, alpha)
    np.testing.assert_allclose(out.molecular_dipoles, ref.molecular_dipoles, atol=1e-11)
    np.testing.assert_allclose(out.polarizability, ref.polarizability, atol=1e-11)
    np.testing.assert_allclose(out.molecular_polarizabilities, ref.molecular_polarizabilities, atol=1e-11)
    water_mols = [m for m in range(geometry.n_molecules) if np.sum(geometry.membership[m]) == 3]
    np.testing.assert_allclose(out.molecular_dipoles[water_mols].sum(0),
                               ref.molecular_dipoles[water_mols].sum(0), atol=1e-11)
    span = np.ptp(geometry.relative_positions[geometry.molecule_index == water_mols[0]], axis=0)
    assert np.all(span < 2.0)


def test_invalid_input_raises():
    frame, a = pair(3.0, 1.0, box=11.0)
    with pytest.raises(InputError, match="half the cell width"):
        rs.FrameGeometry.from_frame(frame)
    with pytest.raises(ConfigError):
        rs.FrameGeometry.from_frame(pair(3.0, 1.0, box=20.0)[0], cutoff=6.0, switch_on=6.5)
    geometry = rs.FrameGeometry.from_frame(pair(3.0, 1.0)[0])
    with pytest.raises(InputError, match="wrong shape"):
        rs.frame_polarizability(geometry, np.ones(3))
    with pytest.raises(InputError, match="negative"):
        rs.frame_polarizability(geometry, np.array([1.0, -0.1]))
    with pytest.raises(InputError, match="non-finite|NaN"):
        rs.frame_dipole(geometry, np.array([np.nan, 0.0]), np.ones(2))
    # undamped (a → ∞) pair closer than (2α)^(1/3): polarization catastrophe
    close, a2 = pair(1.0, 1.0)
    with pytest.raises(InputError, match="catastrophe"):
        rs.frame_polarizability(rs.FrameGeometry.from_frame(close), a2, a=1e6)
    with pytest.raises(InputError, match="coincide"):
        rs.FrameGeometry.from_frame(Frame(["Cl", "Cl"], np.zeros((2, 3))))


# --- water sanity --------------------------------------------------------------------------------------

def test_water_monomer_reproduces_amoeba_tensor():
    """AMOEBA water (α_O 0.837, α_H 0.496 Å³, a 0.39, HOH 108.5°): published molecular polarizability
    1.672, 1.225, 1.328 Å³ (Ren & Ponder, J. Phys. Chem. B 107, 5933 (2003), Table 3)."""
    frame = Frame(["O", "H", "H"], water(np.zeros(3), np.eye(3), angle=108.5))
    pol = rs.frame_polarizability(rs.FrameGeometry.from_frame(frame), params(frame)[1])
    np.testing.assert_allclose(np.diag(pol), [1.672, 1.225, 1.328], atol=2e-3)
    np.testing.assert_allclose(pol - np.diag(np.diag(pol)), 0.0, atol=1e-13)  # principal axes x, y, z


def test_water_dimer_sanity():
    """Isotropic atomic α give an anisotropic molecular α with a mean near 1.4 Å³ (experiment 1.47)."""
    donor = water(np.zeros(3), np.eye(3))
    # acceptor O on the donor's first O-H bond axis, 2.9 Å from the donor O
    oh = donor[1] / np.linalg.norm(donor[1])
    acceptor = water(2.9 * oh, random_rotation(np.random.default_rng(3)))
    frame = Frame(["O", "H", "H"] * 2, np.vstack([donor, acceptor]))
    geometry = rs.FrameGeometry.from_frame(frame)
    q, alpha = params(frame)
    out = rs.response(geometry, q, alpha)
    monomer = rs.frame_polarizability(rs.FrameGeometry.from_frame(Frame(["O", "H", "H"], donor)), alpha[:3])
    eig = np.linalg.eigvalsh(monomer)
    assert 1.3 < eig.mean() < 1.6 and eig[-1] - eig[0] > 0.3
    mean_mol = np.trace(out.molecular_polarizabilities, axis1=1, axis2=2) / 3
    assert np.all(np.abs(mean_mol - eig.mean()) < 0.15)  # the neighbour perturbs, it does not dominate
    assert np.all(np.linalg.norm(out.molecular_dipoles, axis=1) > 0.45)  # ≥ 2.2 D with TIP3P charges
    np.testing.assert_allclose(out.molecular_dipoles.sum(axis=0), out.dipole, atol=1e-12)


# --- TensorFlow twin ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tf_mod():
    pytest.importorskip("tensorflow")
    from polarff import response_tf
    return response_tf


@pytest.mark.parametrize("system", ["cluster", "box"])
def test_tensorflow_matches_numpy(system, request, tf_mod):
    import tensorflow as tf

    frame = request.getfixturevalue(system)
    geometry = rs.FrameGeometry.from_frame(frame)
    q, alpha = params(frame)
    field = np.array([0.003, -0.001, 0.002])
    ref = rs.response(geometry, q, alpha, field)
    out = tf_mod.response(tf_mod.to_tensors(geometry), tf.constant(q), tf.constant(alpha), tf.constant(field))
    for name in ("induced_dipoles", "dipole", "molecular_dipoles", "atomic_polarizabilities",
                 "polarizability", "molecular_polarizabilities"):
        np.testing.assert_allclose(out[name].numpy(), getattr(ref, name), rtol=0, atol=1e-10, err_msg=name)
    np.testing.assert_allclose(tf_mod.frame_polarizability(geometry, tf.constant(alpha)).numpy(),
                               ref.polarizability, atol=1e-10)
    np.testing.assert_allclose(tf_mod.dipole_tensor(geometry, tf.constant(alpha)).numpy(),
                               rs.dipole_tensor(geometry, alpha), atol=1e-12)
    per_atom = np.where(np.array([s == "Cl" for s in frame.symbols]), 0.1, 0.3)
    ref = rs.response(geometry, q, alpha, field, a=per_atom)
    out = tf_mod.response(tf_mod.to_tensors(geometry), tf.constant(q), tf.constant(alpha), tf.constant(field),
                          a=per_atom)
    for name in ("induced_dipoles", "polarizability", "molecular_polarizabilities"):
        np.testing.assert_allclose(out[name].numpy(), getattr(ref, name), rtol=0, atol=1e-10, err_msg=name)


def test_tensorflow_gradient_matches_finite_difference(box, tf_mod):
    import tensorflow as tf

    geometry = rs.FrameGeometry.from_frame(box)
    tensors = tf_mod.to_tensors(geometry)
    q, alpha = params(box)
    rng = np.random.default_rng(5)
    w_pol, w_mu, w_mol = rng.normal(size=(3, 3)), rng.normal(size=3), rng.normal(size=(geometry.n_molecules, 3))

    def loss_np(q_, alpha_):
        out = rs.response(geometry, q_, alpha_)
        return np.sum(w_pol * out.polarizability) + w_mu @ out.dipole + np.sum(w_mol * out.molecular_dipoles)

    @tf.function
    def loss_and_grad(g, q_, alpha_):
        with tf.GradientTape() as tape:
            tape.watch([q_, alpha_])
            out = tf_mod.response(g, q_, alpha_)
            loss = (tf.reduce_sum(w_pol * out["polarizability"]) + tf.reduce_sum(w_mu * out["dipole"])
                    + tf.reduce_sum(w_mol * out["molecular_dipoles"]))
        return loss, tape.gradient(loss, [q_, alpha_])

    loss, (grad_q, grad_alpha) = loss_and_grad(tensors, tf.constant(q), tf.constant(alpha))
    assert loss.numpy() == pytest.approx(loss_np(q, alpha), abs=1e-10)
    h = 1e-5
    for k in rng.choice(len(alpha), 5, replace=False):
        step = h * np.eye(len(alpha))[k]
        fd_alpha = (loss_np(q, alpha + step) - loss_np(q, alpha - step)) / (2 * h)
        fd_q = (loss_np(q + step, alpha) - loss_np(q - step, alpha)) / (2 * h)
        assert grad_alpha.numpy()[k] == pytest.approx(fd_alpha, rel=1e-6, abs=1e-8)
        assert grad_q.numpy()[k] == pytest.approx(fd_q, rel=1e-6, abs=1e-8)
    assert np.all(np.isfinite(grad_alpha.numpy())) and np.abs(grad_alpha.numpy()).max() > 1e-3


def test_tensorflow_gradient_is_finite_for_point_charges(cluster, tf_mod):
    import tensorflow as tf

    geometry = rs.FrameGeometry.from_frame(cluster)
    q, alpha = params(cluster)
    alpha_t = tf.constant(np.where(np.array(cluster.symbols) == "Na", 0.0, alpha))
    with tf.GradientTape() as tape:
        tape.watch(alpha_t)
        loss = tf.reduce_sum(tf_mod.response(geometry, tf.constant(q), alpha_t)["dipole"] ** 2)
    assert np.all(np.isfinite(tape.gradient(loss, alpha_t).numpy()))
