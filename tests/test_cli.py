"""The command line: help for every subcommand, fit/eval/info round trip, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from polarff.cli import build_parser, main
from polarff.io import write_frames


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    names = [a for a in parser._subparsers._group_actions[0].choices]
    assert {"build", "label", "fit", "eval", "info"} <= set(names)
    for name in names:
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0
        out = capsys.readouterr().out
        assert "usage: polarff" in out and len(out.splitlines()) > 3


def test_bad_file_gives_one_line_error(tmp_path):
    bad = tmp_path / "bad.xyz"
    bad.write_text("3\nnot a comment line\nO 0 0\n")
    proc = subprocess.run([sys.executable, "-m", "polarff.cli", "eval", str(tmp_path / "missing.pff"), str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("polarff")]
    assert len(lines) == 1 and lines[0].startswith(f"polarff: error: {bad}: cannot parse file")
    assert "Traceback" not in proc.stderr
    data = tmp_path / "ok.xyz"
    write_frames(data, [__import__("conftest").water_box(n_side=2)])
    proc = subprocess.run([sys.executable, "-m", "polarff.cli", "eval", str(tmp_path / "missing.pff"), str(data)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"polarff: error: {tmp_path / 'missing.pff'}: model file not found"


def test_fit_eval_info_round_trip(tmp_path, labelled_boxes, capsys):
    data = tmp_path / "data.xyz"
    write_frames(data, labelled_boxes[:10])
    cfg = tmp_path / "fit.yaml"
    cfg.write_text("hidden: [16]\nn_bins: 6\ncutoff: 4.0\nn_radial: 3\nn_angular: 2\neval_every: 2\n")
    model = tmp_path / "m.pff"
    assert main(["fit", str(data), "-o", str(model), "--config", str(cfg), "--epochs", "2", "--seed", "5"]) == 0
    assert main(["info", str(model)]) == 0
    out = capsys.readouterr().out
    assert "species:        H, O, Na, Cl" in out and "seed:           5" in out and "Thole" not in out
    from polarff.artifact import load_model

    damped = load_model(model)
    damped.thole = {"a": {"Cl": 0.12}, "basis": "test fit"}
    damped.save(tmp_path / "damped.pff")
    assert main(["info", str(tmp_path / "damped.pff")]) == 0
    out = capsys.readouterr().out
    assert "Thole a:        Cl 0.12 (other species 0.39" in out
    assert "MD-set parts" not in out  # a fitted network alone does not depend on the polarising field
    damped.card["fixed_terms"] = "polarff_nacl_gfn2_water113_fixed_terms"
    damped.save(tmp_path / "damped.pff")
    assert main(["info", str(tmp_path / "damped.pff")]) == 0
    assert "polarising field switched off at the cutoff (before 2026-11-22" in capsys.readouterr().out
    damped.card["induction_field"] = "full"
    damped.save(tmp_path / "damped.pff")
    assert main(["info", str(tmp_path / "damped.pff")]) == 0
    assert "MD-set parts:   with the polarising field summed in full (Ewald)" in capsys.readouterr().out
    preds = tmp_path / "pred.xyz"
    assert main(["eval", str(model), str(data), "--split", "test", "-o", str(preds)]) == 0
    out = capsys.readouterr().out
    assert "charge: MAE" in out and "charge conservation" in out
    from polarff.io import read_frames
    import ase.io
    atoms = ase.io.read(preds, index=0)
    assert "PRED_charges" in atoms.arrays and len(read_frames(preds)) == 1


def test_unknown_config_key_is_a_clear_error(tmp_path, capsys):
    cfg = tmp_path / "fit.yaml"
    cfg.write_text("epocks: 3\n")
    assert main(["fit", "-o", str(tmp_path / "m.pff"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "unknown option(s) ['epocks']" in err


def test_fit_with_charge_calibration_records_it_and_eval_scores_against_scaled_labels(tmp_path, labelled_boxes,
                                                                                      capsys):
    from polarff.artifact import read_card
    from polarff.esp import ChargeCalibration

    data = tmp_path / "data.xyz"
    write_frames(data, labelled_boxes[:10])
    calib = tmp_path / "calib.json"
    ChargeCalibration("test ESP", [], {"H": 1.25, "O": 1.25, "Na": 1.1, "Cl": 0.9}).save(calib)
    cfg = tmp_path / "fit.yaml"
    cfg.write_text("hidden: [16]\nn_bins: 6\ncutoff: 4.0\nn_radial: 3\nn_angular: 2\neval_every: 2\n")
    model = tmp_path / "m.pff"
    assert main(["fit", str(data), "-o", str(model), "--config", str(cfg), "--epochs", "2", "--seed", "5",
                 "--charge-calibration", str(calib)]) == 0
    card = read_card(model)
    assert card["label_scaling"]["charge_scale"] == {"factors": "Cl:0.9 H:1.25 Na:1.1 O:1.25", "source": "test ESP"}
    capsys.readouterr()
    assert main(["info", str(model)]) == 0
    assert "charge_scale:   Cl:0.9 H:1.25 Na:1.1 O:1.25  (test ESP)" in capsys.readouterr().out
    assert main(["eval", str(model), str(data), "--split", "test"]) == 0
    assert "charge labels scaled as in training: Cl:0.9 H:1.25" in capsys.readouterr().out
