"""Read and write frames: extxyz and any ASE-readable file, GPUMD/TNEP conventions included.

Reading maps the names found in files onto canonical labels (:data:`polarff.data.LABELS`):

================================  =============================  ======================================
name in file                      canonical label                conversion
================================  =============================  ======================================
``REF_charges``, ``charges``      ``charges`` (e)                none
``REF_polarizabilities``          ``polarizabilities`` (Å³)      none
``REF_born_charges`` (9)          ``born_charges`` (e)           row-major 3×3 per atom
``adipole`` (GPUMD, per O)        ``molecular_dipoles`` (e·Å)    μ = r_H1 + r_H2 − 2 r_O − 2·adipole
``apol`` (GPUMD, per O, 9)        ``molecular_polarizabilities`` row-major 3×3
``dipole`` with ``adipole``       ``gpumd_dipole`` (Å) and       ``dipole`` = Σ molecular dipoles
                                  ``dipole`` (e·Å)
``dipole`` otherwise              ``dipole`` (e·Å)               none
``pol`` (GPUMD, 9)                ``polarizability`` (Å³)        row-major 3×3
``REF_dipole``                    ``dipole`` (e·Å)               none
``REF_polarizability`` (9)        ``polarizability`` (Å³)        row-major 3×3
================================  =============================  ======================================

ASE moves ``charges`` and ``dipole`` into a SinglePointCalculator; both places are read. Writing always
uses explicit ``REF_`` names so that ASE leaves them alone.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from polarff.data import Frame, molecules, unwrap_molecules
from polarff.errors import InputError
from polarff.fileio import atomic_path

#: Per-atom array names (in files) and the canonical label each maps to.
ATOM_ARRAYS = {"REF_charges": "charges", "charges": "charges",
               "REF_polarizabilities": "polarizabilities", "polarizabilities": "polarizabilities"}
#: Keys in files that are not labels and are passed through to Frame.info.
_IGNORED_ARRAYS = {"numbers", "positions", "species", "masses", "momenta", "forces", "initial_charges",
                   "initial_magmoms", "tags", "mol_id"}


def read_frames(path: str | os.PathLike, index: str | int | slice = ":") -> list[Frame]:
    """Read frames with reference labels from an extxyz or other ASE-readable file.

    Parameters
    ----------
    path : path-like
        File to read; the format is guessed by ASE from the name.
    index : str, int or slice
        Which frames (ASE index syntax); all by default.

    Returns
    -------
    list of Frame
        Validated frames, labels in canonical units, ``info['source']`` and ``info['index']`` set.

    Raises
    ------
    InputError
        If the file is missing or malformed, or a frame fails validation (the message names the
        file, frame, field, expected and found).
    """
    import ase.io

    path = str(path)
    if not os.path.exists(path):
        raise InputError("file not found", file=path)
    try:
        images = ase.io.read(path, index=index)
    except Exception as exc:  # ASE raises many types for malformed text
        raise InputError(f"cannot parse file: {type(exc).__name__}: {exc}", file=path) from None
    if not isinstance(images, list):
        images = [images]
    if not images:
        raise InputError("file holds no frames", file=path, expected=">= 1 frame", found=0)
    offset = index.start or 0 if isinstance(index, slice) else (index if isinstance(index, int) else 0)
    return [atoms_to_frame(a, source=path, index=offset + k) for k, a in enumerate(images)]


def atoms_to_frame(atoms, source: str = "<memory>", index: int | None = None) -> Frame:
    """Convert an :class:`ase.Atoms` (with labels in arrays, info or calculator) to a validated Frame."""
    arrays = {k: np.asarray(v) for k, v in atoms.arrays.items()}
    info = dict(atoms.info)
    if atoms.calc is not None and getattr(atoms.calc, "results", None):
        for key, value in atoms.calc.results.items():
            if key in ("charges",) and key not in arrays:
                arrays[key] = np.asarray(value)
            elif key in ("dipole", "energy", "free_energy", "stress") and key not in info:
                info[key] = np.asarray(value)
    pbc = np.asarray(atoms.pbc, dtype=bool)
    cell = np.asarray(atoms.cell.array, dtype=float) if np.any(pbc) or atoms.cell.rank == 3 else None
    if cell is not None and abs(np.linalg.det(cell)) < 1e-6:
        cell = None if not np.any(pbc) else cell
    total_charge = float(info.pop("total_charge", info.pop("charge", 0.0)))
    frame = Frame(symbols=atoms.get_chemical_symbols(), positions=atoms.positions, cell=cell, pbc=pbc,
                  total_charge=total_charge, info={"source": source, "index": index})
    where = dict(file=source, frame=index)
    n = len(atoms)

    for name, value in arrays.items():
        if name in _IGNORED_ARRAYS:
            continue
        if name in ATOM_ARRAYS:
            frame.labels[ATOM_ARRAYS[name]] = _as_float(value, (n,), name, where)
        elif name == "REF_born_charges":
            frame.labels["born_charges"] = _as_float(value, (n, 9), name, where).reshape(n, 3, 3)
        elif name in ("adipole", "apol"):
            pass  # handled below, need all columns first
        elif name.startswith("REF_"):
            raise InputError("unknown label name", field=name, **where,
                             expected=f"one of {sorted(k for k in ATOM_ARRAYS if k.startswith('REF_'))}",
                             found=name)

    gpumd = "adipole" in arrays or "apol" in arrays or "pol" in info
    if gpumd:
        frame.info["convention"] = "GPUMD/TNEP"
    mol = _water_molecules_by_order(frame) if gpumd else None
    if "adipole" in arrays:
        adipole = _as_float(arrays["adipole"], (n, 3), "adipole", where)
        mol = molecules(frame) if mol is None else mol
        frame.labels["molecular_dipoles"], mask = _gpumd_molecular_dipoles(frame, mol, adipole, where)
        frame.label_masks["molecular_dipoles"] = mask
        frame.info["molecule_index"] = mol
    if "apol" in arrays:
        apol = _as_float(arrays["apol"], (n, 9), "apol", where).reshape(n, 3, 3)
        mol = molecules(frame) if mol is None else mol
        mask = _first_heavy_atom_mask(frame, mol)
        frame.labels["molecular_polarizabilities"] = np.where(mask[:, None, None], apol, 0.0)
        frame.label_masks["molecular_polarizabilities"] = mask
        frame.info["molecule_index"] = mol

    if "dipole" in info:
        dip = _as_float(info.pop("dipole"), (3,), "dipole", where)
        if "adipole" in arrays:
            frame.labels["gpumd_dipole"] = dip
            frame.labels["dipole"] = frame.labels["molecular_dipoles"].sum(axis=0)
            if not np.allclose(arrays["adipole"].sum(axis=0), dip, atol=5e-3 * max(1, n / 64)):
                raise InputError("frame dipole is not the sum of the per-atom adipole column",
                                 field="dipole", **where,
                                 expected=np.round(arrays["adipole"].sum(axis=0), 3).tolist(),
                                 found=dip.tolist())
        elif gpumd and not np.any(dip):
            frame.info["dropped"] = "dipole (all-zero placeholder in a GPUMD polarizability file)"
        else:
            frame.labels["dipole"] = dip
    if "REF_dipole" in info:
        frame.labels["dipole"] = _as_float(info.pop("REF_dipole"), (3,), "REF_dipole", where)
    for key in ("pol", "REF_polarizability"):
        if key in info:
            frame.labels["polarizability"] = _as_float(info.pop(key), (9,), key, where).reshape(3, 3)
    for key, value in info.items():
        if key.startswith("REF_"):
            raise InputError("unknown label name", field=key, **where,
                             expected="REF_dipole or REF_polarizability", found=key)
        if key not in frame.info:
            frame.info[key] = value
    return frame.validate()


def _as_float(value, shape: tuple[int, ...], name: str, where: dict) -> np.ndarray:
    arr = np.asarray(value)
    try:
        arr = arr.astype(np.float64)
    except (TypeError, ValueError):
        raise InputError("values are not numbers", field=name, **where, expected="float",
                         found=str(arr.dtype)) from None
    if arr.size == int(np.prod(shape)) and arr.shape != shape:
        arr = arr.reshape(shape)
    if arr.shape != shape:
        raise InputError("array has the wrong shape", field=name, **where, expected=shape,
                         found=arr.shape)
    if not np.all(np.isfinite(arr)):
        raise InputError("NaN or infinite values", field=name, **where, expected="finite values",
                         found=f"{int(np.sum(~np.isfinite(arr)))} non-finite")
    return arr


def _water_molecules_by_order(frame: Frame) -> np.ndarray | None:
    """Molecule index ``k // 3`` when atoms come as repeated (O, H, H) triples, else None.

    GPUMD/TNEP water files list each molecule's atoms together; this keeps the assignment of the
    reference data even where an H is momentarily closer to a neighbouring O (proton excursions)."""
    n = frame.n_atoms
    if n % 3 or list(frame.symbols) != ["O", "H", "H"] * (n // 3):
        return None
    return np.arange(n) // 3


def _first_heavy_atom_mask(frame: Frame, mol: np.ndarray) -> np.ndarray:
    mask = np.zeros(frame.n_atoms, dtype=bool)
    for m in np.unique(mol):
        idx = np.nonzero(mol == m)[0]
        heavy = [i for i in idx if frame.symbols[i] != "H"]
        mask[heavy[0] if heavy else idx[0]] = True
    return mask


def _gpumd_molecular_dipoles(frame: Frame, mol: np.ndarray, adipole: np.ndarray, where: dict
                             ) -> tuple[np.ndarray, np.ndarray]:
    """Molecular dipoles (e·Å) of water from GPUMD Wannier offsets: μ = Σ_H r_H − 2 r_O − 2·adipole."""
    pos = unwrap_molecules(frame, mol)
    out = np.zeros((frame.n_atoms, 3))
    mask = np.zeros(frame.n_atoms, dtype=bool)
    sym = np.asarray(frame.symbols)
    for m in np.unique(mol):
        idx = np.nonzero(mol == m)[0]
        if sorted(sym[idx]) != ["H", "H", "O"]:
            raise InputError("adipole convention needs whole water molecules", field="adipole", **where,
                             expected="H2O molecules (O-H < 1.25 Å)", found=f"molecule {sorted(sym[idx])}")
        o = idx[sym[idx] == "O"][0]
        hs = idx[sym[idx] == "H"]
        out[o] = pos[hs].sum(axis=0) - 2.0 * pos[o] - 2.0 * adipole[o]
        mask[o] = True
    return out, mask


def frame_to_atoms(frame: Frame):
    """Convert a Frame to :class:`ase.Atoms` with labels under explicit ``REF_`` names."""
    from ase import Atoms

    atoms = Atoms(symbols=frame.symbols, positions=frame.positions,
                  cell=frame.cell if frame.cell is not None else np.zeros((3, 3)), pbc=frame.pbc)
    atoms.info["total_charge"] = frame.total_charge
    for key, value in frame.info.items():
        if key in ("source", "index", "molecule_index"):
            continue
        if isinstance(value, (int, float, str, bool, np.integer, np.floating)):
            atoms.info[key] = value
    for name, value in frame.labels.items():
        if name in ("charges", "polarizabilities"):
            atoms.arrays[f"REF_{name}"] = np.asarray(value, dtype=float)
        elif name == "born_charges":
            atoms.arrays["REF_born_charges"] = np.asarray(value, dtype=float).reshape(frame.n_atoms, 9)
        elif name == "dipole":
            atoms.info["REF_dipole"] = np.asarray(value, dtype=float)
        elif name == "polarizability":
            atoms.info["REF_polarizability"] = np.asarray(value, dtype=float).reshape(9)
    return atoms


def write_frames(path: str | os.PathLike, frames: Sequence[Frame], extra_arrays: Sequence[dict] | None = None
                 ) -> None:
    """Write frames to extxyz atomically (a temporary file renamed into place).

    Parameters
    ----------
    path : path-like
        Destination ``.xyz`` file.
    frames : sequence of Frame
        Frames to write; labels go under ``REF_`` names.
    extra_arrays : sequence of dict, optional
        Per frame, extra per-atom arrays (e.g. predictions ``PRED_charges``) to add.
    """
    import ase.io

    images = []
    for k, frame in enumerate(frames):
        atoms = frame_to_atoms(frame)
        if extra_arrays is not None:
            for name, value in extra_arrays[k].items():
                value = np.asarray(value)
                if value.ndim == 1 or value.shape[0] == frame.n_atoms:
                    atoms.arrays[name] = value
                else:
                    atoms.info[name] = value
        images.append(atoms)
    with atomic_path(path) as tmp:
        ase.io.write(tmp, images, format="extxyz")


def append_frames(path: str | os.PathLike, frames: Sequence[Frame]) -> None:
    """Append frames to an extxyz file atomically (read-modify-rename), for resumable jobs."""
    existing = read_frames(path) if os.path.exists(path) else []
    write_frames(path, list(existing) + list(frames))


def require_labels(frames: Sequence[Frame], names: Sequence[str], source: str = "dataset") -> None:
    """Raise :class:`InputError` unless every name is a known label present in at least one frame."""
    from polarff.data import LABELS

    for name in names:
        if name not in LABELS:
            raise InputError("unknown label name", file=source, field=name,
                             expected=f"one of {sorted(LABELS)}", found=name)
        if not any(name in f.labels for f in frames):
            raise InputError("no frame carries this label", file=source, field=name,
                             expected=f"'{name}' in at least one frame", found="none")
