"""Build OpenMM Systems that use a polarff model for electrostatics and induction.

``create_system(model, topology)`` = fixed terms from ``forcefields/polarff_fixed_terms.xml`` (rigid
water geometry, Lennard-Jones; all classical charges 0) + the polarff force, either as an
``openmmtorch.TorchForce`` (default: runs on every platform, CUDA included, serialisable) or as an
``openmm.PythonForce`` (any platform, serialisable through pickle, no openmm-torch needed).
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np

from polarff.artifact import PolarffModel, load_model
from polarff.errors import ConfigError, ModelError

#: Formal charges of monatomic ions by element (e), used for the total charge of a topology.
FORMAL_CHARGES = {"Li": 1, "Na": 1, "K": 1, "F": -1, "Cl": -1, "Br": -1, "I": -1}
IMPLEMENTATIONS = ("torch", "python")
#: Name given to the polarff force in the System (``polarff info system.xml`` looks for it).
FORCE_NAME = "polarff"


def topology_symbols(topology, atoms: Sequence[int] | None = None) -> list[str]:
    """Chemical symbols of (a subset of) the topology's atoms; ModelError if an atom has no element."""
    all_atoms = list(topology.atoms())
    chosen = all_atoms if atoms is None else [all_atoms[i] for i in atoms]
    symbols = []
    for atom in chosen:
        if atom.element is None:
            raise ModelError(f"topology atom {atom.index} ({atom.name} in {atom.residue.name}) has no element")
        symbols.append(atom.element.symbol)
    return symbols


def intramolecular_pairs(topology, atoms: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """All pairs of atoms in the same residue, as indices into ``atoms`` (or the whole topology)."""
    index = {a: k for k, a in enumerate(atoms)} if atoms is not None else None
    pairs = []
    for residue in topology.residues():
        members = [a.index for a in residue.atoms()]
        if index is not None:
            members = [index[a] for a in members if a in index]
        pairs += [(members[x], members[y]) for x in range(len(members)) for y in range(x + 1, len(members))]
    return pairs


def formal_total_charge(symbols: Sequence[str]) -> float:
    """Sum of formal ion charges (e) of the atoms (molecules are taken as neutral)."""
    return float(sum(FORMAL_CHARGES.get(s, 0) for s in symbols))


def check_species(model: PolarffModel, symbols: Sequence[str]) -> None:
    """ModelError naming the species the model cannot describe."""
    unknown = sorted(set(symbols) - set(model.species))
    if unknown:
        raise ModelError(f"the topology contains species {unknown} that the model does not know "
                         f"(model species: {model.species}); train a model that includes them")


def electrostatics_options(cutoff_nm: float, overrides: dict | None = None) -> dict:
    """Options of :class:`polarff.runtime.electrostatics.Electrostatics` that :func:`create_system` uses: the
    nonbonded cutoff (nm) for real-space Ewald, the dipole–dipole coupling truncated at min(cutoff, 0.9 nm) (the
    charges' polarising field is full range), then ``overrides``."""
    return {"cutoff_nm": cutoff_nm, "induction_cutoff_nm": min(cutoff_nm, 0.9), **(overrides or {})}


def build_potential(model: PolarffModel, topology, atoms: Sequence[int] | None = None,
                    total_charge: float | None = None, electrostatics: dict | None = None, script: bool = True):
    """A :class:`polarff.openmm.potential.PolarffPotential` for ``topology``, scripted with TorchScript (for
    OpenMM) or, with ``script=False``, the eager module (for gradients taken in Python: analyses and fits)."""
    import torch

    from polarff.openmm.potential import PolarffPotential

    symbols = topology_symbols(topology, atoms)
    check_species(model, symbols)
    periodic = topology.getPeriodicBoxVectors() is not None
    q_total = formal_total_charge(symbols) if total_charge is None else float(total_charge)
    module = PolarffPotential(model, symbols, intramolecular_pairs(topology, atoms), periodic, q_total,
                              None if atoms is None else list(atoms), electrostatics)
    return torch.jit.script(module) if script else module


def make_force(module, periodic: bool, implementation: str = "torch", use_cuda_graphs: bool = False):
    """Wrap a scripted potential as an OpenMM Force named :data:`FORCE_NAME`.

    Parameters
    ----------
    module : torch.jit.ScriptModule
        Potential: ``forward(positions_nm, box_nm) -> energy_kJ_mol``.
    periodic : bool
        Whether the force uses periodic boundary conditions (box passed to the module).
    implementation : {'torch', 'python'}
        ``openmmtorch.TorchForce`` (GPU plugin) or ``openmm.PythonForce``.
    use_cuda_graphs : bool
        TorchForce property ``useCUDAGraphs`` (CUDA platform only).

    Also applies :func:`polarff.runtime.allocator.keep_freed_memory` (faster CPU evaluation; opt out
    with ``POLARFF_KEEP_FREED_MEMORY=0``).
    """
    from polarff.runtime.allocator import keep_freed_memory

    keep_freed_memory()
    if implementation == "torch":
        from polarff.openmm.loading import load_openmm

        load_openmm()  # torch before the openmm-torch plugin, whatever the caller imported first
        import openmmtorch

        force = openmmtorch.TorchForce(module)
        force.setUsesPeriodicBoundaryConditions(periodic)
        force.setProperty("useCUDAGraphs", "true" if use_cuda_graphs else "false")
    elif implementation == "python":
        import openmm

        force = openmm.PythonForce(PolarffCallback(module))
        force.setUsesPeriodicBoundaryConditions(periodic)
    else:
        raise ConfigError(f"implementation: expected one of {IMPLEMENTATIONS}, found {implementation!r}")
    force.setName(FORCE_NAME)
    return force


class PolarffCallback:
    """Picklable ``openmm.PythonForce`` computation: energy and autograd forces of a scripted potential.

    The TorchScript module travels inside the pickle (so an XML-serialised System is self-contained).
    """

    def __init__(self, module):
        self._module = module
        self._bytes = None

    def __getstate__(self):
        import torch

        if self._bytes is None:
            buf = io.BytesIO()
            torch.jit.save(self._module, buf)
            self._bytes = buf.getvalue()
        return {"module_bytes": self._bytes}

    def __setstate__(self, state):
        self._bytes = state["module_bytes"]
        self._module = None

    @property
    def module(self):
        if self._module is None:
            import torch

            self._module = torch.jit.load(io.BytesIO(self._bytes))
        return self._module

    def __call__(self, state):
        from openmm import unit

        from polarff.openmm.potential import energy_and_forces

        pos = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        try:
            box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
        except Exception:  # non-periodic state
            box = None
        energy, forces = energy_and_forces(self.module, pos, box)
        return energy, forces


def model_fixed_terms(model: PolarffModel) -> list[str]:
    """Fixed-term ForceField XML files that belong to ``model``.

    A model card may name, under ``fixed_terms``, the XML whose Lennard-Jones radii were balanced
    against that model's electrostatics (``examples/rebalance_lj.py``), as a file name in
    ``forcefields/``; otherwise the TIP3P / Joung–Cheatham terms of ``polarff_fixed_terms.xml``.
    """
    from polarff.build import forcefield_path

    return [forcefield_path(model.card.get("fixed_terms") or "polarff_fixed_terms")]


def fixed_terms_system(topology, nonbonded_cutoff_nm: float = 0.9, forcefield_files: Sequence[str] | None = None,
                       rigid_water: bool = True, remove_cm_motion: bool = True):
    """System with the fixed terms only: water geometry and Lennard-Jones (switched from 90 % of the cutoff,
    dispersion correction when periodic); ModelError if the XML carries charges or does not fit the topology."""
    import openmm
    from openmm import app, unit

    from polarff.build import forcefield_path

    periodic = topology.getPeriodicBoxVectors() is not None
    files = list(forcefield_files or [forcefield_path("polarff_fixed_terms.xml")])
    ff = app.ForceField(*files)
    try:
        system = ff.createSystem(topology, nonbondedMethod=app.CutoffPeriodic if periodic else app.NoCutoff,
                                 nonbondedCutoff=nonbonded_cutoff_nm * unit.nanometer,
                                 rigidWater=rigid_water, removeCMMotion=remove_cm_motion)
    except ValueError as exc:
        raise ModelError(f"the fixed-term force field {files} does not match the topology: {exc}") from None
    for force in system.getForces():
        if isinstance(force, openmm.NonbondedForce):
            force.setUseDispersionCorrection(periodic)
            if periodic:  # smooth LJ truncation (energy conservation): switch over the last 10 %
                force.setUseSwitchingFunction(True)
                force.setSwitchingDistance(0.9 * nonbonded_cutoff_nm)
            if any(force.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge) != 0
                   for i in range(force.getNumParticles())):
                raise ModelError(f"{files}: the fixed terms carry classical charges; polarff supplies "
                                 "electrostatics, so use an XML whose charges are 0")
    return system


def create_system(model, topology, *, implementation: str = "torch", nonbonded_cutoff_nm: float = 0.9,
                  total_charge: float | None = None, electrostatics: dict | None = None,
                  forcefield_files: Sequence[str] | None = None, rigid_water: bool = True,
                  use_cuda_graphs: bool = False, remove_cm_motion: bool = True):
    """Create an OpenMM System: fixed terms plus the polarff electrostatics/induction force.

    Parameters
    ----------
    model : PolarffModel or path-like
        Trained model (``.pff``).
    topology : openmm.app.Topology
        Residues named as in ``forcefields/polarff_fixed_terms.xml`` (HOH, LI, NA, K, CL); periodic when
        it has box vectors.
    implementation : {'torch', 'python'}
        TorchForce (default; GPU plugin, all platforms) or PythonForce.
    nonbonded_cutoff_nm : float
        Cutoff of Lennard-Jones (switched smoothly to zero from 90 % of it) and of the real-space
        Ewald sum (nm).
    total_charge : float, optional
        Net charge (e); default: the sum of formal ion charges.
    electrostatics : dict, optional
        Options of :class:`polarff.runtime.electrostatics.Electrostatics`.
    forcefield_files : list of str, optional
        ForceField XML files of the fixed terms (default: :func:`model_fixed_terms`, i.e. the file named
        by the model card's ``fixed_terms``, else ``polarff_fixed_terms.xml``).
    rigid_water : bool
        Constrain water geometry (as the reference data were sampled).
    use_cuda_graphs : bool
        Sets the TorchForce ``useCUDAGraphs`` property.

    Returns
    -------
    openmm.System
    """
    from openmm import unit

    if not isinstance(model, PolarffModel):
        model = load_model(model)
    symbols = topology_symbols(topology)
    check_species(model, symbols)
    periodic = topology.getPeriodicBoxVectors() is not None
    if periodic:
        box = np.array(topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer))
        half = 0.5 * min(box[0, 0], box[1, 1], box[2, 2])
        if nonbonded_cutoff_nm >= half:
            raise ConfigError(f"nonbonded_cutoff_nm={nonbonded_cutoff_nm} nm must be below half the box "
                              f"({half:.3f} nm)")
    system = fixed_terms_system(topology, nonbonded_cutoff_nm, forcefield_files or model_fixed_terms(model),
                                rigid_water, remove_cm_motion)
    module = build_potential(model, topology, None, total_charge,
                             electrostatics_options(nonbonded_cutoff_nm, electrostatics))
    system.addForce(make_force(module, periodic, implementation, use_cuda_graphs))
    return system


def find_polarff_force(system):
    """The polarff force of a System (by name), or None."""
    for force in system.getForces():
        if force.getName() == FORCE_NAME:
            return force
    return None
