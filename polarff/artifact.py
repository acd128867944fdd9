"""The model artifact (``*.pff``): everything needed to rebuild the network without Keras.

A ``.pff`` file is a zip archive with

* ``model_card.json``  — species, units, versions, seed, training-data hash, metrics, format version
* ``descriptor.json``  — :class:`polarff.descriptors.DescriptorConfig`
* ``bins.json``        — per-target :class:`polarff.discretize.Binning` (edges, centres as floats)
* ``network.json``     — architecture (hidden sizes, activation, feature normalisation)
* ``weights.npz``      — weight arrays by name (``dense_0/kernel`` …), Keras layout (in, out)
* ``electronegativity.json`` — optional: the electronegativity term of the energy
  (:mod:`polarff.electronegativity`), per-species χ (kJ/mol/e) and reference charges (e)
* ``thole.json`` — optional: per-species Thole damping strengths that replace the default a = 0.39 for
  those species (a pair uses ``min(a_i, a_j)``), with the basis of the values

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
#: Values of the model card key ``charge_constraint`` (see :attr:`PolarffModel.charge_constraint`).
CHARGE_CONSTRAINTS = ("total", "molecular")


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
    thole : dict, optional
        ``{"a": {species: a}, "basis": str}``: dimensionless Thole damping strengths of the listed species
        (others keep :data:`polarff.response.THOLE_A`); a pair uses ``min(a_i, a_j)``, so a small value
        damps all of that species' pairs. None: 0.39 for every species. See :meth:`thole_per_atom`.
    """

    descriptor: DescriptorConfig
    bins: dict[str, Binning]
    network: NetworkSpec
    weights: dict[str, np.ndarray]
    card: dict = field(default_factory=dict)
    electronegativity: dict | None = None
    thole: dict | None = None

    @property
    def species(self) -> list[str]:
        return list(self.descriptor.species)

    @property
    def charge_constraint(self) -> str:
        """What the predicted charges are shifted to sum to: ``"total"`` (the system's net charge, as in
        training; charge may move between molecules) or ``"molecular"`` (each molecule's formal charge: no
        charge transfer between molecules). From the card key ``charge_constraint`` (absent: ``"total"``)."""
        value = self.card.get("charge_constraint", "total")
        if value not in CHARGE_CONSTRAINTS:
            raise ModelError(f"model card key charge_constraint: expected one of {CHARGE_CONSTRAINTS}, "
                             f"found {value!r}")
        return value

    def thole_per_atom(self, symbols: list[str], default: float | None = None) -> list[float]:
        """Thole damping strength a (dimensionless) of each atom.

        Parameters
        ----------
        symbols : list of str
            Chemical symbols of the atoms.
        default : float, optional
            Value for species the model's ``thole`` does not list (default
            :data:`polarff.response.THOLE_A`, 0.39).

        Returns
        -------
        list of float
            One value per atom; pairs combine them as ``min(a_i, a_j)``.
        """
        from polarff.response import THOLE_A

        by_species = (self.thole or {}).get("a", {})
        fallback = THOLE_A if default is None else float(default)
        return [float(by_species.get(s, fallback)) for s in symbols]

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
            if self.thole is not None:
                zf.writestr("thole.json", to_json(self.thole))


def read_card(path: str | os.PathLike) -> dict:
    """Model card of an artifact, read without loading the network."""
    with _open(path) as zf:
        return json.loads(zf.read("model_card.json"))


def read_thole(path: str | os.PathLike) -> dict | None:
    """Per-species Thole strengths of an artifact (``thole.json``), or None, read without loading the network."""
    with _open(path) as zf:
        if "thole.json" not in zf.namelist():
            return None
        card = json.loads(zf.read("model_card.json"))
        return _checked_thole(json.loads(zf.read("thole.json")), path, card.get("species", []))


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
        thole = None
        if "thole.json" in zf.namelist():
            thole = _checked_thole(json.loads(zf.read("thole.json")), path, descriptor.species)
    return PolarffModel(descriptor, bins, network, weights, card, electronegativity, thole)


def _checked_thole(thole: dict, path, species) -> dict:
    """``thole.json`` if its values are usable, else ModelError naming the file, field and values."""
    values = thole.get("a") if isinstance(thole, dict) else None
    if not isinstance(values, dict):
        raise ModelError(f"{path}: thole.json: expected an object with field 'a' {{species: value}}, "
                         f"found {thole!r}")
    for name, a in values.items():
        if name not in species:
            raise ModelError(f"{path}: thole.json field 'a': species {name!r} is not one of the model's "
                             f"{list(species)}")
        if not isinstance(a, (int, float)) or not np.isfinite(a) or a <= 0:
            raise ModelError(f"{path}: thole.json field 'a.{name}': expected a finite number > 0, found {a!r}")
    return thole


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
