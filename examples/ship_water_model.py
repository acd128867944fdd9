"""Write a model of ``examples/water_factor_scan.py`` to ``forcefields/`` with its fixed terms and card keys.

For water factor F the scan leaves ``OUT/f<F>/model.pff`` (network + electronegativity term) and the water radius
it measured. This script writes

* ``forcefields/polarff_nacl_gfn2_water<TAG>_fixed_terms.xml``: the water-1.13 fixed terms (σ_Cl 4.66 Å,
  Joung–Cheatham Na⁺) with σ_O replaced, and a header naming where the radius comes from;
* ``forcefields/nacl_gfn2_water<TAG>_clthole.pff``: the model with Cl⁻'s Thole strength 0.16 (docs/chloride.md
  section 8) and the card keys ``fixed_terms``, ``induction_field`` and ``variant``.

The new fixed-terms name must also be listed in ``polarff.build.FORCEFIELD_NAMES``.

Example (docs/induction-field.md)::

    python examples/ship_water_model.py --scan build/wf_full --factor 1.26 --sigma-o 3.28 \\
        --density "1.009 +- 0.009 g/cm3 at 3.275 A"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rebalance_lj import fixed_terms_with_sigmas  # noqa: E402

#: Cl⁻ Thole strength fitted to B3LYP shell dipoles (docs/chloride.md section 8).
CL_THOLE = 0.16

HEADER = """<?xml version="1.0" encoding="utf-8"?>
<!--
polarff fixed terms balanced for the model forcefields/nacl_gfn2_water{tag}_clthole.pff (GFN2-xTB charges; ions
scaled to B3LYP ESP charges, water scaled by a hand-set factor {factor} chosen from pure-water diffusion with the
electronegativity term with hardness in place and the charges' polarising field summed in full (Ewald);
docs/induction-field.md). Its model card names this file, so polarff.openmm.create_system uses it by default.
ALL CHARGES ARE ZERO ON PURPOSE: polarff supplies the electrostatics (charges and induction).

Same as polarff_fixed_terms.xml (TIP3P geometry and masses, Joung-Cheatham ion LJ, Lorentz-Berthelot), except
two Lennard-Jones radii (epsilon kept):
  water O: sigma 3.15075 -> {sigma:g} A, for the density of water at 298.15 K, 1 bar (0.997 g/cm3): NPT, 96 waters,
           8 ps (examples/water_factor_scan.py, step 4) with the model: {density},
           moved to 0.997 g/cm3 with the slope -2.65 g/cm3/A and rounded to 0.005 A;
  Cl-:     sigma 4.4777 -> 4.66 A, kept from polarff_nacl_gfn2_water111_fixed_terms.xml (Cl-O first g(r) peak
           at 0.87 mol/kg, 3.16 A; diffraction, Ohtaki and Radnai, Chem. Rev. 93, 1157 (1993)).
  Na+ is unchanged (Joung-Cheatham).
Units: nm, kJ/mol, e, daltons, radians.
-->
"""


def ship(scan: Path, factor: str, sigma_o: float, density: str, out: Path = Path("forcefields")) -> tuple[Path, Path]:
    """Write the fixed terms and the model (see the module docstring); returns their paths."""
    from polarff.artifact import load_model
    from polarff.build import forcefield_path
    from polarff.fileio import write_text

    tag = factor.replace(".", "")
    name = f"polarff_nacl_gfn2_water{tag}_fixed_terms"
    source = forcefield_path("polarff_nacl_gfn2_water113_fixed_terms")
    text = fixed_terms_with_sigmas({"O": sigma_o, "Cl": 4.66}, source)
    body = text[text.index("<ForceField>"):].replace(
        "<Source>polarff forcefields/polarff_nacl_gfn2_water113_fixed_terms.xml</Source>",
        f"<Source>polarff forcefields/{name}.xml</Source>")
    xml = out / f"{name}.xml"
    write_text(xml, HEADER.format(tag=tag, factor=factor, sigma=sigma_o, density=density) + body)
    model = load_model(scan / f"f{factor}" / "model.pff")
    basis = load_model(Path(source).parent / "nacl_gfn2_water113_clthole.pff").thole["basis"]
    model.thole = {"a": {"Cl": CL_THOLE}, "basis": basis}
    model.card["fixed_terms"] = name
    model.card["induction_field"] = "full"
    model.card["variant"] = (f"water factor {factor} and sigma_O {sigma_o:g} A set with the charges' polarising field "
                             "summed in full (docs/induction-field.md); Cl- Thole strength 0.16 fitted to B3LYP shell "
                             "dipoles (docs/chloride.md section 8)")
    path = out / f"nacl_gfn2_water{tag}_clthole.pff"
    model.save(path)
    return xml, path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scan", type=Path, required=True, help="--out folder of water_factor_scan.py")
    p.add_argument("--factor", required=True, help="water factor as written in the scan's folder name (e.g. 1.26)")
    p.add_argument("--sigma-o", type=float, required=True, help="water O sigma (Å) the scan set for 0.997 g/cm³")
    p.add_argument("--density", required=True, help="the NPT measurement the radius comes from (for the header)")
    p.add_argument("--out", type=Path, default=Path("forcefields"))
    args = p.parse_args(argv)
    for path in ship(args.scan, args.factor, args.sigma_o, args.density, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
