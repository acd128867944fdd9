"""Export a trained model as a self-contained OpenMM System XML, and describe exported Systems."""

from __future__ import annotations

import os

from polarff.errors import InputError


def export_system(model_path: str, topology_path: str, output: str, implementation: str = "python",
                  nonbonded_cutoff_nm: float = 0.9, total_charge: float | None = None) -> dict:
    """Write ``create_system(model, topology)`` as System XML (atomically); returns a summary dict.

    The XML holds the fixed terms and the polarff force with its TorchScript module embedded. With the
    default ``implementation="python"`` (``openmm.PythonForce``) a plain OpenMM script loads it with
    ``XmlSerializer.deserialize`` (polarff must be importable: the force's pickle refers to it). TorchForce
    XML is written too, but openmmtorch 1.5 from PyPI segfaults when deserialising any TorchForce
    (docs/repro/torchforce_deserialize_segfault.py); build TorchForce systems with ``create_system`` instead.
    """
    import openmm
    from openmm import app

    from polarff.fileio import write_text
    from polarff.openmm.system import create_system

    if not os.path.exists(topology_path):
        raise InputError("topology file not found", file=topology_path)
    try:
        pdb = app.PDBFile(topology_path)
    except Exception as exc:
        raise InputError(f"cannot read PDB topology: {exc}", file=topology_path) from None
    system = create_system(model_path, pdb.topology, implementation=implementation,
                           nonbonded_cutoff_nm=nonbonded_cutoff_nm, total_charge=total_charge)
    xml = openmm.XmlSerializer.serialize(system)
    write_text(output, xml)
    return {"atoms": system.getNumParticles(), "forces": [f.getName() for f in system.getForces()],
            "bytes": len(xml)}


def describe_system(path: str) -> str:
    """Human-readable summary of a System XML: particles, constraints, forces, the polarff force."""
    from polarff.openmm.loading import load_system_xml

    system = load_system_xml(path)
    lines = [f"OpenMM System {path}", f"  particles:   {system.getNumParticles()}",
             f"  constraints: {system.getNumConstraints()}",
             f"  periodic:    {system.usesPeriodicBoundaryConditions()}"]
    if system.usesPeriodicBoundaryConditions():
        box = system.getDefaultPeriodicBoxVectors()
        lines.append(f"  box (nm):    {box[0][0]._value:.4f} x {box[1][1]._value:.4f} x {box[2][2]._value:.4f}")
    for k, force in enumerate(system.getForces()):
        kind = _force_type(force)
        extra = f"  [polarff electrostatics + induction, {kind}]" if force.getName() == "polarff" else ""
        lines.append(f"  force {k}: {kind} '{force.getName()}' group {force.getForceGroup()}{extra}")
    return "\n".join(lines)


def _force_type(force) -> str:
    """Class name of a force; plugin forces come back from SWIG as a plain ``Force``."""
    kind = type(force).__name__
    if kind == "Force":
        try:
            import openmmtorch

            if openmmtorch.TorchForce.isinstance(force):
                return "TorchForce"
        except ImportError:
            pass
    return kind
