"""Experimental reference values for the benchmarks, stored as data with their sources.

Every value is a :class:`Reference` (value, error or None, unit, source, conditions, note). Concentration
scales are stated explicitly: *molar* = mol/L of solution (c), *molal* = mol/kg of water (m); at 25 °C,
1 mol/kg NaCl(aq) is about 0.98 mol/L. Conductivities of simulations should be compared at the molar
concentration of the simulated box (:func:`polarff.analysis.conductivity.salt_concentration`).

Checks made when these values were entered (see also the ``note`` of each entry):

* NaCl molar conductivities 0.001–0.1 mol/L: consistent (±0.1) with the conductivities
  κ = 1.237e-2, 11.85e-2, 55.53e-2 and 106.74e-2 S/m at 298 K for 0.001, 0.01, 0.05, 0.1 mol/L.
* Λ°(NaCl) = λ°(Na⁺) + λ°(Cl⁻) = 50.08 + 76.31 = 126.39 S cm² mol⁻¹, and the Nernst–Einstein relation
  ``D = R T λ° / (z² F²)`` turns these λ° into D(Na⁺) = 1.334 and D(Cl⁻) = 2.032 × 10⁻⁹ m²/s, the values
  listed below: the infinite-dilution entries are mutually consistent.
* The 1 mol/L value at 25 °C (85.8, Chambers et al.) agrees with the CRC 20 °C value at 5 mass %
  (κ = 70.1 mS/cm, c = 0.885 mol/L, Λ = 79.2) once the ≈ 2 %/K temperature coefficient of NaCl(aq)
  conductivity is applied (≈ 87 at 0.885 mol/L and 25 °C, decreasing with c).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from polarff.errors import ConfigError


@dataclass(frozen=True)
class Reference:
    """One experimental value.

    Attributes
    ----------
    value : float
        The value, in ``unit``.
    error : float or None
        Stated or estimated uncertainty (same unit); None when the source gives none.
    unit : str
        Unit of ``value`` and ``error``.
    source : str
        Bibliographic source.
    conditions : str
        Temperature, concentration (molar or molal) and other conditions.
    note : str
        How the value was obtained or checked; caveats.
    """

    value: float
    error: float | None
    unit: str
    source: str
    conditions: str = ""
    note: str = ""


_CRC_EQUIV = ("CRC Handbook of Chemistry and Physics, 'Equivalent conductivity of electrolytes in aqueous "
              "solution' (data of Hamer, NSRDS-NBS 33, and Robinson & Stokes, Electrolyte Solutions)")
_CRC_IONIC = ("CRC Handbook of Chemistry and Physics, 'Ionic conductivity and diffusion at infinite "
              "dilution' (25 °C)")
_CHAMBERS = ("J. F. Chambers, J. M. Stokes, R. H. Stokes, 'Conductances of concentrated aqueous sodium and "
             "potassium chloride solutions at 25°', J. Phys. Chem. 60, 985 (1956)")
_CRC_KAPPA = ("CRC Handbook of Chemistry and Physics, 'Electrical conductivity of aqueous solutions' "
              "(20 °C, mass percent; from CRC 70th ed. p. D-221 and Wolf, Aqueous Solutions and Body "
              "Fluids, 1966)")
_BERTIE = ("J. E. Bertie, Z. Lan, 'Infrared intensities of liquids XX: the intensity of the OH stretching "
           "band of liquid water revisited, and the best current values of the optical constants of "
           "H2O(l) at 25 °C between 15,000 and 1 cm-1', Appl. Spectrosc. 50, 1047 (1996), "
           "doi:10.1366/0003702963905385")

#: Molar conductivity Λ of NaCl(aq) at 25 °C, keyed by molar concentration c (mol/L).
NACL_MOLAR_CONDUCTIVITY_298K: dict[float, Reference] = {
    0.0: Reference(126.39, None, "S cm^2 mol^-1", _CRC_IONIC, "25 °C, infinite dilution",
                   "Λ° = λ°(Na+) + λ°(Cl-) = 50.08 + 76.31"),
    0.001: Reference(123.7, None, "S cm^2 mol^-1", _CRC_EQUIV, "25 °C, c = 0.001 mol/L (molar)"),
    0.01: Reference(118.5, None, "S cm^2 mol^-1", _CRC_EQUIV, "25 °C, c = 0.01 mol/L (molar)"),
    0.05: Reference(111.1, None, "S cm^2 mol^-1", _CRC_EQUIV, "25 °C, c = 0.05 mol/L (molar)",
                    "= 55.53e-2 S/m / 0.05 mol/L"),
    0.1: Reference(106.7, None, "S cm^2 mol^-1", _CRC_EQUIV, "25 °C, c = 0.1 mol/L (molar)"),
    1.0: Reference(85.76, None, "S cm^2 mol^-1", _CHAMBERS, "25 °C, c = 1.0 mol/L (molar)",
                   "≈ 1.02 mol/kg (molal); κ = 8.58 S/m. Cross-checked against the CRC 20 °C table "
                   "(see module docstring); confirm against the printed table before publication."),
}

#: Electrical conductivity κ of NaCl(aq) near 1 mol/kg at 20 °C (CRC mass-percent table).
NACL_CONDUCTIVITY_5_MASS_PERCENT_293K = Reference(
    7.01, None, "S/m", _CRC_KAPPA,
    "20 °C, 5 mass % NaCl = 0.901 mol/kg (molal) = 0.885 mol/L (molar, density 1.034 g/cm^3)",
    "70.1 mS/cm; Λ = κ/c = 79.2 S cm^2 mol^-1 at 20 °C")

#: Self-diffusion coefficient of liquid water, 25 °C, 1e-9 m²/s.
D_WATER_298K = Reference(2.299, None, "1e-9 m^2/s",
                         "R. Mills, 'Self-diffusion in normal and heavy water in the range 1-45°', "
                         "J. Phys. Chem. 77, 685 (1973)", "25 °C, 1 bar")
#: Tracer diffusion coefficient of Na⁺ at infinite dilution, 25 °C, 1e-9 m²/s.
D_NA_298K = Reference(1.334, None, "1e-9 m^2/s", _CRC_IONIC, "25 °C, infinite dilution")
#: Tracer diffusion coefficient of Cl⁻ at infinite dilution, 25 °C, 1e-9 m²/s.
D_CL_298K = Reference(2.032, None, "1e-9 m^2/s", _CRC_IONIC, "25 °C, infinite dilution")
#: Shear viscosity of liquid water at 25 °C (used as the default of the Yeh–Hummer correction).
WATER_VISCOSITY_298K = Reference(0.890, None, "mPa s",
                                 "CRC Handbook of Chemistry and Physics, 'Viscosity of water at "
                                 "temperatures between -24 °C and 100 °C'", "25 °C, 1 bar")

#: Infrared band maxima of liquid H2O at 25 °C (imaginary refractive index k), cm⁻¹.
WATER_IR_BANDS_298K: dict[str, Reference] = {
    "O-H stretch": Reference(3404.0, None, "cm^-1", _BERTIE, "25 °C, maximum of k"),
    "bend + libration combination": Reference(2125.0, None, "cm^-1", _BERTIE, "25 °C, maximum of k",
                                              "weak, broad; absent from classical point-charge models"),
    "H-O-H bend": Reference(1644.0, None, "cm^-1", _BERTIE, "25 °C, maximum of k"),
    "libration": Reference(685.0, 20.0, "cm^-1", _BERTIE, "25 °C, maximum of k",
                           "very broad band (~400-1000 cm^-1); error = position spread between k and "
                           "absorbance representations"),
    "intermolecular H-bond stretch": Reference(200.0, 20.0, "cm^-1", _BERTIE, "25 °C, maximum of k",
                                               "weak shoulder/band near 190-200 cm^-1"),
}


def nacl_molar_conductivity(concentration: float) -> Reference:
    """Experimental Λ of NaCl(aq) at 25 °C for a molar concentration (mol/L).

    Tabulated concentrations are returned as stored; in between, Λ is interpolated linearly in √c
    (Kohlrausch's law is linear in √c at low c; across the 0.1–1 mol/L gap the curvature makes the
    interpolated value uncertain by a few S cm² mol⁻¹, which is stated in the returned error).

    Parameters
    ----------
    concentration : float
        mol/L, between 0 and 1.

    Returns
    -------
    Reference
        Λ in S cm² mol⁻¹.
    """
    c = float(concentration)
    table = NACL_MOLAR_CONDUCTIVITY_298K
    for key, ref in table.items():
        if abs(key - c) <= 1e-9 * max(1.0, c):
            return ref
    keys = np.array(sorted(table))
    if not keys[0] <= c <= keys[-1]:
        raise ConfigError(f"no NaCl(aq) molar conductivity stored for {c:g} mol/L "
                          f"(available range {keys[0]:g}-{keys[-1]:g} mol/L)")
    roots = np.sqrt(keys)
    values = np.array([table[k].value for k in keys])
    value = float(np.interp(np.sqrt(c), roots, values))
    upper = int(np.searchsorted(keys, c))
    error = 3.0 if keys[upper] > 0.1 else 0.5
    lo_ref, hi_ref = table[keys[upper - 1]], table[keys[upper]]
    return Reference(round(value, 2), error, "S cm^2 mol^-1",
                     f"interpolated in sqrt(c) between {lo_ref.source} ({keys[upper - 1]:g} mol/L) and "
                     f"{hi_ref.source} ({keys[upper]:g} mol/L)",
                     f"25 °C, c = {c:g} mol/L (molar)", "interpolated; error is an estimate")
