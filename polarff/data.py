"""Canonical frames, label names and units.

A :class:`Frame` is one structure with optional reference labels. Every label has one canonical name,
one shape and one unit, listed in :data:`LABELS`; readers convert into these units and record the source
convention in ``Frame.info``.

Units: positions and cells in Å, charges in e, polarizabilities in Å³, dipoles in e·Å.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from polarff.errors import InputError


@dataclass(frozen=True)
class LabelSpec:
    """Description of one reference label.

    Attributes
    ----------
    per : {'atom', 'frame'}
        Whether the label has one value per atom (leading axis N) or one per frame.
    shape : tuple of int
        Trailing shape of one value: ``()`` scalar, ``(3,)`` vector, ``(3, 3)`` tensor.
    unit : str
        Unit of the stored values.
    description : str
        What the label holds.
    """

    per: str
    shape: tuple[int, ...]
    unit: str
    description: str


#: Every label polarff understands, by canonical name.
LABELS: dict[str, LabelSpec] = {
    "charges": LabelSpec("atom", (), "e", "per-atom partial charge"),
    "polarizabilities": LabelSpec("atom", (), "Å^3", "per-atom isotropic polarizability"),
    "molecular_dipoles": LabelSpec(
        "atom", (3,), "e·Å",
        "dipole of the molecule, stored on its first heavy atom (zero elsewhere; see mask)"),
    "molecular_polarizabilities": LabelSpec(
        "atom", (3, 3), "Å^3",
        "polarizability tensor of the molecule, stored on its first heavy atom (zero elsewhere)"),
    "born_charges": LabelSpec("atom", (3, 3), "e", "Born effective charge tensor Z*_ab = ∂F_b/∂E_a"),
    "dipole": LabelSpec("frame", (3,), "e·Å", "total dipole of the frame"),
    "polarizability": LabelSpec("frame", (3, 3), "Å^3", "polarizability tensor of the frame"),
    "gpumd_dipole": LabelSpec(
        "frame", (3,), "Å", "GPUMD/TNEP frame target: sum of per-oxygen Wannier-centre offsets"),
}

#: Atomic numbers of the species polarff knows by symbol.
ATOMIC_NUMBERS = {"H": 1, "Li": 3, "C": 6, "N": 7, "O": 8, "F": 9, "Na": 11, "P": 15, "S": 16,
                  "Cl": 17, "K": 19, "Br": 35, "I": 53}


@dataclass
class Frame:
    """One structure with optional reference labels.

    Attributes
    ----------
    symbols : list of str
        Chemical symbols, length N.
    positions : ndarray, shape (N, 3)
        Cartesian positions in Å.
    cell : ndarray, shape (3, 3) or None
        Lattice vectors as rows, in Å; None for a non-periodic frame.
    pbc : ndarray of bool, shape (3,)
        Periodicity along each lattice vector.
    total_charge : float
        Net charge in e.
    labels : dict of str to ndarray
        Reference values by canonical name (see :data:`LABELS`), in canonical units.
    label_masks : dict of str to ndarray of bool
        For per-atom labels defined on some atoms only (molecular labels): which atoms carry one.
    info : dict
        Free-form metadata (source file, frame index, conventions, method).
    """

    symbols: list[str]
    positions: np.ndarray
    cell: np.ndarray | None = None
    pbc: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=bool))
    total_charge: float = 0.0
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    label_masks: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.symbols = [str(s) for s in self.symbols]
        self.positions = np.asarray(self.positions, dtype=np.float64)
        self.pbc = np.asarray(self.pbc, dtype=bool).reshape(3) if np.ndim(self.pbc) else np.full(3, bool(self.pbc))
        if self.cell is not None:
            self.cell = np.asarray(self.cell, dtype=np.float64)

    @property
    def n_atoms(self) -> int:
        return len(self.symbols)

    @property
    def periodic(self) -> bool:
        return bool(np.any(self.pbc))

    def where(self) -> str:
        """Human-readable origin, e.g. ``data.xyz, frame 3``."""
        src = self.info.get("source", "<memory>")
        idx = self.info.get("index")
        return f"{src}, frame {idx}" if idx is not None else str(src)

    def validate(self) -> "Frame":
        """Check shapes, finiteness, cell and charge consistency; raise :class:`InputError` if wrong.

        Returns
        -------
        Frame
            ``self``, for chaining.
        """
        src, idx = self.info.get("source"), self.info.get("index")
        n = self.n_atoms
        if self.positions.shape != (n, 3):
            raise InputError("positions have the wrong shape", file=src, frame=idx, field="positions",
                             expected=(n, 3), found=self.positions.shape)
        if not np.all(np.isfinite(self.positions)):
            raise InputError("positions contain NaN or infinite values", file=src, frame=idx,
                             field="positions", expected="finite values", found="non-finite")
        unknown = sorted(set(self.symbols) - set(ATOMIC_NUMBERS))
        if unknown:
            raise InputError("unknown chemical symbol", file=src, frame=idx, field="species",
                             expected=f"one of {sorted(ATOMIC_NUMBERS)}", found=unknown)
        if self.periodic:
            if self.cell is None or self.cell.shape != (3, 3) or abs(np.linalg.det(self.cell)) < 1e-6:
                raise InputError("periodic frame without a valid cell", file=src, frame=idx,
                                 field="cell", expected="3x3 lattice with non-zero volume",
                                 found=None if self.cell is None else np.round(self.cell, 4).tolist())
            if not np.all(np.isfinite(self.cell)):
                raise InputError("cell contains NaN or infinite values", file=src, frame=idx,
                                 field="cell", expected="finite values", found="non-finite")
        for name, value in self.labels.items():
            if name not in LABELS:
                raise InputError("unknown label name", file=src, frame=idx, field=name,
                                 expected=f"one of {sorted(LABELS)}", found=name)
            spec = LABELS[name]
            want = ((n,) if spec.per == "atom" else ()) + spec.shape
            value = np.asarray(value, dtype=np.float64)
            if value.shape != want:
                raise InputError("label has the wrong shape", file=src, frame=idx, field=name,
                                 expected=want, found=value.shape)
            if not np.all(np.isfinite(value)):
                raise InputError("label contains NaN or infinite values", file=src, frame=idx,
                                 field=name, expected="finite values",
                                 found=f"{int(np.sum(~np.isfinite(value)))} non-finite")
            self.labels[name] = value
        if "charges" in self.labels:
            total = float(np.sum(self.labels["charges"]))
            if abs(total - self.total_charge) > 1e-3:
                raise InputError("per-atom charges do not sum to the frame's total charge", file=src,
                                 frame=idx, field="charges", expected=f"sum {self.total_charge:+.4f} e",
                                 found=f"sum {total:+.4f} e")
        return self

    def wrapped_positions(self) -> np.ndarray:
        """Positions mapped into the periodic cell (Å); unchanged for a non-periodic frame."""
        if not self.periodic:
            return self.positions.copy()
        frac = self.positions @ np.linalg.inv(self.cell)
        frac[:, self.pbc] -= np.floor(frac[:, self.pbc])
        return frac @ self.cell


def species_of(frames: Iterable[Frame]) -> list[str]:
    """Sorted (by atomic number) list of the chemical symbols present in ``frames``."""
    found = set()
    for f in frames:
        found.update(f.symbols)
    return sorted(found, key=lambda s: ATOMIC_NUMBERS[s])


def dataset_hash(frames: Sequence[Frame]) -> str:
    """SHA-256 over species, positions, cells and labels (rounded to 1e-8) of ``frames``.

    Used in the model card to identify the training data.
    """
    h = hashlib.sha256()
    for f in frames:
        h.update(" ".join(f.symbols).encode())
        h.update(np.round(f.positions, 8).tobytes())
        if f.cell is not None:
            h.update(np.round(f.cell, 8).tobytes())
        for name in sorted(f.labels):
            h.update(name.encode())
            h.update(np.round(f.labels[name], 8).tobytes())
    return h.hexdigest()


def split_indices(n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
                  ) -> list[np.ndarray]:
    """Seeded random split of ``range(n)`` into parts of the given fractions.

    Parameters
    ----------
    n : int
        Number of frames.
    fractions : sequence of float
        Fractions summing to 1 (train, validation, test, ...).
    seed : int
        Seed of the permutation; the same seed gives the same split.

    Returns
    -------
    list of ndarray of int
        Sorted indices of each part.
    """
    if abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"split fractions must sum to 1, found {sum(fractions)}")
    perm = np.random.default_rng(seed).permutation(n)
    bounds = np.round(np.cumsum(fractions) * n).astype(int)
    parts, start = [], 0
    for b in bounds:
        parts.append(np.sort(perm[start:b]))
        start = b
    return parts


def molecules(frame: Frame, h_bond_max: float = 1.6, heavy_bond_max: float = 1.75) -> np.ndarray:
    """Molecule index of each atom from covalent connectivity (minimum image).

    Each hydrogen is bonded to its nearest non-ion heavy atom if closer than ``h_bond_max`` Å (robust
    to stretched O–H bonds in MD frames); two non-ion heavy atoms are bonded when closer than
    ``heavy_bond_max`` Å. Monatomic ions (Li, Na, K, F, Cl, Br, I) are molecules of their own.

    Returns
    -------
    ndarray of int, shape (N,)
        Molecule index, numbered from 0 in order of first atom.
    """
    n = frame.n_atoms
    d = minimum_image_vectors(frame, np.arange(n)[:, None], np.arange(n)[None, :])
    r = np.linalg.norm(d, axis=-1)
    sym = np.asarray(frame.symbols)
    is_h = sym == "H"
    ions = np.isin(sym, ["Li", "Na", "K", "Cl", "Br", "I", "F"])
    heavy = ~is_h & ~ions
    bonded = heavy[:, None] & heavy[None, :] & (r < heavy_bond_max) & ~np.eye(n, dtype=bool)
    if np.any(heavy):
        for h in np.nonzero(is_h)[0]:
            candidates = np.where(heavy, r[h], np.inf)
            k = int(np.argmin(candidates))
            if candidates[k] < h_bond_max:
                bonded[h, k] = bonded[k, h] = True
    label = -np.ones(n, dtype=int)
    current = 0
    for start in range(n):
        if label[start] >= 0:
            continue
        stack = [start]
        label[start] = current
        while stack:
            i = stack.pop()
            for j in np.nonzero(bonded[i] & (label < 0))[0]:
                label[j] = current
                stack.append(j)
        current += 1
    return label


def minimum_image_vectors(frame: Frame, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Vectors r_j − r_i (Å) under the minimum-image convention (plain difference if non-periodic).

    Exact for orthorhombic cells and for triclinic cells whose half-width exceeds the distance.
    """
    d = frame.positions[j] - frame.positions[i]
    if frame.periodic:
        inv = np.linalg.inv(frame.cell)
        frac = d @ inv
        frac[..., frame.pbc] -= np.round(frac[..., frame.pbc])
        d = frac @ frame.cell
    return d


def unwrap_molecules(frame: Frame, mol: np.ndarray | None = None) -> np.ndarray:
    """Positions (Å) with every molecule made whole around its first atom (minimum image)."""
    mol = molecules(frame) if mol is None else mol
    pos = frame.positions.copy()
    for m in np.unique(mol):
        idx = np.nonzero(mol == m)[0]
        pos[idx] = frame.positions[idx[0]] + minimum_image_vectors(frame, np.full(len(idx), idx[0]), idx)
    return pos
