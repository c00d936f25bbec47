"""Table 8 of 2502.06309 (experiments/table8.py): configs at the paper's settings, budget, outputs, resume."""

import csv
import json

import pytest

from analogtrain.experiments import build_config, table8, validate


@pytest.mark.parametrize("method", ["Analog SGD", "TT/RL"])
@pytest.mark.parametrize("family", table8.FAMILIES)
def test_cell_config_validates_at_the_paper_settings(method, family):
    cfg = validate(table8.cell_config(method, family, 2.0, 0.7, seed=3))
    assert cfg["train"]["batch_size"] == 10 and cfg["train"]["seed"] == 3 and cfg["train"]["lr"] == 0.05
    assert cfg["task"] == {**cfg["task"], "name": "mnist_fcn", "dataset": "mnist_subset", "normalize": False}
    assert cfg["io"]["preset"] == "paper"  # Table 4
    assert cfg["mapping"]["learn_out_scaling"] is True and cfg["mapping"]["weight_scaling_columnwise"] is True
    assert cfg["engine"] == {**cfg["engine"], "name": "stochastic", "bit_length": 31}
    dev = cfg["device"]
    assert (dev["family"], dev["gamma"], dev["tau"], dev["dw_min"]) == (family, 2.0, 0.7, 1e-3)
    assert dev["cycle_noise"] == 0.3 and dev["cycle_noise_type"] == "multiplicative"
    config = build_config(cfg)
    lo, hi = config.device_for("W").bounds()
    assert (lo, hi) == (-0.7, 0.7)
    if method == "TT/RL":
        alg = cfg["algorithm"]
        assert alg["name"] == "TikiTaka" and alg["fast_lr"] == 0.01 and alg["scale_fast_lr"] is False
        assert alg["columns_per_transfer"] == 1 and alg["scale_transfer_lr"] is True
        assert cfg["transfer_io"] == {"noise_management": "none", "bound_management": "none"}
    else:
        assert "transfer_io" not in cfg


def test_digital_sgd_has_no_device():
    cfg = validate(table8.cell_config("Digital SGD", None, None, None))
    assert cfg["algorithm"]["name"] == "DigitalSGD" and cfg["train"]["lr"] == 0.1
    assert "device" not in table8.cell_config("Digital SGD", None, None, None)
    with pytest.raises(ValueError, match="family"):
        table8.cell_config("Analog SGD", "Linear", 1.0, 0.6)
    with pytest.raises(ValueError, match="unknown method"):
        table8.cell_config("RLv2", "Power", 1.0, 0.6)


def test_budget_and_paper_values():
    sub = table8.budget("mnist_subset")
    assert (sub["epochs"], sub["steps_per_epoch"], sub["steps"], sub["lr_step_epochs"]) == (450, None, 180_000, 225)
    fm = table8.budget("fashion_mnist")
    assert (fm["epochs"], fm["steps"], fm["lr_step_epochs"]) == (30, 180_000, 15)  # StepLR(15) of the script
    assert table8.paper_value("Analog SGD", "Power", 0.5, 0.6) == "96.01±0.26"
    assert table8.paper_value("Analog SGD", "Exponential", 0.5, 0.8) == "94.00±0.63"
    assert table8.paper_value("Analog SGD", "Power", 1.0, 0.7) == "<15"
    assert table8.paper_value("TT/RL", "Exponential", 2.0, 0.7) == "97.72±0.07"
    assert table8.paper_value("TT/RL", "Power", 1.0, 0.65) == ""
    assert table8.paper_value("Digital SGD") == "98.17±0.05"


def test_two_step_table_resume_and_rebuild(tmp_path):
    out = tmp_path / "t8"
    args = ["--out", str(out), "--steps", "2", "--families", "Power", "--gammas", "1", "--methods", "Analog SGD",
            "TT/RL", "Digital SGD", "--quiet"]
    assert table8.main(args) == 0
    cell = table8.cell_dir(out, "TT/RL", "Power", 1.0, 0.6, 0)
    assert cell.name == "TT-RL_Power_g1_tau0.6_seed0"
    summary = json.loads((cell / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 2

    (out / "table8.csv").unlink()
    (out / "table8.md").unlink()
    assert table8.main(["--out", str(out), "--table"]) == 0
    with open(out / "table8.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"Analog SGD", "TT/RL", "Digital SGD"}
    tt = rows["TT/RL"]
    assert tt["paper"] == "97.39±0.05" and int(tt["steps"]) == 2 and tt["status"] == "finished"
    assert int(tt["pulses_P"]) > 0 and int(rows["Analog SGD"]["pulses_W"]) > 0
    assert rows["Analog SGD"]["paper"] == "<15" and rows["Digital SGD"]["paper"] == "98.17±0.05"
    md = (out / "table8.md").read_text()
    assert "| Power | 1 | 0.6 |" in md and "/ 97.39±0.05" in md and "of the paper's 180,000" in md
    assert "Digital SGD:" in md
    assert (out / "table8.png").stat().st_size > 10_000  # learning curves and pulses on W

    # resume: finished cells are skipped; another budget into the same directory is refused
    mtime = (cell / "summary.json").stat().st_mtime_ns
    assert table8.main(args) == 0
    assert (cell / "summary.json").stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="another budget"):
        table8.main(["--out", str(out), "--steps", "3", "--families", "Power", "--gammas", "1", "--quiet"])
    # the grid grows: a new gamma is added to the recorded one
    assert table8.main(["--out", str(out), "--steps", "2", "--families", "Power", "--gammas", "2",
                        "--methods", "Analog SGD", "--quiet"]) == 0
    grid = json.loads((out / "table8.json").read_text())
    assert grid["gammas"] == [1.0, 2.0] and grid["methods"] == ["Analog SGD", "TT/RL", "Digital SGD"]


def test_include_keeps_the_cells_of_an_earlier_sitting(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--steps", "2", "--families", "Power", "--gammas", "1", "--quiet"]
    assert table8.main(["--out", str(first), "--methods", "TT/RL", "Digital SGD", *common]) == 0
    assert table8.main(["--out", str(second), "--methods", "Analog SGD", "--include", str(first / "table8.csv"),
                        *common]) == 0
    with open(second / "table8.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"Analog SGD", "TT/RL", "Digital SGD"}
    md = (second / "table8.md").read_text()
    assert "| Analog SGD measured / paper | TT/RL measured / paper |" in md
    (row,) = [line for line in md.splitlines() if line.startswith("| Power | 1 | 0.6 |")]
    assert "(not run)" not in row and "/ 97.39±0.05" in row
    assert "Digital SGD: (not run)" not in md and "Digital SGD: " in md
