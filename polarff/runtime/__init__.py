"""Torch runtime of polarff: the Keras-free twin that runs inside OpenMM.

Units everywhere in this package are OpenMM's: nm, e, kJ/mol, polarizabilities as volumes in nm^3,
dipoles in e·nm. Import the submodules directly (``polarff.runtime.electrostatics``); importing this
package does not import torch.
"""
