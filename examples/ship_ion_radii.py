"""Write a shipped model with its ion radii set again: new fixed terms and a model card that names them.

The Lennard-Jones radii of Na⁺ and Cl⁻ (ε kept) are the only parameters of the fixed terms fitted to ion
structure: each is set so that the first ion–water-oxygen peak of g(r) in the salt box (0.87 mol/kg) lands on
diffraction (``examples/rebalance_lj.py --stage ions``). This script takes a shipped model and the radii such
a scan gave and writes

* ``forcefields/polarff_nacl_gfn2_<NAME>_fixed_terms.xml``: the model's fixed terms with σ(Na⁺) and σ(Cl⁻)
  replaced and a header naming where the radii come from;
* ``forcefields/nacl_gfn2_<NAME>.pff``: the model unchanged (network, classes, electronegativity term, Thole
  strengths) with the card keys ``fixed_terms`` and ``variant`` updated.

The new fixed-terms name must also be listed in ``polarff.build.FORCEFIELD_NAMES``.

Example (docs/ion-radii.md)::

    python examples/ship_ion_radii.py --model forcefields/nacl_gfn2_water126_clthole.pff \\
        --name water126_ionradii --sigma-na 2.27 --sigma-cl 4.33 \\
        --basis "NVT salt box of 64 waters + 1 NaCl, 20 ps per point (examples/rebalance_lj.py, ions stage, \\
paired): Na-O 2.380 / 2.415 A at sigma_Na 2.26 / 2.34 A, Cl-O 3.145 / 3.236 A at sigma_Cl 4.30 / 4.50 A, \\
interpolated and rounded to 0.01 A (docs/ion-radii.md)"
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rebalance_lj import fixed_terms_sigma, fixed_terms_with_sigmas  # noqa: E402

HEADER = """<?xml version="1.0" encoding="utf-8"?>
<!--
polarff fixed terms for the model forcefields/nacl_gfn2_{name}.pff: the fixed terms of {base_model}
({base_xml}.xml) with the ion radii set again for that model. Its model card names this file, so
polarff.openmm.create_system uses it by default.
ALL CHARGES ARE ZERO ON PURPOSE: polarff supplies the electrostatics (charges and induction).

Same as {base_xml}.xml except the Lennard-Jones radii of the ions (epsilon kept, Joung-Cheatham):
  Na+: sigma {na_old:g} -> {na:g} A, for the first Na-O peak of g(r) at 0.87 mol/kg, 2.38 A (X-ray diffraction
       2.384 +- 0.003 A, Galib et al., J. Chem. Phys. 146, 084504 (2017));
  Cl-: sigma {cl_old:g} -> {cl:g} A, for the first Cl-O peak, 3.16 A (diffraction, Ohtaki and Radnai,
       Chem. Rev. 93, 1157 (1993)).
  How: {basis}
Units: nm, kJ/mol, e, daltons, radians.
-->
"""


def ship(model_path: Path, name: str, sigma_na: float, sigma_cl: float, basis: str,
         out: Path = Path("forcefields")) -> tuple[Path, Path]:
    """Write the fixed terms and the model (see the module docstring); returns their paths.

    Parameters
    ----------
    model_path : Path
        Shipped model whose card names its fixed terms (``fixed_terms``).
    name : str
        Tag of the new files: ``polarff_nacl_gfn2_<name>_fixed_terms.xml`` and ``nacl_gfn2_<name>.pff``.
    sigma_na, sigma_cl : float
        New Lennard-Jones radii of Na⁺ and Cl⁻ (Å).
    basis : str
        One line on how the radii were measured (goes into the XML header and the card's ``variant``).
    out : Path
        Folder to write into.
    """
    from polarff.artifact import load_model
    from polarff.build import forcefield_path
    from polarff.fileio import write_text

    if "--" in basis:
        raise ValueError(f"basis {basis!r}: an XML comment cannot hold '--' (write the options without dashes)")
    model = load_model(model_path)
    base_xml = model.card.get("fixed_terms")
    if not base_xml:
        raise ValueError(f"{model_path}: the model card names no fixed_terms (expected a shipped model)")
    source = forcefield_path(base_xml)
    old = Path(source).read_text()
    xml_name = f"polarff_nacl_gfn2_{name}_fixed_terms"
    text = fixed_terms_with_sigmas({"Na": sigma_na, "Cl": sigma_cl}, source)
    body = text[text.index("<ForceField>"):].replace(f"<Source>polarff forcefields/{base_xml}.xml</Source>",
                                                       f"<Source>polarff forcefields/{xml_name}.xml</Source>")
    header = HEADER.format(name=name, base_model=Path(model_path).name, base_xml=base_xml,
                           na_old=round(fixed_terms_sigma(old, "Na"), 4), na=sigma_na,
                           cl_old=round(fixed_terms_sigma(old, "Cl"), 4), cl=sigma_cl,
                           basis=textwrap.fill(basis, 104, subsequent_indent="       "))
    xml = out / f"{xml_name}.xml"
    write_text(xml, header + body)
    model.card["fixed_terms"] = xml_name
    model.card["variant"] = (model.card.get("variant", "") + f"; ion radii set again for this model: sigma_Na "
                             f"{sigma_na:g} A, sigma_Cl {sigma_cl:g} A ({basis})").lstrip("; ")
    path = out / f"nacl_gfn2_{name}.pff"
    model.save(path)
    return xml, path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, required=True, help="shipped model (.pff) whose ion radii are set again")
    p.add_argument("--name", required=True, help="tag of the new files (e.g. water126_ionradii)")
    p.add_argument("--sigma-na", type=float, required=True, help="Na⁺ sigma (Å)")
    p.add_argument("--sigma-cl", type=float, required=True, help="Cl⁻ sigma (Å)")
    p.add_argument("--basis", required=True, help="how the radii were measured (for the header and the card)")
    p.add_argument("--out", type=Path, default=Path("forcefields"))
    args = p.parse_args(argv)
    for path in ship(args.model, args.name, args.sigma_na, args.sigma_cl, args.basis, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
