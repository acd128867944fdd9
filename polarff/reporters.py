"""OpenMM reporters that stream polarff observables out of an MD run.

:class:`TrajectoryRecorder` follows the OpenMM reporter protocol (``describeNextReport`` / ``report``) and
asks for **unwrapped** positions (``'periodic': False``, i.e. ``enforcePeriodicBox=False``): positions
are continuous in time, so molecules that start whole stay whole and ions never jump by a box length,
as the mean squared displacement and the Einstein–Helfand conductivity require. At every frame it
records

* positions (nm, unwrapped) and box vectors (nm);
* the per-atom charges (e) and polarizabilities (nm³) the polarff model predicts for that frame
  (:class:`ChargeEvaluator`), or the fixed charges of a classical System;
* induced dipoles (e·nm, summed or per atom) and the polarff energy terms (kJ/mol);
* the total dipole ``M = Σ_i q_i(t) r_i(t) + Σ_i μ_ind,i`` (e·nm) from the unwrapped positions: its
  permanent part is the translational dipole of the Einstein–Helfand conductivity, the whole of it
  is the dipole of the IR spectrum;

and, at its own (usually longer) interval, potential/kinetic/total energy (kJ/mol), instantaneous
temperature (K) and volume (nm³). Rows are buffered in memory; :meth:`TrajectoryRecorder.pop` hands
them over as arrays so the runner (:mod:`polarff.simulate`) can write them atomically with the
checkpoint of the same step.

Units: nm, ps, e, kJ/mol, K (OpenMM's), except where stated.
"""

from __future__ import annotations

import os
import tempfile
from typing import Callable

import numpy as np

from polarff.errors import ModelError

#: Boltzmann constant in kJ/mol/K (OpenMM's MOLAR_GAS_CONSTANT_R).
BOLTZMANN_KJ_MOL_K = 0.00831446261815324

#: Per-frame arrays written by :class:`TrajectoryRecorder` with their units.
FRAME_UNITS = {
    "frame_step": "step", "time": "ps", "positions": "nm (unwrapped)", "box": "nm (row vectors)",
    "charges": "e", "polarizabilities": "nm^3", "induced_dipole": "e nm (sum over atoms)",
    "induced_dipoles": "e nm (per atom)", "permanent_dipole": "e nm (sum q r, unwrapped)",
    "dipole": "e nm (permanent + induced)",
}
#: Per-energy-report arrays with their units.
ENERGY_UNITS = {
    "energy_step": "step", "energy_time": "ps", "potential_energy": "kJ/mol", "kinetic_energy": "kJ/mol",
    "total_energy": "kJ/mol", "temperature": "K", "volume": "nm^3",
    "polarff_permanent_energy": "kJ/mol (charge-charge part of the polarff force)",
    "polarff_induction_energy": "kJ/mol (induction part of the polarff force)",
    "polarff_electronegativity_energy": "kJ/mol (electronegativity term of the polarff force; 0 without one)",
}


def polarff_module(force):
    """The TorchScript potential inside a polarff force (``TorchForce`` or ``PythonForce``).

    Parameters
    ----------
    force : openmm.Force
        The force named ``polarff`` (:func:`polarff.openmm.system.find_polarff_force`).

    Returns
    -------
    torch.jit.ScriptModule
        Module with the exported methods ``charges_and_polarizabilities`` and ``properties``.

    Raises
    ------
    ModelError
        If the force is of an unknown kind or its module lacks those methods.
    """
    import torch  # noqa: F401  (loads libtorch before openmmtorch)

    kind = type(force).__name__
    if kind not in ("TorchForce", "PythonForce"):
        try:  # plugin forces come back from System.getForces() as plain Force objects
            import openmmtorch

            if openmmtorch.TorchForce.isinstance(force):
                force, kind = openmmtorch.TorchForce.cast(force), "TorchForce"
        except ImportError:
            pass
    if kind == "TorchForce":
        module = force.getModule()
    elif kind == "PythonForce":
        import pickle
        import re

        import openmm

        # getPickledFunction() returns an unwrapped std::vector in openmm 8.6; the XML holds it as hex
        match = re.search(r'function="([0-9a-fA-F]*)"', openmm.XmlSerializer.serialize(force))
        if not match or not match.group(1):
            raise ModelError("the polarff PythonForce's computation cannot be pickled; rebuild the System "
                             "with polarff.openmm.system.create_system")
        module = pickle.loads(bytes.fromhex(match.group(1))).module
    else:
        raise ModelError(f"the polarff force is a {kind}; expected a TorchForce or a PythonForce "
                         "(export the System with `polarff export`)")
    if not hasattr(module, "properties"):
        raise ModelError("the polarff force's module has no 'properties' method: it was exported by an "
                         "incompatible polarff version; re-export it with `polarff export`")
    return module


def classical_charges(system) -> np.ndarray:
    """Charges (e) of every particle from the System's NonbondedForce (zeros if there is none)."""
    import openmm
    from openmm import unit

    charges = np.zeros(system.getNumParticles())
    for force in system.getForces():
        if isinstance(force, openmm.NonbondedForce):
            for i in range(force.getNumParticles()):
                charges[i] += force.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge)
    return charges


class ChargeEvaluator:
    """Charges, polarizabilities and induced dipoles of every particle at given positions.

    For a System with a polarff force, the polarff atoms get the charges, polarizabilities and induced
    dipoles that the force's own TorchScript module predicts (``module.properties``), the other
    particles their classical NonbondedForce charges; a purely classical System gives its fixed charges
    and zero polarizabilities and induced dipoles.

    Parameters
    ----------
    system : openmm.System
        The simulated System.
    threads : int, optional
        torch intra-op threads for the evaluation (None: leave torch's setting).
    """

    def __init__(self, system, threads: int | None = None):
        from polarff.openmm.system import find_polarff_force

        self.n_atoms = system.getNumParticles()
        self.fixed_charges = classical_charges(system)
        force = find_polarff_force(system)
        self.module = None if force is None else polarff_module(force)
        self.atoms = None
        if self.module is not None:
            self.atoms = (np.asarray(self.module.atoms.cpu().numpy(), dtype=int)
                          if bool(self.module.use_subset) else np.arange(self.n_atoms))
        if threads is not None and self.module is not None:
            import torch

            torch.set_num_threads(int(threads))

    @property
    def polarizable(self) -> bool:
        """Whether the System has a polarff force (charges depend on the configuration)."""
        return self.module is not None

    def __call__(self, positions_nm: np.ndarray, box_nm: np.ndarray | None, energies: bool = False
                 ) -> dict[str, np.ndarray]:
        """Evaluate at one configuration.

        Parameters
        ----------
        positions_nm : ndarray, shape (N, 3)
            Positions, nm.
        box_nm : ndarray, shape (3, 3) or None
            Box vectors as rows, nm (None for a non-periodic System).
        energies : bool
            Also evaluate the polarff energy terms (``module.properties``: one more induction solve and
            the Ewald sum, about 2.5 times the cost of charges + induced dipoles alone).

        Returns
        -------
        dict
            ``charges`` (N,) e; ``polarizabilities`` (N,) nm³; ``induced_dipoles`` (N, 3) e·nm; with
            ``energies``, ``permanent_energy``, ``induction_energy`` and ``electronegativity_energy``
            (float, kJ/mol; 0 without a polarff force).
        """
        charges = self.fixed_charges.copy()
        alpha = np.zeros(self.n_atoms)
        induced = np.zeros((self.n_atoms, 3))
        out: dict = {"permanent_energy": 0.0, "induction_energy": 0.0, "electronegativity_energy": 0.0} \
            if energies else {}
        if self.module is not None:
            import torch

            pos = torch.tensor(np.asarray(positions_nm, dtype=np.float64))
            box = None if box_nm is None else torch.tensor(np.asarray(box_nm, dtype=np.float64))
            with torch.no_grad():
                if energies:
                    props = self.module.properties(pos, box)
                    q, a, mu = props["charges"], props["polarizabilities"], props["induced_dipoles"]
                    out = {"permanent_energy": float(props["permanent_energy"]),
                           "induction_energy": float(props["induction_energy"]),
                           "electronegativity_energy": float(props["electronegativity_energy"])}
                else:
                    q, a = self.module.charges_and_polarizabilities(pos, box)
                    cell = box if box is not None else torch.zeros((3, 3), dtype=torch.float64)
                    mu = self.module.electrostatics.induced_dipoles(pos[torch.as_tensor(self.atoms)], cell, q, a)
            charges[self.atoms] = q.double().numpy()
            alpha[self.atoms] = a.double().numpy()
            induced[self.atoms] = mu.double().numpy()
        out.update(charges=charges, polarizabilities=alpha, induced_dipoles=induced)
        return out


def total_dipole(positions_nm: np.ndarray, charges: np.ndarray,
                 induced_dipoles: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Permanent and total dipole ``Σ q_i r_i`` and ``Σ q_i r_i + Σ μ_ind,i``.

    Parameters
    ----------
    positions_nm : ndarray, shape (..., N, 3)
        Unwrapped positions with whole molecules, nm.
    charges : ndarray, shape (..., N)
        e.
    induced_dipoles : ndarray, shape (..., N, 3), optional
        e·nm.

    Returns
    -------
    permanent, total : ndarray, shape (..., 3)
        e·nm.
    """
    permanent = np.einsum("...nk,...n->...k", np.asarray(positions_nm, dtype=np.float64),
                          np.asarray(charges, dtype=np.float64))
    total = permanent if induced_dipoles is None else permanent + np.asarray(induced_dipoles).sum(axis=-2)
    return permanent, total


def degrees_of_freedom(system) -> int:
    """Kinetic degrees of freedom: 3 per massive particle, minus constraints, minus 3 with CM removal."""
    import openmm
    from openmm import unit

    dof = sum(3 for i in range(system.getNumParticles())
              if system.getParticleMass(i).value_in_unit(unit.dalton) > 0)
    dof -= system.getNumConstraints()
    if any(isinstance(f, openmm.CMMotionRemover) for f in system.getForces()):
        dof -= 3
    return max(dof, 1)


class TrajectoryRecorder:
    """OpenMM reporter recording unwrapped frames, charges, dipoles and energies into memory.

    Parameters
    ----------
    evaluator : ChargeEvaluator
        Gives charges, polarizabilities and induced dipoles of a frame.
    frame_interval : int
        Steps between frames (positions, charges, dipoles).
    energy_interval : int
        Steps between energy reports (a report costs one extra force evaluation).
    degrees_of_freedom : int
        For the instantaneous temperature.
    save_induced_dipoles : bool
        Also keep the per-atom induced dipoles (N×3 per frame) besides their sum.
    on_report : callable, optional
        ``on_report(step)`` called after every report (progress output).
    """

    def __init__(self, evaluator: ChargeEvaluator, frame_interval: int, energy_interval: int,
                 degrees_of_freedom: int, save_induced_dipoles: bool = False,
                 on_report: Callable[[int], None] | None = None):
        if frame_interval < 1 or energy_interval < 1:
            raise ValueError("report intervals must be at least one step")
        self.evaluator = evaluator
        self.frame_interval, self.energy_interval = int(frame_interval), int(energy_interval)
        self.dof = int(degrees_of_freedom)
        self.save_induced_dipoles = bool(save_induced_dipoles)
        self.on_report = on_report
        self._frames: dict[str, list] = {}
        self._energies: dict[str, list] = {}

    def describeNextReport(self, simulation) -> dict:  # noqa: N802  (OpenMM protocol)
        """Steps to the next frame or energy report; asks for unwrapped positions."""
        step = simulation.currentStep
        to_frame = self.frame_interval - step % self.frame_interval
        to_energy = self.energy_interval - step % self.energy_interval
        steps = min(to_frame, to_energy)
        include = ["positions"]
        if steps == to_energy:
            include.append("energy")
        return {"steps": steps, "periodic": False, "include": include}

    def report(self, simulation, state) -> None:
        """Record the frame and/or the energies due at this step."""
        from openmm import unit

        step = simulation.currentStep
        time_ps = state.getTime().value_in_unit(unit.picosecond)
        box = None
        if simulation.system.usesPeriodicBoundaryConditions():
            box = np.asarray(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer))
        frame_due = step % self.frame_interval == 0
        energy_due = step % self.energy_interval == 0
        positions = np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer), dtype=np.float64)
        props = self.evaluator(positions, box, energies=energy_due) if (frame_due or energy_due) else None
        if frame_due:
            self._record_frame(step, time_ps, positions, box, props)
        if energy_due:
            self._record_energy(step, time_ps, state, box, props)
        if self.on_report is not None:
            self.on_report(step)

    def _record_frame(self, step: int, time_ps: float, positions: np.ndarray, box: np.ndarray | None,
                      props: dict) -> None:
        permanent, total = total_dipole(positions, props["charges"], props["induced_dipoles"])
        row = {"frame_step": step, "time": time_ps, "positions": positions,
               "box": box if box is not None else np.zeros((3, 3)),
               "charges": props["charges"], "polarizabilities": props["polarizabilities"],
               "induced_dipole": props["induced_dipoles"].sum(axis=0), "permanent_dipole": permanent,
               "dipole": total}
        if self.save_induced_dipoles:
            row["induced_dipoles"] = props["induced_dipoles"]
        for key, value in row.items():
            self._frames.setdefault(key, []).append(value)

    def _record_energy(self, step: int, time_ps: float, state, box: np.ndarray | None, props: dict) -> None:
        from openmm import unit

        potential = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        kinetic = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        row = {"energy_step": step, "energy_time": time_ps, "potential_energy": potential,
               "kinetic_energy": kinetic, "total_energy": potential + kinetic,
               "temperature": 2.0 * kinetic / (self.dof * BOLTZMANN_KJ_MOL_K),
               "volume": float(abs(np.linalg.det(box))) if box is not None else 0.0,
               "polarff_permanent_energy": props["permanent_energy"],
               "polarff_induction_energy": props["induction_energy"],
               "polarff_electronegativity_energy": props["electronegativity_energy"]}
        for key, value in row.items():
            self._energies.setdefault(key, []).append(value)

    def pop(self, n_atoms: int) -> dict[str, np.ndarray]:
        """Recorded rows as arrays (empty arrays of the right shape if none), and clear the buffer.

        Parameters
        ----------
        n_atoms : int
            Number of particles (for the shapes of empty arrays).
        """
        shapes = {"frame_step": (), "time": (), "positions": (n_atoms, 3), "box": (3, 3),
                  "charges": (n_atoms,), "polarizabilities": (n_atoms,), "induced_dipole": (3,),
                  "permanent_dipole": (3,), "dipole": (3,)}
        if self.save_induced_dipoles:
            shapes["induced_dipoles"] = (n_atoms, 3)
        shapes.update({key: () for key in ENERGY_UNITS})
        out = {}
        for key, shape in shapes.items():
            rows = self._frames.get(key, self._energies.get(key, []))
            dtype = np.int64 if key.endswith("_step") else np.float64
            out[key] = np.asarray(rows, dtype=dtype).reshape((len(rows),) + shape)
        self._frames, self._energies = {}, {}
        return out


def make_molecules_whole(positions_nm: np.ndarray, topology, box_nm: np.ndarray | None) -> np.ndarray:
    """Positions with every residue made whole around its first atom (minimum image), nm.

    Parameters
    ----------
    positions_nm : ndarray, shape (N, 3)
        nm.
    topology : openmm.app.Topology
        Residues define the molecules.
    box_nm : ndarray, shape (3, 3) or None
        Box vectors as rows, nm; positions are returned unchanged when None.
    """
    pos = np.array(positions_nm, dtype=np.float64)
    if box_nm is None:
        return pos
    box = np.asarray(box_nm, dtype=np.float64)
    inverse = np.linalg.inv(box)
    for residue in topology.residues():
        idx = [a.index for a in residue.atoms()]
        if len(idx) < 2:
            continue
        delta = pos[idx] - pos[idx[0]]
        frac = delta @ inverse
        frac -= np.round(frac)
        pos[idx] = pos[idx[0]] + frac @ box
    return pos


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give a temporary file the usual permissions (0666 minus the umask) and rename it onto ``path``."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def save_npz_atomic(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as an uncompressed ``.npz`` via a temporary file and an atomic rename."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def bytes_to_array(data: bytes) -> np.ndarray:
    """Raw bytes as a uint8 array (to store an OpenMM checkpoint inside an ``.npz``)."""
    return np.frombuffer(data, dtype=np.uint8).copy()


def write_dcd(path: str | os.PathLike, topology, frames: list[tuple[np.ndarray, np.ndarray]], dt_ps: float,
              first_step: int, interval: int, append: bool = False) -> None:
    """Write (or append) frames to a DCD file with OpenMM's DCDFile.

    A new file is written to a temporary name and renamed (atomic); appending extends the file in
    place (the runner rebuilds the DCD from its chunk files when it resumes, so a torn append is
    repaired).

    Parameters
    ----------
    path : path-like
        Output file.
    topology : openmm.app.Topology
        Atoms (and whether the box is written).
    frames : list of (positions (N, 3) nm, box (3, 3) nm)
        Unwrapped positions as recorded.
    dt_ps : float
        Integrator time step, ps.
    first_step, interval : int
        Step of the first frame of the file and steps between frames (DCD header).
    append : bool
        Append to an existing file instead of creating one.
    """
    from openmm import Vec3, unit
    from openmm.app import DCDFile

    def write_models(handle, dcd_append: bool) -> None:
        dcd = DCDFile(handle, topology, dt_ps * unit.picosecond, first_step, interval, append=dcd_append)
        for positions, box in frames:
            vectors = None
            if topology.getPeriodicBoxVectors() is not None:
                vectors = [Vec3(*row) for row in np.asarray(box)] * unit.nanometer
            dcd.writeModel(np.asarray(positions) * unit.nanometer, periodicBoxVectors=vectors)

    path = os.fspath(path)
    if append and os.path.exists(path):
        with open(path, "r+b") as handle:
            write_models(handle, True)
        return
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write_models(handle, False)
        publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_dcd_frame_count(path: str | os.PathLike) -> int:
    """Number of frames stated in a DCD header (CHARMM format as written by OpenMM)."""
    import struct

    with open(path, "rb") as handle:
        header = handle.read(12)
    return int(struct.unpack("<i", header[8:12])[0])
