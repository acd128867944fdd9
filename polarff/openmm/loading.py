"""Loading OpenMM and System XML safely with the openmm-torch plugin.

* :func:`load_openmm`: OpenMM loads its plugins at first import; the openmm-torch kernels link against
  libtorch, so they fail to load when ``openmm`` is imported before ``torch``. This imports torch first and
  reloads the failed openmm-torch plugin libraries if needed.
* :func:`load_system_xml`: ``XmlSerializer.deserialize`` segfaults on any TorchForce with openmm 8.6 +
  openmm-torch 1.5 from PyPI (docs/repro/torchforce_deserialize_segfault.py) and does not keep the force
  name; this rebuilds TorchForce elements from their embedded TorchScript module instead.
"""

from __future__ import annotations

import os

from polarff.errors import InputError


def load_openmm():
    """Import OpenMM with the openmm-torch plugin usable, and return the ``openmm`` module.

    OpenMM loads its plugins when it is first imported; the openmm-torch kernels link against libtorch,
    so they fail to load if ``openmm`` was imported before ``torch``. This imports torch first and, if
    OpenMM was already imported without it, loads the failed openmm-torch plugin libraries again.
    """
    import re

    try:
        import torch  # noqa: F401
    except ImportError:
        import openmm

        return openmm
    import openmm

    for failure in openmm.Platform.getPluginLoadFailures():
        match = re.match(r"Error loading library (\S+?): ", failure)
        path = match.group(1) if match else ""
        if "Torch" in os.path.basename(path) and "OpenCL" not in path and "CUDA" not in path:
            try:
                openmm.Platform.loadPluginLibrary(path)
            except Exception:  # still missing a dependency: keep OpenMM's own failure message
                pass
    return openmm


def load_system_xml(path: str):
    """Deserialize an OpenMM System XML; InputError if unreadable.

    openmm-torch ``TorchForce`` elements are rebuilt here from their embedded TorchScript module instead
    of by OpenMM's XmlSerializer, which crashes (segmentation fault) on them with openmm 8.6 +
    openmm-torch 1.5 and does not record the force name; a TorchForce whose module has the polarff
    ``properties`` method gets the name ``polarff`` back. A System with a torch or Python force also
    gets :func:`polarff.runtime.allocator.keep_freed_memory` applied.
    """
    import xml.etree.ElementTree as ElementTree

    from polarff.runtime.allocator import keep_freed_memory

    openmm = load_openmm()
    if not os.path.exists(path):
        raise InputError("System XML not found", file=path, field="system")
    with open(path) as handle:
        text = handle.read()
    try:
        root = ElementTree.fromstring(text)
        forces = root.find("Forces")
        torch_elements = [] if forces is None else [f for f in forces if f.get("type") == "TorchForce"]
        for element in torch_elements:
            forces.remove(element)
        system = openmm.XmlSerializer.deserialize(ElementTree.tostring(root, encoding="unicode"))
        for element in torch_elements:
            system.addForce(_torch_force_from_xml(element))
        if torch_elements or "PythonForce" in text:
            keep_freed_memory()
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot deserialize the System: {exc}", file=path, field="system") from None
    return system


def _torch_force_from_xml(element):
    """An ``openmmtorch.TorchForce`` from its serialized XML element (format version 4)."""
    import io

    import torch
    import openmmtorch

    from polarff.openmm.system import FORCE_NAME

    encoded = element.get("encodedFileContents")
    if not encoded:
        raise InputError("TorchForce without an embedded module", field="encodedFileContents",
                         expected="hex-encoded TorchScript archive", found=element.get("file"))
    module = torch.jit.load(io.BytesIO(bytes.fromhex(encoded)))
    force = openmmtorch.TorchForce(module)
    force.setForceGroup(int(element.get("forceGroup", 0)))
    force.setUsesPeriodicBoundaryConditions(element.get("usesPeriodic", "0") == "1")
    force.setOutputsForces(element.get("outputsForces", "0") == "1")
    for parameter in element.iterfind("GlobalParameters/Parameter"):
        force.addGlobalParameter(parameter.get("name"), float(parameter.get("default")))
    for derivative in element.iterfind("ParameterDerivatives/Parameter"):
        force.addEnergyParameterDerivative(derivative.get("name"))
    for prop in element.iterfind("Properties/Property"):
        force.setProperty(prop.get("name"), prop.get("value"))
    if hasattr(module, "properties"):
        force.setName(FORCE_NAME)
    return force


