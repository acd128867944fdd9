"""Per-species, per-target discretization of continuous labels into classes.

Each (target, species) pair gets its own bins from scikit-learn's ``KBinsDiscretizer`` with every
option set explicitly (defaults changed across releases). A class stands for its **centre**: the
mean of the training values that fall into the bin, so a centre always lies inside its bin and
``value_to_class(class_to_value(k)) == k`` holds exactly.

Training targets are *two-hot* distributions over the two centres that bracket the value, weighted
so that their expected value equals the value: the classifier's expected value Σ_k p_k c_k is then an
unbiased continuous prediction (needed for smooth forces in MD), while argmax gives the class.

Species with fewer distinct bins than ``n_bins`` are padded; :attr:`Binning.valid` masks padded classes.
Everything is stored as JSON (lists of floats), never as pickles.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from polarff.errors import ConfigError


@dataclass
class Binning:
    """Bins of one target for every species.

    Attributes
    ----------
    target : str
        Label name (e.g. ``charges``).
    species : list of str
        Species order (rows of the arrays).
    edges : ndarray (S, K+1)
        Bin edges per species (padded with the last edge).
    centres : ndarray (S, K)
        Class values per species (padded with the last centre).
    valid : ndarray of bool (S, K)
        Which classes exist for each species.
    """

    target: str
    species: list[str]
    edges: np.ndarray
    centres: np.ndarray
    valid: np.ndarray

    @property
    def n_classes(self) -> int:
        return self.centres.shape[1]

    def to_dict(self) -> dict:
        return {"target": self.target, "species": list(self.species), "edges": self.edges.tolist(),
                "centres": self.centres.tolist(), "valid": self.valid.astype(int).tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Binning":
        return cls(d["target"], list(d["species"]), np.asarray(d["edges"], float),
                   np.asarray(d["centres"], float), np.asarray(d["valid"], bool))

    def set_uniform(self, s: int, low: float, high: float) -> None:
        """Give species ``s`` all classes, centres spread evenly over [low, high] (a prior, no data)."""
        k = self.n_classes
        if not high > low:
            raise ConfigError(f"{self.target}: bin range for {self.species[s]} needs low < high, "
                              f"found [{low}, {high}]")
        c = np.linspace(low, high, k)
        half = 0.5 * (c[1] - c[0])
        self.centres[s] = c
        self.edges[s] = np.concatenate([c - half, [c[-1] + half]])
        self.valid[s] = True

    def class_to_value(self, species: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """Centre value of class ``classes`` for atoms of species index ``species``."""
        return self.centres[species, classes]

    def value_to_class(self, species: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Class (bin) of each value; values outside the training range go to the end classes."""
        species = np.asarray(species)
        values = np.asarray(values, float)
        out = np.empty(len(values), dtype=np.int64)
        for s in np.unique(species):
            sel = species == s
            k = int(self.valid[s].sum())
            inner = self.edges[s, 1:k]  # interior edges
            out[sel] = np.searchsorted(inner, values[sel], side="right")
        return out

    def two_hot(self, species: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Soft targets (M, K) whose expected centre equals each value (clipped to the centre range)."""
        species = np.asarray(species)
        values = np.asarray(values, float)
        out = np.zeros((len(values), self.n_classes))
        for s in np.unique(species):
            sel = np.nonzero(species == s)[0]
            k = int(self.valid[s].sum())
            c = self.centres[s, :k]
            v = np.clip(values[sel], c[0], c[-1])
            if k == 1:
                out[sel, 0] = 1.0
                continue
            hi = np.clip(np.searchsorted(c, v, side="right"), 1, k - 1)
            lo = hi - 1
            w_hi = (v - c[lo]) / (c[hi] - c[lo])
            out[sel, lo] = 1.0 - w_hi
            out[sel, hi] += w_hi
        return out


def fit_binning(target: str, species_names: list[str], species: np.ndarray, values: np.ndarray,
                n_bins: int = 32, strategy: str = "quantile") -> Binning:
    """Fit per-species bins of ``values`` with scikit-learn's KBinsDiscretizer.

    Parameters
    ----------
    target : str
        Label name.
    species_names : list of str
        All species of the model (order of rows).
    species : ndarray of int (M,)
        Species index of each value.
    values : ndarray (M,)
        Training values (unit of the label).
    n_bins : int
        Number of classes per species (fewer where the data have fewer distinct values).
    strategy : {'quantile', 'uniform', 'kmeans'}
        Binning strategy passed to KBinsDiscretizer.

    Returns
    -------
    Binning
        Edges, centres (bin means) and validity masks.
    """
    from sklearn.preprocessing import KBinsDiscretizer

    if n_bins < 2:
        raise ConfigError(f"n_bins for {target}: expected >= 2, found {n_bins}")
    s_count = len(species_names)
    edges = np.zeros((s_count, n_bins + 1))
    centres = np.zeros((s_count, n_bins))
    valid = np.zeros((s_count, n_bins), dtype=bool)
    for s in range(s_count):
        v = np.asarray(values[species == s], float)
        if len(v) == 0:  # species without labels: one dummy class at 0
            edges[s], centres[s], valid[s, 0] = 0.0, 0.0, True
            continue
        n_distinct = len(np.unique(np.round(v, 12)))
        k = min(n_bins, n_distinct, max(len(v) // 2, 1))
        if k >= 2:
            kb = KBinsDiscretizer(n_bins=k, encode="ordinal", strategy=strategy, subsample=None,
                                  quantile_method="averaged_inverted_cdf" if strategy == "quantile" else "linear",
                                  dtype=np.float64)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # bins merged when too narrow: handled below
                kb.fit(v[:, None])
            e = np.asarray(kb.bin_edges_[0], float)
            cls = np.clip(np.searchsorted(e[1:-1], v, side="right"), 0, len(e) - 2)
            used = np.unique(cls)
            c = np.array([v[cls == u].mean() for u in used])
            if len(used) < len(e) - 1:  # empty bins (ties in the data): re-draw edges around centres
                e = _edges_around(c, v)
        else:
            c = np.array([v.mean()])
            e = np.array([v.min(), v.max()])
        k = len(c)
        edges[s, :k + 1] = e
        edges[s, k + 1:] = e[-1]
        centres[s, :k] = c
        centres[s, k:] = c[-1]
        valid[s, :k] = True
    return Binning(target, list(species_names), edges, centres, valid)


def _edges_around(c: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Edges halfway between sorted centres, bounded by the data range."""
    mid = 0.5 * (c[1:] + c[:-1])
    return np.concatenate([[min(v.min(), c[0])], mid, [max(v.max(), c[-1])]])
