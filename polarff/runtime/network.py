"""Torch twin of the Keras classifier: expected charges and polarizabilities from positions.

Filled from a :class:`polarff.artifact.PolarffModel` (numpy weights); no Keras or TensorFlow import.
Charges are the probability-weighted class centres, shifted uniformly so that they sum exactly to the
system's total charge; polarizabilities are probability-weighted centres (Å³). Both are smooth in
positions, so forces through them are well defined.
"""

from __future__ import annotations

import torch

from polarff.artifact import PolarffModel
from polarff.runtime.descriptors import TorchDescriptors


class ChargeModel(torch.nn.Module):
    """Per-atom charges (e) and polarizabilities (Å³) of one system of fixed composition.

    Parameters
    ----------
    model : PolarffModel
        Trained artifact.
    symbols : list of str
        Chemical symbols of the system's atoms, in order.
    total_charge : float
        Net charge of the system (e); predicted charges sum to it exactly.
    dtype : torch.dtype
        Computation precision (float64 by default; float32 for speed on GPUs).
    """

    def __init__(self, model: PolarffModel, symbols: list[str], total_charge: float = 0.0,
                 dtype: torch.dtype = torch.float64):
        super().__init__()
        species = torch.tensor(model.descriptor.species_index(list(symbols), "topology"), dtype=torch.long)
        self.descriptors = TorchDescriptors(model.descriptor, species)
        self.total_charge = float(total_charge)
        self.n_atoms = len(symbols)
        n_spec = model.descriptor.n_species
        self.register_buffer("onehot", torch.eye(n_spec, dtype=dtype)[species])
        self.register_buffer("feature_mean", torch.tensor(model.network.feature_mean, dtype=dtype))
        self.register_buffer("feature_std", torch.tensor(model.network.feature_std, dtype=dtype))
        layers = []
        for k in range(len(model.network.hidden)):
            layers.append(_linear(model, f"dense_{k}", dtype))
        self.trunk = torch.nn.ModuleList(layers)
        self.use_silu = model.network.activation == "silu"
        self.head_q = _linear(model, "head_charges", dtype)
        self.head_a = _linear(model, "head_polarizabilities", dtype)
        bq, ba = model.bins["charges"], model.bins["polarizabilities"]
        self.n_cls_q, self.n_cls_a = bq.n_classes, ba.n_classes
        self.register_buffer("centres_q", torch.tensor(bq.centres, dtype=dtype)[species])  # (N, K)
        self.register_buffer("centres_a", torch.tensor(ba.centres, dtype=dtype)[species])
        self.register_buffer("mask_q", torch.where(torch.tensor(bq.valid)[species], 0.0, -1e9).to(dtype))
        self.register_buffer("mask_a", torch.where(torch.tensor(ba.valid)[species], 0.0, -1e9).to(dtype))
        self.n_species = n_spec
        self.dtype_ = dtype

    def probabilities(self, positions: torch.Tensor, cell: torch.Tensor, periodic: bool
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Class probabilities (N, K_q) and (N, K_α); positions and cell in Å."""
        x = self.descriptors(positions.to(self.dtype_), cell.to(self.dtype_), periodic)
        h = torch.cat([(x - self.feature_mean) / self.feature_std, self.onehot], dim=1)
        for layer in self.trunk:
            h = layer(h)
            h = torch.nn.functional.silu(h) if self.use_silu else torch.tanh(h)
        n = h.shape[0]
        lq = self.head_q(h).reshape(n, self.n_species, self.n_cls_q)
        la = self.head_a(h).reshape(n, self.n_species, self.n_cls_a)
        lq = torch.sum(lq * self.onehot[:, :, None], dim=1) + self.mask_q
        la = torch.sum(la * self.onehot[:, :, None], dim=1) + self.mask_a
        return torch.softmax(lq, dim=1), torch.softmax(la, dim=1)

    def forward(self, positions: torch.Tensor, cell: torch.Tensor, periodic: bool
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Neutralised expected charges (N,) in e and expected polarizabilities (N,) in Å³."""
        pq, pa = self.probabilities(positions, cell, periodic)
        q = torch.sum(pq * self.centres_q, dim=1)
        q = q - (torch.sum(q) - self.total_charge) / self.n_atoms
        alpha = torch.sum(pa * self.centres_a, dim=1)
        return q, alpha


def _linear(model: PolarffModel, name: str, dtype: torch.dtype) -> torch.nn.Linear:
    kernel = model.weights[f"{name}/kernel"]
    bias = model.weights[f"{name}/bias"]
    layer = torch.nn.Linear(kernel.shape[0], kernel.shape[1], dtype=dtype)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(kernel.T, dtype=dtype))
        layer.bias.copy_(torch.tensor(bias, dtype=dtype))
    return layer
