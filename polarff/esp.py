"""Charge calibration: GFN2-xTB charges scaled to DFT electrostatic-potential (ESP) charges.

GFN2-xTB charges are population charges (Mulliken-like, from a minimal valence basis). They are made to
give good GFN2 energies, not to reproduce the electrostatic potential around a molecule: for the water
monomer GFN2-xTB gives O −0.56 e, while charges fitted to the B3LYP/def2-SVPD potential give O −0.70 e.
A polarizable model that puts population charges on the atoms under-binds the liquid (polarff water at
the right density: −25 kJ/mol per molecule against −41.5 in experiment, ``docs/lj-rebalance.md``).

This module derives one factor per *charge group* that maps GFN2-xTB charges onto DFT ESP charges (or,
for water, onto the DFT dipole moment) of small clusters, and applies it to a labelled data set, so that a
model trained on it keeps the GFN2 environment dependence with DFT magnitudes. What that does to liquid
water and to transport is measured in ``docs/charge-calibration.md``:

* :func:`esp_grid`: Merz–Kollman-style points on shells at 1.4, 1.6, 1.8 and 2.0 × the van der Waals radii.
* :func:`dft_esp_charges`: pyscf Kohn–Sham density → exact ESP on the grid → least-squares atomic charges
  with the total charge as a constraint (no restraint: the clusters are small and every atom is
  exposed to the grid).
* :func:`calibrate_charges`: the calibration set (water monomer, ion(H₂O)ₙ from
  :func:`polarff.clusters.calibration_clusters`), GFN2-xTB and DFT ESP charges, resumable JSON.
* :func:`fit_charge_scales`: one factor s per group.

  - **Water (H and O, one factor, so molecules stay neutral)**: from isolated water molecules only, either
    by least squares q_ESP ≈ s · q_GFN2 (``water_target="esp"``) or so that the scaled charges carry the
    DFT dipole moment (``"dipole"``). In a water cluster the ESP charges also carry the cluster's own
    induced polarization; polarff adds induction explicitly (Thole), so its charges must be those of the
    unpolarized molecule, or induction is counted twice. (The dimer's ESP charges are 11 % larger than
    the monomer's.) Or a factor the user sets (``"fixed"``, ``water_factor``), recorded as such.
  - **Each ion**: least squares from the ion's charge in ion(H₂O)ₙ, n ≥ 1 (the bare ion is ±1 by
    construction and carries no information).
* :func:`apply_charge_scales`: per-atom ``charges`` × factor of the species, then the frame's excess over
  its total charge is removed uniformly, so Σq stays exact. The factors and their source are stored
  in the frame metadata (``info['charge_scale']``), so they travel with the extxyz file and into the
  model card.

Units: Å, e; ESP in e/Å (Hartree atomic units inside).
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from polarff.data import Frame
from polarff.errors import ConfigError, InputError
from polarff.fileio import write_json
from polarff.label import BOHR_A, LabelError, gfn2_charges

#: Bondi van der Waals radii (Å) used to place the ESP grid (Na: 2.27, Cl: 1.75).
VDW_RADII_A = {"H": 1.20, "Li": 1.82, "C": 1.70, "N": 1.55, "O": 1.52, "F": 1.47, "Na": 2.27, "K": 2.75,
               "Cl": 1.75, "Br": 1.85, "I": 1.98}
#: Shell radii of the grid in units of the van der Waals radius (Merz–Kollman / Singh–Kollman).
ESP_SHELLS = (1.4, 1.6, 1.8, 2.0)
#: Charge groups that share one factor: species that only occur together in neutral molecules.
WATER_GROUP = ("H", "O")
#: Debye per e·Å.
DEBYE_PER_E_A = 4.80320


def _fibonacci_sphere(n: int) -> np.ndarray:
    """n nearly uniform unit vectors (golden-angle spiral)."""
    i = np.arange(n) + 0.5
    polar = np.arccos(1.0 - 2.0 * i / n)
    azimuth = np.pi * (1.0 + 5.0 ** 0.5) * i
    return np.column_stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)])


def esp_grid(symbols: Sequence[str], positions: np.ndarray, shells: Sequence[float] = ESP_SHELLS,
             points_per_a2: float = 1.0) -> np.ndarray:
    """Points around a molecule where its electrostatic potential is fitted (Å).

    For each shell factor f and atom i, points on the sphere of radius f·R_vdW(i) about atom i (about
    ``points_per_a2`` per Å² of sphere, at least 10), kept when they lie outside every other atom's
    sphere of radius f·R_vdW.

    Raises
    ------
    InputError
        For a species without a tabulated van der Waals radius.
    """
    missing = sorted(set(symbols) - set(VDW_RADII_A))
    if missing:
        raise InputError("no van der Waals radius for the ESP grid", field="symbols",
                         expected=sorted(VDW_RADII_A), found=missing)
    positions = np.asarray(positions, dtype=np.float64)
    radii = np.array([VDW_RADII_A[s] for s in symbols])
    points = []
    for f in shells:
        for i in range(len(symbols)):
            r = f * radii[i]
            sphere = positions[i] + r * _fibonacci_sphere(max(int(4.0 * np.pi * r * r * points_per_a2), 10))
            distance = np.linalg.norm(sphere[:, None, :] - positions[None, :, :], axis=-1)
            points.append(sphere[(distance >= f * radii[None, :] - 1e-9).all(axis=1)])
    return np.concatenate(points)


def fit_esp_charges(positions: np.ndarray, points: np.ndarray, potential: np.ndarray,
                    total_charge: float) -> np.ndarray:
    """Atomic charges (e) whose Coulomb potential best fits ``potential`` (e/Å) at ``points`` (Å).

    Least squares with Σq = ``total_charge`` as an exact constraint (Lagrange multiplier).
    """
    design = 1.0 / np.linalg.norm(np.asarray(points)[:, None, :] - np.asarray(positions)[None, :, :], axis=-1)
    n = design.shape[1]
    kkt = np.zeros((n + 1, n + 1))
    kkt[:n, :n] = design.T @ design
    kkt[:n, n] = kkt[n, :n] = 1.0
    rhs = np.concatenate([design.T @ np.asarray(potential), [float(total_charge)]])
    return np.linalg.solve(kkt, rhs)[:n]


@dataclass
class ESPCharges:
    """DFT ESP charges of one cluster.

    Attributes
    ----------
    charges : ndarray (N,)
        e; Σq = total charge exactly.
    relative_rms : float
        RMS of the fit residual over the RMS of the potential on the grid.
    n_points : int
    dipole_debye : float
        |μ| of the DFT density (D; about the centre of nuclear charge for charged clusters).
    method : str
    seconds : float
        Wall time (SCF + grid).
    """

    charges: np.ndarray
    relative_rms: float
    n_points: int
    dipole_debye: float
    method: str
    seconds: float


def dft_esp_charges(frame: Frame, *, xc: str = "b3lyp", basis: str = "def2-svpd", threads: int = 1,
                    conv_tol: float = 1e-10, points_per_a2: float = 1.0) -> ESPCharges:
    """Charges fitted to the Kohn–Sham electrostatic potential of a closed-shell cluster (pyscf).

    The potential of nuclei and electron density is evaluated exactly on :func:`esp_grid` (three-centre
    integrals of the density with point charges), then :func:`fit_esp_charges`.

    Raises
    ------
    InputError
        For a periodic frame or an odd number of electrons.
    LabelError
        If the SCF does not converge.
    """
    from pyscf import df, dft, gto, lib

    from polarff.clusters import pyscf_molecule

    lib.num_threads(int(threads))
    start = time.perf_counter()
    mol = pyscf_molecule(frame, basis)
    mf = dft.RKS(mol)
    mf.xc, mf.conv_tol, mf.max_cycle = xc, conv_tol, 100
    mf.kernel()
    if not mf.converged:
        raise LabelError(f"{frame.where()}: {xc}/{basis} SCF did not converge")
    density = mf.make_rdm1()
    points = esp_grid(frame.symbols, frame.positions, points_per_a2=points_per_a2)
    points_bohr = points / BOHR_A
    potential = np.empty(len(points))
    for a in range(0, len(points), 256):  # (nao, nao, chunk) integrals: bounded memory
        chunk = points_bohr[a:a + 256]
        ints = df.incore.aux_e2(mol, gto.fakemol_for_charges(chunk))
        electrons = -np.einsum("ijp,ij->p", ints, density)
        nuclei = (mol.atom_charges()[None, :]
                  / np.linalg.norm(chunk[:, None, :] - mol.atom_coords()[None, :, :], axis=-1)).sum(axis=1)
        potential[a:a + 256] = (electrons + nuclei) / BOHR_A  # e/bohr -> e/Å
    charges = fit_esp_charges(frame.positions, points, potential, frame.total_charge)
    design = 1.0 / np.linalg.norm(points[:, None, :] - frame.positions[None, :, :], axis=-1)
    rel_rms = float(np.sqrt(np.mean((design @ charges - potential) ** 2) / np.mean(potential ** 2)))
    dipole = float(np.linalg.norm(mf.dip_moment(mol, density, unit="Debye", verbose=0)))
    return ESPCharges(charges, rel_rms, len(points), dipole, f"{xc.upper()}/{basis} (pyscf) ESP, "
                      f"shells {'/'.join(map(str, ESP_SHELLS))} × R_vdW", time.perf_counter() - start)


# ------------------------------------------------------------------------------------ calibration
@dataclass
class ChargeEntry:
    """One calibration cluster with GFN2-xTB and DFT ESP charges (e)."""

    name: str
    symbols: list[str]
    positions: list
    total_charge: float
    charges_gfn2: list
    charges_esp: list
    esp_relative_rms: float
    dipole_dft_debye: float
    seconds_dft: float


@dataclass
class ChargeCalibration:
    """GFN2-xTB → DFT charge factors from small clusters (see :func:`calibrate_charges`); ``water_target``
    says what the water factor reproduces (:func:`fit_charge_scales`)."""

    method: str
    entries: list[ChargeEntry] = field(default_factory=list)
    scales: dict[str, float] = field(default_factory=dict)
    water_target: str = "esp"
    water_factor: float | None = None

    @property
    def source(self) -> str:
        """What the factors map onto, for the frames' metadata and the model card."""
        if self.water_target == "fixed":
            return f"{self.method}; water: fixed factor {self.water_factor:g}"
        return self.method + ("" if self.water_target == "esp" else f"; water: {self.water_target}")

    def to_dict(self) -> dict:
        return {"method": self.method, "water_target": self.water_target, "water_factor": self.water_factor,
                "scales": self.scales, "entries": [asdict(e) for e in self.entries], "summary": self.summary()}

    @classmethod
    def from_dict(cls, d: dict) -> "ChargeCalibration":
        return cls(d["method"], [ChargeEntry(**e) for e in d.get("entries", [])], d.get("scales", {}),
                   d.get("water_target", "esp"), d.get("water_factor"))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ChargeCalibration":
        """Read a calibration JSON written by :meth:`save`."""
        try:
            with open(path) as handle:
                data = json.load(handle)
            return cls.from_dict(data)
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(f"not a polarff charge calibration: {exc}", file=str(path), field="method/entries",
                             expected="JSON written by polarff calibrate-charges", found=type(exc).__name__) from None

    def save(self, path: str | os.PathLike) -> None:
        """Write as JSON (atomically)."""
        write_json(path, self.to_dict())

    def summary(self) -> list[dict]:
        """Per cluster and species: mean GFN2, ESP and scaled GFN2 charge (e)."""
        rows = []
        for e in self.entries:
            for s in sorted(set(e.symbols)):
                mask = np.array(e.symbols) == s
                row = {"name": e.name, "species": s, "gfn2": float(np.mean(np.asarray(e.charges_gfn2)[mask])),
                       "esp": float(np.mean(np.asarray(e.charges_esp)[mask]))}
                if s in self.scales:
                    row["gfn2_scaled"] = row["gfn2"] * self.scales[s]
                rows.append(row)
        return rows


def calibrate_charges(clusters: Sequence[tuple[str, Frame]], path: str | os.PathLike | None = None, *,
                      xc: str = "b3lyp", basis: str = "def2-svpd", threads: int = 1,
                      water_target: str = "esp", water_factor: float | None = None,
                      progress: bool = True) -> ChargeCalibration:
    """GFN2-xTB and DFT ESP charges of calibration clusters, and the factors; resumable.

    After each cluster the calibration is written to ``path`` (JSON, atomically); a rerun skips clusters
    already there (same name and geometry, same method).

    Parameters
    ----------
    clusters : sequence of (name, Frame)
        E.g. :func:`polarff.clusters.calibration_clusters` (water monomer, dimer, bare ions, ion(H₂O)ₙ).
    path : path-like, optional
    xc, basis, threads : DFT settings (see :func:`dft_esp_charges`).
    water_target : {"esp", "dipole", "fixed"}
        What the water factor reproduces (see :func:`fit_charge_scales`).
    water_factor : float, optional
        The water factor itself, with ``water_target="fixed"``.
    progress : bool
        One line per cluster on stderr.
    """
    method = f"{xc.upper()}/{basis} (pyscf) ESP"
    _check_water_target(water_target, water_factor)
    calib = ChargeCalibration(method, water_target=water_target, water_factor=water_factor)
    if path is not None and Path(path).exists():
        old = ChargeCalibration.load(path)
        if old.method == method:
            calib.entries = old.entries
    for name, frame in clusters:
        if any(e.name == name and np.allclose(e.positions, frame.positions, atol=1e-6) for e in calib.entries):
            continue
        esp = dft_esp_charges(frame, xc=xc, basis=basis, threads=threads)
        gfn2 = gfn2_charges(frame, accuracy=0.01)  # as tight as the cluster response labels
        calib.entries = [e for e in calib.entries if e.name != name] + [ChargeEntry(
            name, list(frame.symbols), frame.positions.tolist(), float(frame.total_charge), gfn2.tolist(),
            esp.charges.tolist(), esp.relative_rms, esp.dipole_debye, esp.seconds)]
        if progress:
            print(f"[calibrate-charges] {name:12s} ESP " + " ".join(f"{q:+.3f}" for q in esp.charges)
                  + "  GFN2 " + " ".join(f"{q:+.3f}" for q in gfn2)
                  + f"  fit rms {esp.relative_rms:.3f}  {esp.seconds:.1f} s", file=sys.stderr, flush=True)
        if path is not None:
            calib.save(path)
    calib.scales = fit_charge_scales(calib.entries, water_target, water_factor)
    if path is not None:
        calib.save(path)
    return calib


def _is_water(entry: ChargeEntry) -> bool:
    return sorted(entry.symbols) == ["H", "H", "O"]


def _check_water_target(water_target: str, water_factor: float | None) -> None:
    if water_target not in ("esp", "dipole", "fixed"):
        raise ConfigError(f"water_target must be 'esp', 'dipole' or 'fixed', found {water_target!r}")
    if (water_target == "fixed") != (water_factor is not None):
        raise ConfigError("a water factor is given exactly when water_target is 'fixed' "
                          f"(found water_target={water_target!r}, water_factor={water_factor!r})")
    if water_factor is not None and not 0.5 <= water_factor <= 2.0:
        raise ConfigError(f"water factor must lie in [0.5, 2], found {water_factor}")


def fit_charge_scales(entries: Sequence[ChargeEntry], water_target: str = "esp",
                      water_factor: float | None = None) -> dict[str, float]:
    """Factors s that scale GFN2-xTB charges, one per charge group (see the module docstring).

    Each ion X: least squares q_ESP ≈ s · q_GFN2 over its own charge in the clusters that contain X and
    at least one other atom. Water (H and O, one factor), from isolated water molecules:

    * ``water_target="esp"``: least squares q_ESP ≈ s · q_GFN2 over their atoms;
    * ``water_target="dipole"``: s = |μ_DFT| / |Σ q_GFN2 r|, so that the scaled charges carry the DFT dipole
      moment of the molecule (the choice of permanent moments that AMOEBA-type models make; three ESP
      charges overshoot the dipole because they also stand in for the quadrupole).
    * ``water_target="fixed"``: s = ``water_factor``, chosen by the user (the ions are still fitted).

    Raises
    ------
    ConfigError
        If a species present in the entries has no cluster to fit its factor from.
    """
    _check_water_target(water_target, water_factor)
    pairs: dict[str, list[tuple[float, float]]] = {}
    for e in entries:
        gfn2, esp = np.asarray(e.charges_gfn2), np.asarray(e.charges_esp)
        if _is_water(e) and water_target == "fixed":
            continue  # set below
        if _is_water(e) and water_target == "dipole":
            gfn2_dipole = molecular_dipole_debye(e.symbols, np.asarray(e.positions), gfn2)
            pairs.setdefault("water", []).append((gfn2_dipole, e.dipole_dft_debye))
        elif _is_water(e):
            pairs.setdefault("water", []).extend(zip(gfn2, esp))
        elif len(e.symbols) > 1:
            for i, s in enumerate(e.symbols):
                if s not in WATER_GROUP:
                    pairs.setdefault(s, []).append((gfn2[i], esp[i]))
    scales = {}
    for group, values in pairs.items():
        g, q = np.array(values).T
        factor = float(g @ q / (g @ g))
        for s in (WATER_GROUP if group == "water" else (group,)):
            scales[s] = factor
    if water_target == "fixed":
        scales.update({s: float(water_factor) for s in WATER_GROUP})
    missing = sorted({s for e in entries for s in e.symbols} - set(scales))
    if missing:
        raise ConfigError(f"no calibration cluster fixes the charge factor of {missing}: add an isolated water "
                          "molecule (for H, O) or ion(H2O)n clusters (for ions)")
    return scales


def apply_charge_scales(frames: Sequence[Frame], scales: dict[str, float], *, source: str = "") -> list[Frame]:
    """Copies of ``frames`` with ``charges`` × the species factor, re-neutralized to the total charge.

    The residual Σ s_i q_i − Q is removed uniformly over the frame's atoms. It comes from the GFN2 charge
    transfer between groups with different factors: with the shipped factors, the embedded NaCl(aq)
    frames have about 0.18 e per NaCl pair in 64 waters, i.e. 0.001–0.003 e per atom.
    ``info['charge_scale']`` (all factors of the calibration, e.g. ``"Cl:0.94 H:1.24 Na:1.13 O:1.24"``, the
    same for every frame) and ``info['charge_scale_source']`` record what was applied.

    Raises
    ------
    InputError
        If a frame has a species without a factor, no charge label, or was scaled already.
    """
    out = []
    for f in frames:
        where = {"file": f.info.get("source"), "frame": f.info.get("index")}
        missing = sorted(set(f.symbols) - set(scales))
        if missing:
            raise InputError("no charge scale for these species", **where, field="charge_scale",
                             expected=sorted(scales), found=missing)
        if "charges" not in f.labels:
            raise InputError("frame has no charges to scale", **where, field="charges", expected="label present",
                             found="absent")
        if "charge_scale" in f.info:
            raise InputError("charges were already scaled", **where, field="charge_scale",
                             expected="unscaled data", found=f.info["charge_scale"])
        g = copy.deepcopy(f)
        q = np.asarray(g.labels["charges"], dtype=np.float64) * np.array([scales[s] for s in g.symbols])
        g.labels["charges"] = q - (q.sum() - f.total_charge) / f.n_atoms
        g.info["charge_scale"] = " ".join(f"{s}:{scales[s]:.5g}" for s in sorted(scales))  # the whole calibration
        g.info["charge_scale_source"] = source
        out.append(g.validate())
    return out


def parse_scales(text: str) -> dict[str, float]:
    """``"Cl:0.94 H:1.24"`` (as stored in ``info['charge_scale']`` and the model card) → {species: factor}."""
    try:
        return {s: float(v) for s, v in (item.split(":") for item in text.split())}
    except ValueError:
        raise InputError("malformed charge scale", field="charge_scale", expected="'Species:factor ...'",
                         found=text) from None


def molecular_dipole_debye(symbols: Sequence[str], positions: np.ndarray, charges: np.ndarray) -> float:
    """|Σ q_i r_i| of a neutral molecule in Debye (positions Å, charges e)."""
    return float(np.linalg.norm(np.asarray(charges) @ np.asarray(positions)) * DEBYE_PER_E_A)
