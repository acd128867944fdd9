"""Transport and spectroscopy from MD trajectories: diffusion, ionic conductivity, IR spectra.

Pure numpy/scipy; inputs are plain arrays (no OpenMM needed). Units throughout: positions nm
(unwrapped), times ps, charges e, volumes nm³, temperatures K; outputs D in 1e-9 m²/s, σ in S/m,
Λ in S cm² mol⁻¹, wavenumbers in cm⁻¹; dipoles for IR in e·Å.

Modules
-------
stats         block averaging (error bars of any estimator), straight-line fits, input checks
diffusion     MSD (FFT, all time origins), D with block errors, Yeh–Hummer correction
conductivity  Einstein–Helfand (fixed or per-frame charges), Green–Kubo, Nernst–Einstein, Λ = σ/c
spectra       dipole autocorrelation, IR spectrum with quantum correction, peak finding
experiment    experimental reference values with sources
"""

from polarff.analysis.conductivity import (ConductivityEstimate, EinsteinHelfandResult,  # noqa: F401
                                           GreenKuboResult, charge_current, current_autocorrelation,
                                           dipole_current, einstein_helfand,
                                           einstein_helfand_from_dipole, green_kubo, haven_ratio,
                                           molar_conductivity, nernst_einstein, salt_concentration,
                                           translational_dipole)
from polarff.analysis.diffusion import (DiffusionResult, diffusion_by_species,  # noqa: F401
                                        diffusion_coefficient, inverse_box_extrapolation,
                                        mean_squared_displacement,
                                        msd_by_species, msd_per_atom, remove_center_of_mass_motion,
                                        viscosity_from_box_dependence, yeh_hummer_correction,
                                        yeh_hummer_corrected)
from polarff.analysis.spectra import (IRSpectrum, Peak, autocorrelation, find_peaks,  # noqa: F401
                                      ir_spectrum, quantum_correction_factor)
from polarff.analysis.stats import BlockEstimate, block_average, block_estimate, fit_line  # noqa: F401
