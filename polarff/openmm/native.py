"""Native mode: polarff charges and polarizabilities pushed into OpenMM's own polarizable forces.

``create_native_system(model, topology, positions_nm)`` builds the fixed terms of
``forcefields/polarff_fixed_terms.xml`` (Lennard-Jones, rigid water) plus one of OpenMM's native
polarizable forces, parametrised with the model's charges and polarizabilities at ``positions_nm``:

``mode="amoeba"`` (default; the closest to polarff's own physics)
    An ``AmoebaMultipoleForce`` with a charge only on every atom (permanent dipoles and quadrupoles 0),
    ``polarity = alpha``, ``thole = a`` (0.39, or the model's per-species value) and
    ``dampingFactor = alpha**(1/6)``, so that the Thole damping ``1 - exp(-a u^3)``,
    ``u = r/(alpha_i alpha_j)^(1/6)``, ``a = min(a_i, a_j)`` is the one of
    :mod:`polarff.runtime.electrostatics`, and mutual polarization. Covalent maps: bonded partners
    are ``Covalent12``, all other atoms of the same residue ``Covalent13`` (OpenMM scales both the
    permanent charge-charge interaction (mScale) and the permanent field (pScale) of those pairs by 0)
    and the whole residue is one polarization group (``PolarizationCovalent11``, dScale 0), while
    the dipole-dipole coupling (uScale) stays 1 for every pair. That is polarff's rule: no permanent
    interaction inside a molecule, induced dipoles coupled everywhere. Periodic topologies use
    OpenMM's AMOEBA PME (which, unlike polarff, also sums the induced dipoles by Ewald: polarff sums the
    charges' polarising field by Ewald but truncates the dipole–dipole coupling smoothly at
    ``induction_cutoff_nm``); non-periodic ones ``NoCutoff``, where
    the energy and forces equal polarff's (``tests/test_openmm_native.py`` checks 1e-6 relative).

``mode="drude"``
    A ``DrudeForce``: every polarizable heavy atom and ion gets a Drude particle of fixed charge ``q_D``
    (``drude_charge``, e) and mass ``drude_mass`` (taken from its parent); the spring constant follows
    from ``alpha = q_D^2 / (4 pi eps0 k)`` and the parent carries ``q - q_D`` in the NonbondedForce.
    Hydrogen polarizabilities are added to the heavy atom they are bonded to (``drude_hydrogens``).
    Inside a molecule all charge-charge pairs (atoms and Drudes) are excluded and the Drude dipoles
    are coupled by Thole-screened ``DrudeForce`` pairs (CHARMM screening function with ``thole``);
    between molecules, charges and Drudes interact undamped through PME (unlike AMOEBA and polarff,
    which damp all pairs). Integrate liquids with ``openmm.DrudeLangevinIntegrator`` (extended
    Lagrangian, cold Drudes, 0.02 nm hard wall), see :func:`drude_integrator`. The
    ``openmm.DrudeSCFIntegrator`` (Drude positions minimised every step: the analogue of mutual
    induction) is exact for clusters and distant ions but diverges in liquid water with these
    parameters: without intermolecular damping, a Drude particle can collapse onto a bare
    neighbouring hydrogen (measured: NaN within 10 steps for 32 waters + NaCl, q_D = -1 and -1.7 e). The returned topology and
    positions include the Drude particles (appended after the atoms, one residue ``DRD`` each in an
    extra chain, element None, starting on their parents).

The parameters are those of a fixed-charge polarizable force field between updates. The
:class:`NativeParameterUpdater` re-evaluates the model every ``update_interval`` steps and calls
``updateParametersInContext``. **Native mode is not conservative**: the forces are
``-dE/dr`` at fixed charges and polarizabilities, so the term ``-sum_i dE/dq_i dq_i/dr (+ the same for
alpha)`` that the exact TorchForce/PythonForce (:func:`polarff.openmm.system.create_system`) obtains by
autograd is missing, and every update changes the Hamiltonian. Use it for thermostatted runs and for
speed; ``docs/native-mode.md`` gives the measured NVE drift.

Units: nm, e, nm^3, kJ/mol (OpenMM's). The model works in Å; conversion happens here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from polarff.artifact import PolarffModel, load_model
from polarff.errors import ConfigError, InputError, ModelError

#: Native force families.
MODES = ("amoeba", "drude")
#: Name given to the native polarizable force (``system.getForces()``).
NATIVE_FORCE_NAME = "polarff-native"
#: Thole damping strength of polarff's electrostatics (AMOEBA's value).
DEFAULT_THOLE = 0.39
#: Fixed Drude charge (e) and Drude mass (dalton) of ``mode="drude"`` (CHARMM Drude conventions).
DEFAULT_DRUDE_CHARGE = -1.0
DEFAULT_DRUDE_MASS = 0.4
#: Polarizabilities below this (nm^3) get no Drude particle (Drude mode) / count as non-polarizable.
MIN_POLARIZABILITY_NM3 = 1.0e-8
ANGSTROM_PER_NM = 10.0
NM3_PER_ANGSTROM3 = 1.0e-3
#: 1/(4 pi eps0) in kJ mol^-1 nm e^-2 (OpenMM's ONE_4PI_EPS0).
ONE_4PI_EPS0 = 138.935456


@dataclass
class NativeSystem:
    """What :func:`create_native_system` returns.

    Attributes
    ----------
    system : openmm.System
        Fixed terms plus the native polarizable force (named :data:`NATIVE_FORCE_NAME`).
    updater : NativeParameterUpdater
        Refreshes charges and polarizabilities every ``update_interval`` steps.
    topology : openmm.app.Topology
        The input topology (AMOEBA) or a copy with the Drude particles added (Drude).
    positions_nm : ndarray, shape (N, 3)
        Positions matching ``topology`` (Drude particles on their parents), nm.
    """

    system: Any
    updater: "NativeParameterUpdater"
    topology: Any
    positions_nm: np.ndarray

    def __iter__(self):
        """Unpack as ``system, updater = create_native_system(...)``."""
        return iter((self.system, self.updater))


class NativeParameterUpdater:
    """Evaluates the model every ``update_interval`` steps and updates the native force in a Context.

    Use it in one of three ways (not two at once, or the force is updated twice):

    * as an OpenMM reporter: ``simulation.reporters.insert(0, updater)`` (first, so that later
      reporters of the same step see the new parameters only from the next step on);
    * as a driver: ``updater.step(simulation_or_context, n_steps)`` runs ``n_steps`` integrator
      steps, updating after every ``update_interval`` steps (and once before the first step);
    * by hand: ``updater.update(context)``.

    Parameters
    ----------
    charge_model : polarff.runtime.network.ChargeModel
        Torch twin of the model for the polarff atoms (Å, e, Å^3).
    force : openmm.Force
        The native force of the System the Context was created from (AmoebaMultipoleForce or
        DrudeForce).
    mode : {'amoeba', 'drude'}
        Which native force ``force`` is.
    update_interval : int
        Steps between updates (>= 1).
    atoms : sequence of int
        System particle index of each polarff atom (the model's atom order).
    periodic : bool
        Whether the system is periodic (box passed to the model).
    nonbonded : openmm.NonbondedForce, optional
        Drude mode: the NonbondedForce that carries the parent and Drude charges.
    drude_particles : sequence of int, optional
        Drude mode: Drude particle index of each polarff atom (-1 for none).
    drude_charge : float, optional
        Drude mode: fixed Drude charge (e).
    drude_hosts : sequence of int, optional
        Drude mode: for each polarff atom, the atom whose Drude particle carries its polarizability
        (itself, or the heavy atom a hydrogen is bonded to).

    Attributes
    ----------
    n_updates : int
        Number of parameter updates done in a Context so far.
    charges_ : ndarray
        Charges (e) of the last evaluation, in model atom order.
    polarizabilities_ : ndarray
        Polarizabilities (nm^3) of the last evaluation.
    """

    def __init__(self, charge_model, force, mode: str, update_interval: int, atoms: Sequence[int],
                 periodic: bool, nonbonded=None, drude_particles: Sequence[int] | None = None,
                 drude_charge: float = DEFAULT_DRUDE_CHARGE, drude_hosts: Sequence[int] | None = None):
        _check_mode(mode)
        self.update_interval = _check_interval(update_interval)
        self.charge_model = charge_model
        self.force = force
        self.mode = mode
        self.atoms = np.asarray(atoms, dtype=int)
        self.periodic = bool(periodic)
        self.nonbonded = nonbonded
        self.drude_particles = None if drude_particles is None else np.asarray(drude_particles, dtype=int)
        self.drude_charge = float(drude_charge)
        self.drude_hosts = None if drude_hosts is None else np.asarray(drude_hosts, dtype=int)
        self.n_updates = 0
        self.charges_: np.ndarray | None = None
        self.polarizabilities_: np.ndarray | None = None
        self._steps_since_update = 0

    # ------------------------------------------------------------------ model evaluation
    def evaluate(self, positions_nm, box_nm=None) -> tuple[np.ndarray, np.ndarray]:
        """Model charges (e) and polarizabilities (nm^3) of the polarff atoms.

        Parameters
        ----------
        positions_nm : array_like, shape (n_particles, 3)
            Positions of all System particles, nm (unwrapped or wrapped).
        box_nm : array_like, shape (3, 3), optional
            Periodic box vectors as rows, nm (required when periodic).

        Returns
        -------
        charges : ndarray, shape (n_atoms,)
            e; they sum to the system's total charge.
        polarizabilities : ndarray, shape (n_atoms,)
            nm^3.
        """
        import torch

        positions = np.asarray(positions_nm, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != 3 or positions.shape[0] <= self.atoms.max():
            raise InputError("positions do not match the system", field="positions_nm",
                             expected=f"shape (>= {self.atoms.max() + 1}, 3)", found=positions.shape)
        if self.periodic:
            if box_nm is None:
                raise InputError("a periodic system needs box vectors", field="box_nm",
                                 expected="(3, 3) nm", found=None)
            cell = np.asarray(box_nm, dtype=np.float64) * ANGSTROM_PER_NM
        else:
            cell = np.zeros((3, 3))
        with torch.no_grad():
            charges, alpha = self.charge_model(torch.tensor(positions[self.atoms] * ANGSTROM_PER_NM),
                                               torch.tensor(cell), self.periodic)
        return charges.numpy().copy(), alpha.numpy() * NM3_PER_ANGSTROM3

    def set_parameters(self, charges, polarizabilities) -> None:
        """Write charges (e) and polarizabilities (nm^3) into the force objects (not into a Context)."""
        charges = np.asarray(charges, dtype=np.float64)
        polarizabilities = np.asarray(polarizabilities, dtype=np.float64)
        for name, values in (("charges", charges), ("polarizabilities", polarizabilities)):
            if values.shape != self.atoms.shape:
                raise InputError("wrong number of values", field=name, expected=self.atoms.shape,
                                 found=values.shape)
        if np.any(polarizabilities < 0) or not np.all(np.isfinite(polarizabilities)):
            raise InputError("polarizabilities must be finite and >= 0", field="polarizabilities",
                             expected=">= 0 nm^3", found=float(np.min(polarizabilities)))
        if self.mode == "amoeba":
            _set_amoeba_parameters(self.force, self.atoms, charges, polarizabilities)
        else:
            hosted = np.bincount(self.drude_hosts, weights=polarizabilities, minlength=len(self.atoms))
            _set_drude_parameters(self.force, self.nonbonded, self.atoms, self.drude_particles, charges,
                                  hosted, self.drude_charge)
        self.charges_, self.polarizabilities_ = charges, polarizabilities

    def update(self, context, state=None) -> None:
        """Evaluate the model at the Context's positions and push the parameters into it.

        Parameters
        ----------
        context : openmm.Context
            Created from the System that holds this updater's force.
        state : openmm.State, optional
            A State of ``context`` with positions (saves one ``getState`` call).
        """
        from openmm import unit

        if state is None:
            state = context.getState(getPositions=True)
        positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer) if self.periodic else None
        charges, polarizabilities = self.evaluate(positions, box)
        self.set_parameters(charges, polarizabilities)
        self.force.updateParametersInContext(context)
        if self.nonbonded is not None:
            self.nonbonded.updateParametersInContext(context)
        self.n_updates += 1
        self._steps_since_update = 0

    # ------------------------------------------------------------------ driving a run
    def step(self, target, n_steps: int) -> None:
        """Run ``n_steps`` steps, updating after every ``update_interval`` steps.

        Parameters
        ----------
        target : openmm.app.Simulation or openmm.Context
            A Simulation (its reporters run as usual) or a bare Context (its integrator steps).
        n_steps : int
            Number of integrator steps.

        Notes
        -----
        The step count since the last update carries over between calls. If no update has been done
        yet, the parameters are refreshed at the current positions before the first step.
        """
        context = getattr(target, "context", target)
        advance = target.step if hasattr(target, "context") else context.getIntegrator().step
        if self.n_updates == 0:
            self.update(context)
        remaining = int(n_steps)
        while remaining > 0:
            chunk = min(remaining, self.update_interval - self._steps_since_update)
            advance(chunk)
            remaining -= chunk
            self._steps_since_update += chunk
            if self._steps_since_update >= self.update_interval:
                self.update(context)

    def describeNextReport(self, simulation) -> dict:
        """OpenMM reporter protocol: next report at the next multiple of ``update_interval``."""
        steps = self.update_interval - simulation.currentStep % self.update_interval
        return {"steps": steps, "periodic": False, "include": ["positions"]}

    def report(self, simulation, state) -> None:
        """OpenMM reporter protocol: update the parameters from the reported State."""
        self.update(simulation.context, state)


# ---------------------------------------------------------------------- system construction
def create_native_system(model, topology, positions_nm, *, mode: str = "amoeba", update_interval: int = 10,
                         nonbonded_cutoff_nm: float = 0.9, total_charge: float | None = None,
                         thole: float = DEFAULT_THOLE, polarization: str = "mutual",
                         mutual_induced_epsilon: float = 1.0e-5, ewald_error_tolerance: float = 5.0e-4,
                         drude_charge: float = DEFAULT_DRUDE_CHARGE,
                         drude_mass: float = DEFAULT_DRUDE_MASS, drude_hydrogens: bool = False,
                         forcefield_files: Sequence[str] | None = None, rigid_water: bool = True,
                         remove_cm_motion: bool = True) -> NativeSystem:
    """OpenMM System with the model's charges and polarizabilities in a native polarizable force.

    Parameters
    ----------
    model : PolarffModel or path-like
        Trained model (``.pff``).
    topology : openmm.app.Topology
        Residues as in ``forcefields/polarff_fixed_terms.xml``; periodic when it has box vectors.
    positions_nm : array_like, shape (N, 3)
        Positions (nm) at which the initial parameters are evaluated.
    mode : {'amoeba', 'drude'}
        Native force family (see the module docstring).
    update_interval : int
        Steps between parameter updates done by the returned updater.
    nonbonded_cutoff_nm : float
        Cutoff of Lennard-Jones and of the real-space PME sums, nm (below half the box).
    total_charge : float, optional
        Net charge (e); default: the sum of formal ion charges.
    thole : float
        Thole damping strength (AMOEBA ``thole``; Drude screened-pair ``thole``) of species without a
        value of their own in ``model.thole``; a pair uses ``min(a_i, a_j)``.
    polarization : {'mutual', 'direct', 'extrapolated'}
        AMOEBA polarization type.
    mutual_induced_epsilon : float
        AMOEBA mutual-induction convergence target (RMS change of induced dipoles, Debye);
        OpenMM's default is 1e-5.
    ewald_error_tolerance : float
        PME error tolerance (AMOEBA force, and NonbondedForce in Drude mode).
    drude_charge, drude_mass : float
        Drude mode: fixed Drude charge (e) and Drude mass (dalton).
    drude_hydrogens : bool
        Drude mode: give hydrogens their own Drude particles. By default (False) a hydrogen's
        polarizability is added to the heavy atom it is bonded to (as CHARMM Drude water does): bare
        hydrogens without Lennard-Jones radius and with an undamped Drude cause a polarization
        catastrophe in the liquid.
    forcefield_files : list of str, optional
        Fixed-term ForceField XML files (default: the model's, see
        :func:`polarff.openmm.system.model_fixed_terms`; zero charges).
    rigid_water, remove_cm_motion : bool
        As in :func:`polarff.openmm.system.create_system`.

    Returns
    -------
    NativeSystem
        ``system``, ``updater`` (unpacks as ``system, updater = ...``), ``topology``, ``positions_nm``.

    Raises
    ------
    ConfigError
        Unknown mode or polarization type, update_interval < 1, cutoff not below half the box.
    InputError
        Positions that do not match the topology.
    ModelError
        Species unknown to the model, or fixed terms that do not match the topology.
    """
    from polarff.openmm.potential import charge_model_for
    from polarff.openmm.system import (check_species, formal_total_charge, intramolecular_pairs, model_fixed_terms,
                                       topology_symbols)

    _check_mode(mode)
    _check_interval(update_interval)
    if not isinstance(model, PolarffModel):
        model = load_model(model)
    symbols = topology_symbols(topology)
    check_species(model, symbols)
    positions = _check_positions(positions_nm, len(symbols))
    periodic = topology.getPeriodicBoxVectors() is not None
    system = _fixed_term_system(topology, nonbonded_cutoff_nm, periodic,
                                forcefield_files or model_fixed_terms(model), rigid_water, remove_cm_motion)
    q_total = formal_total_charge(symbols) if total_charge is None else float(total_charge)
    charge_model = charge_model_for(model, symbols, q_total, intramolecular_pairs(topology))
    atoms = list(range(len(symbols)))
    if not thole > 0:
        raise ConfigError(f"thole: expected > 0, found {thole!r}")
    thole_per_atom = model.thole_per_atom(symbols, thole)
    if mode == "amoeba":
        force = _amoeba_force(topology, periodic, nonbonded_cutoff_nm, thole_per_atom, polarization,
                              mutual_induced_epsilon, ewald_error_tolerance)
        system.addForce(force)
        updater = NativeParameterUpdater(charge_model, force, mode, update_interval, atoms, periodic)
        out_topology, out_positions = topology, positions
    else:
        nonbonded = _nonbonded_force(system)
        _use_pme(nonbonded, periodic, nonbonded_cutoff_nm, ewald_error_tolerance)
        box = _box_nm(topology) if periodic else None
        _, alpha0 = NativeParameterUpdater(charge_model, None, "amoeba", 1, atoms, periodic).evaluate(
            positions, box)
        hosts = _drude_hosts(topology, drude_hydrogens)
        hosted = np.bincount(hosts, weights=alpha0, minlength=len(atoms))
        force, drude_index = _add_drude_particles(system, nonbonded, topology, hosted > MIN_POLARIZABILITY_NM3,
                                                  drude_mass, thole_per_atom)
        updater = NativeParameterUpdater(charge_model, force, mode, update_interval, atoms, periodic,
                                         nonbonded=nonbonded, drude_particles=drude_index,
                                         drude_charge=drude_charge, drude_hosts=hosts)
        out_topology, out_positions = _topology_with_drudes(topology, positions, drude_index)
    box = _box_nm(topology) if periodic else None
    updater.set_parameters(*updater.evaluate(positions, box))
    return NativeSystem(system, updater, out_topology, out_positions)


def drude_integrator(kind: str, timestep_ps: float, temperature_k: float = 300.0, friction_per_ps: float = 1.0,
                     drude_temperature_k: float = 1.0, drude_friction_per_ps: float = 20.0,
                     scf_tolerance: float = 1.0e-2):
    """An integrator for Drude mode.

    Parameters
    ----------
    kind : {'scf', 'langevin'}
        ``DrudeSCFIntegrator`` (Verlet with the Drude positions minimised every step to
        ``scf_tolerance`` kJ/mol/nm: Born-Oppenheimer, NVE; clusters and dilute systems only, see the
        module docstring) or ``DrudeLangevinIntegrator`` (extended Lagrangian: atoms at
        ``temperature_k``, Drude-parent relative motion at ``drude_temperature_k``; use this for liquids).
    timestep_ps : float
        Step, ps.
    """
    import openmm

    if kind == "scf":
        integrator = openmm.DrudeSCFIntegrator(timestep_ps)
        integrator.setMinimizationErrorTolerance(scf_tolerance)
        return integrator
    if kind == "langevin":
        return openmm.DrudeLangevinIntegrator(temperature_k, friction_per_ps, drude_temperature_k,
                                              drude_friction_per_ps, timestep_ps)
    raise ConfigError(f"drude integrator: expected 'scf' or 'langevin', found {kind!r}")


def find_native_force(system):
    """The native polarff force of a System (by name), or None."""
    for force in system.getForces():
        if force.getName() == NATIVE_FORCE_NAME:
            return force
    return None


# ---------------------------------------------------------------------- energy-drift helpers
def nve_energy_trace(target, n_steps: int, sample_every: int, updater: NativeParameterUpdater | None = None
                     ) -> dict[str, np.ndarray]:
    """Run ``n_steps`` and record potential, kinetic and total energy every ``sample_every`` steps.

    Parameters
    ----------
    target : openmm.Context or openmm.app.Simulation
        Context whose integrator is energy-conserving (Verlet) for an NVE test.
    n_steps, sample_every : int
        Run length and sampling period (steps); ``n_steps`` is rounded down to a multiple.
    updater : NativeParameterUpdater, optional
        Native-mode updater that drives the run (updates every ``updater.update_interval`` steps).

    Returns
    -------
    dict
        ``time_ps``, ``potential``, ``kinetic``, ``total`` (kJ/mol), sampled at step 0 and every
        ``sample_every`` steps. In native mode the potential is the one with the current parameters.
    """
    from openmm import unit

    context = getattr(target, "context", target)
    integrator = context.getIntegrator()
    if updater is not None and updater.n_updates == 0:
        updater.update(context)
    rows = []
    for k in range(int(n_steps) // int(sample_every) + 1):
        if k > 0:
            if updater is None:
                integrator.step(sample_every)
            else:
                updater.step(context, sample_every)
        state = context.getState(getEnergy=True)
        rows.append((state.getTime().value_in_unit(unit.picosecond),
                     state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
                     state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)))
    data = np.array(rows)
    return {"time_ps": data[:, 0], "potential": data[:, 1], "kinetic": data[:, 2],
            "total": data[:, 1] + data[:, 2]}


def energy_drift(time_ps, total_energy, n_atoms: int) -> dict[str, float]:
    """Drift of a total-energy trace: least-squares slope and spread.

    Parameters
    ----------
    time_ps, total_energy : array_like
        Times (ps) and total energies (kJ/mol).
    n_atoms : int
        Number of atoms (for the per-atom rate).

    Returns
    -------
    dict
        ``slope_kj_mol_ps`` (kJ/mol/ps), ``slope_kj_mol_ns_atom`` (kJ/mol/ns per atom),
        ``max_deviation_kj_mol`` (largest |E(t) - E(0)|) and ``rms_residual_kj_mol`` (RMS about the fit).
    """
    t = np.asarray(time_ps, dtype=float)
    e = np.asarray(total_energy, dtype=float)
    slope, intercept = np.polyfit(t, e, 1)
    return {"slope_kj_mol_ps": float(slope),
            "slope_kj_mol_ns_atom": float(slope * 1000.0 / n_atoms),
            "max_deviation_kj_mol": float(np.max(np.abs(e - e[0]))),
            "rms_residual_kj_mol": float(np.sqrt(np.mean((e - (slope * t + intercept)) ** 2)))}


# ---------------------------------------------------------------------- internals
def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"native mode: expected one of {MODES}, found {mode!r}")


def _check_interval(update_interval) -> int:
    if int(update_interval) != update_interval or update_interval < 1:
        raise ConfigError(f"update_interval: expected an integer >= 1 (steps), found {update_interval!r}")
    return int(update_interval)


def _check_positions(positions_nm, n_atoms: int) -> np.ndarray:
    from openmm import unit

    if unit.is_quantity(positions_nm):
        positions_nm = positions_nm.value_in_unit(unit.nanometer)
    positions = np.asarray(positions_nm, dtype=np.float64)
    if positions.shape != (n_atoms, 3) or not np.all(np.isfinite(positions)):
        raise InputError("positions must be finite and match the topology", field="positions_nm",
                         expected=f"finite array of shape ({n_atoms}, 3) in nm", found=positions.shape)
    return positions


def _box_nm(topology) -> np.ndarray:
    from openmm import unit

    return np.array(topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer))


def _fixed_term_system(topology, cutoff_nm: float, periodic: bool, forcefield_files, rigid_water: bool,
                       remove_cm_motion: bool):
    """The zero-charge fixed terms exactly as :func:`polarff.openmm.system.create_system` builds them
    (water geometry, Lennard-Jones switched over the last 10 % of the cutoff)."""
    from polarff.openmm.system import fixed_terms_system

    if periodic:
        box = _box_nm(topology)
        half = 0.5 * min(box[0, 0], box[1, 1], box[2, 2])
        if not 0 < cutoff_nm < half:
            raise ConfigError(f"nonbonded_cutoff_nm={cutoff_nm} nm must be positive and below half the box "
                              f"({half:.3f} nm)")
    system = fixed_terms_system(topology, cutoff_nm, forcefield_files, rigid_water, remove_cm_motion)
    _nonbonded_force(system)
    return system


def _nonbonded_force(system):
    import openmm

    for force in system.getForces():
        if isinstance(force, openmm.NonbondedForce):
            return force
    raise ModelError("the fixed-term System has no NonbondedForce (Lennard-Jones terms)")


def _use_pme(nonbonded, periodic: bool, cutoff_nm: float, ewald_error_tolerance: float) -> None:
    import openmm

    nonbonded.setNonbondedMethod(openmm.NonbondedForce.PME if periodic else openmm.NonbondedForce.NoCutoff)
    nonbonded.setCutoffDistance(cutoff_nm)
    nonbonded.setEwaldErrorTolerance(ewald_error_tolerance)


def _residue_members(topology) -> list[list[int]]:
    return [[atom.index for atom in residue.atoms()] for residue in topology.residues()]


def _bonded_partners(topology) -> dict[int, set[int]]:
    partners: dict[int, set[int]] = {}
    for bond in topology.bonds():
        a, b = bond[0].index, bond[1].index
        partners.setdefault(a, set()).add(b)
        partners.setdefault(b, set()).add(a)
    return partners


def _amoeba_force(topology, periodic: bool, cutoff_nm: float, thole: Sequence[float], polarization: str,
                  epsilon: float, ewald_error_tolerance: float):
    """AmoebaMultipoleForce with charge-only multipoles, per-atom ``thole`` (OpenMM pairs them as
    ``min(a_i, a_j)``) and polarff's intramolecular scaling."""
    import openmm

    types = {"mutual": openmm.AmoebaMultipoleForce.Mutual, "direct": openmm.AmoebaMultipoleForce.Direct,
             "extrapolated": openmm.AmoebaMultipoleForce.Extrapolated}
    if polarization not in types:
        raise ConfigError(f"polarization: expected one of {sorted(types)}, found {polarization!r}")
    force = openmm.AmoebaMultipoleForce()
    force.setName(NATIVE_FORCE_NAME)
    force.setNonbondedMethod(openmm.AmoebaMultipoleForce.PME if periodic else openmm.AmoebaMultipoleForce.NoCutoff)
    force.setCutoffDistance(cutoff_nm)
    force.setEwaldErrorTolerance(ewald_error_tolerance)
    force.setPolarizationType(types[polarization])
    force.setMutualInducedTargetEpsilon(epsilon)
    force.setMutualInducedMaxIterations(200)
    for atom in range(topology.getNumAtoms()):
        force.addMultipole(0.0, [0.0] * 3, [0.0] * 9, openmm.AmoebaMultipoleForce.NoAxisType, -1, -1, -1,
                           thole[atom], 0.0, 0.0)
    partners = _bonded_partners(topology)
    for members in _residue_members(topology):
        for atom in members:
            others = [m for m in members if m != atom]
            bonded = sorted(partners.get(atom, set()) & set(others))
            rest = sorted(set(others) - set(bonded))
            force.setCovalentMap(atom, openmm.AmoebaMultipoleForce.Covalent12, bonded)
            force.setCovalentMap(atom, openmm.AmoebaMultipoleForce.Covalent13, rest)
            force.setCovalentMap(atom, openmm.AmoebaMultipoleForce.PolarizationCovalent11, others)
    return force


def _set_amoeba_parameters(force, atoms: np.ndarray, charges: np.ndarray, polarizabilities: np.ndarray) -> None:
    """Charge q, polarity alpha and dampingFactor alpha^(1/6) of each atom (dipoles, thole unchanged)."""
    for atom, q, alpha in zip(atoms.tolist(), charges.tolist(), polarizabilities.tolist()):
        _, dipole, quadrupole, axis, az, ax, ay, thole, _, _ = force.getMultipoleParameters(atom)
        damping = alpha ** (1.0 / 6.0) if alpha > 0 else 0.0
        force.setMultipoleParameters(atom, q, dipole, quadrupole, axis, az, ax, ay, thole, damping, alpha)


def _drude_hosts(topology, drude_hydrogens: bool) -> np.ndarray:
    """Per atom, the atom whose Drude particle carries its polarizability (see ``drude_hydrogens``)."""
    hosts = np.arange(topology.getNumAtoms())
    if drude_hydrogens:
        return hosts
    for bond in topology.bonds():
        a, b = bond[0], bond[1]
        for hydrogen, heavy in ((a, b), (b, a)):
            is_h = hydrogen.element is not None and hydrogen.element.symbol == "H"
            if is_h and heavy.element is not None and heavy.element.symbol != "H":
                hosts[hydrogen.index] = heavy.index
    return hosts


def _add_drude_particles(system, nonbonded, topology, polarizable: np.ndarray, drude_mass: float,
                         thole: Sequence[float]):
    """Add Drude particles (parameters set later) with exclusions and intramolecular screened pairs
    (screening ``min(a_i, a_j)`` of the two parents' per-atom ``thole``).

    Returns the DrudeForce and, per atom, the System index of its Drude particle (-1 for none). Drude
    particles are appended after the atoms, in atom order, and so are their DrudeForce entries.
    """
    import openmm
    from openmm import unit

    force = openmm.DrudeForce()
    force.setName(NATIVE_FORCE_NAME)
    drude_index = np.full(topology.getNumAtoms(), -1, dtype=int)
    entry_of = {}
    for atom in np.flatnonzero(polarizable).tolist():
        mass = system.getParticleMass(atom).value_in_unit(unit.dalton)
        if mass <= drude_mass:
            raise ConfigError(f"atom {atom} (mass {mass} Da) is too light for a Drude particle of "
                              f"{drude_mass} Da")
        system.setParticleMass(atom, mass - drude_mass)
        drude = system.addParticle(drude_mass)
        nonbonded.addParticle(0.0, 1.0, 0.0)
        entry_of[drude] = force.addParticle(drude, atom, -1, -1, -1, 0.0, 1.0e-3, 1.0, 1.0)
        drude_index[atom] = drude
    existing = {tuple(sorted(nonbonded.getExceptionParameters(k)[:2]))
                for k in range(nonbonded.getNumExceptions())}
    for members in _residue_members(topology):
        hosts = [m for m in members if drude_index[m] >= 0]
        drudes = [int(drude_index[m]) for m in hosts]
        sites = members + drudes
        for x in range(len(sites)):
            for y in range(x + 1, len(sites)):
                pair = (min(sites[x], sites[y]), max(sites[x], sites[y]))
                if pair not in existing:
                    nonbonded.addException(pair[0], pair[1], 0.0, 1.0, 0.0)
                    existing.add(pair)
        for x in range(len(drudes)):
            for y in range(x + 1, len(drudes)):
                screening = min(thole[hosts[x]], thole[hosts[y]])
                force.addScreenedPair(entry_of[drudes[x]], entry_of[drudes[y]], screening)
    system.addForce(force)
    return force, drude_index


def _set_drude_parameters(force, nonbonded, atoms: np.ndarray, drude_particles: np.ndarray, charges: np.ndarray,
                          polarizabilities: np.ndarray, drude_charge: float) -> None:
    """Parent charge q - q_D, Drude charge q_D, DrudeForce polarizability alpha (OpenMM derives k)."""
    entry = 0
    for atom, q, alpha in zip(atoms.tolist(), charges.tolist(), polarizabilities.tolist()):
        _, sigma, epsilon = nonbonded.getParticleParameters(atom)
        drude = int(drude_particles[atom])
        if drude < 0:
            nonbonded.setParticleParameters(atom, q, sigma, epsilon)
            continue
        nonbonded.setParticleParameters(atom, q - drude_charge, sigma, epsilon)
        _, d_sigma, d_epsilon = nonbonded.getParticleParameters(drude)
        nonbonded.setParticleParameters(drude, drude_charge, d_sigma, d_epsilon)
        particle, parent, p2, p3, p4, _, _, aniso12, aniso34 = force.getParticleParameters(entry)
        force.setParticleParameters(entry, particle, parent, p2, p3, p4, drude_charge,
                                    max(alpha, MIN_POLARIZABILITY_NM3), aniso12, aniso34)
        entry += 1


def _topology_with_drudes(topology, positions: np.ndarray, drude_index: np.ndarray):
    """Copy of ``topology`` plus one chain of Drude particles (one residue ``DRD`` each, atom name 'D' +
    parent name, element None), in System order, so that ``atom.index`` is the System particle index.

    OpenMM topologies need the atoms of a residue to be contiguous, and the Drude particles come after
    all atoms in the System, so they cannot sit in their parents' residues."""
    from openmm import app

    out = app.Topology()
    out.setPeriodicBoxVectors(topology.getPeriodicBoxVectors())
    new_atoms = {}
    for chain in topology.chains():
        new_chain = out.addChain(chain.id)
        for residue in chain.residues():
            new_residue = out.addResidue(residue.name, new_chain, residue.id, residue.insertionCode)
            for atom in residue.atoms():
                new_atoms[atom.index] = out.addAtom(atom.name, atom.element, new_residue, atom.id)
    for bond in topology.bonds():
        out.addBond(new_atoms[bond[0].index], new_atoms[bond[1].index])
    atoms = list(topology.atoms())
    parents = sorted(np.flatnonzero(drude_index >= 0).tolist(), key=lambda a: drude_index[a])
    if parents:
        drude_chain = out.addChain("D")
        for parent in parents:
            residue = out.addResidue("DRD", drude_chain)
            out.addAtom("D" + atoms[parent].name, None, residue)
    return out, np.concatenate([positions, positions[np.array(parents, dtype=int)].reshape(-1, 3)])
