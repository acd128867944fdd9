"""Reference harness for GPUMD TNEP dipole / polarizability models, run on CPU with calorine.

The TNEP water models (``../shared/data/tnep-water``) predict frame totals in the units of their training
files: the dipole model predicts Σ adipole (Å; the sum of per-oxygen Wannier-centre offsets, *not* e·Å)
and the polarizability model Σ apol (Å³ by magnitude). polarff works in e·Å; use
:func:`gpumd_dipole_from_molecular` to express polarff molecular dipoles in the file's convention so the
two models are compared on the same numbers.
"""

from __future__ import annotations

import os
import time
from typing import Sequence

import numpy as np

from polarff.data import Frame, molecules, unwrap_molecules
from polarff.errors import ConfigError, InputError

#: Kinds of TNEP model this harness runs, and the calorine function for each.
KINDS = ("dipole", "polarizability")


def _model_header(model_path: str) -> tuple[str, list[str]]:
    """(model type, species) from the first line of a ``nep.txt`` file, e.g. ``nep4_dipole 2 O H``."""
    if not os.path.isfile(model_path):
        raise InputError("TNEP model file not found", file=model_path, expected="a GPUMD nep.txt file")
    with open(model_path) as handle:
        words = handle.readline().split()
    if len(words) < 3 or not words[0].startswith("nep"):
        raise InputError("not a GPUMD NEP model file", file=model_path, field="header",
                         expected="'nep4_<kind> <n> <species...>'", found=" ".join(words[:4]))
    kind = words[0].split("_", 1)[1] if "_" in words[0] else "potential"
    return kind, words[2:2 + int(words[1])]


def tnep_predict(frames: Sequence[Frame], model_path: str | os.PathLike, kind: str
                 ) -> tuple[np.ndarray, float]:
    """Predict frame dipoles or polarizabilities with a TNEP model (calorine, CPU).

    Parameters
    ----------
    frames : sequence of Frame
        Structures (periodic or not); converted with :func:`polarff.io.frame_to_atoms`.
    model_path : path-like
        GPUMD ``nep.txt`` of a ``nep*_dipole`` or ``nep*_polarizability`` model.
    kind : {'dipole', 'polarizability'}
        What to predict; must match the model's header.

    Returns
    -------
    predictions : ndarray, shape (F, 3) or (F, 3, 3)
        Frame totals in the units of the model's training files (water models: Σ adipole in Å,
        Σ apol in Å³).
    seconds_per_frame : float
        Mean wall time per frame of the calorine call (model set-up included, as calorine re-reads the
        model on each call).

    Raises
    ------
    ConfigError
        If ``kind`` is unknown.
    InputError
        If the model file is missing, of another kind, or lacks a species present in the frames.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown TNEP kind {kind!r}; expected one of {KINDS}")
    model_path = str(model_path)
    model_kind, species = _model_header(model_path)
    if model_kind != kind:
        raise InputError("TNEP model is of another kind", file=model_path, field="header",
                         expected=kind, found=model_kind)
    for frame in frames:
        missing = sorted(set(frame.symbols) - set(species))
        if missing:
            raise InputError("frame has species the TNEP model does not know", file=frame.info.get("source"),
                             frame=frame.info.get("index"), field="species", expected=species, found=missing)
    from calorine.nep import get_dipole, get_polarizability

    from polarff.io import frame_to_atoms

    predict = get_dipole if kind == "dipole" else get_polarizability
    atoms = [frame_to_atoms(frame) for frame in frames]
    start = time.perf_counter()
    values = [np.asarray(predict(a, model_filename=model_path), dtype=np.float64) for a in atoms]
    elapsed = time.perf_counter() - start
    shape = (len(frames), 3) if kind == "dipole" else (len(frames), 3, 3)
    return np.asarray(values).reshape(shape), elapsed / max(len(frames), 1)


def gpumd_targets(frames: Sequence[Frame], kind: str) -> np.ndarray:
    """Reference frame totals in the GPUMD files' own units, as TNEP predicts them.

    ``dipole``: label ``gpumd_dipole`` (Σ adipole, Å), shape (F, 3); ``polarizability``: label
    ``polarizability`` (Σ apol), shape (F, 3, 3).
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown TNEP kind {kind!r}; expected one of {KINDS}")
    label = "gpumd_dipole" if kind == "dipole" else "polarizability"
    for frame in frames:
        if label not in frame.labels:
            raise InputError("frame lacks the GPUMD reference label", file=frame.info.get("source"),
                             frame=frame.info.get("index"), field=label, expected=label, found="absent")
    return np.asarray([frame.labels[label] for frame in frames])


def component_rmse(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Root mean square error over every component of every frame (the TNEP convention).

    Parameters
    ----------
    predictions, targets : ndarray, shape (F, 3) or (F, 3, 3)
        Frame totals in the same units.
    """
    predictions, targets = np.asarray(predictions), np.asarray(targets)
    if predictions.shape != targets.shape:
        raise InputError("predictions and targets differ in shape", field="predictions",
                         expected=targets.shape, found=predictions.shape)
    return float(np.sqrt(np.mean((predictions - targets) ** 2)))


def gpumd_dipole_from_molecular(frame: Frame, molecular_dipoles: np.ndarray) -> np.ndarray:
    """Frame dipole in the GPUMD water convention (Σ adipole, Å) from molecular dipoles in e·Å.

    Inverts μ_m = (r_H1 + r_H2 − 2 r_O) − 2·adipole_m (molecules made whole by minimum image):
    Σ adipole = ½ (Σ_m (Σ_H r_H − 2 r_O) − Σ_m μ_m).

    Parameters
    ----------
    frame : Frame
        A frame of whole water molecules (any number, periodic or not).
    molecular_dipoles : ndarray, shape (M, 3) or (N, 3)
        Molecular dipoles in e·Å, one row per molecule or in the per-atom label layout (value on O,
        zero elsewhere, as ``Frame.labels['molecular_dipoles']``); only their sum enters.

    Returns
    -------
    ndarray, shape (3,)
        Σ adipole in Å.

    Raises
    ------
    InputError
        If a molecule is not H2O or the dipole array has the wrong shape.
    """
    mol = frame.info.get("molecule_index")
    mol = molecules(frame) if mol is None else np.asarray(mol)
    n_mol = int(mol.max()) + 1
    dipoles = np.asarray(molecular_dipoles, dtype=np.float64)
    if dipoles.ndim != 2 or dipoles.shape[1] != 3 or dipoles.shape[0] not in (n_mol, frame.n_atoms):
        raise InputError("molecular dipoles have the wrong shape", file=frame.info.get("source"),
                         frame=frame.info.get("index"), field="molecular_dipoles",
                         expected=f"({n_mol}, 3) or ({frame.n_atoms}, 3)", found=dipoles.shape)
    positions = unwrap_molecules(frame, mol)
    symbols = np.asarray(frame.symbols)
    nuclear = np.zeros(3)
    for m in range(n_mol):
        idx = np.nonzero(mol == m)[0]
        if sorted(symbols[idx]) != ["H", "H", "O"]:
            raise InputError("the GPUMD dipole convention needs whole water molecules",
                             file=frame.info.get("source"), frame=frame.info.get("index"),
                             field="species", expected="H2O molecules", found=f"molecule {sorted(symbols[idx])}")
        oxygen = idx[symbols[idx] == "O"][0]
        nuclear += positions[idx[symbols[idx] == "H"]].sum(axis=0) - 2.0 * positions[oxygen]
    return 0.5 * (nuclear - dipoles.sum(axis=0))
