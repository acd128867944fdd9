"""Reproduces the openmmtorch 1.5 (PyPI, torch 2.9.1+cu128) crash: XmlSerializer.deserialize of any TorchForce segfaults.

Run: .venv/bin/python docs/repro/torchforce_deserialize_segfault.py ; echo $?   (prints the XML head, then exits 139)
"""
import torch, openmm, openmmtorch, sys
class M(torch.nn.Module):
    def forward(self, p): return (p**2).sum()
f = openmmtorch.TorchForce(torch.jit.script(M()))
s = openmm.XmlSerializer.serialize(f)
print(s[:300].replace("\n"," "), flush=True)
g = openmm.XmlSerializer.deserialize(s); print("simple deserialize ok", type(g), flush=True)
sysm = openmm.System(); sysm.addParticle(1.0); sysm.addForce(f)
s2 = openmm.XmlSerializer.serialize(sysm)
sys2 = openmm.XmlSerializer.deserialize(s2); print("system deserialize ok", flush=True)
ctx = openmm.Context(sys2, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"))
ctx.setPositions([[0.1,0.2,0.3]]); print(ctx.getState(getEnergy=True).getPotentialEnergy())
