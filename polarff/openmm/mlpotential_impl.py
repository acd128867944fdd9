"""openmm-ml implementation of the ``polarff`` potential (imported lazily by the entry-point factory)."""

from __future__ import annotations

from typing import Iterable, Optional

try:
    from openmmml.mlpotential import MLPotentialImpl
except ImportError as exc:  # pragma: no cover - openmm-ml is a dependency
    raise ImportError(f"MLPotential('polarff') needs openmm-ml: pip install openmmml ({exc})") from None


class PolarffPotentialImpl(MLPotentialImpl):
    """Adds the polarff force (and, for a whole-system potential, the fixed LJ terms) to a System."""

    def __init__(self, name: str, modelPath: str):
        self.name = name
        self.model_path = modelPath

    def addForces(self, topology, system, atoms: Optional[Iterable[int]], forceGroup: int,
                  implementation: str = "torch", totalCharge: Optional[float] = None,
                  electrostatics: Optional[dict] = None, **args):
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            raise ImportError(f"polarff needs torch 2.9.x ({exc}); install with `pip install polarff`") from None
        import openmm
        from openmm import unit

        from polarff.artifact import load_model
        from polarff.openmm.system import build_potential, fixed_terms_system, make_force, model_fixed_terms

        model = load_model(self.model_path)
        atoms = None if atoms is None else list(atoms)
        periodic = topology.getPeriodicBoxVectors() is not None
        options = {"cutoff_nm": 0.9}
        if periodic:
            box = topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer)
            options["cutoff_nm"] = min(0.9, 0.49 * min(box[0][0], box[1][1], box[2][2]))
        options["induction_cutoff_nm"] = options["cutoff_nm"]
        options.update(electrostatics or {})
        module = build_potential(model, topology, atoms, totalCharge, options)
        force = make_force(module, periodic, implementation)
        force.setForceGroup(forceGroup)
        system.addForce(force)
        if atoms is None:  # whole-system potential: add the fixed Lennard-Jones terms too
            fixed = fixed_terms_system(topology, options["cutoff_nm"], model_fixed_terms(model), rigid_water=False,
                                       remove_cm_motion=False)
            for f in fixed.getForces():
                if isinstance(f, openmm.NonbondedForce):
                    f.setForceGroup(forceGroup)
                    system.addForce(openmm.XmlSerializer.clone(f))
