"""Per-atom environment descriptors (numpy, used for training).

For a central atom *i* and each neighbour species *s* within the cutoff r_c (smooth cosine cutoff
f_c(r) = ½[cos(πr/r_c) + 1], zero value and slope at r_c):

* radial:   G[s, k]    = Σ_{j∈s} g_k(r_ij) f_c(r_ij),   Gaussians g_k(r) = exp(−(r − m_k)² / 2w²)
* angular:  V1[c]      = Σ_{j∈s} h_k(r_ij) f_c(r_ij) r̂_ij                      (vector, channel c = (s, k))
            V2[c]      = Σ_{j∈s} h_k(r_ij) f_c(r_ij) (r̂_ij r̂_ijᵀ − I/3)        (traceless tensor)
  with rotation invariants P1[c, c'] = V1[c]·V1[c'] and P2[c, c'] = tr(V2[c] V2[c']) for c ≤ c'
  (h_k: Gaussians like g_k, n_angular of them; the symmetric V2 is stored as 6 weighted components).

This is a moment-tensor / power-spectrum descriptor truncated at l = 2: invariant under rotation,
translation and permutation of like atoms, smooth in the positions, and cheap (one pass over pairs and
a sparse scatter). The torch twin in :mod:`polarff.runtime.descriptors` computes the same numbers.
Distances in Å.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp

from polarff.data import ATOMIC_NUMBERS, Frame
from polarff.errors import ConfigError, InputError


@dataclass
class DescriptorConfig:
    """Settings of the environment descriptor.

    Attributes
    ----------
    species : list of str
        Chemical symbols the model knows, in a fixed order (channel order of the descriptor).
    cutoff : float
        Cutoff radius r_c in Å.
    n_radial : int
        Number of Gaussians of the radial part.
    n_angular : int
        Number of radial functions of each angular (l = 1, 2) channel.
    r_min : float
        Centre of the first Gaussian in Å.
    """

    species: list[str]
    cutoff: float = 5.0
    n_radial: int = 8
    n_angular: int = 4
    r_min: float = 0.7

    def __post_init__(self) -> None:
        unknown = [s for s in self.species if s not in ATOMIC_NUMBERS]
        if unknown or not self.species:
            raise ConfigError(f"descriptor species: expected known chemical symbols, found {self.species}")
        if not (1.0 < self.cutoff < 20.0):
            raise ConfigError(f"descriptor cutoff: expected 1 < cutoff < 20 Å, found {self.cutoff}")
        if self.n_radial < 1 or self.n_angular < 1:
            raise ConfigError("descriptor n_radial and n_angular must be >= 1")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DescriptorConfig":
        return cls(**d)

    @property
    def n_species(self) -> int:
        return len(self.species)

    @property
    def n_channels(self) -> int:
        return self.n_species * self.n_angular

    @property
    def n_features(self) -> int:
        c = self.n_channels
        return self.n_species * self.n_radial + c * (c + 1)

    def radial_centres(self, n: int) -> tuple[np.ndarray, float]:
        """Centres (Å) and width (Å) of ``n`` Gaussians spread evenly on [r_min, cutoff]."""
        centres = np.linspace(self.r_min, self.cutoff, n)
        width = (self.cutoff - self.r_min) / max(n - 1, 1)
        return centres, width

    def species_index(self, symbols: list[str], source: str = "<memory>", frame: int | None = None
                      ) -> np.ndarray:
        """Index of each symbol in :attr:`species`; :class:`InputError` for a species the model lacks."""
        lookup = {s: k for k, s in enumerate(self.species)}
        missing = sorted(set(symbols) - set(lookup))
        if missing:
            raise InputError("species unknown to the model", file=source, frame=frame, field="species",
                             expected=f"one of {self.species}", found=missing)
        return np.fromiter((lookup[s] for s in symbols), dtype=np.int64, count=len(symbols))


def neighbor_pairs(frame: Frame, cutoff: float, full_list: bool = False
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neighbour list within ``cutoff`` Å (vesin), periodic images included.

    Returns
    -------
    i, j : ndarray of int, shape (P,)
        Pair indices (each unordered pair once, or twice with ``full_list``).
    vectors : ndarray, shape (P, 3)
        r_j − r_i + shift, in Å.
    """
    from vesin import NeighborList

    if frame.periodic:
        if not np.all(frame.pbc):
            raise InputError("partially periodic frames are not supported", file=frame.info.get("source"),
                             frame=frame.info.get("index"), field="pbc", expected="all or none",
                             found=frame.pbc.tolist())
        box, periodic = frame.cell, True
    else:
        box, periodic = np.zeros((3, 3)), False
    nl = NeighborList(cutoff=cutoff, full_list=full_list)
    i, j, vectors = nl.compute(points=frame.positions, box=box, periodic=periodic, quantities="ijD")
    return i.astype(np.int64), j.astype(np.int64), vectors


#: weights turning a symmetric 3x3 tensor into 6 components whose dot product is tr(AB)
_SYM6 = np.array([1.0, 1.0, 1.0, np.sqrt(2.0), np.sqrt(2.0), np.sqrt(2.0)])


def pair_basis(config: DescriptorConfig, vectors: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pair radial, l=1 and l=2 contributions for the pair seen from its first atom.

    Returns
    -------
    radial : (P, n_radial);  v1 : (P, n_angular·3);  v2 : (P, n_angular·6)
        v2 holds the traceless r̂r̂ᵀ − I/3 as (xx, yy, zz, √2xy, √2xz, √2yz). Seen from the second atom,
        radial and v2 are the same and v1 changes sign.
    """
    r = np.sqrt(np.einsum("pa,pa->p", vectors, vectors))
    fc = 0.5 * (np.cos(np.pi * r / config.cutoff) + 1.0) * (r < config.cutoff)
    mu, w = config.radial_centres(config.n_radial)
    radial = np.exp(-0.5 * ((r[:, None] - mu[None, :]) / w) ** 2) * fc[:, None]
    mu_a, w_a = config.radial_centres(config.n_angular)
    h = np.exp(-0.5 * ((r[:, None] - mu_a[None, :]) / w_a) ** 2) * fc[:, None]  # (P, Ka)
    u = vectors / r[:, None]
    sym = np.stack([u[:, 0] ** 2 - 1 / 3, u[:, 1] ** 2 - 1 / 3, u[:, 2] ** 2 - 1 / 3,
                    u[:, 0] * u[:, 1], u[:, 0] * u[:, 2], u[:, 1] * u[:, 2]], axis=1) * _SYM6
    p = len(r)
    v1 = (h[:, :, None] * u[:, None, :]).reshape(p, 3 * config.n_angular)
    v2 = (h[:, :, None] * sym[:, None, :]).reshape(p, 6 * config.n_angular)
    return radial, v1, v2


def invariants(config: DescriptorConfig, radial: np.ndarray, v1: np.ndarray, v2: np.ndarray) -> np.ndarray:
    """Rotation invariants from per-(atom, species) sums; shape (N, n_features).

    ``radial`` (N·S, n_radial), ``v1`` (N·S, n_angular·3), ``v2`` (N·S, n_angular·6), rows atom-major.
    """
    s, ka = config.n_species, config.n_angular
    n = radial.shape[0] // s
    c = s * ka
    v1 = v1.reshape(n, c, 3)
    v2 = v2.reshape(n, c, 6)
    iu, ju = np.triu_indices(c)
    p1 = np.matmul(v1, v1.transpose(0, 2, 1))[:, iu, ju]
    p2 = np.matmul(v2, v2.transpose(0, 2, 1))[:, iu, ju]
    return np.concatenate([radial.reshape(n, s * config.n_radial), p1, p2], axis=1)


def compute_descriptors(config: DescriptorConfig, frame: Frame) -> np.ndarray:
    """Descriptors of every atom of ``frame``.

    Parameters
    ----------
    config : DescriptorConfig
        Descriptor settings (species, cutoff in Å, basis sizes).
    frame : Frame
        Structure; positions and cell in Å.

    Returns
    -------
    ndarray, shape (N, config.n_features)
        float64 descriptors; atom order as in ``frame``.
    """
    species = config.species_index(frame.symbols, frame.info.get("source", "<memory>"), frame.info.get("index"))
    i, j, vectors = neighbor_pairs(frame, config.cutoff)
    radial, v1, v2 = pair_basis(config, vectors)
    n, s, p = frame.n_atoms, config.n_species, len(i)
    rows = np.concatenate([i * s + species[j], j * s + species[i]])
    cols = np.concatenate([np.arange(p), np.arange(p)])
    ones = np.ones(2 * p)
    both = sp.csr_matrix((ones, (rows, cols)), shape=(n * s, p))
    signed = sp.csr_matrix((np.concatenate([ones[:p], -ones[:p]]), (rows, cols)), shape=(n * s, p))
    return invariants(config, both @ radial, signed @ v1, both @ v2)


@dataclass
class DescriptorSet:
    """Descriptors of many frames, flattened over atoms, with frame bookkeeping.

    Attributes
    ----------
    features : ndarray (M, F)
        Descriptors of all atoms of all frames, frame after frame.
    species : ndarray of int (M,)
        Species index of each atom.
    frame_index : ndarray of int (M,)
        Which frame each atom belongs to (0-based, in the order of the frames given).
    offsets : ndarray of int (n_frames + 1,)
        Atom ``offsets[f]`` to ``offsets[f+1]`` belong to frame ``f``.
    """

    features: np.ndarray
    species: np.ndarray
    frame_index: np.ndarray
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))


def describe_frames(config: DescriptorConfig, frames: list[Frame], progress: bool = False) -> DescriptorSet:
    """Descriptors of all atoms of ``frames`` (see :func:`compute_descriptors`)."""
    from polarff.progress import Progress

    feats, spec, fid = [], [], []
    bar = Progress(len(frames), "descriptors") if progress else None
    for k, frame in enumerate(frames):
        feats.append(compute_descriptors(config, frame))
        spec.append(config.species_index(frame.symbols))
        fid.append(np.full(frame.n_atoms, k, dtype=np.int64))
        if bar:
            bar.update(k + 1)
    offsets = np.concatenate([[0], np.cumsum([f.n_atoms for f in frames])]).astype(np.int64)
    return DescriptorSet(np.concatenate(feats), np.concatenate(spec), np.concatenate(fid), offsets)
