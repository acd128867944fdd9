"""The model artifact (``*.pff``): everything needed to rebuild the network without Keras.

A ``.pff`` file is a zip archive with

* ``model_card.json``  — species, units, versions, seed, training-data hash, metrics, format version
* ``descriptor.json``  — :class:`polarff.descriptors.DescriptorConfig`
* ``bins.json``        — per-target :class:`polarff.discretize.Binning` (edges, centres as floats)
* ``network.json``     — architecture (hidden sizes, activation, feature normalisation)
* ``weights.npz``      — weight arrays by name (``dense_0/kernel`` …), Keras layout (in, out)
* ``electronegativity.json`` — optional: the electronegativity term of the energy
  (:mod:`polarff.electronegativity`), per-species χ (kJ/mol/e) and reference charges (e)

``load_model`` reads it with numpy and json only, so ``polarff info`` and the torch runtime never
import TensorFlow. Writes are atomic (temporary file, then rename).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from polarff.descriptors import DescriptorConfig
from polarff.discretize import Binning
from polarff.errors import ModelError
from polarff.fileio import atomic_path, to_json

FORMAT_VERSION = 1
#: Targets the classifier heads predict, with their units.
TARGETS = {"charges": "e", "polarizabilities": "Å^3"}


@dataclass
class NetworkSpec:
    """Architecture of the per-atom classifier.

    Attributes
    ----------
    hidden : list of int
        Widths of the shared trunk's dense layers.
    activation : str
        Activation of the trunk ('silu' or 'tanh'): smooth, so expected values are smooth in positions.
    feature_mean, feature_std : ndarray (F,)
        Descriptor normalisation applied before the first layer.
    """

    hidden: list[int]
    activation: str
    feature_mean: np.ndarray
    feature_std: np.ndarray

    def to_dict(self) -> dict:
        return {"hidden": list(self.hidden), "activation": self.activation,
                "feature_mean": self.feature_mean.tolist(), "feature_std": self.feature_std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "NetworkSpec":
        return cls(list(d["hidden"]), d["activation"], np.asarray(d["feature_mean"], float),
                   np.asarray(d["feature_std"], float))


@dataclass
class PolarffModel:
    """A trained polarff classifier, framework-free.

    Attributes
    ----------
    descriptor : DescriptorConfig
    bins : dict of str to Binning
        One per target in :data:`TARGETS`.
    network : NetworkSpec
    weights : dict of str to ndarray
        ``{layer}/kernel`` (in, out) and ``{layer}/bias`` (out,) for layers ``dense_0``… and
        ``head_<target>`` (out = n_species · n_classes, species-major).
    card : dict
        Model card (see :func:`make_card`).
    electronegativity : dict, optional
        ``{"chi_kj_mol_e": {species: χ}, "reference_charges_e": {species: q}, ...}``: the energy term
        Σ_i χ_s(i) (q_i − q_ref,s(i)) that makes the learned charges (nearly) stationary
        (:mod:`polarff.electronegativity`); None for a model without it.
    """

    descriptor: DescriptorConfig
    bins: dict[str, Binning]
    network: NetworkSpec
    weights: dict[str, np.ndarray]
    card: dict = field(default_factory=dict)
    electronegativity: dict | None = None

    @property
    def species(self) -> list[str]:
        return list(self.descriptor.species)

    def save(self, path: str | os.PathLike) -> None:
        """Write the artifact atomically to ``path`` (``.pff``)."""
        buf = io.BytesIO()
        np.savez(buf, **self.weights)
        with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("model_card.json", to_json(self.card))
            zf.writestr("descriptor.json", json.dumps(self.descriptor.to_dict(), indent=2))
            zf.writestr("bins.json", json.dumps({k: b.to_dict() for k, b in self.bins.items()}))
            zf.writestr("network.json", json.dumps(self.network.to_dict()))
            zf.writestr("weights.npz", buf.getvalue())
            if self.electronegativity is not None:
                zf.writestr("electronegativity.json", to_json(self.electronegativity))


def read_card(path: str | os.PathLike) -> dict:
    """Model card of an artifact, read without loading the network."""
    with _open(path) as zf:
        return json.loads(zf.read("model_card.json"))


def load_model(path: str | os.PathLike) -> PolarffModel:
    """Load a ``.pff`` artifact (numpy + json only).

    Raises
    ------
    ModelError
        If the file is missing, not a polarff artifact, or of an unsupported format version.
    """
    with _open(path) as zf:
        card = json.loads(zf.read("model_card.json"))
        version = card.get("format_version")
        if version != FORMAT_VERSION:
            raise ModelError(f"{path}: model format version {version} is not supported "
                             f"(expected {FORMAT_VERSION}); re-export it with this polarff version")
        descriptor = DescriptorConfig.from_dict(json.loads(zf.read("descriptor.json")))
        bins = {k: Binning.from_dict(v) for k, v in json.loads(zf.read("bins.json")).items()}
        network = NetworkSpec.from_dict(json.loads(zf.read("network.json")))
        with np.load(io.BytesIO(zf.read("weights.npz"))) as npz:
            weights = {k: npz[k] for k in npz.files}
        electronegativity = None
        if "electronegativity.json" in zf.namelist():
            electronegativity = json.loads(zf.read("electronegativity.json"))
    return PolarffModel(descriptor, bins, network, weights, card, electronegativity)


def _open(path) -> zipfile.ZipFile:
    path = str(path)
    if not os.path.exists(path):
        raise ModelError(f"{path}: model file not found")
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ModelError(f"{path}: not a polarff model (expected a .pff zip archive)") from None
    names = set(zf.namelist())
    needed = {"model_card.json", "descriptor.json", "bins.json", "network.json", "weights.npz"}
    if not needed <= names:
        zf.close()
        raise ModelError(f"{path}: not a polarff model (missing {sorted(needed - names)})")
    return zf


def make_card(species: list[str], seed: int, data_hash: str, n_frames: dict, metrics: dict,
              config: dict) -> dict:
    """Model card: what the model is, its units, how it was made and how well it does."""
    import platform

    from polarff import __version__

    versions = {"polarff": __version__, "python": platform.python_version(), "numpy": np.__version__}
    for mod in ("tensorflow", "keras", "sklearn"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return {"format_version": FORMAT_VERSION, "species": list(species),
            "units": {"length": "Å", **TARGETS, "descriptor_cutoff": "Å"},
            "targets": list(TARGETS), "seed": seed, "training_data_sha256": data_hash,
            "n_frames": n_frames, "metrics": metrics, "config": config, "versions": versions}
