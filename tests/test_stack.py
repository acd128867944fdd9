"""The installed stack works together: an OpenMM Context with an openmm-torch TorchForce on the CPU platform."""

from __future__ import annotations

import numpy as np
import pytest


def test_torchforce_energy_and_forces_on_cpu(tmp_path):
    torch = pytest.importorskip("torch")
    openmm = pytest.importorskip("openmm")
    openmmtorch = pytest.importorskip("openmmtorch")

    class Harmonic(torch.nn.Module):
        def forward(self, positions: torch.Tensor) -> torch.Tensor:
            return 5.0 * torch.sum(positions ** 2)  # kJ/mol, positions in nm

    path = str(tmp_path / "harmonic.pt")
    torch.jit.script(Harmonic()).save(path)
    system = openmm.System()
    for _ in range(3):
        system.addParticle(1.0)
    system.addForce(openmmtorch.TorchForce(path))
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"))
    pos = np.array([[0.1, 0.2, 0.3], [-0.1, 0.0, 0.2], [0.3, -0.2, 0.1]])
    ctx.setPositions(pos)
    state = ctx.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer)
    assert energy == pytest.approx(5.0 * np.sum(pos ** 2), rel=1e-5)
    np.testing.assert_allclose(forces, -10.0 * pos, rtol=1e-5)
