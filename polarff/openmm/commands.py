"""``polarff export``: model + PDB topology → OpenMM System XML."""

from __future__ import annotations

from polarff.cli import Command, register


class Export(Command):
    name = "export"
    help = "write an OpenMM System XML (fixed terms + polarff force) for a PDB topology"

    @staticmethod
    def add_arguments(p):
        p.add_argument("model", help="trained model (.pff)")
        p.add_argument("--topology", required=True, help="PDB file (residues HOH, NA, CL, K, LI; box from CRYST1)")
        p.add_argument("-o", "--output", required=True, help="System XML to write")
        p.add_argument("--implementation", default="python", choices=["torch", "python"],
                       help="openmm.PythonForce (default: the XML loads with a plain XmlSerializer) or "
                            "openmm-torch TorchForce (GPU plugin; its XML does not load back with openmmtorch 1.5 "
                            "from PyPI, see docs/openmm.md)")
        p.add_argument("--cutoff", type=float, default=0.9, help="nonbonded cutoff (nm, default 0.9)")
        p.add_argument("--total-charge", type=float, help="net charge (e); default: formal ion charges")

    @staticmethod
    def run(args):
        from polarff.openmm.export import export_system

        summary = export_system(args.model, args.topology, args.output, args.implementation, args.cutoff,
                                args.total_charge)
        print(f"wrote {args.output}: {summary['atoms']} particles, forces {summary['forces']}")
        return 0


register(Export)
