"""``polarff benchmark``: transport and IR of NaCl(aq) with polarff vs fixed-charge baselines, TNEP, experiment.

One command runs (or, when their folders are complete, reads) these MD runs on the same boxes, with the
same seed, thermostat and time step:

===================  =============================================================================
run                  Hamiltonian
===================  =============================================================================
``polarff-nacl``     the polarff model (environment-dependent charges + Thole induction) + fixed LJ
``formal-nacl``      fixed-charge baseline: TIP3P + Joung–Cheatham ions, formal charges ±1
``scaled-nacl``      the same with ion charges scaled by 0.75 (electronic continuum correction)
``polarff-water``    the polarff model, pure water (IR spectrum, TNEP comparison)
``tip3p-water``      TIP3P, pure water
===================  =============================================================================

and writes a markdown report with PNG plots (MSD, conductivity running integrals, IR spectra): D of
water, Na⁺ and Cl⁻ (Yeh–Hummer corrected), Einstein–Helfand / Green–Kubo / Nernst–Einstein
conductivities and the molar conductivity against experiment; IR band positions against liquid water;
the polarff total dipole along the pure-water trajectory against the TNEP dipole model evaluated on the
same frames; and a sampling plan (error bar vs run length, extrapolated as 1/√T).

Every number is given with a block-averaging standard error (n_blocks contiguous blocks) and every
experimental value with its source (:mod:`polarff.analysis.experiment`).

Units: nm, ps, e, K; D in 1e-9 m²/s, σ in S/m, Λ in S cm² mol⁻¹, dipoles in e·Å for IR and TNEP.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from polarff.cli import Command, register
from polarff.errors import ConfigError
from polarff.simulate import THERMOSTATS

#: Formal charges used for the ion-only translational dipole (e).
FORMAL_ION_CHARGES = {"Li": 1.0, "Na": 1.0, "K": 1.0, "F": -1.0, "Cl": -1.0, "Br": -1.0, "I": -1.0}
#: Transport species: label → (element, residue name or None).
SPECIES_GROUPS = {"H2O": ("O", "HOH"), "Na+": ("Na", None), "Cl-": ("Cl", None)}
#: Relative agreement with experiment the benchmark aims for.
TARGET_RELATIVE = 0.15
#: Repository-relative default location of the TNEP water dipole model.
DEFAULT_TNEP = Path(__file__).resolve().parents[2] / "shared" / "data" / "tnep-water" / "dipole" / "nep.txt"


# ------------------------------------------------------------------------------------------------
# transport


def _species_masks(traj: dict) -> dict[str, np.ndarray]:
    symbols = np.asarray(traj["symbols"]).astype(str)
    residues = np.asarray(traj["residue_names"]).astype(str)
    masks = {}
    for label, (element, residue) in SPECIES_GROUPS.items():
        mask = symbols == element
        if residue is not None:
            mask &= residues == residue
        if mask.any():
            masks[label] = mask
    return masks


def _volumes(traj: dict) -> np.ndarray:
    return np.abs(np.linalg.det(np.asarray(traj["box"], dtype=np.float64)))


def _reference_dict(ref) -> dict:
    return {"value": ref.value, "error": ref.error, "unit": ref.unit, "source": ref.source,
            "conditions": ref.conditions, "note": ref.note}


def analyze_transport(traj: dict, *, n_blocks: int = 5, viscosity: float | None = None,
                      fit_window: tuple[float, float] | None = None) -> tuple[dict, dict]:
    """Diffusion and conductivity of a (salt) water run, with error bars and experimental references.

    Parameters
    ----------
    traj : dict
        :func:`polarff.simulate.load_trajectory` output (unwrapped positions nm, per-frame charges e).
    n_blocks : int
        Contiguous blocks for the standard errors.
    viscosity : float, optional
        Shear viscosity for the Yeh–Hummer correction, mPa·s (default: experimental water, 0.89).
    fit_window : (float, float), optional
        Lag window of the MSD fits, ps (default 10 %–50 % of a block).

    Returns
    -------
    summary : dict
        JSON-serialisable numbers (see :func:`format_transport`): ``diffusion`` per species (PBC value,
        Yeh–Hummer correction, corrected value, standard error, experiment), ``conductivity``
        (Einstein–Helfand with the model's per-frame charges and with formal ion charges,
        Green–Kubo, Nernst–Einstein, Haven ratio, Λ, experiment), box and run data.
    curves : dict
        Arrays for plots: MSDs, ``<|ΔM|²>``, Green–Kubo running integral.
    """
    from polarff.analysis import (diffusion_coefficient, dipole_current, einstein_helfand,
                                  einstein_helfand_from_dipole, green_kubo, haven_ratio, molar_conductivity,
                                  nernst_einstein, salt_concentration)
    from polarff.analysis.diffusion import WATER_VISCOSITY_MPA_S
    from polarff.analysis.experiment import D_CL_298K, D_NA_298K, D_WATER_298K, nacl_molar_conductivity

    viscosity = WATER_VISCOSITY_MPA_S if viscosity is None else viscosity
    positions = np.asarray(traj["positions"], dtype=np.float64)
    times = np.asarray(traj["time"], dtype=np.float64)
    temperature = float(traj["temperature_k"])
    volume = float(np.mean(_volumes(traj)))
    length = volume ** (1.0 / 3.0)
    masses = np.asarray(traj["masses"], dtype=np.float64)
    masks = _species_masks(traj)
    experiment = {"H2O": D_WATER_298K, "Na+": D_NA_298K, "Cl-": D_CL_298K}
    n_waters = int(masks["H2O"].sum()) if "H2O" in masks else 0
    n_pairs = int(min(masks.get("Na+", np.zeros(1)).sum(), masks.get("Cl-", np.zeros(1)).sum()))
    summary: dict = {
        "temperature_k": temperature, "volume_nm3": volume, "box_nm": length, "n_frames": len(times),
        "length_ps": float(times[-1] - times[0] + (times[1] - times[0])),
        "frame_interval_ps": float(times[1] - times[0]), "n_blocks": n_blocks, "n_waters": n_waters,
        "n_pairs": n_pairs, "viscosity_mpa_s": viscosity, "diffusion": {}}
    if "temperature" in traj and len(traj["temperature"]):
        # the measured (kinetic) temperature: a weak thermostat lets a small box's run wander from the set one
        summary["kinetic_temperature_k"] = float(np.mean(traj["temperature"]))
    curves: dict = {"lag_times": None, "msd": {}}
    results = {}
    for label, mask in masks.items():
        res = diffusion_coefficient(positions, times, atoms=mask, masses=masses, temperature=temperature,
                                    box_length=length, viscosity=viscosity, n_blocks=n_blocks,
                                    fit_window=fit_window)
        results[label] = res
        summary["diffusion"][label] = {
            "pbc": res.diffusion, "error": res.error, "yh_correction": res.correction,
            "corrected": res.diffusion_corrected, "fit_window_ps": list(res.fit_window), "n_atoms": res.n_atoms,
            "experiment": _reference_dict(experiment[label])}
        curves["lag_times"] = res.lag_times
        curves["msd"][label] = (res.msd, res.slope, res.intercept, res.fit_window)
    if n_pairs:
        charges = np.asarray(traj["charges"], dtype=np.float64)
        residues = np.asarray(traj["residue_index"])
        model_dipole = molecular_translational_dipole(positions, charges, masses, residues)
        eh = einstein_helfand_from_dipole(model_dipole, times, volume, temperature, n_blocks=n_blocks,
                                          fit_window=fit_window)
        symbols = np.asarray(traj["symbols"]).astype(str)
        water = masks.get("H2O", np.zeros(len(symbols), dtype=bool))
        formal = np.array([0.0 if water[i] else FORMAL_ION_CHARGES.get(s, 0.0) for i, s in enumerate(symbols)])
        eh_formal = einstein_helfand(positions, times, formal, volume, temperature, n_blocks=n_blocks,
                                     fit_window=fit_window)
        current, mid = dipole_current(model_dipole, times)
        block_ps = (len(mid) // n_blocks - 1) * (mid[1] - mid[0])
        gk = green_kubo(current, mid, volume, temperature, n_blocks=n_blocks, max_lag_time=0.25 * block_ps)
        ion_charge = {"Na": float(charges[:, masks["Na+"]].mean()), "Cl": float(charges[:, masks["Cl-"]].mean())}
        ne = nernst_einstein({"Na": results["Na+"], "Cl": results["Cl-"]}, ion_charge, volume, temperature)
        concentration = salt_concentration(n_pairs, volume)
        reference = nacl_molar_conductivity(min(concentration, 1.0))
        summary["concentration_mol_l"] = concentration
        summary["molality_mol_kg"] = n_pairs / (n_waters * 0.01801528) if n_waters else float("nan")
        cond = {
            "eh": {"sigma": eh.sigma, "error": eh.error, "fit_window_ps": list(eh.fit_window)},
            "eh_formal": {"sigma": eh_formal.sigma, "error": eh_formal.error},
            "gk": {"sigma": gk.sigma, "error": gk.error, "plateau_window_ps": list(gk.plateau_window)},
            "ne": {"sigma": ne.sigma, "error": ne.error, "ion_charges": ion_charge},
            "molar_conductivity": {"value": molar_conductivity(eh.sigma, concentration),
                                   "error": molar_conductivity(eh.error, concentration)},
            "molar_conductivity_formal": {"value": molar_conductivity(eh_formal.sigma, concentration),
                                          "error": molar_conductivity(eh_formal.error, concentration)},
            "molar_conductivity_ne": {"value": molar_conductivity(ne.sigma, concentration),
                                      "error": molar_conductivity(ne.error or 0.0, concentration)},
            "haven_ratio": haven_ratio(ne.sigma, eh.sigma) if eh.sigma > 0 else float("nan"),
            "molar_conductivity_yh_scaled": yeh_hummer_scaled(molar_conductivity(eh.sigma, concentration),
                                                              molar_conductivity(eh.error, concentration),
                                                              summary["diffusion"]),
            "experiment": {"molar_conductivity": _reference_dict(reference),
                           "sigma": reference.value * concentration / 10.0,
                           "sigma_error": (reference.error or 0.0) * concentration / 10.0,
                           "concentration_clamped": concentration > 1.0},
        }
        summary["conductivity"] = cond
        curves["eh"] = eh
        curves["eh_formal"] = eh_formal
        curves["gk"] = gk
        curves["volume"] = volume
    return summary, curves


def yeh_hummer_scaled(value: float, error: float, diffusion: dict) -> dict:
    """A small box's Einstein–Helfand Λ scaled by the ions' Yeh–Hummer factor: an upper estimate of its
    large-box value.

    ``Λ × f`` with ``f = (D_corr(Na⁺) + D_corr(Cl⁻)) / (D_PBC(Na⁺) + D_PBC(Cl⁻))``, the factor by which the
    Yeh–Hummer correction raises the Nernst–Einstein conductivity. If the ion–ion correlations that separate Λ
    from its Nernst–Einstein value did not depend on the box, ``Λ × f`` would be the large-box Λ. In the
    fixed-charge baseline at 0.87 mol/kg (examples/replica_statistics.py, docs/replica-statistics.md) the
    Einstein–Helfand Λ of the 64-water box (1.25 nm) is indeed below that of a 512-water box (2.50 nm), but by
    less than ``f`` says: ``Λ × f`` of the small box over-shoots the large box's. It is reported beside the
    measured Λ as an upper estimate, not as a measurement.

    Parameters
    ----------
    value, error : float
        Λ and its standard error, S cm² mol⁻¹.
    diffusion : dict
        ``summary["diffusion"]`` of :func:`analyze_transport` (``pbc``, ``corrected``, ``error`` per species;
        1e-9 m²/s).

    Returns
    -------
    dict
        ``value``, ``error`` (Λ's and f's relative errors combined; f's from the ions' D errors) and ``factor``
        (f); NaN where the ions' periodic D sum is not positive.
    """
    ions = [diffusion[s] for s in ("Na+", "Cl-") if s in diffusion]
    periodic = sum(d["pbc"] for d in ions)
    if len(ions) < 2 or not periodic > 0:
        nan = float("nan")
        return {"value": nan, "error": nan, "factor": nan}
    corrected = sum(d["corrected"] for d in ions)
    factor = corrected / periodic
    # f = C / P with C - P fixed (the correction): df = (C - P) / P² dP
    factor_error = (corrected - periodic) / periodic ** 2 * float(np.sqrt(sum(d["error"] ** 2 for d in ions)))
    relative = float(np.hypot(error / value, factor_error / factor)) if value else float("nan")
    return {"value": value * factor, "error": abs(value * factor) * relative, "factor": factor}


def molecular_translational_dipole(positions: np.ndarray, charges: np.ndarray, masses: np.ndarray,
                                   residue_index: np.ndarray) -> np.ndarray:
    """Translational dipole of molecules, ``M(t) = Σ_m Q_m(t) R_m(t)`` (e·nm, shape (T, 3)).

    ``Q_m`` is the net charge of molecule (residue) m in frame t, ``R_m`` its unwrapped centre of mass.
    ``Σ_i q_i r_i`` differs from it by the sum of the molecular dipoles about their centres, which is
    bounded for whole molecules: both give the same Einstein–Helfand slope at long lags, but the
    molecular rotations (the dielectric relaxation of water, ~10 ps) make ``Σ q r`` converge far more
    slowly. Charge transferred between molecules is kept (``Q_m`` changes with time).

    Parameters
    ----------
    positions : ndarray, shape (T, N, 3)
        Unwrapped positions, nm.
    charges : ndarray, shape (T, N) or (N,)
        e.
    masses : ndarray, shape (N,)
        dalton.
    residue_index : ndarray of int, shape (N,)
        Molecule of every atom.
    """
    pos = np.asarray(positions, dtype=np.float64)
    q = np.asarray(charges, dtype=np.float64)
    if q.ndim == 1:
        q = np.broadcast_to(q, pos.shape[:2])
    m = np.asarray(masses, dtype=np.float64)
    _, molecule = np.unique(np.asarray(residue_index), return_inverse=True)
    n_mol = int(molecule.max()) + 1
    onehot = np.zeros((len(m), n_mol))
    onehot[np.arange(len(m)), molecule] = 1.0
    centres = np.einsum("tnk,n,nm->tmk", pos, m, onehot) / (m @ onehot)[None, :, None]
    molecular_charges = q @ onehot
    return np.einsum("tmk,tm->tk", centres, molecular_charges)


def transport_summary(traj: dict, n_blocks: int = 5, **options) -> dict:
    """The JSON-serialisable part of :func:`analyze_transport`."""
    return analyze_transport(traj, n_blocks=n_blocks, **options)[0]


def fmt(value: float | None, error: float | None = None, digits: int = 2) -> str:
    """``value ± error`` with ``digits`` decimals ('n/a' for missing or non-finite values)."""
    if value is None or not np.isfinite(value):
        return "n/a"
    if error is None or not np.isfinite(error):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ± {error:.{digits}f}"


def agreement(value: float, error: float, reference: float, target: float = TARGET_RELATIVE) -> str:
    """Verdict of a model value (± standard error) against an experimental one at ``target`` relative."""
    if not (np.isfinite(value) and np.isfinite(error)) or reference == 0:
        return "n/a"
    deviation = (value - reference) / reference
    window = target * abs(reference)
    if abs(value - reference) <= window and error <= window:
        return f"{100 * deviation:+.0f} %: within {100 * target:.0f} %"
    if abs(value - reference) - 2 * error > window:
        return f"{100 * deviation:+.0f} %: outside {100 * target:.0f} % (> 2σ)"
    return f"{100 * deviation:+.0f} %: undetermined (error bar ±{100 * error / abs(reference):.0f} %)"


def combine_replicas(transports: Sequence[dict]) -> dict:
    """Transport estimates of independent replicas of one run (same model and composition) combined.

    Each replica's estimate counts equally (the runs have the same length; weighting by the block error
    bars, which are themselves uncertain by ~40 % with 5 blocks, would favour the replicas whose errors
    happen to come out small): value = mean. The error is the larger of two standard errors of that mean:
    from the replicas' block errors, √(Σ errorᵢ²) / n, and from the replicas' scatter, s / √n (s the
    sample standard deviation, n ≥ 2). Block errors of one run can miss slow fluctuations that separate
    replicas (a contact ion pair that lasts tens of ps). Measured, they are honest for the fixed-charge
    baseline (32 replicas) and for the polarff molecular model (twelve replicas: scatter / block error
    0.8–1.4; docs/replica-statistics.md), but with few replicas either estimate can come out low, so the
    larger is taken.

    Parameters
    ----------
    transports : sequence of dict
        ``results["transport"][run]`` of each replica (:func:`analyze_transport`; results.json of
        ``polarff benchmark``).

    Returns
    -------
    dict
        ``{"n_replicas", "length_ps" (total), "diffusion": {species: {"replicas", "value", "error",
        "block_error", "scatter_error", "experiment"}}, "conductivity": {"molar_conductivity" |
        "molar_conductivity_formal": {...}, "molar_conductivity_yh_scaled": {..., "factor"}, "experiment"}}``;
        D in 1e-9 m²/s, Λ in S cm² mol⁻¹; ``scatter_error`` is NaN for one replica. The Yeh–Hummer-scaled Λ
        (:func:`yeh_hummer_scaled`) is the combined Λ times the factor of the combined ion D values; its
        ``replicas`` are each replica's own scaled value.

    Raises
    ------
    ConfigError
        If there are no replicas or they differ in species or composition.
    """
    if not transports:
        raise ConfigError("combine_replicas: no replicas given")
    first = transports[0]
    for t in transports[1:]:
        for key in ("n_waters", "n_pairs"):
            if t[key] != first[key]:
                raise ConfigError(f"combine_replicas: replicas differ in {key} (expected {first[key]}, found "
                                  f"{t[key]})")
        if set(t["diffusion"]) != set(first["diffusion"]):
            raise ConfigError(f"combine_replicas: replicas differ in species (expected {sorted(first['diffusion'])}, "
                              f"found {sorted(t['diffusion'])})")

    def combined(pairs: list[tuple[float, float]]) -> dict:
        values, errors = np.array(pairs, dtype=float).T
        n = len(pairs)
        block_error = float(np.sqrt(np.sum(errors ** 2)) / n)
        scatter_error = float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        return {"replicas": [[float(v), float(e)] for v, e in pairs], "value": float(values.mean()),
                "error": max(block_error, scatter_error) if n > 1 else block_error,
                "block_error": block_error, "scatter_error": scatter_error}

    out = {"n_replicas": len(transports), "length_ps": float(sum(t["length_ps"] for t in transports)),
           "kinetic_temperature_k": [t.get("kinetic_temperature_k") for t in transports],
           "diffusion": {}, "conductivity": {}}
    for species in first["diffusion"]:
        d = combined([(t["diffusion"][species]["corrected"], t["diffusion"][species]["error"])
                      for t in transports])
        out["diffusion"][species] = {**d, "experiment": first["diffusion"][species]["experiment"]}
    if all("conductivity" in t for t in transports):
        for key in ("molar_conductivity", "molar_conductivity_formal"):
            out["conductivity"][key] = combined([(t["conductivity"][key]["value"], t["conductivity"][key]["error"])
                                                 for t in transports])
        out["conductivity"]["experiment"] = first["conductivity"]["experiment"]["molar_conductivity"]
        # the box-size estimate: the combined Λ times the Yeh–Hummer factor of the combined ion D values
        lam = out["conductivity"]["molar_conductivity"]
        ions = {s: {"pbc": float(np.mean([t["diffusion"][s]["pbc"] for t in transports])),
                    "corrected": out["diffusion"][s]["value"], "error": out["diffusion"][s]["error"]}
                for s in ("Na+", "Cl-") if s in out["diffusion"]}
        scaled = yeh_hummer_scaled(lam["value"], lam["error"], ions)
        own = [yeh_hummer_scaled(v, e, t["diffusion"]) for (v, e), t in zip(lam["replicas"], transports)]
        out["conductivity"]["molar_conductivity_yh_scaled"] = {
            **scaled, "replicas": [[o["value"], o["error"]] for o in own],
            "block_error": lam["block_error"] * scaled["factor"],
            "scatter_error": lam["scatter_error"] * scaled["factor"]}
    return out


def format_transport(summary: dict, title: str = "transport") -> str:
    """Plain-text table of :func:`transport_summary` (for the demo and the terminal)."""
    lines = [title,
             f"  box {summary['box_nm']:.3f} nm, {summary['n_frames']} frames over {summary['length_ps']:.2f} ps, "
             f"T = {summary['temperature_k']:.2f} K, error bars: standard error over {summary['n_blocks']} blocks",
             "  self-diffusion (1e-9 m^2/s; Yeh-Hummer correction with eta = "
             f"{summary['viscosity_mpa_s']} mPa s):"]
    for label, d in summary["diffusion"].items():
        ref = d["experiment"]
        lines.append(f"    D({label:4s}) = {fmt(d['corrected'], d['error'])}  (PBC {fmt(d['pbc'], d['error'])}, "
                     f"n = {d['n_atoms']})   experiment {ref['value']:.3f} [{ref['conditions']}; "
                     f"{ref['source'].split(',')[0]}]")
    if "conductivity" in summary:
        c = summary["conductivity"]
        exp = c["experiment"]
        lines += [f"  ionic conductivity at c = {summary['concentration_mol_l']:.3f} mol/L "
                  f"({summary['molality_mol_kg']:.2f} mol/kg), S/m:",
                  f"    Einstein-Helfand (model's per-frame charges) {fmt(c['eh']['sigma'], c['eh']['error'])}",
                  f"    Einstein-Helfand (formal ion charges)        {fmt(c['eh_formal']['sigma'], c['eh_formal']['error'])}",
                  f"    Nernst-Einstein (from D(Na+), D(Cl-), PBC)   {fmt(c['ne']['sigma'], c['ne']['error'])}",
                  f"    experiment                                   {exp['sigma']:.2f} "
                  f"(= Lambda x c; {exp['molar_conductivity']['source'].split(',')[0]}"
                  + ("; Lambda at 1 mol/L, the box is more concentrated)" if exp["concentration_clamped"] else ")"),
                  f"  molar conductivity Lambda (S cm^2/mol): EH {fmt(c['molar_conductivity']['value'], c['molar_conductivity']['error'], 1)}, "
                  f"NE {fmt(c['molar_conductivity_ne']['value'], c['molar_conductivity_ne']['error'], 1)}, "
                  f"experiment {fmt(exp['molar_conductivity']['value'], exp['molar_conductivity']['error'], 1)} "
                  f"[{exp['molar_conductivity']['conditions']}]"]
    lines.append("  NOTE: a short run of a small box; the error bars above are the honest measure of what it "
                 "can resolve (see docs/benchmark-nacl.md for the sampling plan).")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# IR and TNEP


def ir_analysis(dipole_e_nm: np.ndarray, times: np.ndarray, temperature: float, n_blocks: int = 4,
                max_lag_time: float | None = None) -> dict:
    """IR spectrum of a total-dipole series and its band positions with block errors.

    Parameters
    ----------
    dipole_e_nm : ndarray, shape (T, 3)
        Total dipole, e·nm (converted to e·Å for :func:`polarff.analysis.ir_spectrum`).
    times : ndarray, shape (T,)
        ps.
    temperature : float
        K.
    n_blocks : int
        Blocks for the error of band positions (spectrum of every block, peak per block).
    max_lag_time : float, optional
        Correlation length, ps (default: min(1 ps, a quarter of a block)).

    Returns
    -------
    dict
        ``spectrum`` (IRSpectrum of the whole run) and ``bands``: per experimental band in range, the
        model peak (cm⁻¹) ± block standard error, or None when no peak is found.
    """
    from polarff.analysis import find_peaks, ir_spectrum
    from polarff.analysis.experiment import WATER_IR_BANDS_298K
    from polarff.analysis.stats import block_slices, standard_error

    dipole = np.asarray(dipole_e_nm, dtype=np.float64) * 10.0
    n_frames = len(times)
    block = n_frames // n_blocks
    dt = float(times[1] - times[0])
    if max_lag_time is None:
        max_lag_time = min(1.0, 0.25 * (block - 1) * dt)
    spectrum = ir_spectrum(dipole, times, temperature=temperature, max_lag_time=max_lag_time)
    nyquist = spectrum.wavenumbers[-1]
    windows = {"libration": (300.0, 1200.0), "intermolecular H-bond stretch": (100.0, 300.0),
               "H-O-H bend": (1400.0, 1900.0), "O-H stretch": (2800.0, 3900.0)}
    bands = {}
    block_spectra = [ir_spectrum(dipole[s], times[s], temperature=temperature, max_lag_time=max_lag_time)
                     for s in block_slices(n_frames, n_blocks)]
    for name, (lo, hi) in windows.items():
        ref = WATER_IR_BANDS_298K[name]
        entry = {"experiment": _reference_dict(ref), "peak": None, "error": None}
        if hi < nyquist:
            peak = _strongest_peak(spectrum.wavenumbers, spectrum.intensity, lo, hi, find_peaks)
            per_block = [_strongest_peak(s.wavenumbers, s.intensity, lo, hi, find_peaks) for s in block_spectra]
            per_block = [p for p in per_block if p is not None]
            entry["peak"] = peak
            entry["error"] = standard_error(np.array(per_block)) if len(per_block) >= 2 else None
        else:
            entry["note"] = f"above the Nyquist limit {nyquist:.0f} cm-1 of the saved frames"
        bands[name] = entry
    return {"spectrum": spectrum, "bands": bands, "max_lag_time_ps": max_lag_time}


def _strongest_peak(wavenumbers, intensity, lo, hi, find_peaks) -> float | None:
    try:
        peaks = find_peaks(wavenumbers, intensity, wavenumber_range=(lo, hi), min_prominence=0.05)
    except ConfigError:  # the frequency grid of a very short run has too few points in the window
        return None
    inside = [p for p in peaks if lo < p.wavenumber < hi]
    if not inside:
        return None
    return float(max(inside, key=lambda p: p.intensity).wavenumber)


def geometric_water_dipole(positions_nm: np.ndarray, symbols, residue_index) -> np.ndarray:
    """``Σ_m (r_H1 + r_H2 − 2 r_O)`` over whole water molecules, e·Å, per frame (T, 3).

    The nuclear (+6 on O, +1 on H) minus 8 core-centred electrons part of the GPUMD water dipole
    convention; molecules must be whole (unwrapped trajectories are).
    """
    symbols = np.asarray(symbols).astype(str)
    pos = np.asarray(positions_nm, dtype=np.float64) * 10.0
    weights = np.where(symbols == "H", 1.0, np.where(symbols == "O", -2.0, 0.0))
    _ = residue_index  # molecules are whole, so the sum over atoms equals the sum over molecules
    return np.einsum("tnk,n->tk", pos, weights)


def tnep_dipole_series(traj: dict, nep_path: str, stride: int = 1) -> dict:
    """Total dipole (e·Å) of a pure-water trajectory from the TNEP dipole model (calorine, CPU).

    ``M = Σ_m (r_H1 + r_H2 − 2 r_O) − 2 Σ adipole`` (GPUMD convention; the TNEP model predicts
    ``Σ adipole`` in Å from wrapped positions, the geometric part uses the whole molecules of the
    unwrapped trajectory).

    Returns
    -------
    dict
        ``indices`` (frames used), ``dipole`` (F, 3) e·Å, ``seconds_per_frame``.
    """
    from polarff.simulate import trajectory_frame
    from polarff.tnep import tnep_predict

    symbols = [str(s) for s in traj["symbols"]]
    indices = np.arange(0, len(traj["time"]), stride)
    frames = []
    for k in indices:
        frame = trajectory_frame(traj, k)
        frame.positions = frame.wrapped_positions()
        frames.append(frame)
    adipole, seconds = tnep_predict(frames, nep_path, "dipole")
    geometric = geometric_water_dipole(np.asarray(traj["positions"])[indices], symbols, traj["residue_index"])
    return {"indices": indices, "dipole": geometric - 2.0 * adipole, "seconds_per_frame": seconds}


def compare_dipole_series(model: np.ndarray, reference: np.ndarray) -> dict:
    """Agreement of two total-dipole series (e·Å) after removing their means.

    Returns
    -------
    dict
        ``correlation`` (Pearson over all components), ``rmse`` (e·Å), ``std_ratio`` (model/reference
        standard deviation of the fluctuations) and ``mean_difference`` (e·Å, norm).
    """
    a = np.asarray(model, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    da, db = a - a.mean(axis=0), b - b.mean(axis=0)
    return {"correlation": float(np.corrcoef(da.ravel(), db.ravel())[0, 1]),
            "rmse": float(np.sqrt(np.mean((da - db) ** 2))),
            "std_ratio": float(da.std() / db.std()) if db.std() > 0 else float("nan"),
            "mean_difference": float(np.linalg.norm(a.mean(axis=0) - b.mean(axis=0)))}


# ------------------------------------------------------------------------------------------------
# sampling plan


def error_scaling(lengths_ps: np.ndarray, errors: np.ndarray) -> float:
    """Amplitude ``A`` of ``error = A / sqrt(T)`` fitted to measured (T, error) pairs (least squares in log).

    Parameters
    ----------
    lengths_ps : array_like
        Run lengths, ps.
    errors : array_like
        Standard errors measured on runs (or prefixes) of those lengths, any unit u.

    Returns
    -------
    float
        A in u·ps^½.
    """
    t = np.asarray(lengths_ps, dtype=np.float64)
    e = np.asarray(errors, dtype=np.float64)
    good = (t > 0) & (e > 0) & np.isfinite(e)
    if not good.any():
        return float("nan")
    return float(np.exp(np.mean(np.log(e[good]) + 0.5 * np.log(t[good]))))


def required_length(amplitude: float, target_error: float) -> float:
    """Run length (ps) at which ``A / sqrt(T)`` reaches ``target_error`` (same unit as A / ps^½)."""
    if not (np.isfinite(amplitude) and target_error > 0):
        return float("nan")
    return float((amplitude / target_error) ** 2)


def sampling_plan(traj: dict, fractions=(0.5, 0.75, 1.0), n_blocks: int = 4) -> dict:
    """Error bars of D and σ on prefixes of a run, the fitted 1/√T law and the length each target needs.

    The MSD fit window is held fixed (in ps) for all prefixes: the default window (10 %–50 % of a block)
    of the shortest prefix. With a window that grows with the run, as the default analysis uses, the
    block-to-block scatter of a slope does not shrink with the run length; with a fixed window it
    shrinks as 1/√T, which is what the extrapolation assumes.

    Parameters
    ----------
    traj : dict
        A salt-water run (:func:`polarff.simulate.load_trajectory`).
    fractions : sequence of float
        Prefix lengths as fractions of the run.
    n_blocks : int
        Blocks per prefix.

    Returns
    -------
    dict
        Per quantity: ``lengths_ps``, ``errors``, ``amplitude`` (error·ps^½), ``reference`` (experiment),
        ``length_for_5pct`` and ``length_for_10pct`` (ps, error bar = 5 % / 10 % of experiment),
        ``fit_window_ps``.
    """
    from polarff.analysis.diffusion import DEFAULT_FIT_FRACTIONS
    from polarff.reporters import FRAME_UNITS

    n = len(traj["time"])
    dt = float(traj["time"][1] - traj["time"][0])
    shortest_block = int(round(min(fractions) * n)) // n_blocks
    window = tuple(f * (shortest_block - 1) * dt for f in DEFAULT_FIT_FRACTIONS)
    measured: dict[str, list[tuple[float, float]]] = {}
    references: dict[str, float] = {}
    for fraction in fractions:
        k = int(round(fraction * n))
        part = {key: (value[:k] if key in FRAME_UNITS else value) for key, value in traj.items()}
        try:
            summary, _ = analyze_transport(part, n_blocks=n_blocks, fit_window=window)
        except ConfigError:  # prefix too short for the blocks and the fit window
            continue
        length = summary["length_ps"]
        for label, d in summary["diffusion"].items():
            measured.setdefault(f"D({label})", []).append((length, d["error"]))
            references[f"D({label})"] = d["experiment"]["value"]
        if "conductivity" in summary:
            c = summary["conductivity"]
            measured.setdefault("sigma_EH", []).append((length, c["eh"]["error"]))
            references["sigma_EH"] = c["experiment"]["sigma"]
    plan = {}
    for name, pairs in measured.items():
        lengths, errors = np.array(pairs).T
        amplitude = error_scaling(lengths, errors)
        ref = references[name]
        plan[name] = {"lengths_ps": lengths.tolist(), "errors": errors.tolist(), "amplitude": amplitude,
                      "reference": ref, "length_for_5pct": required_length(amplitude, 0.05 * ref),
                      "length_for_10pct": required_length(amplitude, 0.10 * ref), "fit_window_ps": list(window)}
    return plan


# ------------------------------------------------------------------------------------------------
# running the benchmark


@dataclass
class BenchmarkConfig:
    """Settings of ``polarff benchmark``.

    Attributes
    ----------
    model : str
        Trained polarff model (.pff) with species H, O, Na, Cl.
    out : str
        Output folder (runs, boxes, default report).
    report : str, optional
        Markdown report path (default ``out/report.md``); plots go to ``img/`` beside it.
    n_waters, n_pairs : int
        Salt box composition.
    n_waters_pure : int
        Pure-water box (IR and TNEP; 0 to skip the water runs).
    length_ps, water_length_ps : float
        Production lengths of the salt and the pure-water runs, ps.
    equilibration_ps : float
        Equilibration before production, ps.
    timestep_fs, report_interval_fs, energy_interval_fs, checkpoint_interval_ps : float
        MD settings (see :class:`polarff.simulate.SimulationConfig`).
    thermostat : {'nose-hoover', 'langevin'}
        Thermostat of every run (:class:`polarff.simulate.SimulationConfig`). Nosé–Hoover (the default) is
        global and leaves diffusion and conduction as in NVE; Langevin (the only one before 2026-12-07)
        puts a friction on every atom, which at 1/ps slows water diffusion by 11 % in the fixed-charge
        baseline (docs/thermostat-friction.md).
    collision_frequency_per_ps : float
        Nosé–Hoover coupling, 1/ps.
    friction_per_ps : float
        Langevin friction, 1/ps.
    temperature_k : float
        K.
    baselines : list of str
        Fixed-charge baselines: ``formal`` and/or ``scaled``.
    scaled_charge : float
        Ion charge factor of the ``scaled`` baseline.
    tnep : str, optional
        TNEP dipole model (GPUMD nep.txt); default ``../shared/data/tnep-water/dipole/nep.txt``.
    threads : int
        CPU threads.
    seed : int
        Box and MD seed.
    n_blocks : int
        Blocks for error bars.
    cutoff_nm : float, optional
        Nonbonded cutoff (default min(0.9, 0.49 × smallest box edge)).
    induction_field : {'full', 'switched'}, optional
        Polarising field of the polarff runs (:class:`polarff.runtime.electrostatics.Electrostatics`); default
        ``full``; ``switched`` reproduces runs made before 2026-11-22.
    fixed_terms : str, optional
        Fixed-term ForceField XML of the polarff runs (path or name in ``forcefields/``); default: the
        one the model card names (``fixed_terms``), else ``polarff_fixed_terms.xml`` (TIP3P / Joung–Cheatham).
    minimize_iterations : int
        Largest number of minimiser iterations before equilibration.
    note : str
        A paragraph placed at the top of the report (e.g. where the model comes from).
    command : str
        The command line, recorded in the report.
    """

    model: str
    out: str = "benchmark-out"
    report: str | None = None
    n_waters: int = 64
    n_pairs: int = 1
    n_waters_pure: int = 64
    length_ps: float = 10.0
    water_length_ps: float = 5.0
    equilibration_ps: float = 2.0
    timestep_fs: float = 2.0
    report_interval_fs: float = 10.0
    energy_interval_fs: float = 100.0
    checkpoint_interval_ps: float = 1.0
    thermostat: str = "nose-hoover"
    collision_frequency_per_ps: float = 1.0
    friction_per_ps: float = 1.0
    temperature_k: float = 298.15
    baselines: list = field(default_factory=lambda: ["formal", "scaled"])
    scaled_charge: float = 0.75
    tnep: str | None = None
    threads: int = 1
    seed: int = 7
    n_blocks: int = 5
    cutoff_nm: float | None = None
    induction_field: str | None = None
    fixed_terms: str | None = None
    minimize_iterations: int = 20
    note: str = ""
    command: str = ""

    def validate(self) -> None:
        unknown = sorted(set(self.baselines) - {"formal", "scaled"})
        if unknown:
            raise ConfigError(f"baselines: unknown {unknown}; expected 'formal' and/or 'scaled'")
        if self.n_pairs < 1 or self.n_waters < 8:
            raise ConfigError(f"the salt box needs n_pairs >= 1 and n_waters >= 8 (found {self.n_pairs}, "
                              f"{self.n_waters})")
        if self.length_ps <= 0:
            raise ConfigError(f"length_ps must be > 0 (found {self.length_ps})")
        if self.n_blocks < 2:
            raise ConfigError(f"n_blocks must be >= 2 (found {self.n_blocks})")
        if self.induction_field not in (None, "full", "switched"):
            raise ConfigError(f"induction_field: expected 'full' or 'switched' (found {self.induction_field!r})")
        if self.cutoff_nm is not None and self.cutoff_nm <= 0:
            raise ConfigError(f"cutoff_nm must be > 0 nm (found {self.cutoff_nm})")
        if self.thermostat not in THERMOSTATS:
            raise ConfigError(f"thermostat: expected one of {THERMOSTATS} (found {self.thermostat!r})")
        if not (np.isfinite(self.friction_per_ps) and self.friction_per_ps >= 0):
            raise ConfigError(f"friction_per_ps must be a finite number >= 0 (1/ps; found {self.friction_per_ps})")
        if not (np.isfinite(self.collision_frequency_per_ps) and self.collision_frequency_per_ps > 0):
            raise ConfigError(f"collision_frequency_per_ps must be a finite number > 0 (1/ps; found "
                              f"{self.collision_frequency_per_ps})")


def _box(out: Path, name: str, n_pairs: int, n_waters: int, seed: int, threads: int = 1) -> tuple[str, float]:
    """PDB of a box equilibrated with the fixed-charge baseline (written once), and its edge (nm)."""
    from polarff.simulate import read_pdb, write_equilibrated_box

    path = out / "boxes" / f"{name}.pdb"
    if not path.exists():
        write_equilibrated_box(path, "NaCl", n_pairs, n_waters, seed, threads=threads)
    _, _, box = read_pdb(str(path))
    return str(path), float(box[0, 0])


def plan_runs(cfg: BenchmarkConfig) -> dict[str, "object"]:
    """The :class:`polarff.simulate.SimulationConfig` of every run, by name (boxes written to ``out/boxes``)."""
    from polarff.artifact import read_card
    from polarff.simulate import SimulationConfig

    out = Path(cfg.out)
    salt_pdb, salt_l = _box(out, "nacl", cfg.n_pairs, cfg.n_waters, cfg.seed, cfg.threads)
    # the model's own fixed terms (model card) unless the config names others, recorded in every run
    fixed_terms = cfg.fixed_terms or read_card(cfg.model).get("fixed_terms") or "polarff_fixed_terms"
    common = dict(ensemble="nvt", temperature_k=cfg.temperature_k, thermostat=cfg.thermostat,
                  collision_frequency_per_ps=cfg.collision_frequency_per_ps, friction_per_ps=cfg.friction_per_ps,
                  timestep_fs=cfg.timestep_fs, equilibration_ps=cfg.equilibration_ps, minimize=True,
                  minimize_iterations=cfg.minimize_iterations, report_interval_fs=cfg.report_interval_fs,
                  energy_interval_fs=cfg.energy_interval_fs, checkpoint_interval_ps=cfg.checkpoint_interval_ps,
                  threads=cfg.threads, seed=cfg.seed)

    def cutoff(edge: float) -> float:
        if cfg.cutoff_nm is None:
            return round(min(0.9, 0.49 * edge), 3)
        if cfg.cutoff_nm >= 0.5 * edge:
            raise ConfigError(f"cutoff_nm: {cfg.cutoff_nm} nm needs a box edge above {2 * cfg.cutoff_nm} nm "
                              f"(minimum image); found a box of {edge:.3f} nm")
        return cfg.cutoff_nm

    field = {"induction_field": cfg.induction_field} if cfg.induction_field else {}
    runs = {"polarff-nacl": SimulationConfig(topology=salt_pdb, model=cfg.model, cutoff_nm=cutoff(salt_l),
                                             fixed_terms=fixed_terms, length_ps=cfg.length_ps,
                                             electrostatics=dict(field), **common)}
    if "formal" in cfg.baselines:
        runs["formal-nacl"] = SimulationConfig(topology=salt_pdb, forcefield="fixed_charge_baseline",
                                               cutoff_nm=cutoff(salt_l), length_ps=cfg.length_ps, **common)
    if "scaled" in cfg.baselines:
        runs["scaled-nacl"] = SimulationConfig(topology=salt_pdb, forcefield="fixed_charge_baseline",
                                               charge_scale=cfg.scaled_charge, cutoff_nm=cutoff(salt_l),
                                               length_ps=cfg.length_ps, **common)
    if cfg.n_waters_pure:
        water_pdb, water_l = _box(out, "water", 0, cfg.n_waters_pure, cfg.seed, cfg.threads)
        runs["polarff-water"] = SimulationConfig(topology=water_pdb, model=cfg.model, cutoff_nm=cutoff(water_l),
                                                 fixed_terms=fixed_terms, length_ps=cfg.water_length_ps,
                                                 electrostatics=dict(field), **common)
        runs["tip3p-water"] = SimulationConfig(topology=water_pdb, forcefield="fixed_charge_baseline",
                                               cutoff_nm=cutoff(water_l), length_ps=cfg.water_length_ps, **common)
    for name, run in runs.items():
        run.output = str(out / "runs" / name)
    return runs


def run_benchmark(cfg: BenchmarkConfig, progress: bool = True) -> str:
    """Run (or resume, or read) every run, analyse them and write the report; returns its path."""
    from polarff.simulate import (RUN_RECORD, TRAJECTORY_NPZ, check_resume, load_openmm, load_trajectory,
                                  run_simulation)

    cfg.validate()
    load_openmm()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = plan_runs(cfg)
    for name, run in runs.items():
        folder = Path(run.output)
        check_resume(folder, run)  # a finished run of other settings (friction, model, ...) is never reused
        if (folder / TRAJECTORY_NPZ).exists() and _recorded_length(folder / RUN_RECORD) == run.length_ps:
            if progress:
                print(f"[benchmark] {name}: reading the finished run in {folder}", file=sys.stderr, flush=True)
            continue
        if progress:
            print(f"[benchmark] {name}: {run.length_ps:g} ps NVT", file=sys.stderr, flush=True)
        _write_yaml(folder / "config.yaml", run)
        run_simulation(run, folder, progress=progress)
    trajectories = {name: load_trajectory(run.output) for name, run in runs.items()}
    records = {name: json.loads((Path(run.output) / RUN_RECORD).read_text()) for name, run in runs.items()}
    report_path = Path(cfg.report) if cfg.report else out / "report.md"
    results = analyse_runs(cfg, trajectories)
    write_report(cfg, runs, records, trajectories, results, report_path)
    with open(out / "results.json", "w") as handle:
        json.dump(_jsonable(results), handle, indent=1)
    if progress:
        print(f"[benchmark] wrote {report_path}", file=sys.stderr, flush=True)
    return str(report_path)


def _recorded_length(path: Path) -> float | None:
    try:
        return float(json.loads(path.read_text())["config"]["length_ps"])
    except (OSError, KeyError, ValueError):
        return None


def _write_yaml(path: Path, run) -> None:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(run.to_dict(), sort_keys=False))


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if dataclasses.is_dataclass(obj):
        return None
    return obj


#: Coordination cutoffs (nm) for the solvation-shell diagnostics: ion–water-oxygen distances near the
#: first minimum of the ion–O radial distribution function in water models.
SHELL_CUTOFF_NM = {"Na": 0.32, "Cl": 0.38}
#: Outer radius (nm) of the ion-environment charge (about the second solvation shell; capped at the minimum
#: image).
ENVIRONMENT_RADIUS_NM = 0.6


def ion_structure(traj: dict) -> dict:
    """Solvation-shell diagnostics of every ion species: O coordination number, net displacement.

    Returns
    -------
    dict
        Per ion species: ``coordination`` (mean number of water O within :data:`SHELL_CUTOFF_NM`, minimum
        image), ``displacement_nm`` (mean |r(end) − r(start)| of the unwrapped ions), ``environment_charge_e``
        (net charge of the first ion of the species with the molecules within its first shell and within
        :data:`ENVIRONMENT_RADIUS_NM`: ``radii_nm`` and ``charge`` = [(mean, error)] from
        :func:`polarff.analysis.structure.ion_environment_charge`); ``pairing``: per ion pair type with
        partners ("Na-Na", "Cl-Cl", "Na-Cl") the nearest-partner statistics of
        :func:`polarff.analysis.structure.ion_pairing_by_kind`; and for NaCl ``na_cl_distance_nm`` (mean, min) of the
        first Na–Cl pair.
    """
    from polarff.analysis.structure import coordination_number, ion_environment_charge, ion_pairing_by_kind

    symbols = np.asarray(traj["symbols"]).astype(str)
    residues = np.asarray(traj["residue_names"]).astype(str)
    pos = np.asarray(traj["positions"], dtype=np.float64)
    box = np.asarray(traj["box"], dtype=np.float64)
    edges = np.diagonal(box, axis1=1, axis2=2)[:, None, None, :]
    oxygens = np.flatnonzero((symbols == "O") & (residues == "HOH"))
    out: dict = {}
    for species, cutoff in SHELL_CUTOFF_NM.items():
        ions = np.flatnonzero(symbols == species)
        if not len(ions):
            continue
        out[species] = {"coordination": coordination_number(pos, box, ions, oxygens, cutoff), "cutoff_nm": cutoff,
                        "displacement_nm": float(np.linalg.norm(pos[-1, ions] - pos[0, ions], axis=-1).mean())}
        if "charges" in traj and "residue_index" in traj:
            radii = [cutoff, min(ENVIRONMENT_RADIUS_NM, 0.49 * float(edges.min()))]
            stride = max(1, len(pos) // 3000)  # 3000 frames are plenty for a mean charge
            charges = np.asarray(traj["charges"])
            q = charges[::stride] if charges.ndim == 2 else charges
            charge = ion_environment_charge(pos[::stride], box[::stride], q, np.asarray(traj["residue_index"]),
                                            int(ions[0]), radii)
            out[species]["environment_charge_e"] = {"radii_nm": radii, "charge": charge}
    na, cl = np.flatnonzero(symbols == "Na"), np.flatnonzero(symbols == "Cl")
    pairing = ion_pairing_by_kind(pos, box, symbols)
    if pairing:
        out["pairing"] = pairing
    if len(na) and len(cl):
        d = pos[:, cl[0]] - pos[:, na[0]]
        d -= edges[:, 0, 0] * np.round(d / edges[:, 0, 0])
        r = np.linalg.norm(d, axis=-1)
        out["na_cl_distance_nm"] = {"mean": float(r.mean()), "min": float(r.min())}
    return out


#: Pair distances a first-peak position is computed from (frames × pairs): 500 frames of O–O in 64 waters.
PEAK_PAIR_SAMPLES = 2_000_000


def first_peaks(traj: dict) -> dict:
    """First-peak positions (Å) and heights of g(r) for the O–O, Na–O and Cl–O pairs present in a run.

    Each pair reads every k-th frame, k chosen so that about :data:`PEAK_PAIR_SAMPLES` distances enter: a few
    hundred frames for O–O, every frame for one ion against the water O (with 500 frames the Na–O peak of one
    Na⁺ moved by ± 0.03 Å between runs; docs/ion-radii.md).
    """
    from polarff.analysis.structure import EXPERIMENT_PEAK_A, first_peak, radial_distribution

    symbols = np.asarray(traj["symbols"]).astype(str)
    positions, boxes = np.asarray(traj["positions"]), np.asarray(traj["box"])
    r_max = 0.49 * float(np.min(np.diagonal(boxes, axis1=1, axis2=2)))
    out = {}
    for a, b in EXPERIMENT_PEAK_A:
        n_pairs = int((symbols == a).sum()) * int((symbols == b).sum())
        if n_pairs:
            stride = max(1, len(positions) * n_pairs // PEAK_PAIR_SAMPLES)
            r, g = radial_distribution(positions[::stride], boxes[::stride], symbols, a, b, min(0.6, r_max))
            position, height = first_peak(r, g)
            out[f"{a}-{b}"] = {"position_A": position, "height": height}
    return out


def charge_statistics(traj: dict) -> dict:
    """Mean and standard deviation of the per-frame charges (e) and polarizabilities (Å³) by species."""
    symbols = np.asarray(traj["symbols"]).astype(str)
    q = np.asarray(traj["charges"])
    alpha = np.asarray(traj["polarizabilities"]) * 1e3  # nm³ → Å³
    out = {}
    for species in dict.fromkeys(symbols):
        mask = symbols == species
        out[str(species)] = {"charge": float(q[:, mask].mean()), "charge_std": float(q[:, mask].std()),
                             "alpha": float(alpha[:, mask].mean()), "alpha_std": float(alpha[:, mask].std())}
    return out


def analyse_runs(cfg: BenchmarkConfig, trajectories: dict[str, dict]) -> dict:
    """Transport, IR, TNEP comparison and sampling plan of the runs (plot data under ``_curves``)."""
    results: dict = {"transport": {}, "ir": {}, "_curves": {}, "tnep": None}
    for name, traj in trajectories.items():
        summary, curves = analyze_transport(traj, n_blocks=cfg.n_blocks)
        results["transport"][name] = summary
        ir = ir_analysis(traj["dipole"], traj["time"], float(traj["temperature_k"]),
                         n_blocks=min(cfg.n_blocks, 4))
        results["ir"][name] = {"bands": ir["bands"], "max_lag_time_ps": ir["max_lag_time_ps"]}
        curves["ir"] = ir["spectrum"]
        results["_curves"][name] = curves
    results["ions"] = {name: ion_structure(traj) for name, traj in trajectories.items() if name.endswith("nacl")}
    from polarff.analysis.structure import energy_per_water, pair_hydration_energy

    results["peaks"] = {name: first_peaks(traj) for name, traj in trajectories.items()}
    results["cohesion"] = {name: energy_per_water(traj["potential_energy"], traj["symbols"])
                           for name, traj in trajectories.items() if name.endswith("water")}
    # the ion pair's hydration energy, where a pure-water run with as many waters as the salt box exists
    results["hydration"] = {}
    for salt, water in (("polarff-nacl", "polarff-water"), ("formal-nacl", "tip3p-water")):
        if salt in trajectories and water in trajectories and cfg.n_waters == cfg.n_waters_pure:
            results["hydration"][salt] = pair_hydration_energy(trajectories[salt], trajectories[water], cfg.n_blocks)
    results["charges"] = {name: charge_statistics(traj) for name, traj in trajectories.items()
                          if name.startswith("polarff")}
    results["sampling"] = {name: sampling_plan(traj, n_blocks=4) for name, traj in trajectories.items()
                           if name.endswith("nacl")}
    nep = cfg.tnep or str(DEFAULT_TNEP)
    if "polarff-water" in trajectories:
        if not os.path.exists(nep):
            results["tnep"] = {"skipped": f"TNEP dipole model not found at {nep}"}
        else:
            results["tnep"] = {"model": nep, "runs": {}}
            for name in ("polarff-water", "tip3p-water"):
                if name not in trajectories:
                    continue
                traj = trajectories[name]
                series = tnep_dipole_series(traj, nep)
                model_dipole = np.asarray(traj["dipole"])[series["indices"]] * 10.0
                entry = compare_dipole_series(model_dipole, series["dipole"])
                entry["seconds_per_frame"] = series["seconds_per_frame"]
                entry["n_frames"] = len(series["indices"])
                ir = ir_analysis(series["dipole"] / 10.0, np.asarray(traj["time"])[series["indices"]],
                                 float(traj["temperature_k"]), n_blocks=min(cfg.n_blocks, 4))
                entry["bands"] = ir["bands"]
                results["tnep"]["runs"][name] = entry
                results["_curves"][name]["tnep_ir"] = ir["spectrum"]
    return results


# ------------------------------------------------------------------------------------------------
# report


def _plot_msd(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    salt = [n for n in results["_curves"] if n.endswith("nacl")]
    species = ["H2O", "Na+", "Cl-"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, label in zip(axes, species):
        for name in salt:
            curves = results["_curves"][name]
            if label not in curves["msd"]:
                continue
            msd, slope, intercept, window = curves["msd"][label]
            lags = curves["lag_times"]
            keep = lags <= 0.5 * lags[-1]
            line, = ax.plot(lags[keep], msd[keep], label=name)
            w = (lags >= window[0]) & (lags <= window[1])
            ax.plot(lags[w], slope * lags[w] + intercept, "--", color=line.get_color(), lw=1)
        ax.set_title(f"MSD {label}")
        ax.set_xlabel("lag time (ps)")
        ax.set_ylabel("MSD (nm²)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_conductivity(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    salt = [n for n in results["_curves"] if n.endswith("nacl")]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    reference = None
    for name in salt:
        curves = results["_curves"][name]
        eh = curves["eh"]
        summary = results["transport"][name]
        factor = eh.sigma / eh.slope if eh.slope else 0.0  # S/m per (e² nm²/ps)
        lags = eh.lag_times[1:]
        keep = lags <= 0.5 * lags[-1]
        left.plot(lags[keep], factor * eh.msd_dipole[1:][keep] / lags[keep], label=name)
        gk = curves["gk"]
        right.plot(gk.lag_times, gk.running_integral, label=name)
        reference = summary["conductivity"]["experiment"]["sigma"]
    for ax in (left, right):
        if reference is not None:
            ax.axhline(reference, color="k", ls=":", label="experiment (Λ·c)")
        ax.set_xlabel("lag time (ps)")
        ax.set_ylabel("σ (S/m)")
        ax.legend(fontsize=7)
    left.set_title("Einstein–Helfand: <|ΔM(t)|²> / (6 V k_B T t)")
    right.set_title("Green–Kubo running integral of <J(0)·J(t)>")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_ir(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from polarff.analysis.experiment import WATER_IR_BANDS_298K

    fig, ax = plt.subplots(figsize=(9, 4))
    for name, curves in results["_curves"].items():
        spectrum = curves["ir"]
        keep = spectrum.wavenumbers <= min(4000.0, spectrum.wavenumbers[-1])
        ax.plot(spectrum.wavenumbers[keep], spectrum.intensity[keep], label=name, lw=1)
        if "tnep_ir" in curves:
            s = curves["tnep_ir"]
            k = s.wavenumbers <= min(4000.0, s.wavenumbers[-1])
            ax.plot(s.wavenumbers[k], s.intensity[k], "--", lw=1, label=f"TNEP dipole on {name} frames")
    for band, ref in WATER_IR_BANDS_298K.items():
        ax.axvline(ref.value, color="grey", ls=":", lw=0.8)
        ax.text(ref.value, 1.02, band.split()[0], rotation=90, fontsize=6, va="bottom", ha="center")
    ax.set_xlabel("wavenumber (cm⁻¹)")
    ax.set_ylabel("intensity (normalised)")
    ax.set_ylim(-0.05, 1.25)
    ax.legend(fontsize=7)
    ax.set_title("IR absorption from the total dipole (harmonic quantum correction)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(cfg: BenchmarkConfig, runs: dict, records: dict, trajectories: dict, results: dict,
                 report_path: Path) -> None:
    """Markdown report + PNG plots (``img/<stem>-msd.png``, ``-conductivity.png``, ``-ir.png``)."""
    report_path = Path(report_path)
    img = report_path.parent / "img"
    img.mkdir(parents=True, exist_ok=True)
    stem = report_path.stem
    plots = {"msd": img / f"{stem}-msd.png", "conductivity": img / f"{stem}-conductivity.png",
             "ir": img / f"{stem}-ir.png"}
    _plot_msd(results, plots["msd"])
    _plot_conductivity(results, plots["conductivity"])
    _plot_ir(results, plots["ir"])
    rel = {k: os.path.relpath(v, report_path.parent) for k, v in plots.items()}
    lines = _report_header(cfg, runs, records, results)
    lines += _report_model(cfg, results)
    lines += _report_diffusion(results)
    lines += _report_conductivity(results, rel)
    lines += _report_ir(results, rel)
    lines += _report_tnep(results)
    lines += _report_sampling(results)
    lines += _report_assessment(results, runs)
    lines += _report_sources()
    tmp = report_path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, report_path)


def _field_phrase(runs) -> str:
    """How the polarff runs summed the charges' polarising field (docs/induction-field.md)."""
    fields = {(run.electrostatics or {}).get("induction_field", "full") for run in runs.values() if run.model}
    if fields == {"switched"}:
        return ("the charges' polarising field switched off atom by atom at the cutoff, as before 2026-11-22 "
                "(an artifact MD exploits: docs/induction-field.md)")
    if fields == {"full"} or not fields:
        return "the charges' polarising field summed in full (Ewald)"
    return "polarising field: " + ", ".join(sorted(fields))


def _report_header(cfg, runs, records, results) -> list[str]:
    salt = results["transport"].get("polarff-nacl", {})
    lines = ["# NaCl(aq) benchmark: polarff vs fixed-charge baselines, TNEP and experiment", "",
             "Generated by `polarff benchmark` (polarff/benchmark.py). All error bars are standard errors from "
             f"{cfg.n_blocks} contiguous blocks of each run; experimental values carry their sources "
             "(list at the end). Relative deviations are (model − experiment)/experiment; the target is "
             f"{100 * TARGET_RELATIVE:.0f} %.", ""] + ([cfg.note, ""] if cfg.note else []) + ["## Command", "", "```", cfg.command or "polarff benchmark ...",
             "```", "", "## What ran", "",
             "| run | Hamiltonian | composition | box (nm) | production (ps) | frames | mean kinetic T (K) | ms/step (wall, reporting incl.) | CPU s (production) | threads |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, run in runs.items():
        record = records[name]
        sessions = record.get("sessions", [])
        steps = sum(s["to_step"] - s["from_step"] for s in sessions)
        ms = (sum(s["ms_per_step"] * (s["to_step"] - s["from_step"]) for s in sessions) / steps) if steps else float("nan")
        cpu = sum(s.get("cpu_seconds", float("nan")) for s in sessions)
        t = results["transport"][name]
        hamiltonian = ("polarff model " + os.path.basename(run.model) + " + LJ of "
                       + os.path.basename(run.fixed_terms) if run.model else
                       f"TIP3P + Joung–Cheatham, ion charges × {run.charge_scale:g}")
        composition = f"{t['n_waters']} H2O" + (f" + {t['n_pairs']} NaCl" if t["n_pairs"] else "")
        lines.append(f"| {name} | {hamiltonian} | {composition} | {t['box_nm']:.3f} | {t['length_ps']:.1f} | "
                     f"{t['n_frames']} | {fmt(t.get('kinetic_temperature_k'), digits=1)} | {ms:.1f} | {cpu:.0f} | "
                     f"{run.threads} |")
    any_run = next(iter(runs.values()))
    lines += ["", f"Common settings: NVT, {_thermostat_phrase(any_run)} at {any_run.temperature_k} K, "
              f"time step {any_run.timestep_fs:g} fs, rigid water, "
              f"{any_run.equilibration_ps:g} ps equilibration after a short minimisation (≤ {any_run.minimize_iterations} "
              "iterations) of boxes pre-equilibrated for 5 ps with the fixed-charge baseline, frames every "
              f"{any_run.report_interval_fs:g} fs (unwrapped positions, per-frame charges and total dipoles), "
              f"seed {any_run.seed}, OpenMM CPU platform. Cutoff {any_run.cutoff_nm} nm (LJ, real-space Ewald, "
              f"dipole–dipole coupling of the induction); {_field_phrase(runs)}."]
    if salt:
        lines += ["", f"Salt box: c = {salt['concentration_mol_l']:.3f} mol/L "
                  f"({salt['molality_mol_kg']:.2f} mol/kg), volume {salt['volume_nm3']:.3f} nm³."]
    return lines + [""]


def _report_model(cfg, results) -> list[str]:
    from polarff.artifact import read_card, read_thole

    card = read_card(cfg.model)
    test = card.get("metrics", {}).get("test", {})
    frames = card.get("n_frames", {})
    lines = ["## Model", "",
             f"`{cfg.model}`: species {', '.join(card['species'])}; trained on {sum(frames.values())} frames "
             f"({', '.join(f'{k} {v}' for k, v in frames.items())}), training data sha256 "
             f"`{card['training_data_sha256'][:16]}…`, seed {card['seed']}, {card['config'].get('epochs')} epochs. "
             + (f"Held-out test split: charge MAE {test['charge_mae']:.4f} e, polarizability MAE "
                f"{test['polarizability_mae']:.4f} Å³." if "charge_mae" in test else "")
             + "".join(f" Training labels scaled ({key}): {v['factors']} ({v['source']})."
                       for key, v in card.get("label_scaling", {}).items()) + _electronegativity_sentence(card)
             + _thole_sentence(read_thole(cfg.model)) + _charge_constraint_sentence(card), "",
             "Charges and polarizabilities predicted along the polarff runs (mean ± standard deviation over "
             "frames and atoms of a species):", "",
             "| run | species | charge (e) | polarizability (Å³) |", "|---|---|---|---|"]
    for name, stats in results.get("charges", {}).items():
        for species, v in stats.items():
            lines.append(f"| {name} | {species} | {fmt(v['charge'], v['charge_std'], 3)} | "
                         f"{fmt(v['alpha'], v['alpha_std'], 3)} |")
    return lines + [""]


def _thole_sentence(thole: dict | None) -> str:
    """' Thole damping a: Cl 0.16 (…)' for a model with per-species Thole strengths, else ''."""
    if not thole:
        return ""
    values = ", ".join(f"{s} {a:g}" for s, a in thole["a"].items())
    return (f" Thole damping strength a: {values}, 0.39 for the other species, min(a_i, a_j) per pair "
            f"({thole.get('basis', 'no basis given')}).")


def _charge_constraint_sentence(card: dict) -> str:
    """' Charge constraint: molecular …' for a model whose card sets one other than the default, else ''."""
    if card.get("charge_constraint", "total") == "total":
        return ""
    return (f" Charge constraint {card['charge_constraint']}: every molecule carries exactly its formal charge "
            "(the ions ±1, the waters 0), so no charge moves between molecules and the conductivity with the "
            "model's charges is the formal-charge one plus the molecules' polarization current "
            "(docs/molecular-charges.md).")


def _electronegativity_sentence(card: dict) -> str:
    """' Electronegativity term: χ … fitted on …' for a model with that term (docs/electronegativity.md)."""
    term = card.get("electronegativity")
    if not term:
        return ""
    chi = ", ".join(f"{s} {v:.1f}" for s, v in term["chi_kj_mol_e"].items())
    hardness = term.get("hardness_kj_mol_e2", {})
    if hardness:
        values = ", ".join(f"{s} {v:.1f}" for s, v in hardness.items())
        return (f" Electronegativity term E_χ = Σ [χ (q − q_ref) + ½ J (q − q_ref)²] (docs/electronegativity.md): "
                f"χ (kJ/mol/e) {chi}; hardness J (kJ/mol/e²) {values}, fitted with χ to make the learned charges "
                f"nearly stationary on frames of {', '.join(term['fitted_on'])}.")
    return (f" Electronegativity term E_χ = Σ χ (q − q_ref) (docs/electronegativity.md): χ (kJ/mol/e) {chi}, "
            f"fitted to make the learned charges nearly stationary on frames of {', '.join(term['fitted_on'])}.")


def _hydration_text(hydration: dict) -> str:
    """'run total ± error (permanent …, induction …, Lennard-Jones …)' for each run, kJ/mol."""
    parts = []
    for name, terms in hydration.items():
        text = f"{name} {fmt(*terms['total'], digits=0)}"
        if "rest" in terms:
            chi = f"electronegativity {terms['electronegativity'][0]:.0f}, " if "electronegativity" in terms else ""
            text += (f" (permanent charges {terms['permanent'][0]:.0f}, induction {terms['induction'][0]:.0f}, "
                     f"{chi}Lennard-Jones {terms['rest'][0]:+.0f})")
        parts.append(text)
    return "; ".join(parts)


def _labels_sentence(charge_scale: dict | None) -> str:
    """Where the polarff charge labels come from, from the model card's ``label_scaling.charge_scale``."""
    start = "The polarff charges are learned from GFN2-xTB (Mulliken-type) partial charges"
    rest = " and D4 (water) or literature (ion) polarizabilities"
    if charge_scale is None:
        return start + rest + ", not fitted to transport or to experimental liquid properties."
    source = charge_scale.get("source", "")
    if "water: fixed factor" not in source:
        return (start + " scaled per species to DFT electrostatic-potential charges of small clusters "
                "(docs/charge-calibration.md)" + rest + ", not fitted to transport or to experimental liquid "
                "properties.")
    factor = source.rsplit("fixed factor ", 1)[-1]
    return (start + ", the ions' scaled to DFT electrostatic-potential charges of small clusters and the water's "
            f"by a factor set by hand ({factor}; docs/charge-calibration.md and, for factors set with an "
            "electronegativity term, docs/electronegativity.md say how it was chosen)" + rest
            + ". A hand-set water factor is a fitted parameter: the properties it was chosen to match are not "
            "predictions.")


def _thermostat_phrase(run) -> str:
    """The integrator and coupling of a run, for the report's settings line."""
    if run.thermostat == "nose-hoover":
        return f"NoseHooverIntegrator (one global chain, collision frequency {run.collision_frequency_per_ps:g}/ps)"
    return f"LangevinMiddleIntegrator with friction {run.friction_per_ps:g}/ps"


def _thermostat_sentence(run) -> str:
    """What the thermostat of the runs does to their transport (docs/thermostat-friction.md)."""
    if run.thermostat == "nose-hoover":
        return ("The Nosé–Hoover chain rescales all velocities together: it leaves diffusion and conduction as "
                "in NVE (docs/thermostat-friction.md).")
    return (f"The Langevin friction ({run.friction_per_ps:g}/ps) acts on every atom and slows diffusion and "
            "conduction: at 1/ps by 11 % for water and 26 % for Cl⁻ in the fixed-charge baseline, against 0.1/ps "
            "(docs/thermostat-friction.md); a weaker friction lets a small box's temperature wander by tens of "
            "kelvin. `--thermostat nose-hoover` avoids both.")


def _report_assessment(results, runs) -> list[str]:
    from polarff.analysis.structure import NACL_HYDRATION_ENERGY_KJ_MOL, WATER_COHESIVE_ENERGY_KJ_MOL
    from polarff.artifact import read_card

    lines = ["## Assessment", ""]
    polarff_run = runs.get("polarff-nacl")
    fixed_terms = os.path.basename(getattr(polarff_run, "fixed_terms", None) or "polarff_fixed_terms")
    model_path = getattr(polarff_run, "model", None)
    charge_scale = (read_card(model_path).get("label_scaling", {}).get("charge_scale")
                    if model_path and os.path.exists(model_path) else None)
    lengths = sorted({f"{t['length_ps']:.0f}" for t in results["transport"].values()}, key=float)
    t = results["transport"].get("polarff-nacl")
    salt = t or next(iter(results["transport"].values()))
    n_pairs, n_waters, box = salt["n_pairs"], salt["n_waters"], salt["box_nm"]
    yh = next(iter(salt["diffusion"].values()))["yh_correction"]
    if t is not None:
        d = t["diffusion"]
        parts = [f"D({k}) {agreement(v['corrected'], v['error'], v['experiment']['value'])}" for k, v in d.items()]
        if "conductivity" in t:
            c = t["conductivity"]
            parts.append("Λ " + agreement(c["molar_conductivity"]["value"], c["molar_conductivity"]["error"],
                                          c["experiment"]["molar_conductivity"]["value"]))
        lines += [f"polarff against experiment (target {100 * TARGET_RELATIVE:.0f} %): " + "; ".join(parts) + ".", ""]
        ions = results.get("ions", {})
        warning = aggregation_sentence(ions)
        if warning:
            lines += [warning + " (Ion pairing table under *Self-diffusion at 298 K*.)", ""]
        if "polarff-nacl" in ions and "formal-nacl" in ions:
            p, f = ions["polarff-nacl"], ions["formal-nacl"]
            lines += [f"Ion mobility: over the {t['length_ps']:.0f} ps run the polarff Na+ moved "
                      f"{p['Na']['displacement_nm']:.3f} nm (formal-charge baseline {f['Na']['displacement_nm']:.3f} nm) "
                      f"with {p['Na']['coordination']:.2f} water O in its first shell (baseline "
                      f"{f['Na']['coordination']:.2f}); a D that is mostly the Yeh–Hummer correction means the ion "
                      "barely moved. The predicted polarizabilities (table under *Model*) are those of the training labels "
                      "(D4 for water, literature hydrated-ion values for the ions: polarff/data/README.md).", ""]
    lines += ["Why the numbers land where they do, and what limits them:", "",
              f"- **Run length.** These are runs of {' and '.join(lengths)} ps (see *What ran*), set by the CPU "
              "budget of one benchmark on a shared 2-core machine. The sampling plan above gives lower bounds of the "
              "lengths the 15 % target needs; where an error bar is wider than the target, the error bar, not "
              "the central value, is the result here.",
              f"- **Box size.** {n_pairs} ion pair(s) in {n_waters} waters: D(Na+) and D(Cl−) average over "
              f"{n_pairs} ion(s) each, and the Yeh–Hummer correction ({fmt(yh)}e-9 m²/s at L = {fmt(box, None, 3)} nm) "
              "is as large as the differences between models." + (
                  " With one ion of each species, like-ion correlations cannot show: a model whose like ions "
                  "aggregate passes here and fails in a box with several pairs (`docs/ion-pairing.md`); check one "
                  "replica with `--pairs 4 --waters 256` (its report has an ion-pairing table)." if n_pairs == 1 else ""),
              "- **Reference labels.** " + _labels_sentence(charge_scale) + " " + (
                  "The Lennard-Jones terms are the TIP3P/Joung–Cheatham ones, which were fitted together with "
                  "fixed TIP3P charges; nothing re-balances them for the new electrostatics."
                  if fixed_terms.startswith("polarff_fixed_terms") else
                  f"The Lennard-Jones terms ({fixed_terms}) were re-balanced for these electrostatics against "
                  "structure (water density, ion–oxygen peaks: docs/lj-rebalance.md, docs/ion-radii.md), not "
                  "against transport."),
              "- **Cohesion.** Potential energy per water in the pure-water runs (minus the vaporization "
              "energy; experiment " + f"{WATER_COHESIVE_ENERGY_KJ_MOL:.1f} kJ/mol): "
              + (", ".join(f"{name} {value:.1f}" for name, value in results.get("cohesion", {}).items()) or "—")
              + " kJ/mol. A liquid that is bound too weakly diffuses too fast.",
              "- **Ion hydration.** ΔU_hyd(Na⁺ + Cl⁻) = ⟨U⟩(salt box) − ⟨U⟩(pure water, same waters), experiment "
              f"{NACL_HYDRATION_ENERGY_KJ_MOL:.0f} kJ/mol: " + (_hydration_text(results.get("hydration", {}))
                                                                 or "— (needs a pure-water run with as many waters)")
              + ". Ions bound too weakly or too strongly move at the wrong speed even when water is right.",
              "- **Rigid water, thermostat.** Rigid molecules remove the intramolecular IR bands. "
              + _thermostat_sentence(next(iter(runs.values()))),
              "- **Experimental ion D values are at infinite dilution**; at ~1 mol/kg the measured values "
              "are lower, and the experimental Λ is interpolated to the box's molar concentration.", ""]
    return lines


def _report_diffusion(results) -> list[str]:
    lines = ["## Self-diffusion at 298 K", "",
             "D in 1e-9 m²/s. PBC = from the MSD slope in the periodic box; corrected = + Yeh–Hummer "
             "k_B T ξ / (6 π η L) with the experimental viscosity of water (0.89 mPa·s; TIP3P's own viscosity "
             "is lower, so its correction is underestimated). Experimental ion values are at infinite "
             "dilution (at ~1 mol/kg they are lower).", "",
             "| run | fit window (ps) | YH correction | D(H2O) PBC / corrected | D(Na+) PBC / corrected | D(Cl−) PBC / corrected |",
             "|---|---|---|---|---|---|"]
    for name, t in results["transport"].items():
        d = t["diffusion"]
        first = next(iter(d.values()))
        cells = [f"{first['fit_window_ps'][0]:.2f}–{first['fit_window_ps'][1]:.2f}", fmt(first["yh_correction"])]
        for label in ("H2O", "Na+", "Cl-"):
            cells.append(f"{fmt(d[label]['pbc'])} / {fmt(d[label]['corrected'], d[label]['error'])}"
                         if label in d else "—")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    ref = next(iter(results["transport"].values()))["diffusion"]
    exp_cells = [ref[k]["experiment"] for k in ("H2O",)]
    from polarff.analysis.experiment import D_CL_298K, D_NA_298K

    lines.append(f"| experiment | | | {exp_cells[0]['value']:.3f} [1] | {D_NA_298K.value:.3f} [2] | "
                 f"{D_CL_298K.value:.3f} [2] |")
    lines += ["", "The fit window is 10 %–50 % of a block; windows below ~1 ps still contain the ballistic and "
              "caging regime, which biases D (the 4 ps pure-water runs, in particular).", "",
              "Solvation shells of the ions (water O within 0.32 nm of Na, 0.38 nm of Cl; minimum image) and the "
              "net displacement of the ions over the whole run:", "",
              "| run | Na–O coordination | Cl–O coordination | Na displacement (nm) | Cl displacement (nm) | Na–Cl distance mean / min (nm) |",
              "|---|---|---|---|---|---|"]
    for name, ions in results.get("ions", {}).items():
        na, cl, pair = ions.get("Na", {}), ions.get("Cl", {}), ions.get("na_cl_distance_nm", {})
        lines.append(f"| {name} | {fmt(na.get('coordination'))} | {fmt(cl.get('coordination'))} | "
                     f"{fmt(na.get('displacement_nm'), None, 3)} | {fmt(cl.get('displacement_nm'), None, 3)} | "
                     f"{fmt(pair.get('mean'), None, 3)} / {fmt(pair.get('min'), None, 3)} |")
    lines += _environment_charge_table(results.get("ions", {}))
    lines += _ion_pairing_table(results.get("ions", {}))
    from polarff.analysis.structure import EXPERIMENT_PEAK_A

    lines += ["", "First peak of g(r), position in Å (height) — structure the Lennard-Jones radii of the polarff "
              "fixed terms are balanced against (`docs/lj-rebalance.md`):", "",
              "| run | O–O | Na–O | Cl–O |", "|---|---|---|---|"]
    for name, peaks in results.get("peaks", {}).items():
        cells = [f"{peaks[k]['position_A']:.2f} ({peaks[k]['height']:.1f})" if k in peaks else "—"
                 for k in ("O-O", "Na-O", "Cl-O")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| experiment | " + f"{EXPERIMENT_PEAK_A[('O', 'O')]:.2f} [6] | "
                 f"{EXPERIMENT_PEAK_A[('Na', 'O')]:.2f} [7] | {EXPERIMENT_PEAK_A[('Cl', 'O')]:.2f} [7] |")
    lines += ["", "Agreement with experiment (corrected value ± error vs experiment):", ""]
    for name, t in results["transport"].items():
        parts = [f"{label}: {agreement(d['corrected'], d['error'], d['experiment']['value'])}"
                 for label, d in t["diffusion"].items()]
        lines.append(f"- {name}: " + "; ".join(parts))
    return lines + [""]


#: A like-charge contact fraction above this many times both random placement's and the formal-charge
#: baseline's is reported as aggregation.
AGGREGATION_FACTOR = 2.0


def _ion_pairing_table(ions: dict) -> list[str]:
    """Markdown table of the ions' nearest-partner statistics (:func:`polarff.analysis.structure.ion_pairing`)."""
    kinds = [k for k in ("Na-Na", "Cl-Cl", "Na-Cl") if any(k in v.get("pairing", {}) for v in ions.values())]
    if not kinds:
        return []
    contact = {k: next(v["pairing"][k]["contact_nm"] for v in ions.values() if k in v.get("pairing", {}))
               for k in kinds}
    lines = ["", "Ion pairing: mean distance (nm) from each ion to its nearest partner ion, and the fraction of ions "
             "(over frames) with one in contact (" + ", ".join(f"{k} < {contact[k]:.2f} nm" for k in kinds)
             + "; like ions: sharing a first-shell water or closer; Na–Cl: a contact ion pair); in brackets the "
             "fraction for partners placed at random (`polarff.analysis.structure.ion_pairing`):", "",
             "| run | " + " | ".join(f"{k} nearest | {k} in contact (random)" for k in kinds) + " |",
             "|---|" + "---|---|" * len(kinds)]
    for name, v in ions.items():
        cells = []
        for k in kinds:
            q = v.get("pairing", {}).get(k)
            cells += ([f"{q['nearest_nm']:.3f}", f"{q['contact_fraction']:.2f} ({q['random_contact_fraction']:.2f})"]
                      if q else ["—", "—"])
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    warning = aggregation_sentence(ions)
    if warning:
        lines += ["", warning]
    return lines


def aggregation_sentence(ions: dict) -> str:
    """A warning when polarff's like-charge ions are in contact far more often (factor :data:`AGGREGATION_FACTOR`)
    than at random and than in the formal-charge baseline (where that ran), or an empty string."""
    polarff, baseline = ions.get("polarff-nacl", {}).get("pairing", {}), ions.get("formal-nacl", {}).get("pairing", {})
    found = []
    for kind in ("Na-Na", "Cl-Cl"):
        if kind not in polarff:
            continue
        q = polarff[kind]
        reference = max(q["random_contact_fraction"], baseline[kind]["contact_fraction"] if kind in baseline else 0.0)
        if q["contact_fraction"] > AGGREGATION_FACTOR * reference:
            found.append(f"{kind} {q['contact_fraction']:.2f} (random {q['random_contact_fraction']:.2f}"
                         + (f", formal-charge baseline {baseline[kind]['contact_fraction']:.2f})" if kind in baseline
                            else ")"))
    if not found:
        return ""
    return ("**Like-charge ions aggregate in the polarff run**: the fraction of ions with a like partner in contact is "
            + "; ".join(found) + ". Its ions move as clusters, so its D and Λ are not those of a dissociated "
            "electrolyte; a box with one ion pair cannot show this.")


def _environment_charge_table(ions: dict) -> list[str]:
    """Markdown table of the ions' environment charge Q(R) (ion + molecules within R), or nothing."""
    rows = [(name, v) for name, v in ions.items()
            if all("environment_charge_e" in v.get(s, {}) for s in ("Na", "Cl"))]
    if not rows:
        return []
    radii = {s: rows[0][1][s]["environment_charge_e"]["radii_nm"] for s in ("Na", "Cl")}
    lines = ["", "Net charge of each ion together with the molecules whose centroid lies within R (e; minimum "
             "image; `polarff.analysis.structure.ion_environment_charge`). In the physical electrolyte it reaches "
             "the oxidation number ±1 once R encloses the charge the ion exchanged with its neighbours, so each "
             "ion carries exactly ±1 (topological quantization of charge transport, F. Grasselli and S. Baroni, "
             "Nat. Phys. 15, 967 (2019)):", "",
             f"| run | Na+ R = {radii['Na'][0]:.2f} nm | Na+ R = {radii['Na'][1]:.2f} nm | "
             f"Cl− R = {radii['Cl'][0]:.2f} nm | Cl− R = {radii['Cl'][1]:.2f} nm |", "|---|---|---|---|---|"]
    for name, v in rows:
        cells = [fmt(*value, digits=3) for s in ("Na", "Cl") for value in v[s]["environment_charge_e"]["charge"]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _report_conductivity(results, rel) -> list[str]:
    salt = {n: t for n, t in results["transport"].items() if "conductivity" in t}
    if not salt:
        return []
    lines = ["## Ionic conductivity", "",
             "σ in S/m. EH = Einstein–Helfand slope of <|ΔM|²> with the molecular translational dipole "
             "M = Σ_m Q_m(t) R_m(t) (net charge of each molecule or ion in each frame × its unwrapped centre of "
             "mass; for polarff Q_m follows the predicted charges, including charge transferred between "
             "molecules). It differs from Σ_i q_i r_i by the bounded sum of molecular dipoles, which has the same "
             "long-time slope but converges only after the ~10 ps dielectric relaxation of water. "
             "EH formal = ±1 on the ions' positions only; GK = Green–Kubo plateau of dM/dt (forward "
             "differences); NE = Nernst–Einstein from the PBC diffusion coefficients with the model's mean ion "
             "charges (no cross-correlations). Λ = σ_EH / c. For polarff the two EH columns estimate the same "
             "quantity only if the charge around each ion adds up to ±1 (the ion-environment charge in the "
             "diffusion section; topological quantization of charge transport, F. Grasselli and S. Baroni, "
             "Nat. Phys. 15, 967 (2019)). Where it falls short, σ EH is the conductivity of the model's own "
             "charges, which carry less than one elementary charge per ion, and σ EH formal is the physical "
             "conductivity of the model's ion dynamics.",
             "",
             "| run | σ EH | σ EH formal | σ GK | σ NE | Haven σ_NE/σ_EH | Λ EH (S cm²/mol) | Λ vs experiment "
             "| Λ EH formal | Λ formal vs experiment |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, t in salt.items():
        c = t["conductivity"]
        exp = c["experiment"]["molar_conductivity"]
        formal_value = c["molar_conductivity_formal"]["value"]
        formal_error = c["molar_conductivity_formal"]["error"]
        lines.append(f"| {name} | {fmt(c['eh']['sigma'], c['eh']['error'])} | "
                     f"{fmt(c['eh_formal']['sigma'], c['eh_formal']['error'])} | {fmt(c['gk']['sigma'], c['gk']['error'])} | "
                     f"{fmt(c['ne']['sigma'], c['ne']['error'])} | {fmt(c['haven_ratio'])} | "
                     f"{fmt(c['molar_conductivity']['value'], c['molar_conductivity']['error'], 1)} | "
                     f"{agreement(c['molar_conductivity']['value'], c['molar_conductivity']['error'], exp['value'])} | "
                     f"{fmt(formal_value, formal_error, 1)} | {agreement(formal_value, formal_error, exp['value'])} |")
    lines += ["", "Box size: in the fixed-charge baseline at 0.87 mol/kg the Einstein–Helfand Λ of a 64-water box "
              "(1.25 nm) is 0.80 ± 0.07 of that of a 512-water box (2.50 nm), and the two boxes extrapolated "
              "linearly in 1/L give an infinite-box Λ of 1.49 ± 0.20 times the 64-water box's: less than the "
              "ions' Yeh–Hummer factor f = (D_corr(Na⁺) + D_corr(Cl⁻)) / (D_PBC(Na⁺) + D_PBC(Cl⁻)) says "
              "(2.04 there; docs/replica-statistics.md). "
              "For a small box, Λ EH is therefore a lower and Λ EH × f an upper estimate of the "
              "infinite-box Λ (f from the D columns above, with their viscosity):", ""]
    for name, t in salt.items():
        scaled = t["conductivity"].get("molar_conductivity_yh_scaled")
        if scaled:
            exp_value = t["conductivity"]["experiment"]["molar_conductivity"]["value"]
            lines.append(f"- {name}: Λ EH × f = {fmt(scaled['value'], scaled['error'], 1)} S cm²/mol "
                         f"(f = {fmt(scaled['factor'])}); {agreement(scaled['value'], scaled['error'], exp_value)}")
    c = next(iter(salt.values()))
    exp = c["conductivity"]["experiment"]
    mc = exp["molar_conductivity"]
    lines += ["", f"Experiment at c = {c['concentration_mol_l']:.3f} mol/L, 25 °C: Λ = "
              f"{fmt(mc['value'], mc['error'], 1)} S cm²/mol ({mc['conditions']}; {mc['note'] or 'tabulated'}) [3], "
              f"σ = Λ·c = {fmt(exp['sigma'], exp['sigma_error'])} S/m."
              + (" The box is above 1 mol/L; the 1 mol/L value is used." if exp["concentration_clamped"] else ""),
              "", f"![conductivity]({rel['conductivity']})", "", f"![MSD]({rel['msd']})", ""]
    return lines


def _report_ir(results, rel) -> list[str]:
    lines = ["## IR spectrum", "",
             "From the total dipole (permanent Σ q r over whole molecules + induced dipoles) of each run, "
             "harmonic quantum correction, Hann window; band positions in cm⁻¹ ± the spread over 4 blocks. "
             "Water is rigid in all runs (as in the reference data), so the O–H stretch and H–O–H bend bands "
             "of experiment cannot appear; only the intermolecular bands (libration, H-bond stretch) are "
             "comparable.", "",
             "| run | libration | H-bond stretch |", "|---|---|---|"]
    for name, ir in results["ir"].items():
        cells = []
        for band in ("libration", "intermolecular H-bond stretch"):
            b = ir["bands"][band]
            cells.append(fmt(b["peak"], b["error"], 0) if b["peak"] is not None else "no peak")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    from polarff.analysis.experiment import WATER_IR_BANDS_298K as bands

    lines.append(f"| experiment (liquid H2O, 25 °C) [4] | {fmt(bands['libration'].value, bands['libration'].error, 0)} | "
                 f"{fmt(bands['intermolecular H-bond stretch'].value, bands['intermolecular H-bond stretch'].error, 0)} |")
    lines += ["", f"![IR]({rel['ir']})", ""]
    return lines


def _report_tnep(results) -> list[str]:
    lines = ["## polarff dipoles vs the TNEP dipole model (pure water)", ""]
    tnep = results.get("tnep")
    if tnep is None:
        return lines + ["Not run (no pure-water run).", ""]
    if "skipped" in tnep:
        return lines + [f"Skipped: {tnep['skipped']}.", ""]
    lines += ["The TNEP dipole model (GPUMD example 15, DFT Wannier-centre targets; `" + tnep["model"] + "`) is "
              "evaluated with calorine on the same frames; its total dipole is "
              "M = Σ_m (r_H1 + r_H2 − 2 r_O) − 2 Σ adipole (e·Å). Compared after removing each series' mean "
              "(the absolute dipole of a periodic box depends on the unwrapping).", "",
              "| frames of | frames | corr(ΔM_model, ΔM_TNEP) | RMSE (e·Å) | std ratio model/TNEP | libration, model's dipole (cm⁻¹) | libration, TNEP dipole (cm⁻¹) | TNEP s/frame |",
              "|---|---|---|---|---|---|---|---|"]
    for name, e in tnep["runs"].items():
        lib = e["bands"]["libration"]
        own = results["ir"][name]["bands"]["libration"]
        lines.append(f"| {name} | {e['n_frames']} | {e['correlation']:.3f} | {e['rmse']:.3f} | {e['std_ratio']:.3f} | "
                     f"{fmt(own['peak'], own['error'], 0) if own['peak'] is not None else 'no peak'} | "
                     f"{fmt(lib['peak'], lib['error'], 0) if lib['peak'] is not None else 'no peak'} | "
                     f"{e['seconds_per_frame']:.3f} |")
    lines += ["", "The same frames give the same band position with either dipole model when the two libration "
              "columns agree: the band position is then set by the dynamics (the Hamiltonian that made the "
              "frames), the dipole model sets intensities and the correlation above."]
    return lines + [""]


def _report_sampling(results) -> list[str]:
    lines = ["## Sampling plan", "",
             "Error bars measured on the first 50 %, 75 % and 100 % of each salt run (4 blocks each, the MSD "
             "fit window held fixed at that of the shortest prefix so that the block scatter can shrink), "
             "fitted to error = A/√T, and the production length at which the error bar would reach 10 % and 5 % "
             "of the experimental value (to resolve a 15 % target the error bar must be well below 15 %). "
             "Lengths scale with 1/(number of particles averaged) too: a box with k times more ions needs "
             "k times less time for the ion D values. The fixed window is short (below); D and σ from windows "
             "in the fully diffusive regime (several ps) scatter more per unit time, so these lengths are lower "
             "bounds, and with 4 blocks each measured error is itself uncertain by ~40 %.", "",
             "| run | quantity | measured errors (T in ps: error) | A | T for 10 % | T for 5 % |",
             "|---|---|---|---|---|---|"]
    for name, plan in results["sampling"].items():
        for quantity, p in plan.items():
            measured = ", ".join(f"{t:.1f}: {e:.3f}" for t, e in zip(p["lengths_ps"], p["errors"]))
            lines.append(f"| {name} | {quantity} | {measured} | {p['amplitude']:.3f} | "
                         f"{_ps(p['length_for_10pct'])} | {_ps(p['length_for_5pct'])} |")
        window = next(iter(plan.values()))["fit_window_ps"] if plan else None
        if window:
            lines.append(f"| {name} | (fit window {window[0]:.2f}–{window[1]:.2f} ps) | | | | |")
    return lines + [""]


def _ps(value: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    return f"{value / 1000:.1f} ns" if value >= 1000 else f"{value:.0f} ps"


def _report_sources() -> list[str]:
    from polarff.analysis.experiment import (D_NA_298K, D_WATER_298K, WATER_IR_BANDS_298K,
                                             nacl_molar_conductivity)

    return ["## Sources", "",
            f"1. {D_WATER_298K.source}.",
            f"2. {D_NA_298K.source}.",
            f"3. {nacl_molar_conductivity(1.0).source}; lower concentrations and interpolation: "
            "polarff.analysis.experiment.NACL_MOLAR_CONDUCTIVITY_298K.",
            f"4. {WATER_IR_BANDS_298K['libration'].source}.",
            "5. Yeh–Hummer correction: I.-C. Yeh, G. Hummer, J. Phys. Chem. B 108, 15873 (2004).",
            "6. Water O–O first peak 2.80 Å: L. B. Skinner et al., J. Chem. Phys. 138, 074506 (2013) (X-ray).",
            "7. Ion–water distances in NaCl(aq): Cl–O 3.16 Å, H. Ohtaki, T. Radnai, Chem. Rev. 93, 1157 (1993); "
            "Na–O 2.38 Å, M. Galib et al., J. Chem. Phys. 146, 084504 (2017) (X-ray diffraction 2.384 ± 0.003 Å, "
            "EXAFS 2.37 ± 0.02 Å; older diffraction data spread over 2.35–2.50 Å).", ""]


# ------------------------------------------------------------------------------------------------
# command line


def command_line(cfg: BenchmarkConfig) -> str:
    """The ``polarff benchmark`` command that reproduces ``cfg``."""
    words = ["polarff", "benchmark", cfg.model, "-o", cfg.out]
    if cfg.report:
        words += ["--report", cfg.report]
    words += ["--waters", str(cfg.n_waters), "--pairs", str(cfg.n_pairs), "--pure-waters", str(cfg.n_waters_pure),
              "--length-ps", f"{cfg.length_ps:g}", "--water-length-ps", f"{cfg.water_length_ps:g}",
              "--equilibration-ps", f"{cfg.equilibration_ps:g}", "--timestep-fs", f"{cfg.timestep_fs:g}",
              "--report-interval-fs", f"{cfg.report_interval_fs:g}", "--thermostat", cfg.thermostat,
              *(["--collision-frequency", f"{cfg.collision_frequency_per_ps:g}"] if cfg.thermostat == "nose-hoover"
                else ["--friction", f"{cfg.friction_per_ps:g}"]),
              "--baselines", *cfg.baselines,
              "--scaled-charge", f"{cfg.scaled_charge:g}", "--threads", str(cfg.threads), "--seed", str(cfg.seed),
              "--blocks", str(cfg.n_blocks), "--minimize-iterations", str(cfg.minimize_iterations)]
    if cfg.tnep:
        words += ["--tnep", cfg.tnep]
    if cfg.fixed_terms:
        words += ["--fixed-terms", cfg.fixed_terms]
    if cfg.cutoff_nm is not None:
        words += ["--cutoff", f"{cfg.cutoff_nm:g}"]
    if cfg.induction_field:
        words += ["--induction-field", cfg.induction_field]
    return " ".join(shlex.quote(w) for w in words)


class Benchmark(Command):
    name = "benchmark"
    help = "NaCl(aq) transport + IR: polarff vs fixed-charge baselines, TNEP and experiment (markdown report)"

    @staticmethod
    def add_arguments(p):
        p.add_argument("model", help="trained polarff model (.pff) with H, O, Na, Cl")
        p.add_argument("-o", "--out", default="benchmark-out", help="output folder (runs are resumed/reused)")
        p.add_argument("--report", help="markdown report to write (default OUT/report.md; plots in img/ beside it)")
        p.add_argument("--waters", type=int, default=64, help="waters in the salt box (default 64)")
        p.add_argument("--pairs", type=int, default=1, help="NaCl pairs in the salt box (default 1)")
        p.add_argument("--pure-waters", type=int, default=64, help="waters in the pure-water box (0: skip)")
        p.add_argument("--length-ps", type=float, default=10.0, help="salt runs' production length (ps)")
        p.add_argument("--water-length-ps", type=float, default=5.0, help="pure-water runs' length (ps)")
        p.add_argument("--equilibration-ps", type=float, default=2.0, help="equilibration (ps)")
        p.add_argument("--timestep-fs", type=float, default=2.0, help="time step (fs)")
        p.add_argument("--report-interval-fs", type=float, default=10.0, help="time between frames (fs)")
        p.add_argument("--thermostat", choices=THERMOSTATS, default=BenchmarkConfig.thermostat,
                       help="thermostat of every run (default nose-hoover: global, leaves transport as in NVE; "
                            "runs made before 2026-12-07 used langevin with friction 1/ps, which slows it: "
                            "docs/thermostat-friction.md)")
        p.add_argument("--collision-frequency", type=float, default=BenchmarkConfig.collision_frequency_per_ps,
                       help="Nose-Hoover coupling, 1/ps (default 1)")
        p.add_argument("--friction", type=float, default=BenchmarkConfig.friction_per_ps,
                       help="Langevin friction, 1/ps (default 1; --thermostat langevin only)")
        p.add_argument("--baselines", nargs="*", default=["formal", "scaled"], choices=["formal", "scaled"],
                       help="fixed-charge baselines to run")
        p.add_argument("--scaled-charge", type=float, default=0.75, help="ion charge factor of 'scaled'")
        p.add_argument("--tnep", help="TNEP dipole nep.txt (default ../shared/data/tnep-water/dipole/nep.txt)")
        p.add_argument("--threads", type=int, default=1, help="CPU threads")
        p.add_argument("--seed", type=int, default=7, help="seed of the boxes and the MD")
        p.add_argument("--blocks", type=int, default=5, help="blocks for the error bars")
        p.add_argument("--minimize-iterations", type=int, default=20,
                       help="largest number of energy-minimiser iterations before equilibration")
        p.add_argument("--fixed-terms", help="fixed-term ForceField XML of the polarff runs (path or name in "
                       "forcefields/; default polarff_fixed_terms)")
        p.add_argument("--cutoff", type=float, default=None,
                       help="nonbonded cutoff in nm (LJ, real-space Ewald, dipole-dipole coupling up to 0.9 nm); default "
                            "min(0.9, 0.49 x box edge), i.e. box-dependent: set it to compare box sizes at one cutoff")
        p.add_argument("--induction-field", choices=["full", "switched"],
                       help="polarising field of the polarff runs (default full; 'switched' reproduces runs made "
                            "before 2026-11-22, docs/induction-field.md)")
        p.add_argument("--note", default="", help="paragraph for the top of the report (e.g. the model's origin)")

    @staticmethod
    def run(args):
        cfg = BenchmarkConfig(model=args.model, out=args.out, report=args.report, n_waters=args.waters,
                              n_pairs=args.pairs, n_waters_pure=args.pure_waters, length_ps=args.length_ps,
                              water_length_ps=args.water_length_ps, equilibration_ps=args.equilibration_ps,
                              timestep_fs=args.timestep_fs, report_interval_fs=args.report_interval_fs,
                              thermostat=args.thermostat, collision_frequency_per_ps=args.collision_frequency,
                              friction_per_ps=args.friction, baselines=list(args.baselines),
                              scaled_charge=args.scaled_charge, tnep=args.tnep,
                              threads=args.threads, seed=args.seed, n_blocks=args.blocks,
                              minimize_iterations=args.minimize_iterations, fixed_terms=args.fixed_terms,
                              cutoff_nm=args.cutoff, induction_field=args.induction_field, note=args.note)
        cfg.command = command_line(cfg)
        if not os.path.exists(cfg.model):
            raise ConfigError(f"{cfg.model}: model file not found (train one with `polarff fit`)")
        t0 = time.perf_counter()
        path = run_benchmark(cfg)
        print(f"wrote {path} ({time.perf_counter() - t0:.0f} s)")
        return 0


register(Benchmark)
