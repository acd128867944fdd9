"""Reference labels: GFN2-xTB charges (tblite) and D4 atomic polarizabilities (dftd4).

* Charges: Mulliken-type atomic partial charges of the self-consistent GFN2-xTB solution (tblite), for
  periodic boxes and for clusters. They sum to the frame's total charge.
* Polarizabilities: the static atomic polarizabilities of the D4 dispersion model (dftd4). These are
  reference free-atom values interpolated by coordination number and scaled by an EEQ partial charge; they
  are *not* a response of the electrons in solution. For ions in water they are poor: in an NaCl(aq) box
  D4 gives 4.3 Å^3 for Na+ (its EEQ charge is +0.92) where a hydrated Na+ has ~0.15–0.4 Å^3 (see
  ``polarff/data/README.md`` and ``tests/test_label.py`` for the numbers measured against literature).
  Use them as a cheap prior only. The method ``d4-ions`` (the default of ``polarff label``) keeps D4 for
  atoms in molecules and gives monatomic ions the hydrated-ion values of :data:`HYDRATED_ION_ALPHA_A3`.

Units: positions in Å (converted to bohr for the libraries), charges in e, polarizabilities in Å^3.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from polarff.data import ATOMIC_NUMBERS, Frame
from polarff.errors import ConfigError, InputError, PolarffError

#: Bohr radius in Å (CODATA 2018).
BOHR_A = 0.529177210903
#: Atomic unit of polarizability (bohr^3) in Å^3.
BOHR3_TO_A3 = BOHR_A ** 3  # 0.1481847...

CHARGE_METHODS = ("gfn2", None)
POLARIZABILITY_METHODS = ("d4-ions", "d4", None)

#: Ion polarizabilities (Å^3) used for monatomic ions in water by the ``d4-ions`` method: the in-crystal
#: electronic polarizabilities of J. R. Tessman, A. H. Kahn and W. Shockley, Phys. Rev. 92, 890 (1953),
#: fitted to the refraction of alkali-halide crystals (the values tests/test_label.py measures D4 against).
#: They stand in for hydrated-ion values because cation polarizabilities are nearly the same free, in
#: crystals and in water, and aqueous anion values are close to in-crystal ones (N. C. Pyper et al.,
#: Mol. Phys. 76, 353 (1992); J. J. Molina et al., J. Chem. Phys. 134, 014511 (2011)). Na+ 0.41 is above
#: the free-ion value (~0.15 Å^3): the additive crystal fit gives part of the anion's response to the
#: cation. Needed because D4's charge scaling leaves alkali cations near their neutral-atom values
#: (bare Na+ 23 Å^3, K+ 51 Å^3; 1-6 Å^3 in water).
HYDRATED_ION_ALPHA_A3 = {"Li": 0.03, "Na": 0.41, "K": 1.33, "Cl": 2.96}


class LabelError(PolarffError, RuntimeError):
    """Raised when a reference calculation fails (e.g. the GFN2-xTB SCF does not converge) for a frame.

    The message names the file and frame (``Frame.where()``) and the method.
    """


def _structure_arrays(frame: Frame) -> dict:
    """Atomic numbers, positions (bohr), charge and, for periodic frames, lattice (bohr) and pbc."""
    frame.validate()
    numbers = np.array([ATOMIC_NUMBERS[s] for s in frame.symbols], dtype=np.int32)
    kwargs = {"numbers": numbers, "positions": frame.positions / BOHR_A, "charge": float(frame.total_charge)}
    if frame.periodic:
        kwargs["lattice"] = np.asarray(frame.cell) / BOHR_A
        kwargs["periodic"] = np.asarray(frame.pbc, dtype=bool)
    return kwargs


def gfn2_charges(frame: Frame, *, accuracy: float = 1.0, max_iter: int = 250) -> np.ndarray:
    """GFN2-xTB atomic partial charges of a frame (tblite), periodic or not.

    Parameters
    ----------
    frame : Frame
        Structure (Å); ``total_charge`` sets the electron count; a periodic frame uses its cell.
    accuracy : float
        tblite SCC accuracy (1.0 is tblite's default; smaller is tighter).
    max_iter : int
        Maximum SCC iterations.

    Returns
    -------
    ndarray, shape (N,)
        Charges in e; their sum equals ``frame.total_charge`` (checked to 1e-6 e, residual removed).

    Raises
    ------
    LabelError
        If the SCF fails or the charges do not sum to the total charge; the message names the frame.
    """
    from tblite.interface import Calculator

    kwargs = _structure_arrays(frame)
    try:
        calc = Calculator("GFN2-xTB", **kwargs)
        calc.set("verbosity", 0)
        calc.set("accuracy", accuracy)
        calc.set("max-iter", max_iter)
        charges = np.array(calc.singlepoint().get("charges"), dtype=np.float64)
    except Exception as exc:  # tblite raises TBLiteRuntimeError / TBLiteValueError
        raise LabelError(f"{frame.where()}: GFN2-xTB (tblite) failed: {type(exc).__name__}: {exc}") from None
    return _neutralised(charges, frame, "GFN2-xTB charges")


def d4_polarizabilities(frame: Frame) -> np.ndarray:
    """Static atomic polarizabilities of the D4 dispersion model (dftd4), in Å^3.

    D4 interpolates tabulated reference polarizabilities by coordination number and scales them with an
    electronegativity-equilibration charge (computed for ``frame.total_charge``). Periodic frames use
    their cell.

    Returns
    -------
    ndarray, shape (N,)
        Polarizabilities in Å^3 (a.u. × 0.1481847).

    Raises
    ------
    LabelError
        If dftd4 fails or returns non-positive values.
    """
    from dftd4.interface import DispersionModel

    kwargs = _structure_arrays(frame)
    try:
        model = DispersionModel(**kwargs)
        alpha_au = np.array(model.get_properties()["polarizabilities"], dtype=np.float64)
    except Exception as exc:
        raise LabelError(f"{frame.where()}: D4 (dftd4) failed: {type(exc).__name__}: {exc}") from None
    if alpha_au.shape != (frame.n_atoms,) or not np.all(np.isfinite(alpha_au)) or np.any(alpha_au <= 0):
        raise LabelError(f"{frame.where()}: D4 (dftd4) returned invalid polarizabilities "
                         f"(expected {frame.n_atoms} positive values, found {alpha_au.tolist()[:6]}...)")
    return alpha_au * BOHR3_TO_A3


def d4_with_hydrated_ions(frame: Frame) -> np.ndarray:
    """D4 polarizabilities (Å^3) with monatomic ions set to :data:`HYDRATED_ION_ALPHA_A3`.

    An ion counts as monatomic when no other atom lies within 1.6 Å of it (minimum image).
    """
    from polarff.data import minimum_image_vectors

    alpha = d4_polarizabilities(frame)
    n = frame.n_atoms
    for k, symbol in enumerate(frame.symbols):
        if symbol in HYDRATED_ION_ALPHA_A3:
            d = np.linalg.norm(minimum_image_vectors(frame, np.full(n, k), np.arange(n)), axis=1)
            d[k] = np.inf
            if d.min() > 1.6:
                alpha[k] = HYDRATED_ION_ALPHA_A3[symbol]
    return alpha


def _neutralised(charges: np.ndarray, frame: Frame, what: str, tolerance: float = 1e-6) -> np.ndarray:
    """Check shape, finiteness and the sum of ``charges``; remove the (tiny) residual evenly."""
    if charges.shape != (frame.n_atoms,) or not np.all(np.isfinite(charges)):
        raise LabelError(f"{frame.where()}: {what} are invalid (expected {frame.n_atoms} finite values, "
                         f"found shape {charges.shape})")
    residual = float(charges.sum() - frame.total_charge)
    if abs(residual) > tolerance:
        raise LabelError(f"{frame.where()}: {what} sum to {charges.sum():+.8f} e, expected the total "
                         f"charge {frame.total_charge:+.8f} e")
    return charges - residual / frame.n_atoms


def label_method(charges: str | None = "gfn2", polarizabilities: str | None = "d4") -> str:
    """Method string stored in ``Frame.info['label_method']``, with library versions."""
    parts = []
    if charges == "gfn2":
        parts.append(f"GFN2-xTB/tblite {metadata.version('tblite')}")
    if polarizabilities == "d4":
        parts.append(f"alpha: D4/dftd4 {metadata.version('dftd4')}")
    elif polarizabilities == "d4-ions":
        parts.append(f"alpha: D4/dftd4 {metadata.version('dftd4')}, monatomic ions: Tessman-Kahn-Shockley 1953")
    return "; ".join(parts)


def label_frame(frame: Frame, charges: str | None = "gfn2", polarizabilities: str | None = "d4") -> Frame:
    """A copy of ``frame`` with the requested labels (``charges`` e, ``polarizabilities`` Å^3) added."""
    _check_methods(charges, polarizabilities)
    out = copy.deepcopy(frame)
    if charges == "gfn2":
        out.labels["charges"] = gfn2_charges(frame)
    if polarizabilities == "d4":
        out.labels["polarizabilities"] = d4_polarizabilities(frame)
    elif polarizabilities == "d4-ions":
        out.labels["polarizabilities"] = d4_with_hydrated_ions(frame)
    out.info["label_method"] = label_method(charges, polarizabilities)
    return out.validate()


def label_file(in_path: str | os.PathLike, out_path: str | os.PathLike, charges: str | None = "gfn2",
               polarizabilities: str | None = "d4", resume: bool = True, progress: bool = True, *,
               max_frames: int | None = None, chunk_size: int = 1) -> int:
    """Label every frame of an extxyz file; resumable.

    Frames are labelled in order and ``out_path`` is rewritten atomically (temporary file + rename,
    :func:`polarff.io.write_frames`) after every ``chunk_size`` frames, so ``out_path`` always holds a
    prefix of the input, labelled. With ``resume=True`` a restarted run checks that prefix (species and
    positions must match the input) and continues after it; no frame is labelled or written twice.

    Parameters
    ----------
    in_path : path-like
        Input extxyz (e.g. from :func:`polarff.build.sample_ion_dataset`).
    out_path : path-like
        Output extxyz; labels stored as ``REF_charges`` / ``REF_polarizabilities``, the method in
        ``label_method``.
    charges : {'gfn2', None}
        Charge method (None: no charges).
    polarizabilities : {'d4', None}
        Polarizability method (None: none).
    resume : bool
        Keep the frames already labelled in ``out_path``; if False, start over.
    progress : bool
        Print progress with an ETA to stderr.
    max_frames : int, optional
        Label at most this many new frames in this call, then stop (for chunked jobs and tests).
    chunk_size : int
        Frames labelled between two writes of ``out_path``.

    Returns
    -------
    int
        Number of frames labelled by this call (frames already in ``out_path`` are not counted).

    Raises
    ------
    InputError
        If the input cannot be read, or ``out_path`` holds frames that are not a prefix of the input.
    LabelError
        If a reference calculation fails; the message names the frame. Frames done so far are kept.
    """
    from polarff.io import read_frames, write_frames

    _check_methods(charges, polarizabilities)
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1 (found {chunk_size})")
    inputs = read_frames(in_path)
    done = _resumable_prefix(inputs, out_path) if resume else []
    todo = list(range(len(done), len(inputs)))
    if max_frames is not None:
        todo = todo[:max(0, int(max_frames))]
    if progress and done:
        print(f"[label] resuming {out_path}: {len(done)}/{len(inputs)} frames already labelled",
              file=sys.stderr, flush=True)
    start = time.perf_counter()
    pending = 0
    for count, index in enumerate(todo, start=1):
        labelled = label_frame(inputs[index], charges, polarizabilities)
        labelled.info.pop("source", None)
        labelled.info.pop("index", None)
        done.append(labelled)
        pending += 1
        if pending >= chunk_size or count == len(todo):
            write_frames(out_path, done)
            pending = 0
        if progress:
            elapsed = time.perf_counter() - start
            per_frame = elapsed / count
            eta = per_frame * (len(todo) - count)
            print(f"[label] frame {index + 1}/{len(inputs)}  {per_frame:.1f} s/frame  "
                  f"elapsed {_hms(elapsed)}  ETA {_hms(eta)}", file=sys.stderr, flush=True)
    if not todo and not Path(out_path).exists():
        write_frames(out_path, done)
    return len(todo)


def _resumable_prefix(inputs: list[Frame], out_path: str | os.PathLike) -> list[Frame]:
    """Frames already in ``out_path`` if they are the labelled first frames of ``inputs``; else raise."""
    from polarff.io import read_frames

    if not Path(out_path).exists():
        return []
    existing = read_frames(out_path)
    if len(existing) > len(inputs):
        raise InputError("output holds more frames than the input; use resume=False to start over",
                         file=str(out_path), expected=f"<= {len(inputs)} frames", found=len(existing))
    for k, (old, new) in enumerate(zip(existing, inputs)):
        same = (old.symbols == new.symbols and old.positions.shape == new.positions.shape
                and np.allclose(old.positions, new.positions, atol=1e-5))
        if not same:
            raise InputError("output frame does not match the input frame with the same index; "
                             "use resume=False to start over", file=str(out_path), frame=k,
                             field="positions", expected="the input's species and positions",
                             found="different structure")
    return existing


def _check_methods(charges: str | None, polarizabilities: str | None) -> None:
    if charges not in CHARGE_METHODS:
        raise ConfigError(f"unknown charge method {charges!r} (expected one of {list(CHARGE_METHODS)})")
    if polarizabilities not in POLARIZABILITY_METHODS:
        raise ConfigError(f"unknown polarizability method {polarizabilities!r} "
                          f"(expected one of {list(POLARIZABILITY_METHODS)})")


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
