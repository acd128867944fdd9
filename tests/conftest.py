"""Shared fixtures: small structures built in code, and the location of ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: ../shared/data beside the checkout (absent on machines without it: tests using it skip).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_file(*parts: str) -> Path:
    """Path under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared reference data not found at {path} (needs ../shared beside the checkout)")
    return path


def assert_force_is_minus_gradient(potential, x: np.ndarray, box, seed: int = 4, h: float = 1e-5) -> float:
    """Central finite difference of the energy of a polarff potential along a random unit direction equals
    −F·direction (rel 1e-6); returns the energy (kJ/mol) at ``x`` (nm)."""
    from polarff.openmm.potential import energy_and_forces

    energy, forces = energy_and_forces(potential, x, box)
    direction = np.random.default_rng(seed).normal(size=np.shape(x))
    direction /= np.linalg.norm(direction)
    e_plus, _ = energy_and_forces(potential, x + h * direction, box)
    e_minus, _ = energy_and_forces(potential, x - h * direction, box)
    assert (e_plus - e_minus) / (2 * h) == pytest.approx(-np.sum(forces * direction), rel=1e-6, abs=1e-6)
    return energy


def water_box(n_side: int = 2, spacing: float = 3.1, seed: int = 0, ions: int = 0, jitter: float = 0.15):
    """A periodic box of rigid-geometry waters on a jittered cubic lattice (optionally NaCl pairs).

    Returns a validated :class:`polarff.data.Frame` with positions and cell in Å.
    """
    from polarff.data import Frame

    rng = np.random.default_rng(seed)
    symbols, pos = [], []
    sites = [np.array([i, j, k]) * spacing for i in range(n_side) for j in range(n_side) for k in range(n_side)]
    ion_sites = set(rng.choice(len(sites), size=2 * ions, replace=False).tolist()) if ions else set()
    ion_cycle = iter(["Na", "Cl"] * ions)
    for s, centre in enumerate(sites):
        centre = centre + rng.normal(scale=jitter, size=3)
        if s in ion_sites:
            symbols.append(next(ion_cycle))
            pos.append(centre)
            continue
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        oh, ang = 0.9572, np.deg2rad(104.52)
        local = np.array([[0, 0, 0], [oh, 0, 0], [oh * np.cos(ang), oh * np.sin(ang), 0]])
        symbols += ["O", "H", "H"]
        pos += list(centre + local @ q.T)
    cell = np.eye(3) * spacing * n_side
    return Frame(symbols, np.array(pos), cell=cell, pbc=[True] * 3).validate()


def synthetic_labels(frames, seed: int = 0):
    """Give frames smooth, environment-dependent charges and polarizabilities (for learning tests).

    Charges: species base value + a smooth function of the local environment, neutralised per frame.
    """
    from polarff.descriptors import DescriptorConfig, compute_descriptors

    cfg = DescriptorConfig(["H", "O", "Na", "Cl"], cutoff=4.0, n_radial=4, n_angular=2)
    w = np.random.default_rng(seed).normal(size=cfg.n_features)
    base_q = {"H": 0.35, "O": -0.7, "Na": 0.9, "Cl": -0.9}
    base_a = {"H": 0.4, "O": 0.9, "Na": 0.15, "Cl": 3.0}
    for f in frames:
        d = compute_descriptors(cfg, f)
        z = np.tanh((d - d.mean()) @ w / (np.linalg.norm(w) * d.std() + 1e-12))
        q = np.array([base_q[s] for s in f.symbols]) + 0.03 * z
        q -= (q.sum() - f.total_charge) / f.n_atoms
        f.labels["charges"] = q
        f.labels["polarizabilities"] = np.array([base_a[s] for s in f.symbols]) * (1 + 0.05 * z)
    return frames


@pytest.fixture(scope="session")
def labelled_boxes():
    """24 small labelled water + NaCl boxes (24 waters or 22 waters + 1 pair each)."""
    frames = [water_box(n_side=3, seed=s, ions=s % 2) for s in range(24)]
    return synthetic_labels(frames)


@pytest.fixture(scope="session")
def trained_model(labelled_boxes, tmp_path_factory):
    """A small model trained on :func:`labelled_boxes` and saved to disk: (model, report, path)."""
    from polarff.model import FitConfig, fit

    path = tmp_path_factory.mktemp("model") / "small.pff"
    cfg = FitConfig(epochs=40, eval_every=10, hidden=[32, 32], n_bins=12, cutoff=4.0, n_radial=4, n_angular=2,
                    batch_frames=4, seed=3)
    model, report = fit(labelled_boxes, cfg, out_path=path, progress=False)
    return model, report, path
