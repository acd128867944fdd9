"""Torch twin of :mod:`polarff.descriptors` (same numbers, differentiable, TorchScript-compatible).

Lengths in Å here (the caller converts from OpenMM's nm). Pairs come from vesin-torch; pair vectors are
recomputed from positions so that gradients flow to positions and to the cell.
"""

from __future__ import annotations

import math

import torch

from polarff.descriptors import DescriptorConfig


class TorchDescriptors(torch.nn.Module):
    """Descriptors of all atoms of one system of fixed composition.

    Parameters
    ----------
    config : DescriptorConfig
        The artifact's descriptor settings.
    species : LongTensor (N,)
        Species index (into ``config.species``) of each atom of the system.
    """

    def __init__(self, config: DescriptorConfig, species: torch.Tensor):
        super().__init__()
        from vesin.torch import NeighborList

        self.cutoff = float(config.cutoff)
        self.n_species = int(config.n_species)
        self.n_radial = int(config.n_radial)
        self.n_angular = int(config.n_angular)
        mu, w = config.radial_centres(config.n_radial)
        mu_a, w_a = config.radial_centres(config.n_angular)
        self.register_buffer("mu", torch.tensor(mu, dtype=torch.float64))
        self.register_buffer("mu_a", torch.tensor(mu_a, dtype=torch.float64))
        self.width = float(w)
        self.width_a = float(w_a)
        self.register_buffer("species", species.to(torch.long))
        c = self.n_species * self.n_angular
        iu = torch.triu_indices(c, c)
        self.register_buffer("iu", iu[0])
        self.register_buffer("ju", iu[1])
        s2 = math.sqrt(2.0)
        self.register_buffer("sym_weights", torch.tensor([1.0, 1.0, 1.0, s2, s2, s2], dtype=torch.float64))
        self.neighbors = NeighborList(cutoff=self.cutoff, full_list=False)

    def pairs(self, positions: torch.Tensor, cell: torch.Tensor, periodic: bool
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Half neighbour list: i, j and differentiable vectors r_j − r_i + shift·cell (Å)."""
        ij_s = self.neighbors.compute(points=positions.detach(), box=cell.detach(), periodic=periodic,
                                      quantities="ijS", copy=True)
        i, j, shifts = ij_s[0].contiguous(), ij_s[1].contiguous(), ij_s[2]  # contiguous: faster gathers
        vectors = positions[j] - positions[i] + shifts.to(positions.dtype) @ cell
        return i, j, vectors

    def forward(self, positions: torch.Tensor, cell: torch.Tensor, periodic: bool) -> torch.Tensor:
        """Descriptors (N, F) of the system; positions and cell in Å."""
        i, j, vec = self.pairs(positions, cell, periodic)
        n = positions.shape[0]
        s = self.n_species
        ka = self.n_angular
        r = torch.sqrt(torch.sum(vec * vec, dim=1))
        fc = 0.5 * (torch.cos(math.pi * r / self.cutoff) + 1.0) * (r < self.cutoff).to(r.dtype)
        radial = torch.exp(-0.5 * ((r[:, None] - self.mu[None, :]) / self.width) ** 2) * fc[:, None]
        h = torch.exp(-0.5 * ((r[:, None] - self.mu_a[None, :]) / self.width_a) ** 2) * fc[:, None]
        u = vec / r[:, None]
        sym = torch.stack([u[:, 0] ** 2 - 1.0 / 3.0, u[:, 1] ** 2 - 1.0 / 3.0, u[:, 2] ** 2 - 1.0 / 3.0,
                           u[:, 0] * u[:, 1], u[:, 0] * u[:, 2], u[:, 1] * u[:, 2]], dim=1) * self.sym_weights
        p = r.shape[0]
        v1 = (h[:, :, None] * u[:, None, :]).reshape(p, ka * 3)
        v2 = (h[:, :, None] * sym[:, None, :]).reshape(p, ka * 6)
        row_i = i * s + self.species[j]
        row_j = j * s + self.species[i]
        rows = torch.cat([row_i, row_j])
        out_rad = torch.zeros((n * s, self.n_radial), dtype=r.dtype, device=r.device)
        out_rad = out_rad.index_add(0, rows, torch.cat([radial, radial]))
        out_v1 = torch.zeros((n * s, ka * 3), dtype=r.dtype, device=r.device)
        out_v1 = out_v1.index_add(0, rows, torch.cat([v1, -v1]))
        out_v2 = torch.zeros((n * s, ka * 6), dtype=r.dtype, device=r.device)
        out_v2 = out_v2.index_add(0, rows, torch.cat([v2, v2]))
        c = s * ka
        a1 = out_v1.reshape(n, c, 3)
        a2 = out_v2.reshape(n, c, 6)
        p1 = torch.matmul(a1, a1.transpose(1, 2))[:, self.iu, self.ju]
        p2 = torch.matmul(a2, a2.transpose(1, 2))[:, self.iu, self.ju]
        return torch.cat([out_rad.reshape(n, s * self.n_radial), p1, p2], dim=1)
