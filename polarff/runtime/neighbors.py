"""Differentiable pair lists for the torch runtime (TorchScript-compatible).

The pair search itself is done by vesin-torch (``vesin_torch.NeighborList``, a half list: each pair
once). Only the integer output of the search (atom indices and periodic cell shifts) is kept; the pair
vectors are recomputed in torch as ``r_j - r_i + shift @ box`` so that gradients flow to positions
and box.

Units: nm. Boxes hold the lattice vectors as rows (OpenMM's ``getPeriodicBoxVectors`` order).
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np
import torch
from vesin_torch import NeighborList

from polarff.errors import ConfigError, InputError


def normalize_exclusions(exclusions: object, n_atoms: int) -> torch.Tensor:
    """Check and canonicalise a list of excluded (intramolecular) atom pairs.

    Parameters
    ----------
    exclusions : array_like of int, shape (P, 2)
        Atom index pairs, in any order, duplicates allowed. ``None`` or an empty array means none.
    n_atoms : int
        Number of atoms in the system.

    Returns
    -------
    torch.Tensor
        Long tensor of shape (P', 2) with ``i < j`` in every row, rows unique and sorted.

    Raises
    ------
    InputError
        If the array is not (P, 2) integers, an index is out of range, or a pair has ``i == j``.
    """
    if exclusions is None:
        return torch.zeros((0, 2), dtype=torch.long)
    if isinstance(exclusions, torch.Tensor):
        exclusions = exclusions.detach().cpu().numpy()
    pairs = np.asarray(exclusions)
    if pairs.size == 0:
        return torch.zeros((0, 2), dtype=torch.long)
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise InputError("exclusions must be a list of atom index pairs", field="exclusions",
                         expected="shape (P, 2)", found=f"shape {pairs.shape}")
    if not np.issubdtype(pairs.dtype, np.integer):
        raise InputError("exclusions must hold integer atom indices", field="exclusions",
                         expected="integer dtype", found=str(pairs.dtype))
    if pairs.min() < 0 or pairs.max() >= n_atoms:
        raise InputError("exclusion atom index out of range", field="exclusions",
                         expected=f"indices in [0, {n_atoms - 1}]",
                         found=f"[{pairs.min()}, {pairs.max()}]")
    if np.any(pairs[:, 0] == pairs[:, 1]):
        bad = pairs[pairs[:, 0] == pairs[:, 1]][0].tolist()
        raise InputError("an exclusion pairs an atom with itself", field="exclusions",
                         expected="i != j", found=bad)
    ordered = np.sort(pairs.astype(np.int64), axis=1)
    unique = np.unique(ordered, axis=0)
    return torch.from_numpy(np.ascontiguousarray(unique))


def exclusion_keys(exclusions: torch.Tensor, n_atoms: int) -> torch.Tensor:
    """Sorted integer keys ``i * n_atoms + j`` (``i < j``) of canonical exclusion pairs.

    Parameters
    ----------
    exclusions : torch.Tensor
        Output of :func:`normalize_exclusions`, shape (P, 2).
    n_atoms : int
        Number of atoms.

    Returns
    -------
    torch.Tensor
        Long tensor of shape (P,), sorted ascending.
    """
    keys = exclusions[:, 0] * n_atoms + exclusions[:, 1]
    return torch.sort(keys).values


def pair_is_excluded(i: torch.Tensor, j: torch.Tensor, sorted_keys: torch.Tensor,
                     n_atoms: int) -> torch.Tensor:
    """Whether each pair (i, j) is in the sorted exclusion key table.

    Parameters
    ----------
    i, j : torch.Tensor
        Long tensors of shape (P,), atom indices of each pair (any order within a pair).
    sorted_keys : torch.Tensor
        Output of :func:`exclusion_keys`.
    n_atoms : int
        Number of atoms.

    Returns
    -------
    torch.Tensor
        Bool tensor of shape (P,).
    """
    if sorted_keys.numel() == 0:
        return torch.zeros(i.shape, dtype=torch.bool, device=i.device)
    keys = torch.minimum(i, j) * n_atoms + torch.maximum(i, j)
    slot = torch.searchsorted(sorted_keys, keys).clamp(max=sorted_keys.numel() - 1)
    return sorted_keys[slot] == keys


def minimum_image(vectors: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """Minimum-image convention for a box in OpenMM's reduced form.

    OpenMM boxes are lower triangular with ``a = (ax, 0, 0)``, ``b = (bx, by, 0)``,
    ``c = (cx, cy, cz)`` and ``|bx| <= ax/2``, ``|cx| <= ax/2``, ``|cy| <= by/2``; for them
    subtracting c, then b, then a (as OpenMM does) gives the nearest image of any vector shorter
    than half the smallest box width.

    Parameters
    ----------
    vectors : torch.Tensor
        Shape (P, 3), nm.
    box : torch.Tensor
        Shape (3, 3), lattice vectors as rows, nm.

    Returns
    -------
    torch.Tensor
        Shape (P, 3), the wrapped vectors (differentiable in both inputs).
    """
    wrapped = vectors
    for axis in [2, 1, 0]:
        n_cells = torch.round(wrapped[:, axis] / box[axis, axis]).detach()
        wrapped = wrapped - n_cells.unsqueeze(1) * box[axis].unsqueeze(0)
    return wrapped


def box_widths(box: torch.Tensor) -> torch.Tensor:
    """Perpendicular widths of a periodic cell (distance between opposite faces).

    Parameters
    ----------
    box : torch.Tensor
        Shape (3, 3), lattice vectors as rows, nm.

    Returns
    -------
    torch.Tensor
        Shape (3,), nm.
    """
    volume = torch.abs(torch.linalg.det(box))
    areas = torch.stack([
        torch.linalg.norm(torch.linalg.cross(box[1], box[2])),
        torch.linalg.norm(torch.linalg.cross(box[2], box[0])),
        torch.linalg.norm(torch.linalg.cross(box[0], box[1])),
    ])
    return volume / areas


class PairList(torch.nn.Module):
    """Half neighbour list with differentiable pair vectors and an exclusion flag per pair.

    Parameters
    ----------
    n_atoms : int
        Number of atoms the list is built for.
    cutoff_nm : float
        Pair cutoff, nm. Under periodic boundaries it must not exceed half the smallest box width
        (checked in :meth:`forward`), so that each pair appears with one image at most.
    periodic : bool
        Whether to use periodic boundary conditions.
    exclusions : torch.Tensor
        Canonical exclusion pairs from :func:`normalize_exclusions`.

    Raises
    ------
    ConfigError
        If ``cutoff_nm`` is not positive.
    """

    def __init__(self, n_atoms: int, cutoff_nm: float, periodic: bool,
                 exclusions: torch.Tensor):
        super().__init__()
        if not cutoff_nm > 0:
            raise ConfigError(f"cutoff_nm must be positive (expected > 0, found {cutoff_nm})")
        self.n_atoms = int(n_atoms)
        self.cutoff_nm = float(cutoff_nm)
        self.periodic = bool(periodic)
        self.register_buffer("sorted_keys", exclusion_keys(exclusions, self.n_atoms))

    def forward(self, positions: torch.Tensor, box: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Find all pairs closer than the cutoff.

        Parameters
        ----------
        positions : torch.Tensor
            Shape (N, 3), nm. Need not be wrapped into the box.
        box : torch.Tensor
            Shape (3, 3), lattice vectors as rows, nm (ignored when not periodic).

        Returns
        -------
        i, j : torch.Tensor
            Long tensors of shape (P,), the two atoms of each pair (each pair once).
        vectors : torch.Tensor
            Shape (P, 3), ``r_j - r_i`` of the nearest image, nm, differentiable.
        distances : torch.Tensor
            Shape (P,), nm, differentiable.
        excluded : torch.Tensor
            Bool, shape (P,), True for pairs in the exclusion table.
        """
        box = box.to(positions.dtype)
        if self.periodic:
            smallest_width = float(box_widths(box.detach()).min())
            if self.cutoff_nm > 0.5 * smallest_width:
                raise ValueError(
                    "cutoff " + str(self.cutoff_nm) + " nm is larger than half the smallest box "
                    "width " + str(smallest_width) + " nm: use a smaller cutoff or a larger box")
            search_box = box.detach()
        else:
            search_box = torch.zeros((3, 3), dtype=positions.dtype, device=positions.device)
        searcher = NeighborList(cutoff=self.cutoff_nm, full_list=False)
        found: List[torch.Tensor] = searcher.compute(positions.detach(), search_box,
                                                     self.periodic, "ijS")
        # vesin returns i and j as strided views of one (P, 2) tensor; gathers with strided indices
        # are several times slower on CPU, so make them contiguous once here
        i, j, shifts = found[0].contiguous(), found[1].contiguous(), found[2]
        vectors = positions[j] - positions[i]
        if self.periodic:
            vectors = vectors + shifts.to(positions.dtype) @ box
        distances = torch.linalg.norm(vectors, dim=1)
        excluded = pair_is_excluded(i, j, self.sorted_keys, self.n_atoms)
        return i, j, vectors, distances, excluded

