"""Config format, the `analogtrain` command (run, resume, sweep, report, devices, demo) and its registry."""

import csv
import itertools
import json
import sys
import tomllib
import types

import pytest
import torch

import analogtrain as at
from analogtrain import cli
from analogtrain.experiments import apply_overrides, build_config, dumps_toml, resolve, run_experiment
from analogtrain.experiments.config import parse_list, parse_value
from analogtrain.experiments.tasks import Quadratic

QUAD = """
[task]
name = "quadratic"
dim = 8
w_star = 0.3
noise_std = 0.2
steps = 15

[algorithm]
name = "AnalogSGD"

[device]
preset = "offset_softbounds"

[engine]
name = "stochastic"
bit_length = 15

[train]
epochs = 3
lr = 0.1
seed = 0
threads = 1
"""


@pytest.fixture
def quad_file(tmp_path):
    path = tmp_path / "quad.toml"
    path.write_text(QUAD)
    return path


# ----------------------------------------------------------------------------- config parsing


def test_parse_values_and_overrides():
    assert parse_value("0.05") == 0.05 and parse_value("true") is True and parse_value("[1, 2]") == [1, 2]
    assert parse_value("ERIDER") == "ERIDER" and parse_value('"x y"') == "x y"
    assert parse_value("{mean = 0.2, std = 0.1}") == {"mean": 0.2, "std": 0.1}
    assert parse_list("0,0.1,0.3") == [0, 0.1, 0.3]
    assert parse_list("AnalogSGD,TikiTaka") == ["AnalogSGD", "TikiTaka"]
    base = {"train": {"lr": 0.1}}
    new = apply_overrides(base, ["train.lr=0.05", "algorithm.name=ERIDER", "algorithm.then.gamma=0.3"])
    assert new == {"train": {"lr": 0.05}, "algorithm": {"name": "ERIDER", "then": {"gamma": 0.3}}}
    assert base == {"train": {"lr": 0.1}}  # not modified
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides(base, ["train.lr"])
    with pytest.raises(ValueError, match="is a value, not a table"):
        apply_overrides(base, ["train.lr.x=1"])


def test_build_config_algorithms_devices_io_engine():
    cfg = build_config({"algorithm": {"name": "ResidualLearning", "gamma": 0.3},
                        "device": {"family": "SoftBounds", "tau": 3.5, "asymmetry": 0.1, "dw_min": 1e-4},
                        "io": {"preset": "paper"}, "engine": {"name": "stochastic", "bit_length": 8}})
    assert isinstance(cfg, at.AnalogConfig)
    assert isinstance(cfg.algorithm, at.algorithms.ResidualLearning) and cfg.algorithm.gamma == 0.3
    assert float(cfg.device.symmetric_point()) == pytest.approx(0.35)
    assert cfg.io == at.IO.paper() and cfg.make_engine().bit_length == 8
    per_array = build_config({"algorithm": {"name": "TikiTaka"},
                              "device": {"W": {"preset": "softbounds_2000"},
                                         "P": {"family": "SoftBounds", "tau": 1.0, "asymmetry": 0.3}},
                              "io": {"out_noise": 0.0, "inp_bits": 8}})
    assert set(per_array.device) == {"W", "P"}
    assert float(per_array.device_for("P").symmetric_point()) == pytest.approx(0.3)
    assert per_array.io.inp_bits == 8 and per_array.io.out_noise == 0.0
    assert build_config({}).io == at.IO.perfect()


def test_nested_algorithms_and_objects():
    off = build_config({"algorithm": {"name": "TikiTaka",
                                      "p_reference": {"type": "ReferenceOffset", "mean": 0.2, "std": 0.1}}})
    assert off.algorithm.p_reference == at.ReferenceOffset(mean=0.2, std=0.1)
    if not hasattr(at.algorithms, "TwoStage"):
        pytest.skip("TwoStage not in this checkout")
    two = build_config({"algorithm": {"name": "TwoStage", "then": {"name": "ResidualLearning", "gamma": 0.4}}})
    assert isinstance(two.algorithm.then, at.algorithms.ResidualLearning) and two.algorithm.then.gamma == 0.4


@pytest.mark.parametrize("config, message", [
    ({"algorithm": {"name": "Adam"}}, "algorithm.name: unknown algorithm 'Adam'"),
    ({"algorithm": {"name": "AnalogSGD", "gama": 1}}, "algorithm: AnalogSGD has no keyword"),
    ({"algorithm": {"name": "ResidualLearning", "gamma": -1.0}}, "algorithm: ResidualLearning.gamma must lie in"),
    ({"device": {"preset": "unobtainium"}}, "device.preset: unknown preset"),
    ({"device": {"preset": "hfo2_rram", "tau": 1}}, "device: preset 'hfo2_rram' takes no other keys"),
    ({"device": {"family": "Quantum"}}, "device.family: unknown device family"),
    ({"device": {"family": "SoftBounds", "tau": -1.0}}, "device: tau"),
    ({"device": {"W": 3}}, "device.W: expected a table"),
    ({"io": {"out_bits": 1}}, "io: IO.out_bits"),
    ({"io": {"perfect": True, "out_noise": 0.1}}, "io: perfect = true takes no other keys"),
    ({"engine": {"name": "quantum"}}, "engine.name must be one of"),
    ({"engine": {"name": "stochastic", "bit_length": 0}}, "engine"),
    ({"algorithm": {"name": "TikiTaka", "p_reference": {"type": "Nope"}}}, "algorithm.p_reference.type"),
])
def test_build_config_errors_name_the_key(config, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        build_config(config)


@pytest.mark.parametrize("config, message", [
    ({"train": {"lr": 0.1}}, "task.name is required"),
    ({"task": {"name": "quadratic"}, "trian": {}}, "unknown config section"),
    ({"task": {"name": "quadratic"}, "train": {"lr": -1}}, "train.lr must be a number in (0, inf)"),
    ({"task": {"name": "quadratic"}, "train": {"epochs": 1.5}}, "train.epochs must be an integer >= 0"),
    ({"task": {"name": "quadratic"}, "train": {"batchsize": 3}}, "unknown train key"),
    ({"task": {"name": "quadratic"}, "train": {"device": "tpu"}}, "train.device must be"),
    ({"task": {"name": "quadratic"}, "train": {"layers": "some"}}, "train.layers must be"),
    ({"task": {"name": "quadratic"}, "train": {"dtype": "float16"}}, "train.dtype must be one of"),
])
def test_resolve_errors_name_the_key(config, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve(config)


def test_reference_section_and_cuda_error(tmp_path):
    cfg = {"task": {"name": "quadratic", "dim": 4, "steps": 1, "init": 0.2}, "device": {"preset": "offset_softbounds"},
           "reference": {"W": "symmetric_point"}, "train": {"epochs": 0, "threads": 1}}
    summary = run_experiment(cfg, tmp_path / "ref", quiet=True)
    assert summary["metrics"]["weight_mean"] == pytest.approx(0.2, abs=1e-6)  # read value kept
    bad = dict(cfg, reference={"P": 0.1})
    with pytest.raises(ValueError, match=r"reference: no analog array named \['P'\]"):
        run_experiment(bad, tmp_path / "bad", quiet=True)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            run_experiment(dict(cfg, train={"device": "cuda"}), tmp_path / "cuda", quiet=True)


def test_dumps_toml_round_trip():
    cfg = {"task": {"name": "quadratic", "w_star": [0.1, 0.2]}, "algorithm": {"name": "TwoStage", "then":
           {"name": "ResidualLearning", "gamma": 0.4}}, "reference": {"P": {"mean": 0.2, "std": 0.1}},
           "train": {"lr": 1e-3, "layers": ["fc1", "fc3"], "seed": 0, "quiet": True, "note": 'a "b"'}}
    assert tomllib.loads(dumps_toml(cfg)) == cfg


# ----------------------------------------------------------------------------- run


def test_run_writes_all_files(quad_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["run", str(quad_file), "--out", str(out), "--set", "train.lr=0.05", "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    written = tomllib.loads((out / "config.toml").read_text())
    assert written["train"]["lr"] == 0.05 and written["train"]["momentum"] == 0.0  # override + defaults
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3] and [r["step"] for r in rows] == [0, 15, 30, 45]
    assert rows[0]["train_loss"] is None and all(r["train_loss"] > 0 for r in rows[1:])
    totals = [r["pulses"]["w"]["W"] for r in rows]
    assert totals[0] == 0 and all(b > a for a, b in itertools.pairwise(totals))
    assert all(r["total_pulses"] == r["pulses"]["w"]["W"] for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 45
    assert summary["metrics"]["loss"] == rows[-1]["loss"] == printed["loss"]
    counts = summary["pulses"]["w"]["W"]
    assert counts["up"] + counts["down"] == counts["total"] == totals[-1] and counts["up"] > 0 and counts["down"] > 0
    assert summary["layers"]["w"]["counters"]["steps"] == 45
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "checkpoint.pt").exists()
    # the resolved config runs again as is and gives the same numbers (same seed)
    again = run_experiment(tomllib.loads((out / "config.toml").read_text()), tmp_path / "again", quiet=True)
    assert again["metrics"] == summary["metrics"]


def test_run_refuses_to_overwrite_and_reports_errors(quad_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["run", str(quad_file), "--out", str(out), "--quiet"]) == 0
    assert cli.main(["run", str(quad_file), "--out", str(out), "--quiet"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert cli.main(["run", str(quad_file), "--out", str(out), "--quiet", "--overwrite"]) == 0
    assert cli.main(["run", str(quad_file), "--out", str(tmp_path / "x"), "--set", "train.lr=-1"]) == 2
    assert "train.lr must be a number in (0, inf)" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[task\nname = 1")
    assert cli.main(["run", str(bad), "--out", str(tmp_path / "y")]) == 2
    assert "invalid TOML" in capsys.readouterr().err


def test_resume_after_a_crash_continues_bit_for_bit(quad_file, tmp_path, monkeypatch):
    config = tomllib.loads(QUAD)
    reference = run_experiment(config, tmp_path / "straight", quiet=True)
    straight_rows = [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]

    calls = {"n": 0}
    original = Quadratic.evaluate

    def crashing(self, model):
        calls["n"] += 1
        if calls["n"] == 3:  # evaluation of epoch 2: after the checkpoint of epoch 1
            raise RuntimeError("power cut")
        return original(self, model)

    monkeypatch.setattr(Quadratic, "evaluate", crashing)
    with pytest.raises(RuntimeError, match="power cut"):
        run_experiment(config, tmp_path / "crash", quiet=True)
    monkeypatch.setattr(Quadratic, "evaluate", original)
    partial = [json.loads(x) for x in (tmp_path / "crash" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in partial] == [0, 1] and not (tmp_path / "crash" / "summary.json").exists()

    assert cli.main(["run", str(quad_file), "--out", str(tmp_path / "crash"), "--resume", "--quiet"]) == 0
    resumed = json.loads((tmp_path / "crash" / "summary.json").read_text())
    rows = [json.loads(x) for x in (tmp_path / "crash" / "metrics.jsonl").read_text().splitlines()]
    strip = lambda rs: [{k: v for k, v in r.items() if k != "wall_time"} for r in rs]
    assert strip(rows) == strip(straight_rows)
    assert resumed["metrics"] == reference["metrics"] and resumed["pulses"] == reference["pulses"]

    # a finished run is returned as is; extending epochs continues from the last checkpoint
    assert run_experiment(config, tmp_path / "crash", quiet=True, resume=True)["metrics"] == reference["metrics"]
    longer = apply_overrides(config, {"train.epochs": 4})
    extended = run_experiment(longer, tmp_path / "crash", quiet=True, resume=True)
    assert extended["metrics"] == run_experiment(longer, tmp_path / "four", quiet=True)["metrics"]
    with pytest.raises(ValueError, match="config.toml differs"):
        run_experiment(apply_overrides(config, {"train.lr": 0.2}), tmp_path / "crash", quiet=True, resume=True)


# ----------------------------------------------------------------------------- sweep and report


def test_sweep_writes_table_and_resumes(quad_file, tmp_path, monkeypatch, capsys):
    out = tmp_path / "sweep"
    args = ["sweep", str(quad_file), "--grid", "train.lr=0.05,0.1", "--grid",
            "device.preset=offset_softbounds,paper_linear", "--seeds", "0,1", "--set", "train.epochs=1",
            "--out", str(out), "--quiet"]
    assert cli.main(args) == 0
    with open(out / "table.csv") as f:
        table = list(csv.DictReader(f))
    assert [(r["train.lr"], r["device.preset"]) for r in table] == [
        ("0.05", "offset_softbounds"), ("0.05", "paper_linear"), ("0.1", "offset_softbounds"), ("0.1", "paper_linear")]
    assert all(r["n_seeds"] == "2" and r["n_failed"] == "0" for r in table)
    cell = out / "train.lr=0.1__device.preset=paper_linear"
    losses = [json.loads((cell / f"seed_{s}" / "summary.json").read_text())["metrics"]["loss"] for s in (0, 1)]
    assert float(table[3]["loss_mean"]) == pytest.approx(sum(losses) / 2, rel=1e-12)
    assert float(table[3]["loss_std"]) == pytest.approx(abs(losses[0] - losses[1]) / 2**0.5, rel=1e-9)
    assert losses[0] != losses[1]  # seeds differ
    md = (out / "table.md").read_text()
    assert md.startswith("| train.lr | device.preset | seeds | loss |") and md.count("\n") == 6
    assert (out / "curves.png").exists()

    # rerunning skips finished runs
    from analogtrain.experiments import sweep as sweep_module

    def fail(*a, **k):
        raise AssertionError("a finished run was run again")

    monkeypatch.setattr(sweep_module, "run_experiment", fail)
    assert cli.main(args) == 0

    # report re-renders the table from the runs
    (out / "table.csv").unlink()
    capsys.readouterr()
    assert cli.main(["report", str(out)]) == 0
    assert "paper_linear" in capsys.readouterr().out
    with open(out / "table.csv") as f:
        assert list(csv.DictReader(f)) == table


def test_sweep_records_failed_runs(quad_file, tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    code = cli.main(["sweep", str(quad_file), "--grid", "algorithm.gamma=0.1", "--seeds", "0", "--out", str(out),
                     "--quiet"])
    assert code == 2 and not out.exists()  # checked before any run: AnalogSGD has no gamma
    from analogtrain.experiments import sweep as sweep_module

    def flaky(config, out_dir, **kwargs):
        if config["task"]["w_star"] == 0.2:
            raise RuntimeError("out of memory")
        return run_experiment(config, out_dir, **kwargs)

    monkeypatch.setattr(sweep_module, "run_experiment", flaky)
    code = cli.main(["sweep", str(quad_file), "--grid", "task.w_star=0.3,0.2", "--seeds", "0,1", "--out", str(out),
                     "--quiet", "--set", "train.epochs=1"])
    assert code == 1  # the sweep goes on past a failed run and says so
    with open(out / "table.csv") as f:
        table = list(csv.DictReader(f))
    assert [(r["n_seeds"], r["n_failed"]) for r in table] == [("2", "0"), ("0", "2")]
    assert "out of memory" in (out / "task.w_star=0.2" / "seed_1" / "error.txt").read_text()
    assert "0 (2 failed)" in (out / "table.md").read_text()


def test_report_on_a_run_directory(quad_file, tmp_path, capsys):
    out = tmp_path / "run"
    cli.main(["run", str(quad_file), "--out", str(out), "--quiet"])
    (out / "plot.png").unlink()
    capsys.readouterr()
    assert cli.main(["report", str(out)]) == 0
    assert (out / "plot.png").exists() and '"status": "finished"' in capsys.readouterr().out
    assert cli.main(["report", str(tmp_path / "empty")]) == 2


# ----------------------------------------------------------------------------- devices, demo, registry


def test_devices_command_prints_presets_and_plots(tmp_path, capsys):
    png = tmp_path / "d" / "devices.png"
    assert cli.main(["devices", "--preset", "offset_softbounds", "--preset", "paper_linear", "--out", str(png)]) == 0
    text = capsys.readouterr().out
    line = next(x for x in text.splitlines() if x.startswith("offset_softbounds"))
    assert "0.12" in line and "1200" in line  # SP = 0.2 * 0.6, (0.6 - -0.6) / 1e-3 states
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert cli.main(["devices", "--preset", "nope", "--out", str(png)]) == 2


def test_demo_rows_and_outputs(tmp_path, capsys):
    from analogtrain.experiments import demo

    rows = [demo.DemoRow("Digital SGD", {"algorithm": {"name": "DigitalSGD"}, "train": {"lr": 0.5}}),
            demo.DemoRow("Analog SGD", {"algorithm": {"name": "AnalogSGD"}, "train": {"lr": 0.1}}),
            demo.DemoRow("Missing", {"algorithm": {"name": "NotAnAlgorithm"}})]
    assert [r.label for r in demo.available_rows(rows)] == ["Digital SGD", "Analog SGD"]
    assert {r.algorithm for r in demo.ROWS} >= {"DigitalSGD", "AnalogSGD"}
    results = demo.run_demo(tmp_path / "demo", epochs=1, train_samples=300, rows=rows, quiet=True,
                            overrides=["task.test_samples=200"])
    assert [r["label"] for r in results] == ["Digital SGD", "Analog SGD"]
    assert results[0]["total_pulses"] == 0 and results[1]["total_pulses"] > 0
    assert (tmp_path / "demo" / "accuracy.png").exists()
    md = (tmp_path / "demo" / "results.md").read_text()
    assert "| Analog SGD |" in md and json.loads((tmp_path / "demo" / "results.json").read_text()) == results


def test_subcommand_registry_plugs_in_modules(monkeypatch, capsys):
    for path in cli.SUBCOMMANDS:
        module = __import__(path, fromlist=["main"])
        assert callable(module.add_arguments) and callable(module.main)
    plug = types.ModuleType("analogtrain_test_plugin")
    plug.__doc__ = "Say hello."
    plug.add_arguments = lambda p: p.add_argument("--who", default="world")
    plug.main = lambda args: print(f"hello {args.who}") or 7
    monkeypatch.setitem(sys.modules, "analogtrain_test_plugin", plug)
    monkeypatch.setattr(cli, "SUBCOMMANDS", cli.SUBCOMMANDS + ["analogtrain_test_plugin"])
    assert cli.main(["analogtrain-test-plugin", "--who", "lead"]) == 7
    assert "hello lead" in capsys.readouterr().out
    assert cli.main([]) == 2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_run_and_resume_on_cuda(quad_file, tmp_path):
    config = apply_overrides(tomllib.loads(QUAD), {"train.device": "cuda", "train.epochs": 2})
    straight = run_experiment(config, tmp_path / "straight", quiet=True)
    assert straight["device"].startswith("cuda") and straight["total_pulses"] > 0
    first = run_experiment(apply_overrides(config, {"train.epochs": 1}), tmp_path / "two", quiet=True)
    assert first["steps"] == 15
    resumed = run_experiment(config, tmp_path / "two", quiet=True, resume=True)
    assert resumed["metrics"] == straight["metrics"]
    mnist = {"task": {"name": "mnist_fcn", "train_samples": 500, "test_samples": 200},
             "algorithm": {"name": "AnalogSGD"}, "engine": {"name": "stochastic"}, "io": {"preset": "paper"},
             "train": {"device": "cuda", "epochs": 1, "lr": 0.1}}
    summary = run_experiment(mnist, tmp_path / "mnist", quiet=True)
    assert summary["device"].startswith("cuda") and summary["pulses"]["fc1"]["W"]["total"] > 0


@pytest.mark.slow
def test_full_demo_ranks_the_algorithms(tmp_path):
    # measured (seed 0, 10 epochs): DSGD 93.5 %, ASGD 84.7 %, TT-v1 62.7 %, RL 86.3 %, E-RIDER 90.0 %
    from analogtrain.experiments import demo

    results = {r["label"]: r for r in demo.run_demo(tmp_path / "demo", quiet=True)}
    assert results["Digital SGD"]["test_accuracy"] > 0.90
    assert results["Analog SGD"]["test_accuracy"] < results["Digital SGD"]["test_accuracy"] - 0.03
    if "E-RIDER" in results:
        assert results["E-RIDER"]["test_accuracy"] > results["Analog SGD"]["test_accuracy"]


def _algorithm_names():
    from analogtrain.experiments.config import algorithm_names

    return algorithm_names()


@pytest.mark.parametrize("name", _algorithm_names())
def test_every_algorithm_runs_and_resumes_through_the_run_loop(name, tmp_path):
    # a 2-epoch run equals a 1-epoch run resumed for a second epoch, for every algorithm class
    config = apply_overrides(tomllib.loads(QUAD), {"algorithm": {"name": name}, "train.epochs": 2,
                                                   "io": {"preset": "paper"}})
    straight = run_experiment(config, tmp_path / "straight", quiet=True)
    run_experiment(apply_overrides(config, {"train.epochs": 1}), tmp_path / "resumed", quiet=True)
    resumed = run_experiment(config, tmp_path / "resumed", quiet=True, resume=True)
    assert resumed["metrics"] == straight["metrics"] and resumed["pulses"] == straight["pulses"]
    assert resumed["algorithm"] == name and resumed["steps"] == 30
    assert (straight["total_pulses"] > 0) == (name != "DigitalSGD")


def _config_files():
    from pathlib import Path

    return sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", _config_files(), ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    from analogtrain.experiments import load_config, validate

    cfg = validate(load_config(path))
    assert cfg["task"]["name"] and cfg["train"]["epochs"] >= 0
