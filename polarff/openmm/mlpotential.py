"""openmm-ml plugin: ``MLPotential('polarff', modelPath='model.pff')``.

Registered through the ``openmmml.potentials`` entry point (see pyproject.toml). Heavy imports happen
inside the methods; a missing dependency gives an install hint.

``createSystem(topology)`` gives the whole polarff model: the fixed Lennard-Jones terms of
``forcefields/polarff_fixed_terms.xml`` plus the polarff electrostatics/induction force.
``createMixedSystem(topology, classical_system, atoms)`` replaces the classical electrostatics *among the
selected atoms* by the polarff force (openmm-ml removes their classical intra-set interactions; the
interactions between ML and classical atoms stay classical).
"""

from __future__ import annotations

from typing import Optional


class PolarffPotentialImplFactory:
    """Creates :class:`polarff.openmm.mlpotential_impl.PolarffPotentialImpl` objects for ``polarff``.

    A plain class on purpose: openmm-ml loads this entry point while it is itself being imported, so
    this module must not import openmmml at import time.
    """

    def createImpl(self, name: str, modelPath: Optional[str] = None, **args):
        if modelPath is None:
            raise ValueError("MLPotential('polarff') needs modelPath='path/to/model.pff' "
                             "(train one with `polarff fit`)")
        from polarff.openmm.mlpotential_impl import PolarffPotentialImpl

        return PolarffPotentialImpl(name, modelPath)
