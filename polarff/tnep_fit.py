"""Learn GPUMD/TNEP dipole and polarizability targets through per-atom charges and polarizabilities.

polarff predicts physical per-atom charges q (e) and isotropic polarizabilities α (Å³); the dipole and the
polarizability of a molecule or a frame then follow from the Thole response of :mod:`polarff.response`
(exponential damping a = 0.39, permanent field from other molecules' charges, dipole–dipole coupling of
every pair, periodic pair terms switched off between 5 and 6 Å):

* molecular dipole  μ_m = Σ_{i∈m} q_i (r_i − r_O) + Σ_{i∈m} μ_ind,i          (e·Å, about the oxygen)
* molecular α_m      = Σ_{i∈m} Σ_j B_ij  (row-sum partition = dμ_m/dE)         (Å³, 3×3, not symmetric)
* frame totals       = Σ_m of the molecular values.

GPUMD conventions, converted explicitly (see :mod:`polarff.io`): a dipole file's per-oxygen ``adipole``
(Å) is the sum of the molecule's 4 Wannier-centre offsets, so ``adipole_m = ½ (Σ_H (r_H − r_O) − μ_m)``;
its frame ``dipole`` key is Σ adipole (Å), the quantity TNEP predicts. A polarizability file's ``apol`` is
the per-oxygen molecular tensor (row-major), its ``pol`` the frame sum. Errors and losses are expressed in
these files' own units: an error Δμ (e·Å) of a molecular dipole is an error −½Δμ (Å) of its ``adipole``.

Public pieces
-------------
* :class:`TNEPLoss` — the frame-level loss term for :func:`polarff.model.fit` (batched TensorFlow Thole
  response on padded frames; molecular and frame terms for dipoles and polarizabilities).
* :func:`fit_tnep` — read the GPUMD training files, split off a validation set (training files only),
  train, record validation RMSEs in the files' units in the model card.
* :func:`predict_tnep` — Keras-free inference (descriptors → numpy network → dense Thole solve) with the
  wall time of every frame.
* :func:`eval_tnep` — side-by-side table: polarff and the TNEP models (calorine, CPU) on the same frames,
  RMSE in the files' units and ms per frame; :func:`parity_plots` draws the parity figures.
* ``polarff fit-tnep`` and ``polarff tnep-eval`` — command-line wrappers (registered on import).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np

from polarff.data import Frame, molecules
from polarff.errors import ConfigError, InputError, ModelError
from polarff.response import ALPHA_FLOOR, DEFAULT_CUTOFF, DEFAULT_SWITCH_ON, THOLE_A, FrameGeometry, switch

#: Kinds of TNEP target, the frame label holding each in the files' units, and that unit.
KIND_LABELS = {"dipole": "gpumd_dipole", "polarizability": "polarizability"}
KIND_UNITS = {"dipole": "Å (Σ adipole)", "polarizability": "Å³ (Σ apol)"}

#: Prior class ranges of the water model (no per-atom labels exist): charges in e, α in Å³.
WATER_BIN_RANGES = {"charges": {"O": [-1.4, -0.4], "H": [0.2, 0.7]},
                    "polarizabilities": {"O": [0.1, 3.0], "H": [0.05, 1.5]}}

#: FitConfig options used unless the configuration overrides them.
DEFAULT_FIT_OPTIONS = {"bin_ranges": WATER_BIN_RANGES, "epochs": 120, "batch_frames": 4, "eval_every": 5,
                       "learning_rate": 2e-3, "hidden": [64, 64], "n_bins": 24, "cutoff": 5.0,
                       "weight_conservation": 1.0}


# ------------------------------------------------------------------------------------ configuration
@dataclass
class TNEPFitConfig:
    """Settings of :func:`fit_tnep` (a YAML file may give any of them; ``fit`` holds FitConfig options).

    Attributes
    ----------
    dipole_molecular_weight, dipole_frame_weight : float
        Weights of the mean squared error of molecular ``adipole`` (Å²) and of the frame Σ adipole
        (Å², divided by the number of molecules per frame so that both terms are per molecule).
    polarizability_molecular_weight, polarizability_frame_weight : float
        The same for the molecular ``apol`` and frame ``pol`` tensors (Å⁶, 9 components).
    loss_scale : float
        Factor of the whole TNEP term inside :func:`polarff.model.fit` (dimensionless; the squared
        errors are ~1e-3 in the files' units).
    response_cutoff, response_switch_on : float
        Pair switch of the periodic Thole response in Å (must stay below half the cell width).
    training_dtype : {'float32', 'float64'}
        Precision of the batched response in the training loss (float32 is ~2× faster; the system
        I − S T S of water is well conditioned). Inference and evaluation always use float64.
    validation_fraction : float
        Fraction of the (merged) training frames held out for model selection.
    seed : int
        Seed of the split, the initialisation and the batch order.
    fit : dict
        :class:`polarff.model.FitConfig` options; :data:`DEFAULT_FIT_OPTIONS` fill the gaps.
    """

    dipole_molecular_weight: float = 1.0
    dipole_frame_weight: float = 1.0
    polarizability_molecular_weight: float = 1.0
    polarizability_frame_weight: float = 1.0
    loss_scale: float = 100.0
    response_cutoff: float = DEFAULT_CUTOFF
    response_switch_on: float = DEFAULT_SWITCH_ON
    training_dtype: str = "float64"
    validation_fraction: float = 0.2
    seed: int = 0
    fit: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, options: Mapping, source: str = "config") -> "TNEPFitConfig":
        """Build from a mapping; unknown keys and invalid values raise :class:`ConfigError`."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown option(s) {unknown}; expected some of {sorted(known)}")
        cfg = cls(**dict(options))
        cfg.validate(source)
        return cfg

    def validate(self, source: str = "config") -> None:
        """Raise :class:`ConfigError` for negative weights or an invalid split fraction or switch."""
        for name in ("dipole_molecular_weight", "dipole_frame_weight", "polarizability_molecular_weight",
                     "polarizability_frame_weight", "loss_scale"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{source}: {name}: expected >= 0, found {getattr(self, name)}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ConfigError(f"{source}: validation_fraction: expected 0 < f < 1, found "
                              f"{self.validation_fraction}")
        if not 0.0 <= self.response_switch_on < self.response_cutoff:
            raise ConfigError(f"{source}: need 0 <= response_switch_on < response_cutoff, found "
                              f"{self.response_switch_on} and {self.response_cutoff} Å")
        if self.training_dtype not in ("float32", "float64"):
            raise ConfigError(f"{source}: training_dtype: expected 'float32' or 'float64', found "
                              f"{self.training_dtype!r}")
        if not isinstance(self.fit, dict):
            raise ConfigError(f"{source}: fit: expected a mapping of FitConfig options, found "
                              f"{type(self.fit).__name__}")

    def fit_config(self):
        """The :class:`polarff.model.FitConfig` of the classifier (defaults, then ``fit``, then seed)."""
        from polarff.model import FitConfig

        options = {**DEFAULT_FIT_OPTIONS, **self.fit, "seed": self.seed}
        return FitConfig.from_dict(options, source="tnep fit options")


# ------------------------------------------------------------------------------------- loss term
@dataclass(frozen=True)
class _FrameInputs:
    """Numpy inputs of one frame for :class:`TNEPLoss` (geometry float64, targets in their units)."""

    n_atoms: int
    r_cubed: np.ndarray
    field_kernel: np.ndarray
    tensor_rr: np.ndarray
    tensor_identity: np.ndarray
    relative_positions: np.ndarray
    molecule_index: np.ndarray
    dipole_target: np.ndarray      # (M, 3) e·Å molecular dipoles
    dipole_mask: float
    polarizability_target: np.ndarray  # (M, 3, 3) Å³
    polarizability_mask: float


class TNEPLoss:
    """Loss on GPUMD/TNEP molecular and frame targets through the Thole response (a ``fit`` extra term).

    Called as ``term(seg, q_neutral, alpha, batch)`` by :func:`polarff.model.fit`, it scatters the
    batch's expected charges (e) and polarizabilities (Å³) into padded frames, solves the batched
    symmetric system ``(I − S T S) y = S F`` (Cholesky, float64; S = diag √α) for the permanent field and
    a uniform field along x, y, z, and returns (files' units, see the module docstring)::

        w_dm · MSE(adipole_m) + w_df · MSE(Σ adipole)/M_f + w_pm · MSE(apol_m) + w_pf · MSE(pol)/M_f

    over the frames that carry each label (M_f: molecules per frame). Frames lacking a label contribute
    nothing to its terms. :meth:`batch_inputs` supplies geometry and targets (precomputed once per
    frame and cached).

    Parameters
    ----------
    config : TNEPFitConfig
        Weights and response switch.
    thole_a : float
        Thole damping parameter (dimensionless).
    """

    prefix = "tnep_"

    def __init__(self, config: TNEPFitConfig | None = None, thole_a: float = THOLE_A):
        self.config = config or TNEPFitConfig()
        self.thole_a = float(thole_a)
        self._cache: dict[int, tuple[_FrameInputs, dict, Frame]] = {}

    # ---------------------------------------------------------------- inputs
    def frame_inputs(self, frame: Frame) -> _FrameInputs:
        """Geometry (float64) and targets of ``frame`` (computed on each call)."""
        return self._build_inputs(frame)

    def _frame_tensors(self, frame: Frame) -> tuple[_FrameInputs, dict]:
        """(inputs without geometry, geometry tensors (1, N, …) in the training dtype), cached by
        object identity so that each frame's geometry is computed and converted once."""
        import tensorflow as tf

        key = id(frame)
        if key not in self._cache:
            inputs = self._build_inputs(frame)
            dtype = np.dtype(self.config.training_dtype)
            tensors = {name: tf.constant(getattr(inputs, name)[None].astype(dtype)) for name in _GEOMETRY_FIELDS}
            light = replace(inputs, **{name: np.zeros(0) for name in _GEOMETRY_FIELDS})
            self._cache[key] = (light, tensors, frame)  # the frame is kept so that its id stays unique
        return self._cache[key][:2]

    def _build_inputs(self, frame: Frame) -> _FrameInputs:
        geometry = FrameGeometry.from_frame(frame, cutoff=self.config.response_cutoff,
                                            switch_on=self.config.response_switch_on)
        label_atoms = geometry.label_atoms
        dipole_mask = float("molecular_dipoles" in frame.labels)
        pol_mask = float("molecular_polarizabilities" in frame.labels)
        for name, present in (("molecular_dipoles", dipole_mask), ("molecular_polarizabilities", pol_mask)):
            if present and name in frame.label_masks and not np.all(frame.label_masks[name][label_atoms]):
                raise InputError("molecular labels are not on each molecule's first heavy atom",
                                 file=frame.info.get("source"), frame=frame.info.get("index"), field=name,
                                 expected="one value per molecule on its first heavy atom",
                                 found=f"{int(frame.label_masks[name].sum())} labelled atoms")
        dipoles = frame.labels["molecular_dipoles"][label_atoms] if dipole_mask else np.zeros((geometry.n_molecules, 3))
        pols = frame.labels["molecular_polarizabilities"][label_atoms] if pol_mask \
            else np.zeros((geometry.n_molecules, 3, 3))
        return _FrameInputs(geometry.n_atoms, geometry.r_cubed, geometry.field_kernel, geometry.tensor_rr,
                            geometry.tensor_identity, geometry.relative_positions, geometry.molecule_index,
                            np.asarray(dipoles, float), dipole_mask, np.asarray(pols, float), pol_mask)

    def batch_inputs(self, data, frame_sel: np.ndarray) -> dict:
        """Padded per-frame tensors of the frames ``frame_sel`` of ``data`` (a ``PreparedData``).

        Returns
        -------
        dict of str to tf.Tensor
            Keys start with ``tnep_``: geometry (B, N, N, …) padded to the largest frame, the slot of
            every batch atom in the padded layout, molecule ids, targets and masks.
        """
        import tensorflow as tf

        cached = [self._frame_tensors(data.frames[int(k)]) for k in np.asarray(frame_sel)]
        n_max = max(light.n_atoms for light, _ in cached)
        batch = {}
        for name, pad_value in _GEOMETRY_FIELDS.items():
            parts = []
            for light, tensors in cached:
                value = tensors[name]
                if light.n_atoms < n_max:
                    extra = n_max - light.n_atoms
                    pad = [[0, 0]] + [[0, extra]] * (2 if name != "relative_positions" else 1)
                    pad += [[0, 0]] * (len(value.shape) - len(pad))
                    value = tf.pad(value, pad, constant_values=pad_value)
                parts.append(value)
            batch[self.prefix + name] = parts[0] if len(parts) == 1 else tf.concat(parts, axis=0)
        dtype = np.dtype(self.config.training_dtype)
        for name, value in stack_frame_indices([light for light, _ in cached], n_max).items():
            value = value.astype(dtype) if value.dtype == np.float64 else value
            batch[self.prefix + name] = tf.constant(value)
        return batch

    # ---------------------------------------------------------------- loss
    def __call__(self, seg, q_neutral, alpha, batch):
        """Weighted loss (scalar, dtype of ``q_neutral``); ``seg`` is unused (frames come padded)."""
        import tensorflow as tf

        parts = self.parts(q_neutral, alpha, batch)
        cfg = self.config
        total = (cfg.dipole_molecular_weight * parts["dipole_molecular_mse"]
                 + cfg.dipole_frame_weight * parts["dipole_frame_mse_per_molecule"]
                 + cfg.polarizability_molecular_weight * parts["polarizability_molecular_mse"]
                 + cfg.polarizability_frame_weight * parts["polarizability_frame_mse_per_molecule"])
        return tf.cast(cfg.loss_scale * total, q_neutral.dtype)

    def parts(self, q_neutral, alpha, batch) -> dict:
        """Mean squared errors (files' units) of each target, scalar tensors of the training dtype."""
        import tensorflow as tf

        p = self.prefix
        dtype = tf.as_dtype(self.config.training_dtype)
        out = batched_response(batch, tf.cast(q_neutral, dtype), tf.cast(alpha, dtype), self.thole_a, prefix=p)
        mol_frame = batch[p + "molecule_frame"]
        n_frames = tf.shape(batch[p + "dipole_mask"])[0]
        mols_per_frame = tf.cast(tf.shape(mol_frame)[0], dtype) / tf.cast(n_frames, dtype)
        # dipoles: error of adipole (Å) is −½ Δμ (e·Å)
        d_err = 0.5 * (out["molecular_dipoles"] - tf.cast(batch[p + "dipole_target"], dtype))
        d_mask_f = tf.cast(batch[p + "dipole_mask"], dtype)
        d_mask_m = tf.gather(d_mask_f, mol_frame)
        a_err = out["molecular_polarizabilities"] - tf.cast(batch[p + "polarizability_target"], dtype)
        a_mask_f = tf.cast(batch[p + "polarizability_mask"], dtype)
        a_mask_m = tf.gather(a_mask_f, mol_frame)
        d_frame = tf.math.unsorted_segment_sum(d_err, mol_frame, n_frames)
        a_frame = tf.math.unsorted_segment_sum(a_err, mol_frame, n_frames)
        return {
            "dipole_molecular_mse": _masked_mse(tf.reshape(d_err, (-1, 3)), d_mask_m),
            "dipole_frame_mse_per_molecule": _masked_mse(d_frame, d_mask_f) / mols_per_frame,
            "polarizability_molecular_mse": _masked_mse(tf.reshape(a_err, (-1, 9)), a_mask_m),
            "polarizability_frame_mse_per_molecule":
                _masked_mse(tf.reshape(a_frame, (-1, 9)), a_mask_f) / mols_per_frame,
        }


def _masked_mse(errors, mask):
    """Mean over masked rows and all columns of errors² (0 when nothing is masked in)."""
    import tensorflow as tf

    n_cols = tf.cast(tf.shape(errors)[1], errors.dtype)
    total = tf.reduce_sum(tf.reduce_sum(tf.square(errors), axis=1) * mask)
    return total / tf.maximum(tf.reduce_sum(mask) * n_cols, 1.0)


#: Per-frame geometry arrays of :class:`_FrameInputs` (padded and stacked), with their padding value.
_GEOMETRY_FIELDS = {"r_cubed": 1.0, "field_kernel": 0.0, "tensor_rr": 0.0, "tensor_identity": 0.0,
                    "relative_positions": 0.0}


def stack_frame_inputs(inputs: Sequence[_FrameInputs]) -> dict[str, np.ndarray]:
    """Pad per-frame inputs to the largest frame and stack them (numpy; see :meth:`TNEPLoss.batch_inputs`).

    Padding atoms have zero kernels, r³ = 1, α = q = 0 (their rows of the system are the identity) and
    belong to a dummy molecule (id = number of real molecules) that is dropped.
    """
    n_max = max(f.n_atoms for f in inputs)
    out = {}
    for name, pad_value in _GEOMETRY_FIELDS.items():
        arrays = []
        for f in inputs:
            value = getattr(f, name)
            pad = [(0, n_max - f.n_atoms)] * (2 if name != "relative_positions" else 1)
            arrays.append(np.pad(value, pad + [(0, 0)] * (value.ndim - len(pad)), constant_values=pad_value))
        out[name] = np.stack(arrays)
    out.update(stack_frame_indices(inputs, n_max))
    return out


def stack_frame_indices(inputs: Sequence[_FrameInputs], n_max: int) -> dict[str, np.ndarray]:
    """Index arrays, targets and masks of a padded batch (the non-geometry part of the batch)."""
    n_mol_total = sum(int(f.molecule_index.max()) + 1 for f in inputs)
    molecule = np.full((len(inputs), n_max), n_mol_total, dtype=np.int32)
    slots, mol_frame, offset = [], [], 0
    for k, f in enumerate(inputs):
        n = f.n_atoms
        molecule[k, :n] = f.molecule_index + offset
        n_mol = int(f.molecule_index.max()) + 1
        mol_frame.append(np.full(n_mol, k, dtype=np.int32))
        slots.append(k * n_max + np.arange(n, dtype=np.int32))
        offset += n_mol
    return {"molecule": molecule.reshape(-1), "n_molecules": np.int32(n_mol_total),
            "atom_slot": np.concatenate(slots), "molecule_frame": np.concatenate(mol_frame),
            "dipole_target": np.concatenate([f.dipole_target for f in inputs]),
            "polarizability_target": np.concatenate([f.polarizability_target for f in inputs]),
            "dipole_mask": np.array([f.dipole_mask for f in inputs]),
            "polarizability_mask": np.array([f.polarizability_mask for f in inputs])}


def batched_response(batch: Mapping, charges, alpha, thole_a: float = THOLE_A, prefix: str = "tnep_") -> dict:
    """Thole response of a padded batch of frames (TensorFlow, differentiable in q and α).

    Parameters
    ----------
    batch : mapping of str to tf.Tensor
        The tensors of :func:`stack_frame_inputs` under ``prefix``.
    charges, alpha : tf.Tensor, shape (M,)
        Charges (e) and polarizabilities (Å³) of the batch atoms, frame after frame; their dtype is
        the computation dtype.
    thole_a : float
        Thole damping parameter.

    Returns
    -------
    dict of str to tf.Tensor
        ``molecular_dipoles`` (n_mol, 3) e·Å and ``molecular_polarizabilities`` (n_mol, 3, 3) Å³ (row
        sums), molecules numbered frame after frame; ``induced_dipoles`` (B, N, 3) e·Å.
    """
    import tensorflow as tf

    p = prefix
    dtype = alpha.dtype
    r_cubed = tf.cast(batch[p + "r_cubed"], dtype)
    b, n = tf.shape(r_cubed)[0], tf.shape(r_cubed)[1]
    slots = tf.cast(batch[p + "atom_slot"], tf.int32)[:, None]
    q = tf.reshape(tf.scatter_nd(slots, charges, (b * n,)), (b, n))
    a = tf.reshape(tf.scatter_nd(slots, alpha, (b * n,)), (b, n))
    product = a[:, :, None] * a[:, None, :]
    au3 = thole_a * r_cubed / tf.sqrt(tf.maximum(product, tf.cast(ALPHA_FLOOR**2, dtype)))
    decay = tf.exp(-au3)
    lambda3, lambda5 = 1.0 - decay, 1.0 - (1.0 + au3) * decay
    field = tf.einsum("bij,bijk,bj->bik", lambda3, tf.cast(batch[p + "field_kernel"], dtype), q)
    blocks = lambda5[..., None, None] * tf.cast(batch[p + "tensor_rr"], dtype) \
        - (lambda3 * tf.cast(batch[p + "tensor_identity"], dtype))[..., None, None] * tf.eye(3, dtype=dtype)
    tensor = tf.reshape(tf.transpose(blocks, (0, 1, 3, 2, 4)), (b, 3 * n, 3 * n))
    sqrt_a = tf.repeat(tf.sqrt(a), 3, axis=1)  # (B, 3N)
    matrix = tf.eye(3 * n, dtype=dtype) - sqrt_a[:, :, None] * tensor * sqrt_a[:, None, :]
    uniform = tf.tile(tf.eye(3, dtype=dtype), (n, 1))
    rhs = tf.concat([tf.reshape(field, (b, 3 * n, 1)), tf.broadcast_to(uniform, (b, 3 * n, 3))], axis=2)
    solved = sqrt_a[:, :, None] * tf.linalg.cholesky_solve(tf.linalg.cholesky(matrix), sqrt_a[:, :, None] * rhs)
    induced = tf.reshape(solved[:, :, 0], (b, n, 3))
    atomic_pol = tf.reshape(solved[:, :, 1:], (b, n, 3, 3))
    molecule = tf.cast(batch[p + "molecule"], tf.int32)
    n_mol = tf.cast(batch[p + "n_molecules"], tf.int32)
    atom_dipoles = q[:, :, None] * tf.cast(batch[p + "relative_positions"], dtype) + induced
    mol_dip = tf.math.unsorted_segment_sum(tf.reshape(atom_dipoles, (-1, 3)), molecule, n_mol + 1)[:-1]
    mol_pol = tf.math.unsorted_segment_sum(tf.reshape(atomic_pol, (-1, 3, 3)), molecule, n_mol + 1)[:-1]
    return {"molecular_dipoles": mol_dip, "molecular_polarizabilities": mol_pol, "induced_dipoles": induced}


# --------------------------------------------------------------------------------------- training
def read_tnep_frames(dipole_files: Sequence[str | os.PathLike] = (),
                     polarizability_files: Sequence[str | os.PathLike] = ()) -> list[Frame]:
    """Read GPUMD dipole and polarizability files and merge frames holding the same configuration.

    Returns
    -------
    list of Frame
        Dipole frames first (file order), each with the polarizability labels of an identical
        configuration added; then the polarizability frames that matched none. A configuration
        repeated within the files of one kind is kept once (its first occurrence), so that no
        configuration can fall in both the training and the validation part.

    Raises
    ------
    InputError
        If no file is given, or a file lacks the GPUMD labels of its kind.
    """
    from polarff.io import read_frames

    if not dipole_files and not polarizability_files:
        raise InputError("no training file given", field="files", expected="a GPUMD dipole and/or "
                         "polarizability extxyz file", found="none")
    merged: list[Frame] = []
    by_key: dict[bytes, Frame] = {}
    for kind, paths in (("dipole", dipole_files), ("polarizability", polarizability_files)):
        for path in paths:
            frames = read_frames(path)
            for frame in frames:
                _require_kind(frame, kind)
                key = _configuration_key(frame)
                known = by_key.get(key)
                if known is not None:
                    if KIND_LABELS[kind] not in known.labels:  # a dipole frame gains the α labels
                        _merge_labels(known, frame)
                    continue
                by_key[key] = frame
                merged.append(frame)
    return merged


def _require_kind(frame: Frame, kind: str) -> None:
    molecular = "molecular_dipoles" if kind == "dipole" else "molecular_polarizabilities"
    for name in (KIND_LABELS[kind], molecular):
        if name not in frame.labels:
            raise InputError(f"frame lacks the GPUMD {kind} labels", file=frame.info.get("source"),
                             frame=frame.info.get("index"), field=name,
                             expected="adipole + dipole columns" if kind == "dipole" else "apol + pol columns",
                             found=sorted(frame.labels))


def _configuration_key(frame: Frame) -> bytes:
    cell = frame.cell if frame.cell is not None else np.zeros((3, 3))
    return " ".join(frame.symbols).encode() + np.round(frame.positions, 4).tobytes() + np.round(cell, 4).tobytes()


def _merge_labels(target: Frame, source: Frame) -> None:
    for name in ("molecular_polarizabilities", "polarizability"):
        target.labels[name] = source.labels[name]
    target.label_masks["molecular_polarizabilities"] = source.label_masks["molecular_polarizabilities"]
    target.info.setdefault("merged_from", []).append(f"{source.info.get('source')}#{source.info.get('index')}")


def split_tnep_frames(n_frames: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) indices of the training frames; at least one frame in each part."""
    from polarff.data import split_indices

    if n_frames < 2:
        raise InputError("too few training frames for a validation split", field="frames",
                         expected=">= 2", found=n_frames)
    train, val = split_indices(n_frames, (1.0 - validation_fraction, validation_fraction), seed=seed)
    if len(val) == 0:
        train, val = train[:-1], train[-1:]
    if len(train) == 0:
        train, val = val[:1], val[1:]
    return np.asarray(train), np.asarray(val)


def frame_kinds(frames: Sequence[Frame]) -> list[str]:
    """TNEP kinds (``dipole``, ``polarizability``) whose frame labels some frame carries."""
    return [kind for kind, label in KIND_LABELS.items() if any(label in f.labels for f in frames)]


def fit_tnep(dipole_files: Sequence[str | os.PathLike] = (),
             polarizability_files: Sequence[str | os.PathLike] = (),
             config: TNEPFitConfig | None = None, out_path: str | os.PathLike | None = None,
             progress: bool = True, log=None):
    """Train a charge + polarizability model on GPUMD/TNEP dipole and/or polarizability files.

    The frames of the training files are merged (identical configurations share one frame), split
    into training and validation parts (``config.validation_fraction``, seeded), and the classifier is
    trained with :class:`TNEPLoss` only (no per-atom labels exist; ``FitConfig.bin_ranges`` give the
    class centres). Model selection keeps the epoch of the lowest validation loss; test files are
    never read here.

    Parameters
    ----------
    dipole_files, polarizability_files : sequence of path-like
        GPUMD extxyz files (``adipole``/``dipole`` and ``apol``/``pol`` columns).
    config : TNEPFitConfig, optional
        Loss weights, response switch, split and FitConfig options.
    out_path : path-like, optional
        Where to save the ``.pff`` model (its card gains a ``tnep`` section).
    progress : bool
        Print training progress to stderr.

    Returns
    -------
    model : PolarffModel
    report : dict
        ``fit`` (the :func:`polarff.model.fit` report), ``validation`` and ``train`` RMSE per kind in
        the files' units, frame counts, seconds.
    """
    from polarff.model import fit

    config = config or TNEPFitConfig()
    config.validate()
    start = time.perf_counter()
    frames = read_tnep_frames(dipole_files, polarizability_files)
    train_idx, val_idx = split_tnep_frames(len(frames), config.validation_fraction, config.seed)
    loss = TNEPLoss(config)
    fit_cfg = config.fit_config()
    model, fit_report = fit(frames, fit_cfg, out_path=None, progress=progress,
                            extra_terms={"tnep": (1.0, loss)},
                            split=(train_idx, val_idx, np.zeros(0, dtype=int)), log=log)
    kinds = frame_kinds(frames)
    report = {"fit": fit_report, "kinds": kinds, "seconds": time.perf_counter() - start,
              "n_frames": {"train": len(train_idx), "validation": len(val_idx)}}
    for part, idx in (("validation", val_idx), ("train", train_idx)):
        subset = [frames[i] for i in idx]
        report[part] = {kind: rmse_in_file_units(model, subset, kind, config) for kind in frame_kinds(subset)}
    model.card["tnep"] = {
        "trained_on": kinds, "units": {k: KIND_UNITS[k] for k in kinds},
        "files": {"dipole": [str(p) for p in dipole_files], "polarizability": [str(p) for p in polarizability_files]},
        "validation_rmse": report["validation"], "train_rmse": report["train"],
        "response": {"thole_a": THOLE_A, "cutoff": config.response_cutoff,
                     "switch_on": config.response_switch_on, "units": "Å"},
        "config": {k: v for k, v in asdict(config).items() if k != "fit"},
        "split": {"train": train_idx.tolist(), "validation": val_idx.tolist()},
    }
    if out_path is not None:
        model.save(out_path)
    return model, report


def rmse_in_file_units(model, frames: Sequence[Frame], kind: str, config: TNEPFitConfig | None = None) -> float:
    """Component RMSE of polarff's frame totals against the file labels, in the files' units."""
    from polarff.tnep import component_rmse, gpumd_targets

    frames = [f for f in frames if KIND_LABELS[kind] in f.labels]
    predictions, _ = predict_tnep(model, frames, kind, config=config)
    return component_rmse(predictions, gpumd_targets(frames, kind))


# -------------------------------------------------------------------------------------- inference
class NumpyNetwork:
    """Keras-free forward pass of a :class:`polarff.artifact.PolarffModel` (numpy, float64).

    Computes the same expected charges (neutralised exactly per frame) and polarizabilities as
    :func:`polarff.model.predict`, without building a Keras model.
    """

    def __init__(self, model):
        self.model = model
        net = model.network
        self.mean, self.std = np.asarray(net.feature_mean, float), np.asarray(net.feature_std, float)
        self.layers = [(model.weights[f"dense_{k}/kernel"].astype(float),
                        model.weights[f"dense_{k}/bias"].astype(float)) for k in range(len(net.hidden))]
        self.activation = net.activation
        self.heads = {}
        for target, binning in model.bins.items():
            self.heads[target] = (model.weights[f"head_{target}/kernel"].astype(float),
                                  model.weights[f"head_{target}/bias"].astype(float),
                                  np.where(binning.valid, 0.0, -1e9), np.asarray(binning.centres, float))
        self.n_species = model.descriptor.n_species

    def __call__(self, features: np.ndarray, species: np.ndarray, total_charge: float = 0.0
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Charges (e, summing to ``total_charge``) and polarizabilities (Å³) of one frame's atoms."""
        h = np.concatenate([(features - self.mean) / self.std, np.eye(self.n_species)[species]], axis=1)
        for kernel, bias in self.layers:
            z = h @ kernel + bias
            h = z / (1.0 + np.exp(-z)) if self.activation == "silu" else np.tanh(z)
        out = {}
        for target, (kernel, bias, log_valid, centres) in self.heads.items():
            n_cls = centres.shape[1]
            logits = (h @ kernel + bias).reshape(len(h), self.n_species, n_cls)
            logits = logits[np.arange(len(h)), species] + log_valid[species]
            logits -= logits.max(axis=1, keepdims=True)
            prob = np.exp(logits)
            prob /= prob.sum(axis=1, keepdims=True)
            out[target] = np.sum(prob * centres[species], axis=1)
        q = out["charges"]
        return q - (q.sum() - total_charge) / len(q), out["polarizabilities"]


@dataclass(frozen=True)
class WaterTopology:
    """Molecule bookkeeping of a frame, fixed along a trajectory (not timed in per-frame inference).

    Attributes
    ----------
    molecule_index : ndarray of int (N,)
    first_atom : ndarray of int (N,)
        First atom of each atom's molecule (the anchor of molecular dipoles, as in FrameGeometry).
    gpumd_weights : ndarray (N,)
        +1 on H, −2 on O: Σ_i w_i (r_i − r_first) = Σ_m (r_H1 + r_H2 − 2 r_O) (Å) for whole waters.
    n_molecules : int
    is_water : bool
        Whether every molecule is one O and two H (needed for the GPUMD dipole convention).
    """

    molecule_index: np.ndarray
    first_atom: np.ndarray
    gpumd_weights: np.ndarray
    n_molecules: int
    is_water: bool

    @classmethod
    def from_frame(cls, frame: Frame) -> "WaterTopology":
        mol = frame.info.get("molecule_index")
        mol = molecules(frame) if mol is None else np.asarray(mol, dtype=int)
        n_mol = int(mol.max()) + 1 if len(mol) else 0
        first_of = np.full(n_mol, -1)
        for i in range(len(mol) - 1, -1, -1):
            first_of[mol[i]] = i
        symbols = np.asarray(frame.symbols)
        weights = np.where(symbols == "H", 1.0, np.where(symbols == "O", -2.0, 0.0))
        counts_o = np.bincount(mol, weights=symbols == "O", minlength=n_mol)
        counts_h = np.bincount(mol, weights=symbols == "H", minlength=n_mol)
        sizes = np.bincount(mol, minlength=n_mol)
        is_water = bool(np.all((counts_o == 1) & (counts_h == 2) & (sizes == 3)))
        return cls(mol, first_of[mol], weights, n_mol, is_water)


def thole_response_dense(positions: np.ndarray, cell: np.ndarray | None, topology: WaterTopology,
                         charges: np.ndarray, alpha: np.ndarray, cutoff: float = DEFAULT_CUTOFF,
                         switch_on: float = DEFAULT_SWITCH_ON, thole_a: float = THOLE_A,
                         need_dipole: bool = True, need_polarizability: bool = True) -> dict[str, np.ndarray]:
    """Fast, vectorised evaluation of the :mod:`polarff.response` physics for one frame (numpy).

    Same equations and conventions as :func:`polarff.response.response` (molecules anchored at their
    first atom; periodic pairs by minimum image, switched between ``switch_on`` and ``cutoff``); one
    Cholesky factorisation of ``I − S T S`` serves all right-hand sides.

    Parameters
    ----------
    positions : ndarray (N, 3)
        Positions in Å.
    cell : ndarray (3, 3) or None
        Lattice vectors (rows, Å) of a fully periodic frame; None for an isolated one.
    topology : WaterTopology
        Molecules of the frame.
    charges, alpha : ndarray (N,)
        Charges (e) and polarizabilities (Å³, > 0).

    Returns
    -------
    dict of ndarray
        ``molecular_dipoles`` (M, 3) e·Å, ``dipole`` (3,) e·Å, ``gpumd_dipole`` (3,) Å (Σ adipole, only for
        whole waters), ``molecular_polarizabilities`` (M, 3, 3) and ``polarizability`` (3, 3) Å³ —
        whichever were asked for.

    Raises
    ------
    InputError
        On a polarization catastrophe (the scaled system is not positive definite).
    """
    import scipy.linalg

    n = len(positions)
    periodic = cell is not None
    inverse = np.linalg.inv(cell) if periodic else None

    def minimum_image(vectors: np.ndarray) -> np.ndarray:
        if not periodic:
            return vectors
        flat = vectors.reshape(-1, 3)
        frac = flat @ inverse
        return ((frac - np.rint(frac)) @ cell).reshape(vectors.shape)

    relative = minimum_image(positions - positions[topology.first_atom])
    vectors = minimum_image(positions[:, None, :] - positions[None, :, :])  # r_i − r_j
    r2 = np.einsum("ijk,ijk->ij", vectors, vectors)
    np.fill_diagonal(r2, 1.0)
    r = np.sqrt(r2)
    weight = switch(r, switch_on, cutoff) if periodic else np.ones_like(r)
    np.fill_diagonal(weight, 0.0)
    r3 = r2 * r
    au3 = thole_a * r3 / np.sqrt(np.maximum(alpha[:, None] * alpha[None, :], ALPHA_FLOOR**2))
    decay = np.exp(-au3)
    lambda3 = 1.0 - decay
    lambda5 = 1.0 - (1.0 + au3) * decay
    sqrt_a = np.sqrt(alpha)
    scale = sqrt_a[:, None] * sqrt_a[None, :] * weight / r3
    c5 = (3.0 * lambda5 / r2) * scale
    c3 = lambda3 * scale
    matrix = np.empty((n, 3, n, 3))  # I − S T S, built in the (atom, component) layout directly
    for x in range(3):
        for y in range(x, 3):
            block = c5 * vectors[:, :, x] * vectors[:, :, y]
            if x == y:
                block -= c3
            matrix[:, x, :, y] = -block
            if x != y:
                matrix[:, y, :, x] = -block
    matrix = matrix.reshape(3 * n, 3 * n)
    matrix[np.diag_indices(3 * n)] += 1.0
    columns = []
    if need_dipole:
        inter = topology.molecule_index[:, None] != topology.molecule_index[None, :]
        coef = lambda3 * weight * inter / r3 * charges[None, :]
        field = np.einsum("ij,ijk->ik", coef, vectors)
        columns.append(field.reshape(3 * n, 1))
    if need_polarizability:
        columns.append(np.tile(np.eye(3), (n, 1)))
    rhs = np.repeat(sqrt_a, 3)[:, None] * np.concatenate(columns, axis=1)
    try:
        factor = scipy.linalg.cho_factor(matrix, lower=True, overwrite_a=True, check_finite=False)
    except np.linalg.LinAlgError:
        raise InputError("polarization catastrophe: I − α^½ T α^½ is not positive definite",
                         field="polarizabilities", expected="positive definite",
                         found="Cholesky failed") from None
    solved = np.repeat(sqrt_a, 3)[:, None] * scipy.linalg.cho_solve(factor, rhs, check_finite=False)
    out: dict[str, np.ndarray] = {}
    mol, n_mol = topology.molecule_index, topology.n_molecules
    if need_dipole:
        atom_dipoles = charges[:, None] * relative + solved[:, 0].reshape(n, 3)
        mol_dip = np.stack([np.bincount(mol, weights=atom_dipoles[:, k], minlength=n_mol) for k in range(3)], axis=1)
        out["molecular_dipoles"] = mol_dip
        out["dipole"] = mol_dip.sum(axis=0)
        if topology.is_water:
            out["gpumd_dipole"] = 0.5 * (topology.gpumd_weights @ relative - out["dipole"])
    if need_polarizability:
        atomic = solved[:, -3:].reshape(n, 9)
        mol_pol = np.stack([np.bincount(mol, weights=atomic[:, k], minlength=n_mol) for k in range(9)], axis=1)
        out["molecular_polarizabilities"] = mol_pol.reshape(n_mol, 3, 3)
        out["polarizability"] = atomic.sum(axis=0).reshape(3, 3)
    return out


def _response_settings(model, config: TNEPFitConfig | None) -> tuple[float, float]:
    if config is not None:
        return config.response_cutoff, config.response_switch_on
    settings = model.card.get("tnep", {}).get("response", {})
    return float(settings.get("cutoff", DEFAULT_CUTOFF)), float(settings.get("switch_on", DEFAULT_SWITCH_ON))


def _check_periodic(frame: Frame, cutoff: float, switch_on: float) -> None:
    """The dense response needs a fully periodic cell wider than twice the cutoff."""
    from polarff.response import _check_cutoff  # same rule as FrameGeometry

    if not np.all(frame.pbc):
        raise InputError("partially periodic frames are not supported", file=frame.info.get("source"),
                         frame=frame.info.get("index"), field="pbc", expected="all or none",
                         found=frame.pbc.tolist())
    _check_cutoff(frame, cutoff, switch_on)


def predict_tnep(model, frames: Sequence[Frame], kind: str, config: TNEPFitConfig | None = None,
                 network: NumpyNetwork | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frame totals in the GPUMD files' units, and the wall time of each frame.

    Per frame (timed): descriptors, network forward pass (numpy), Thole response, conversion to the
    file convention. Not timed: the molecule topology (fixed along a trajectory). BLAS/OpenMP pools
    are limited to one thread meanwhile: one frame's dense solve is too small to gain from threads, and
    on a loaded machine their spin-waiting cost up to 100× (measured: 1.8 s instead of 10 ms per frame
    with OMP_NUM_THREADS=2 at load average 7.5); frames are independent, so parallelise across frames.

    Parameters
    ----------
    model : PolarffModel
        Trained model (e.g. from :func:`fit_tnep`).
    frames : sequence of Frame
        Whole-water frames for ``dipole``; any molecules for ``polarizability``.
    kind : {'dipole', 'polarizability'}
        ``dipole``: Σ adipole in Å, shape (F, 3); ``polarizability``: Σ apol in Å³, shape (F, 3, 3).
    config : TNEPFitConfig, optional
        Response switch; by default the one recorded in the model card.

    Returns
    -------
    predictions : ndarray
    seconds : ndarray (F,)
        Wall time of each frame in s.
    """
    from threadpoolctl import threadpool_limits

    if kind not in KIND_LABELS:
        raise ConfigError(f"unknown TNEP kind {kind!r}; expected one of {sorted(KIND_LABELS)}")
    network = network or NumpyNetwork(model)
    cutoff, switch_on = _response_settings(model, config)
    with threadpool_limits(limits=1):  # a 3N×3N solve of a few hundred atoms: threads only contend
        return _predict_frames(model, network, frames, kind, cutoff, switch_on)


def _predict_frames(model, network: NumpyNetwork, frames: Sequence[Frame], kind: str, cutoff: float,
                    switch_on: float) -> tuple[np.ndarray, np.ndarray]:
    from polarff.descriptors import compute_descriptors

    dcfg = model.descriptor
    values, seconds = [], []
    for frame in frames:
        topology = WaterTopology.from_frame(frame)
        if kind == "dipole" and not topology.is_water:
            raise InputError("the GPUMD dipole convention needs whole water molecules", file=frame.info.get("source"),
                             frame=frame.info.get("index"), field="species", expected="H2O molecules",
                             found="other molecules")
        species = dcfg.species_index(frame.symbols, frame.info.get("source", "<memory>"), frame.info.get("index"))
        cell = frame.cell if frame.periodic else None
        if frame.periodic:
            _check_periodic(frame, cutoff, switch_on)
        start = time.perf_counter()
        charges, alpha = network(compute_descriptors(dcfg, frame), species, frame.total_charge)
        out = thole_response_dense(frame.positions, cell, topology, charges, alpha, cutoff, switch_on,
                                   need_dipole=kind == "dipole", need_polarizability=kind == "polarizability")
        values.append(out["gpumd_dipole" if kind == "dipole" else "polarizability"])
        seconds.append(time.perf_counter() - start)
    shape = (len(frames), 3) if kind == "dipole" else (len(frames), 3, 3)
    return np.asarray(values).reshape(shape), np.asarray(seconds)


# ------------------------------------------------------------------------------------- evaluation
@dataclass
class TNEPComparisonRow:
    """One test file: polarff and TNEP on the same frames, in the file's own units.

    Attributes
    ----------
    kind : str
        ``dipole`` or ``polarizability``.
    test_file : str
    n_frames : int
    unit : str
    polarff_model : str
    polarff_rmse : float
        Component RMSE of the frame totals (all components of all frames).
    polarff_ms_per_frame : float
        Mean wall time per frame (best of the repeats), descriptors + network + response.
    tnep_model : str or None
    tnep_rmse, tnep_ms_per_frame : float or None
        The same for the TNEP model (calorine on CPU); None when no TNEP model was given or found.
    reference, polarff_predictions, tnep_predictions : ndarray
        Frame totals (F, 3) or (F, 3, 3) for the parity plots.
    """

    kind: str
    test_file: str
    n_frames: int
    unit: str
    polarff_model: str
    polarff_rmse: float
    polarff_ms_per_frame: float
    tnep_model: str | None
    tnep_rmse: float | None
    tnep_ms_per_frame: float | None
    reference: np.ndarray
    polarff_predictions: np.ndarray
    tnep_predictions: np.ndarray | None

    def summary(self) -> dict:
        """The scalar fields (JSON-ready)."""
        return {k: v for k, v in asdict(self).items() if not isinstance(v, np.ndarray)}


def find_tnep_model(test_file: str | os.PathLike, kind: str) -> str | None:
    """``nep.txt`` beside ``test_file`` if its header is a TNEP model of ``kind`` (the GPUMD layout)."""
    from polarff.tnep import _model_header

    candidate = os.path.join(os.path.dirname(os.path.abspath(test_file)), "nep.txt")
    if not os.path.isfile(candidate):
        return None
    try:
        model_kind, _ = _model_header(candidate)
    except InputError:
        return None
    return candidate if model_kind == kind else None


def _model_for_kind(models: Mapping[str, object], kind: str, where: str) -> tuple[str, object]:
    trained = [(path, m) for path, m in models.items() if kind in m.card.get("tnep", {}).get("trained_on", [])]
    if trained:
        return trained[0]
    raise ModelError(f"no model given was trained on TNEP {kind} targets (needed for {where}); models: "
                     + ", ".join(f"{p} (trained on {m.card.get('tnep', {}).get('trained_on', 'no TNEP data')})"
                                 for p, m in models.items()))


def eval_tnep(model_paths: str | os.PathLike | Sequence[str | os.PathLike],
              test_files: Sequence[str | os.PathLike],
              tnep_models: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike] | None = None,
              repeats: int = 3, frames: Mapping[str, Sequence[Frame]] | None = None
              ) -> list[TNEPComparisonRow]:
    """Side-by-side evaluation of polarff and TNEP on GPUMD test files (same run, same frames).

    Parameters
    ----------
    model_paths : path-like or sequence of path-like
        polarff model(s) from :func:`fit_tnep`; each file's kind is evaluated with the first model whose
        card says it was trained on that kind.
    test_files : sequence of path-like
        GPUMD extxyz files; the kind of each (dipole / polarizability) is read from its labels.
    tnep_models : mapping kind → path, or sequence of paths, optional
        TNEP ``nep.txt`` models (kind read from their headers). By default the ``nep.txt`` beside each test
        file is used when it is a model of the file's kind; without one the TNEP columns stay empty.
    repeats : int
        Timing repeats of both models; the best mean per frame is reported (the machine may be shared).
    frames : mapping path → frames, optional
        Already-read frames of the test files (skips reading).

    Returns
    -------
    list of TNEPComparisonRow
        One row per (test file, kind).

    Raises
    ------
    ModelError
        If no model was trained on a kind present in the test files.
    InputError
        If a test file carries no GPUMD dipole or polarizability labels, or a TNEP model is unusable.
    """
    from polarff.artifact import load_model
    from polarff.io import read_frames
    from polarff.tnep import _model_header, component_rmse, gpumd_targets, tnep_predict

    if isinstance(model_paths, (str, os.PathLike)):
        model_paths = [model_paths]
    models = {str(p): load_model(p) for p in model_paths}
    tnep_by_kind: dict[str, str] = {}
    if isinstance(tnep_models, Mapping):
        tnep_by_kind = {k: str(v) for k, v in tnep_models.items()}
    elif tnep_models:
        for path in tnep_models:
            tnep_by_kind[_model_header(str(path))[0]] = str(path)
    if repeats < 1:
        raise ConfigError(f"repeats: expected >= 1, found {repeats}")
    rows = []
    for test_file in test_files:
        test_file = str(test_file)
        file_frames = list(frames[test_file]) if frames and test_file in frames else read_frames(test_file)
        kinds = frame_kinds(file_frames)
        if not kinds:
            raise InputError("no GPUMD dipole or polarizability labels in the file", file=test_file,
                             field="labels", expected="adipole/dipole or apol/pol columns",
                             found=sorted(file_frames[0].labels))
        for kind in kinds:
            subset = [f for f in file_frames if KIND_LABELS[kind] in f.labels]
            model_path, model = _model_for_kind(models, kind, test_file)
            reference = gpumd_targets(subset, kind)
            network = NumpyNetwork(model)
            tnep_path = tnep_by_kind.get(kind) or find_tnep_model(test_file, kind)
            best_polarff, best_tnep, tnep_values = np.inf, np.inf, None
            for _ in range(repeats):
                predictions, seconds = predict_tnep(model, subset, kind, network=network)
                best_polarff = min(best_polarff, float(np.mean(seconds)))
                if tnep_path is not None:
                    tnep_values, per_frame = tnep_predict(subset, tnep_path, kind)
                    best_tnep = min(best_tnep, per_frame)
            rows.append(TNEPComparisonRow(
                kind=kind, test_file=test_file, n_frames=len(subset), unit=KIND_UNITS[kind],
                polarff_model=model_path, polarff_rmse=component_rmse(predictions, reference),
                polarff_ms_per_frame=1e3 * best_polarff, tnep_model=tnep_path,
                tnep_rmse=None if tnep_values is None else component_rmse(tnep_values, reference),
                tnep_ms_per_frame=None if tnep_values is None else 1e3 * best_tnep,
                reference=reference, polarff_predictions=predictions, tnep_predictions=tnep_values))
    return rows


def format_comparison(rows: Sequence[TNEPComparisonRow], markdown: bool = False) -> str:
    """The comparison table as text (or a Markdown table with ``markdown=True``)."""
    def num(value, fmt):
        return "—" if value is None else format(value, fmt)

    header = ["target", "test frames", "unit", "polarff RMSE", "TNEP RMSE", "polarff ms/frame", "TNEP ms/frame"]
    lines = []
    body = [[r.kind, str(r.n_frames), r.unit, num(r.polarff_rmse, ".4f"), num(r.tnep_rmse, ".4f"),
             num(r.polarff_ms_per_frame, ".1f"), num(r.tnep_ms_per_frame, ".1f")] for r in rows]
    if markdown:
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---" for _ in header) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in body]
    else:
        widths = [max(len(h), *(len(row[k]) for row in body)) for k, h in enumerate(header)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in body]
    return "\n".join(lines)


def parity_plots(rows: Sequence[TNEPComparisonRow], out_dir: str | os.PathLike, prefix: str = "tnep-water"
                 ) -> list[str]:
    """One PNG parity plot per row (polarff and TNEP against the reference, files' units).

    Dipoles: all components in one panel. Polarizabilities: diagonal and off-diagonal components in
    two panels. Returns the paths written (``{prefix}-{kind}-parity.png``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    written = []
    for row in rows:
        ref = row.reference.reshape(row.n_frames, -1)
        preds = [("polarff", row.polarff_predictions, row.polarff_rmse, "tab:blue")]
        if row.tnep_predictions is not None:
            preds.append(("TNEP", row.tnep_predictions, row.tnep_rmse, "tab:orange"))
        if row.kind == "dipole":
            panels = [("Σ adipole components", np.ones(3, bool))]
        else:
            diagonal = np.eye(3, dtype=bool).ravel()
            panels = [("diagonal components", diagonal), ("off-diagonal components", ~diagonal)]
        fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.4), squeeze=False)
        for ax, (title, columns) in zip(axes[0], panels):
            x = ref[:, columns].ravel()
            for label, values, rmse, color in preds:
                ax.scatter(x, values.reshape(row.n_frames, -1)[:, columns].ravel(), s=7, alpha=0.6,
                           color=color, label=f"{label} (RMSE {rmse:.3f})")
            low, high = float(x.min()), float(x.max())
            pad = 0.05 * (high - low)
            ax.plot([low - pad, high + pad], [low - pad, high + pad], color="k", lw=0.8)
            ax.set_xlabel(f"reference ({row.unit})")
            ax.set_ylabel(f"predicted ({row.unit})")
            ax.set_title(f"{row.kind}: {title}", fontsize=10)
            ax.legend(fontsize=8, loc="upper left")
        fig.suptitle(f"{os.path.basename(os.path.dirname(row.test_file))}/{os.path.basename(row.test_file)}, "
                     f"{row.n_frames} frames; RMSE over all components", fontsize=9)
        fig.tight_layout()
        path = os.path.join(str(out_dir), f"{prefix}-{row.kind}-parity.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


# ----------------------------------------------------------------------------------- command line
def load_tnep_config(path: str | None, overrides: Mapping | None = None) -> TNEPFitConfig:
    """:class:`TNEPFitConfig` from a YAML file (optional) with command-line ``overrides`` applied.

    Raises
    ------
    ConfigError
        If the file is missing, not YAML, not a mapping, or has unknown options.
    """
    from polarff.fileio import read_yaml_mapping

    options = read_yaml_mapping(path) if path else {}
    options = dict(options)
    fit_options = dict(options.get("fit") or {})
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key in TNEPFitConfig.__dataclass_fields__:
            options[key] = value
        else:
            fit_options[key] = value
    options["fit"] = fit_options
    return TNEPFitConfig.from_dict(options, source=path or "options")


from polarff.cli import Command, register  # noqa: E402  (CLI wrappers below)


class FitTNEP(Command):
    name = "fit-tnep"
    help = "train charges + polarizabilities on GPUMD/TNEP dipole and/or polarizability files"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dipole", nargs="+", default=[], metavar="XYZ",
                       help="GPUMD dipole training file(s) (adipole + dipole columns)")
        p.add_argument("--polarizability", nargs="+", default=[], metavar="XYZ",
                       help="GPUMD polarizability training file(s) (apol + pol columns)")
        p.add_argument("-o", "--output", required=True, help="model file to write (.pff)")
        p.add_argument("--config", help="YAML file with TNEPFitConfig options (FitConfig options under 'fit:')")
        p.add_argument("--epochs", type=int, help="training epochs")
        p.add_argument("--seed", type=int, help="seed of split, initialisation and batch order")
        p.add_argument("--report", help="write the training report (JSON) here")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        config = load_tnep_config(args.config, {"epochs": args.epochs, "seed": args.seed})
        model, report = fit_tnep(args.dipole, args.polarizability, config, out_path=args.output)
        print(f"wrote {args.output} (best epoch {report['fit']['best_epoch']}, {report['seconds']:.0f} s)")
        for kind, value in report["validation"].items():
            print(f"  validation {kind} RMSE {value:.4f} {KIND_UNITS[kind]}  "
                  f"(train {report['train'].get(kind, float('nan')):.4f})")
        if args.report:
            from polarff.fileio import write_json

            write_json(args.report, report)
        return 0


class TNEPEval(Command):
    name = "tnep-eval"
    help = "compare polarff and TNEP (calorine, CPU) on GPUMD test files: RMSE and time per frame"

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("models", nargs="+", help="polarff model(s) from fit-tnep (.pff)")
        p.add_argument("--test", nargs="+", required=True, metavar="XYZ", help="GPUMD test file(s)")
        p.add_argument("--tnep-model", nargs="+", default=None, metavar="NEP",
                       help="TNEP nep.txt model(s); default: nep.txt beside each test file")
        p.add_argument("--repeats", type=int, default=3, help="timing repeats, best kept (default 3)")
        p.add_argument("--plots", help="directory for the parity plots (PNG)")
        p.add_argument("--json", help="write the table as JSON here")
        p.add_argument("--markdown", help="write the table as Markdown here")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        rows = eval_tnep(args.models, args.test, args.tnep_model, repeats=args.repeats)
        print(format_comparison(rows))
        if args.plots:
            for path in parity_plots(rows, args.plots):
                print(f"wrote {path}")
        if args.json:
            from polarff.fileio import write_json

            write_json(args.json, [r.summary() for r in rows])
        if args.markdown:
            from polarff.fileio import write_text

            write_text(args.markdown, format_comparison(rows, markdown=True) + "\n")
        return 0


register(FitTNEP)
register(TNEPEval)


if __name__ == "__main__":  # `python -m polarff.tnep_fit fit-tnep|tnep-eval ...` before the CLI imports this module
    import sys

    from polarff.cli import main

    sys.exit(main())
