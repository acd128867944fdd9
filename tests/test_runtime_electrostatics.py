"""Physics tests of the torch electrostatics runtime (polarff.runtime.electrostatics).

Systems are built here: rigid TIP3P-geometry waters with random orientations on a jittered cubic
lattice, plus one Na+ and one Cl-. Units are OpenMM's (nm, e, kJ/mol, nm^3).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from polarff.errors import ConfigError, InputError  # noqa: E402
from polarff.runtime.electrostatics import (  # noqa: E402
    ONE_4PI_EPS0,
    Electrostatics,
    ewald_parameters,
    gather_rows,
)
from polarff.runtime.neighbors import PairList, normalize_exclusions  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Sparse BSR tensor support is in beta")

R_OH = 0.09572  # nm
ANGLE_HOH = np.deg2rad(104.52)
CHARGES = {"O": -0.834, "H": 0.417, "Na": 1.0, "Cl": -1.0}  # e
POLARIZABILITIES = {"O": 0.837e-3, "H": 0.496e-3, "Na": 0.15e-3, "Cl": 3.5e-3}  # nm^3
THOLE_A = 0.39


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    quaternion = rng.normal(size=4)
    a, b, c, d = quaternion / np.linalg.norm(quaternion)
    return np.array([
        [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
        [2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)],
        [2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d]])


def water_nacl_box(n_side: int, spacing: float = 0.31, seed: int = 0):
    """Waters on an n_side^3 lattice (nm), two sites replaced by Na+ and Cl-.

    Returns positions (N, 3) nm, symbols, exclusions (P, 2) and the cubic box (3, 3) nm.
    """
    rng = np.random.default_rng(seed)
    local = np.array([[0.0, 0.0, 0.0], [R_OH, 0.0, 0.0],
                      [R_OH * np.cos(ANGLE_HOH), R_OH * np.sin(ANGLE_HOH), 0.0]])
    grid = np.array([[i, j, k] for i in range(n_side) for j in range(n_side)
                     for k in range(n_side)], dtype=float)
    sites = (grid + 0.5) * spacing + rng.normal(scale=0.02, size=grid.shape)
    ions = {0: "Na", len(sites) // 2 + n_side // 2: "Cl"}
    positions, symbols, exclusions = [], [], []
    for index, centre in enumerate(sites):
        if index in ions:
            positions.append(centre)
            symbols.append(ions[index])
            continue
        oxygen = len(positions)
        positions.extend(centre + local @ _random_rotation(rng).T)
        symbols.extend(["O", "H", "H"])
        exclusions.extend([(oxygen, oxygen + 1), (oxygen, oxygen + 2), (oxygen + 1, oxygen + 2)])
    box = np.eye(3) * n_side * spacing
    return np.array(positions), symbols, np.array(exclusions), box


def _parameters(symbols):
    charges = np.array([CHARGES[s] for s in symbols])
    polarizabilities = np.array([POLARIZABILITIES[s] for s in symbols])
    return charges, polarizabilities


def _t(array) -> "torch.Tensor":
    return torch.tensor(np.asarray(array), dtype=torch.float64)


def _energy_and_forces(module, positions, box, charges, polarizabilities):
    position_tensor = _t(positions).requires_grad_(True)
    energy = module(position_tensor, _t(box), _t(charges), _t(polarizabilities))
    (gradient,) = torch.autograd.grad(energy, position_tensor)
    return energy.item(), -gradient.numpy()


def _openmm_coulomb(positions, charges, exclusions, box, cutoff_nm, tolerance):
    """Energy (kJ/mol) and forces of fixed charges with OpenMM's NonbondedForce (Reference)."""
    import openmm
    from openmm import unit

    system = openmm.System()
    force = openmm.NonbondedForce()
    for charge in charges:
        system.addParticle(1.0)
        force.addParticle(float(charge), 1.0, 0.0)
    for first, second in exclusions:
        force.addException(int(first), int(second), 0.0, 1.0, 0.0)
    if box is None:
        force.setNonbondedMethod(openmm.NonbondedForce.NoCutoff)
    else:
        force.setNonbondedMethod(openmm.NonbondedForce.PME)
        force.setCutoffDistance(cutoff_nm)
        force.setEwaldErrorTolerance(tolerance)
        system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) for row in box])
    force.setUseDispersionCorrection(False)
    system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    state = context.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    return energy, np.asarray(forces)


# ---------------------------------------------------------------- permanent charges vs OpenMM


@pytest.mark.parametrize("method", ["ewald", "pme"])
def test_permanent_energy_matches_openmm_pme(method):
    positions, symbols, exclusions, box = water_nacl_box(3)
    charges, polarizabilities = _parameters(symbols)
    reference_energy, reference_forces = _openmm_coulomb(positions, charges, exclusions, box,
                                                         0.45, 1e-6)
    module = Electrostatics(len(symbols), exclusions, True, 0.45, method=method,
                            ewald_error_tolerance=1e-6, induction=False)
    energy, forces = _energy_and_forces(module, positions, box, charges, polarizabilities)
    assert abs(energy - reference_energy) <= 1e-4 * abs(reference_energy)
    assert np.abs(forces - reference_forces).max() <= 1e-4 * np.abs(reference_forces).max()


def test_permanent_energy_default_accuracy_is_openmm_like():
    positions, symbols, exclusions, box = water_nacl_box(3)
    charges, polarizabilities = _parameters(symbols)
    reference_energy, _ = _openmm_coulomb(positions, charges, exclusions, box, 0.45, 1e-7)
    module = Electrostatics(len(symbols), exclusions, True, 0.45, induction=False)
    energy, _ = _energy_and_forces(module, positions, box, charges, polarizabilities)
    # default tolerance 5e-4: OpenMM itself is 2.3e-4 off at this tolerance on this box
    assert abs(energy - reference_energy) <= 1e-3 * abs(reference_energy)


def test_direct_sum_matches_openmm_nocutoff():
    positions, symbols, exclusions, box = water_nacl_box(3, seed=1)
    charges, polarizabilities = _parameters(symbols)
    reference_energy, reference_forces = _openmm_coulomb(positions, charges, exclusions, None,
                                                         0.0, 0.0)
    module = Electrostatics(len(symbols), exclusions, False, induction=False)
    energy, forces = _energy_and_forces(module, positions, box, charges, polarizabilities)
    # OpenMM 8.6 uses 1/(4 pi eps0) = 138.93545764 (CODATA 2018), 1.2e-8 above ONE_4PI_EPS0
    assert energy == pytest.approx(reference_energy, rel=5e-8)
    assert np.abs(forces - reference_forces).max() <= 5e-8 * np.abs(reference_forces).max()


def test_excluded_pairs_contribute_nothing():
    local = np.array([[0.0, 0.0, 0.0], [R_OH, 0.0, 0.0],
                      [R_OH * np.cos(ANGLE_HOH), R_OH * np.sin(ANGLE_HOH), 0.0]])
    water = local + 1.3
    charges = np.array([CHARGES["O"], CHARGES["H"], CHARGES["H"]])
    polarizabilities = np.array([POLARIZABILITIES["O"], POLARIZABILITIES["H"],
                                 POLARIZABILITIES["H"]])
    pairs = [[0, 1], [0, 2], [1, 2]]
    box = np.eye(3) * 3.0
    isolated = Electrostatics(3, pairs, False, induction=False)
    assert abs(isolated(_t(water), _t(box), _t(charges), _t(polarizabilities)).item()) < 1e-12
    periodic = Electrostatics(3, pairs, True, 0.9, method="ewald", ewald_error_tolerance=1e-6,
                              induction=False)
    # only the interaction with the periodic images is left: a few hundredths of a kJ/mol,
    # against about -850 kJ/mol of intramolecular Coulomb energy if the pairs were not excluded
    image_energy = periodic(_t(water), _t(box), _t(charges), _t(polarizabilities)).item()
    assert abs(image_energy) < 0.1
    unexcluded = Electrostatics(3, None, False, induction=False)
    assert unexcluded(_t(water), _t(box), _t(charges), _t(polarizabilities)).item() < -500.0


# ------------------------------------------------------------------------ induction


def _thole_lambdas(distance, alpha_i, alpha_j):
    au3 = THOLE_A * distance ** 3 / np.sqrt(alpha_i * alpha_j)
    decay = np.exp(-au3)
    return 1.0 - decay, 1.0 - (1.0 + au3) * decay


def _dense_induction(positions, charges, polarizabilities, exclusions):
    """Numpy reference: solve (A^-1 - T) mu = E for an isolated cluster without switching."""
    n_atoms = len(positions)
    excluded = np.zeros((n_atoms, n_atoms), dtype=bool)
    excluded[exclusions[:, 0], exclusions[:, 1]] = True
    excluded[exclusions[:, 1], exclusions[:, 0]] = True
    field = np.zeros((n_atoms, 3))
    coupling = np.zeros((3 * n_atoms, 3 * n_atoms))
    for i in range(n_atoms):
        for j in range(n_atoms):
            if i == j:
                continue
            separation = positions[i] - positions[j]
            distance = np.linalg.norm(separation)
            lambda3, lambda5 = _thole_lambdas(distance, polarizabilities[i], polarizabilities[j])
            if not excluded[i, j]:
                field[i] += charges[j] * lambda3 * separation / distance ** 3
            block = (3 * lambda5 * np.outer(separation, separation) / distance ** 5
                     - lambda3 * np.eye(3) / distance ** 3)
            coupling[3 * i:3 * i + 3, 3 * j:3 * j + 3] = block
    matrix = np.diag(np.repeat(1.0 / polarizabilities, 3)) - coupling
    dipoles = np.linalg.solve(matrix, field.reshape(-1)).reshape(n_atoms, 3)
    energy = -0.5 * ONE_4PI_EPS0 * np.sum(dipoles * field)
    return dipoles, energy


@pytest.mark.parametrize("box_size", [3, 4])
def test_full_polarizing_field_is_the_ewald_field_of_the_permanent_charges(box_size):
    """Undamped (huge Thole a), the field that polarises atom i is -dU_perm/dr_i / (k q_i), U_perm the
    Ewald energy checked against OpenMM's PME above; it does not depend on the cutoff, while the switched
    field of earlier versions changes with it."""
    positions, symbols, exclusions, box = water_nacl_box(box_size, seed=5)
    charges, polarizabilities = _parameters(symbols)
    half_edge = 0.5 * box[0, 0]
    fields = []
    for cutoff in (0.4, half_edge - 0.01):
        module = Electrostatics(len(symbols), exclusions, True, cutoff, method="ewald", ewald_error_tolerance=1e-7,
                                thole_a=1.0e6, induction_cutoff_nm=cutoff)
        position_tensor = _t(positions).requires_grad_(True)
        permanent = module.energy_components(position_tensor, _t(box), _t(charges), _t(polarizabilities))["permanent"]
        (gradient,) = torch.autograd.grad(permanent, position_tensor)
        expected = -gradient.numpy() / (ONE_4PI_EPS0 * charges[:, None])
        field = module.permanent_field(_t(positions), _t(box), _t(charges), _t(polarizabilities)).numpy()
        assert np.abs(field - expected).max() <= 1e-6 * np.abs(expected).max()  # measured 7e-8 to 1.4e-7
        fields.append(field)
        switched = Electrostatics(len(symbols), exclusions, True, cutoff, method="ewald", thole_a=1.0e6,
                                  induction_cutoff_nm=cutoff, induction_field="switched")
        fields.append(switched.permanent_field(_t(positions), _t(box), _t(charges), _t(polarizabilities)).numpy())
    full_short, switched_short, full_long, switched_long = fields
    assert np.abs(full_short - full_long).max() <= 2e-5 * np.abs(full_long).max()
    assert np.abs(switched_short - switched_long).max() >= 0.05 * np.abs(full_long).max()


def test_isolated_ion_atom_pair_matches_analytic_mutual_induction():
    distance = 0.25
    positions = np.array([[0.0, 0.0, 0.0], [distance, 0.0, 0.0]])
    charges = np.array([1.0, 0.0])
    polarizabilities = np.array([0.15e-3, 1.2e-3])
    module = Electrostatics(2, None, False, induction_cutoff_nm=3.0,
                            induction_switch_width_nm=0.5, n_induction_iterations=2)
    args = (_t(positions), _t(np.eye(3)), _t(charges), _t(polarizabilities))
    dipoles = module.induced_dipoles(*args).numpy()
    # along the axis: mu1 = a1 t mu2, mu2 = a2 (E2 + t mu1), t = (3 lambda5 - lambda3) / r^3
    lambda3, lambda5 = _thole_lambdas(distance, *polarizabilities)
    field = lambda3 / distance ** 2
    coupling = (3 * lambda5 - lambda3) / distance ** 3
    second = polarizabilities[1] * field / (1 - np.prod(polarizabilities) * coupling ** 2)
    first = polarizabilities[0] * coupling * second
    assert dipoles[1, 0] == pytest.approx(second, rel=1e-12)
    assert dipoles[0, 0] == pytest.approx(first, rel=1e-12)
    assert np.abs(dipoles[:, 1:]).max() < 1e-15
    energy = module.energy_components(*args)["induction"].item()
    assert energy == pytest.approx(-0.5 * ONE_4PI_EPS0 * second * field, rel=1e-12)


def test_induced_dipoles_match_dense_solve():
    positions, symbols, exclusions, _ = water_nacl_box(2, seed=5)
    charges, polarizabilities = _parameters(symbols)
    n_atoms = len(symbols)
    reference_dipoles, reference_energy = _dense_induction(positions, charges, polarizabilities,
                                                           exclusions)
    args = (_t(positions), _t(np.eye(3)), _t(charges), _t(polarizabilities))
    # cutoff far beyond the cluster: no switching, so the dense reference is exact
    converged = Electrostatics(n_atoms, exclusions, False, induction_cutoff_nm=5.0,
                               induction_switch_width_nm=1.0, n_induction_iterations=3 * n_atoms)
    dipoles = converged.induced_dipoles(*args).numpy()
    scale = np.abs(reference_dipoles).max()
    assert np.abs(dipoles - reference_dipoles).max() <= 1e-9 * scale
    assert converged.induction_residual(*args).item() < 1e-10
    induction = converged.energy_components(*args)["induction"].item()
    assert induction == pytest.approx(reference_energy, rel=1e-10)
    # the default 8 iterations: residual below 1e-3, energy error second order in it
    default = Electrostatics(n_atoms, exclusions, False, induction_cutoff_nm=5.0,
                             induction_switch_width_nm=1.0)
    residual = default.induction_residual(*args).item()
    assert residual < 1e-3
    assert np.abs(default.induced_dipoles(*args).numpy() - reference_dipoles).max() < 1e-2 * scale
    assert default.energy_components(*args)["induction"].item() == pytest.approx(
        reference_energy, rel=1e-5)
    residuals = [Electrostatics(n_atoms, exclusions, False, induction_cutoff_nm=5.0,
                                induction_switch_width_nm=1.0,
                                n_induction_iterations=k).induction_residual(*args).item()
                 for k in (2, 4, 8)]
    assert residuals[0] > residuals[1] > residuals[2]


def test_per_atom_thole_matches_numpy_response_and_forces():
    """Per-atom Thole strengths (pairs: min(a_i, a_j)) give the numpy reference's induced dipoles
    (polarff.response, in Å) and forces equal to -dE/dr by finite differences."""
    from polarff.data import Frame
    from polarff.response import FrameGeometry, induced_dipoles

    positions, symbols, exclusions, _ = water_nacl_box(2, seed=5)
    charges, polarizabilities = _parameters(symbols)
    thole = [0.05 if s == "Cl" else 0.2 if s == "Na" else 0.39 for s in symbols]
    n_atoms = len(symbols)
    frame = Frame(symbols, positions * 10.0)
    geometry = FrameGeometry.from_frame(frame)
    same_molecule = geometry.molecule_index[:, None] == geometry.molecule_index[None, :]
    assert {tuple(p) for p in exclusions.tolist()} == {(i, j) for i, j in zip(*np.nonzero(np.triu(same_molecule, 1)))}
    reference = induced_dipoles(geometry, charges, polarizabilities * 1e3, a=np.array(thole)) / 10.0  # e·nm
    args = (_t(positions), _t(np.eye(3)), _t(charges), _t(polarizabilities))
    module = Electrostatics(n_atoms, exclusions, False, induction_cutoff_nm=5.0, induction_switch_width_nm=1.0,
                            n_induction_iterations=3 * n_atoms, thole_per_atom=thole)
    dipoles = module.induced_dipoles(*args).numpy()
    assert np.abs(dipoles - reference).max() <= 1e-9 * np.abs(reference).max()
    default = Electrostatics(n_atoms, exclusions, False, induction_cutoff_nm=5.0, induction_switch_width_nm=1.0,
                             n_induction_iterations=3 * n_atoms).induced_dipoles(*args).numpy()
    assert np.abs(default - reference).max() > 1e-3 * np.abs(reference).max()  # the values matter
    energy, forces = _energy_and_forces(module, positions, np.eye(3), charges, polarizabilities)
    step, atom = 1e-6, symbols.index("Cl")
    for axis in range(3):
        shifted = [positions.copy(), positions.copy()]
        shifted[0][atom, axis] += step
        shifted[1][atom, axis] -= step
        plus, minus = (_energy_and_forces(module, x, np.eye(3), charges, polarizabilities)[0] for x in shifted)
        assert forces[atom, axis] == pytest.approx(-(plus - minus) / (2 * step), rel=1e-6, abs=1e-6)
    with pytest.raises(ConfigError, match="thole_per_atom"):
        Electrostatics(n_atoms, exclusions, False, thole_per_atom=thole[:-1])
    with pytest.raises(ConfigError, match="thole_per_atom"):
        Electrostatics(n_atoms, exclusions, False, thole_per_atom=[0.0] * n_atoms)


def _dense_fixed_iteration_energy(positions, charges, polarizabilities, exclusions, cutoff,
                                  switch_width, iterations, field_mode="full"):
    """Reference in torch: dense operator and autograd straight through the CG iterations; the charges'
    field over all pairs (``full``) or switched off at the cutoff like the dipole coupling (``switched``)."""
    from polarff.runtime.electrostatics import smooth_switch, thole_damping

    n_atoms = positions.shape[0]
    vectors = positions[None, :, :] - positions[:, None, :]  # r_j - r_i at [i, j]
    eye = torch.eye(n_atoms, dtype=torch.bool)
    distances = torch.where(eye, torch.ones(n_atoms, n_atoms, dtype=positions.dtype),
                            vectors.norm(dim=-1))
    switch = smooth_switch(distances, cutoff - switch_width, cutoff) * (~eye)
    lambda3, lambda5 = thole_damping(distances, polarizabilities[:, None],
                                     polarizabilities[None, :], THOLE_A)
    coef3 = switch * lambda3 / distances ** 3
    coef5 = 3 * switch * lambda5 / distances ** 5
    excluded = torch.zeros(n_atoms, n_atoms, dtype=torch.bool)
    excluded[exclusions[:, 0], exclusions[:, 1]] = True
    excluded[exclusions[:, 1], exclusions[:, 0]] = True
    field_coef = coef3 if field_mode == "switched" else lambda3 / distances ** 3 * (~eye)
    field = (-(charges[None, :] * field_coef * (~excluded))[..., None] * vectors).sum(1)
    blocks = (coef5[..., None, None] * vectors[..., :, None] * vectors[..., None, :]
              - coef3[..., None, None] * torch.eye(3, dtype=positions.dtype))
    coupling = blocks.permute(0, 2, 1, 3).reshape(3 * n_atoms, 3 * n_atoms)
    scale = polarizabilities.sqrt().repeat_interleave(3)
    operator = torch.eye(3 * n_atoms, dtype=positions.dtype) - scale[:, None] * coupling * scale
    rhs = scale * field.reshape(-1)
    solution = torch.zeros_like(rhs)
    residual, direction = rhs, rhs
    norm2 = residual @ residual
    for _ in range(iterations):
        product = operator @ direction
        step = norm2 / (direction @ product)
        solution = solution + step * direction
        residual = residual - step * product
        new_norm2 = residual @ residual
        direction = residual + new_norm2 / norm2 * direction
        norm2 = new_norm2
    return ONE_4PI_EPS0 * (0.5 * solution @ (operator @ solution) - rhs @ solution)


@pytest.mark.parametrize("field_mode", ["full", "switched"])
def test_adjoint_gradient_equals_autograd_through_the_iterations(field_mode):
    positions, symbols, exclusions, _ = water_nacl_box(2, seed=7)
    charges, polarizabilities = _parameters(symbols)
    iterations, cutoff, width = 3, 0.5, 0.2  # unconverged on purpose, switch active
    module = Electrostatics(len(symbols), exclusions, False, induction_cutoff_nm=cutoff,
                            induction_switch_width_nm=width, n_induction_iterations=iterations,
                            induction_field=field_mode)
    inputs = [_t(a).requires_grad_(True) for a in (positions, charges, polarizabilities)]
    energy = module.energy_components(inputs[0], _t(np.eye(3)), inputs[1],
                                      inputs[2])["induction"]
    gradients = torch.autograd.grad(energy, inputs)
    reference_inputs = [_t(a).requires_grad_(True) for a in (positions, charges,
                                                              polarizabilities)]
    reference = _dense_fixed_iteration_energy(*reference_inputs, torch.as_tensor(exclusions),
                                              cutoff, width, iterations, field_mode)
    reference_gradients = torch.autograd.grad(reference, reference_inputs)
    assert energy.item() == pytest.approx(reference.item(), rel=1e-12)
    for gradient, expected in zip(gradients, reference_gradients):
        scale = expected.abs().max().item()
        assert (gradient - expected).abs().max().item() <= 1e-9 * scale


class _PositionDependentParameters(torch.nn.Module):
    """Smooth, exactly neutral q(r) and positive alpha(r) around fixed base values."""

    def __init__(self, charges, polarizabilities, length: float):
        super().__init__()
        self.register_buffer("base_charges", torch.as_tensor(charges, dtype=torch.float64))
        self.register_buffer("base_polarizabilities",
                             torch.as_tensor(polarizabilities, dtype=torch.float64))
        self.wavenumber = 2.0 * np.pi / length

    def forward(self, positions: torch.Tensor):
        phase = self.wavenumber * positions
        charges = self.base_charges + 0.05 * torch.sin(phase[:, 0] + 2.0 * phase[:, 1])
        charges = charges - charges.mean()
        polarizabilities = self.base_polarizabilities * (1.0 + 0.2 * torch.cos(phase[:, 2]))
        return charges, polarizabilities


class _PolarizableWater(torch.nn.Module):
    """positions, box -> energy: the shape openmm-torch's TorchForce calls."""

    def __init__(self, electrostatics: Electrostatics, parameters: _PositionDependentParameters):
        super().__init__()
        self.electrostatics = electrostatics
        self.parameters_of = parameters

    def forward(self, positions: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        charges, polarizabilities = self.parameters_of(positions)
        return self.electrostatics(positions, box, charges, polarizabilities)


@pytest.mark.parametrize("periodic", [True, False])
def test_forces_match_finite_differences_with_position_dependent_charges(periodic):
    positions, symbols, exclusions, box = water_nacl_box(3, seed=2)
    charges, polarizabilities = _parameters(symbols)
    # the truncated erfc of the real-space sum must not jump within the finite-difference step:
    # put the cutoff in the middle of the widest gap between pair distances (a step of 1e-5 nm
    # moves a distance by 1e-5 nm at most)
    _, _, _, distances, _ = PairList(len(symbols), 0.46, True, normalize_exclusions(
        exclusions, len(symbols)))(_t(positions), _t(box))
    near = np.sort(distances.numpy()[(distances.numpy() > 0.40) & (distances.numpy() < 0.45)])
    widest = int(np.argmax(np.diff(near)))
    cutoff = float(0.5 * (near[widest] + near[widest + 1]))
    assert near[widest + 1] - near[widest] > 4e-5
    electrostatics = Electrostatics(len(symbols), exclusions, periodic, cutoff, method="ewald",
                                    ewald_error_tolerance=1e-6, induction_cutoff_nm=cutoff,
                                    induction_switch_width_nm=0.15, n_induction_iterations=4)
    model = _PolarizableWater(electrostatics,
                              _PositionDependentParameters(charges, polarizabilities, box[0, 0]))
    position_tensor = _t(positions).requires_grad_(True)
    energy = model(position_tensor, _t(box))
    (gradient,) = torch.autograd.grad(energy, position_tensor)
    rng = np.random.default_rng(11)
    step = 1e-5
    atoms = rng.choice(len(symbols), size=8, replace=False)
    for atom in atoms:
        axis = int(rng.integers(3))
        shifted = positions.copy()
        shifted[atom, axis] += step
        plus = model(_t(shifted), _t(box)).item()
        shifted[atom, axis] -= 2 * step
        minus = model(_t(shifted), _t(box)).item()
        numeric = (plus - minus) / (2 * step)
        assert gradient[atom, axis].item() == pytest.approx(numeric, rel=1e-6, abs=1e-4)


def test_energy_is_invariant_under_translation_and_rotation():
    positions, symbols, exclusions, _ = water_nacl_box(2, seed=4)
    charges, polarizabilities = _parameters(symbols)
    module = Electrostatics(len(symbols), exclusions, False, induction_cutoff_nm=0.5,
                            induction_switch_width_nm=0.2)
    args = (_t(charges), _t(polarizabilities))
    reference = module(_t(positions), _t(np.eye(3)), *args).item()
    rotation = _random_rotation(np.random.default_rng(9))
    moved = (positions - positions.mean(0)) @ rotation.T + np.array([3.1, -2.0, 0.7])
    assert module(_t(moved), _t(np.eye(3)), *args).item() == pytest.approx(reference, rel=1e-11)
    components = module.energy_components(_t(positions), _t(np.eye(3)), *args)
    assert components["induction"].item() < 0.0


# ----------------------------------------------------------------- TorchScript and OpenMM


def test_torchscript_matches_eager_after_save_load_and_freeze(tmp_path):
    positions, symbols, exclusions, box = water_nacl_box(3, seed=6)
    charges, polarizabilities = _parameters(symbols)
    electrostatics = Electrostatics(len(symbols), exclusions, True, 0.45,
                                    induction_cutoff_nm=0.45)
    eager = _PolarizableWater(electrostatics,
                              _PositionDependentParameters(charges, polarizabilities, box[0, 0]))
    scripted = torch.jit.script(eager)
    scripted.save(str(tmp_path / "model.pt"))
    loaded = torch.jit.load(str(tmp_path / "model.pt"))
    # openmm-torch freezes the module; freezing drops detach() and merges common subexpressions
    frozen = torch.jit.freeze(torch.jit.script(eager).eval())
    results = []
    for model in (eager, scripted, loaded, frozen):
        position_tensor = _t(positions).requires_grad_(True)
        energy = model(position_tensor, _t(box))
        (gradient,) = torch.autograd.grad(energy, position_tensor)
        results.append((energy.item(), gradient.numpy()))
    for energy, gradient in results[1:]:
        assert energy == results[0][0]
        assert np.abs(gradient - results[0][1]).max() <= 1e-10 * np.abs(results[0][1]).max()
    scripted_electrostatics = torch.jit.script(electrostatics)
    dipoles = scripted_electrostatics.induced_dipoles(_t(positions), _t(box), _t(charges),
                                                      _t(polarizabilities))
    assert dipoles.shape == (len(symbols), 3)
    assert torch.isfinite(dipoles).all()


def test_openmm_torchforce_matches_direct_call():
    import openmm
    from openmm import unit

    openmmtorch = pytest.importorskip("openmmtorch")  # import torch first: it loads libnvrtc
    positions, symbols, exclusions, box = water_nacl_box(3, seed=8)
    charges, polarizabilities = _parameters(symbols)
    electrostatics = Electrostatics(len(symbols), exclusions, True, 0.45,
                                    induction_cutoff_nm=0.45)
    model = torch.jit.script(_PolarizableWater(
        electrostatics, _PositionDependentParameters(charges, polarizabilities, box[0, 0])))
    force = openmmtorch.TorchForce(model)
    force.setUsesPeriodicBoundaryConditions(True)  # the box is passed as the second input
    system = openmm.System()
    for _ in symbols:
        system.addParticle(1.0)
    system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) for row in box])
    system.addForce(force)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        context = openmm.Context(system, openmm.VerletIntegrator(0.001),
                                 openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(positions)
    state = context.getState(getEnergy=True, getForces=True)
    openmm_energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    openmm_forces = np.asarray(state.getForces(asNumpy=True).value_in_unit(
        unit.kilojoule_per_mole / unit.nanometer))
    position_tensor = _t(positions).requires_grad_(True)
    energy = model(position_tensor, _t(box))
    (gradient,) = torch.autograd.grad(energy, position_tensor)
    assert openmm_energy == pytest.approx(energy.item(), rel=1e-12)
    assert np.abs(openmm_forces + gradient.numpy()).max() <= 1e-9 * np.abs(openmm_forces).max()


# --------------------------------------------------------------------- pair list and input


def test_pair_list_matches_brute_force_minimum_image():
    positions, symbols, exclusions, box = water_nacl_box(3, seed=10)
    canonical = normalize_exclusions(exclusions, len(symbols))
    i, j, vectors, distances, excluded = PairList(len(symbols), 0.4, True, canonical)(
        _t(positions + 5.0 * box[0]), _t(box))  # unwrapped positions are fine
    separations = positions[None, :, :] - positions[:, None, :]
    separations -= np.round(separations / box[0, 0]) * box[0, 0]
    lengths = np.linalg.norm(separations, axis=-1)
    expected = {(a, b) for a in range(len(symbols)) for b in range(a + 1, len(symbols))
                if lengths[a, b] < 0.4}
    found = {(min(a, b), max(a, b)) for a, b in zip(i.tolist(), j.tolist())}
    assert found == expected and len(found) == len(i)
    np.testing.assert_allclose(distances.numpy(), lengths[i.numpy(), j.numpy()], atol=1e-12)
    exclusion_set = {tuple(pair) for pair in canonical.tolist()}
    assert excluded.tolist() == [pair in exclusion_set for pair in
                                 [(min(a, b), max(a, b)) for a, b in zip(i.tolist(), j.tolist())]]


def test_bad_inputs_raise_typed_errors():
    with pytest.raises(InputError) as error:
        Electrostatics(3, [[0, 5]], False)
    assert error.value.field == "exclusions"
    with pytest.raises(InputError):
        Electrostatics(3, [[1, 1]], False)
    with pytest.raises(InputError):
        Electrostatics(3, [[0, 1, 2]], False)
    with pytest.raises(ConfigError, match="method"):
        Electrostatics(3, None, True, method="p3m")
    with pytest.raises(ConfigError, match="induction_switch_width_nm"):
        Electrostatics(3, None, True, induction_cutoff_nm=0.5, induction_switch_width_nm=0.6)
    with pytest.raises(ConfigError, match="n_induction_iterations"):
        Electrostatics(3, None, True, n_induction_iterations=0)
    module = Electrostatics(3, None, True, 0.9, induction_cutoff_nm=0.9)
    positions = _t(np.random.default_rng(0).random((3, 3)))
    with pytest.raises(ValueError, match="half the smallest box width"):
        module(positions, _t(np.eye(3)), _t(np.zeros(3)), _t(np.ones(3) * 1e-3))
    with pytest.raises(ValueError, match="positions must have shape"):
        module(positions[:2], _t(np.eye(3) * 3), _t(np.zeros(3)), _t(np.ones(3) * 1e-3))


def test_ewald_parameters_follow_openmm_convention():
    parameters = ewald_parameters(0.9, 5e-4)
    assert parameters["alpha"] == pytest.approx(np.sqrt(-np.log(1e-3)) / 0.9)
    assert parameters["smearing"] == pytest.approx(1 / (np.sqrt(2) * parameters["alpha"]))


def test_gather_rows_equals_index_select_and_its_gradient():
    generator = torch.Generator().manual_seed(3)
    table = torch.randn(7, 27, dtype=torch.float64, generator=generator, requires_grad=True)
    pairs = torch.randint(0, 7, (50, 2), generator=generator)
    index = pairs[:, 0]  # strided view, as vesin returns it
    weights = torch.randn(50, 27, dtype=torch.float64, generator=generator)
    gathered = gather_rows(table, index)
    expected = table.index_select(0, index)
    assert torch.equal(gathered, expected)
    (grad,) = torch.autograd.grad((gathered * weights).sum(), table)
    (grad_expected,) = torch.autograd.grad((expected * weights).sum(), table)
    assert torch.allclose(grad, grad_expected, rtol=0, atol=1e-14)


def test_keep_freed_memory_sets_glibc_thresholds_and_honours_opt_out(monkeypatch):
    import sys

    from polarff.runtime import allocator

    monkeypatch.setattr(allocator, "_applied", False)
    monkeypatch.setenv("POLARFF_KEEP_FREED_MEMORY", "0")
    assert allocator.keep_freed_memory() is False
    assert allocator._applied is False
    monkeypatch.delenv("POLARFF_KEEP_FREED_MEMORY")
    if not sys.platform.startswith("linux"):
        pytest.skip("mallopt tuning applies to Linux/glibc only")
    assert allocator.keep_freed_memory() is True
    assert allocator._applied is True
