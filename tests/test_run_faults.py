"""Faults of a run (issue 11): divergence stops with a message and a non-zero exit code,
strict JSON metrics, the last two checkpoints with a fallback, a lock per run directory."""

import json
import subprocess
import sys
import tomllib

import pytest

from analogtrain import cli
from analogtrain.experiments import run_experiment, runner
from analogtrain.experiments.tasks import Quadratic

QUAD = """
[task]
name = "quadratic"
dim = 8
w_star = 0.3
noise_std = 0.2
steps = 10

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


def strict_rows(path):
    """metrics.jsonl parsed by a strict JSON reader (NaN / Infinity tokens are an error)."""
    def refuse(token):
        raise ValueError(f"non-strict JSON token {token}")
    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


@pytest.fixture
def quad_file(tmp_path):
    path = tmp_path / "quad.toml"
    path.write_text(QUAD)
    return path


def test_divergence_exits_non_zero_naming_the_step_and_resume_continues(quad_file, tmp_path, monkeypatch, capsys):
    config = tomllib.loads(QUAD)
    straight = run_experiment(config, tmp_path / "straight", quiet=True)
    original = Quadratic.loss
    calls = {"n": 0}

    def poisoned(self, out, y):
        calls["n"] += 1
        loss = original(self, out, y)
        return loss * float("nan") if calls["n"] == 14 else loss  # step 14: epoch 2

    monkeypatch.setattr(Quadratic, "loss", poisoned)
    out = tmp_path / "run"
    code = cli.main(["run", str(quad_file), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 3
    assert "diverged" in err and "training loss is nan at step 14 (epoch 2)" in err
    assert [r["epoch"] for r in strict_rows(out / "metrics.jsonl")] == [0, 1]
    assert not (out / "summary.json").exists()
    monkeypatch.setattr(Quadratic, "loss", original)
    assert cli.main(["run", str(quad_file), "--out", str(out), "--quiet", "--resume"]) == 0
    assert json.loads((out / "summary.json").read_text())["metrics"] == straight["metrics"]


def test_non_finite_update_stops_the_run_naming_the_array(tmp_path, monkeypatch):
    from analogtrain.nn import layers

    original = layers._AnalogMVM.backward

    def nan_errors(ctx, grad_out):
        return original(ctx, grad_out * float("inf"))

    monkeypatch.setattr(layers._AnalogMVM, "backward", staticmethod(nan_errors))
    with pytest.raises(runner.RunDiverged, match=r"step 1 \(epoch 1\): array 'W'.*not finite"):
        run_experiment(tomllib.loads(QUAD), tmp_path / "run", quiet=True)


def test_metrics_are_strict_json_with_null_for_non_finite_values(tmp_path, monkeypatch):
    original = Quadratic.evaluate

    def with_inf(self, model):
        return {**original(self, model), "weight_error": float("inf")}

    monkeypatch.setattr(Quadratic, "evaluate", with_inf)
    run_experiment(tomllib.loads(QUAD), tmp_path / "run", quiet=True)
    rows = strict_rows(tmp_path / "run" / "metrics.jsonl")
    assert [r["weight_error"] for r in rows] == [None] * 4
    json.loads((tmp_path / "run" / "summary.json").read_text(), parse_constant=lambda t: pytest.fail(t))


def test_truncated_latest_checkpoint_falls_back_to_the_previous_one(quad_file, tmp_path, monkeypatch, capsys):
    config = tomllib.loads(QUAD)
    straight = run_experiment(config, tmp_path / "straight", quiet=True)
    calls = {"n": 0}
    original = Quadratic.evaluate

    def crashing(self, model):
        calls["n"] += 1
        if calls["n"] == 4:  # evaluation of epoch 3: after the checkpoints of epochs 1 and 2
            raise RuntimeError("power cut")
        return original(self, model)

    monkeypatch.setattr(Quadratic, "evaluate", crashing)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="power cut"):
        run_experiment(config, out, quiet=True)
    monkeypatch.setattr(Quadratic, "evaluate", original)
    latest, prev = out / "checkpoint.pt", out / "checkpoint.pt.prev"
    assert latest.exists() and prev.exists()
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 2])  # a crash while writing (without the atomic rename)
    assert cli.main(["run", str(quad_file), "--out", str(out), "--quiet", "--resume"]) == 0
    err = capsys.readouterr().err
    assert "checkpoint.pt is unreadable" in err and "checkpoint.pt.prev" in err
    assert json.loads((out / "summary.json").read_text())["metrics"] == straight["metrics"]
    assert [r["epoch"] for r in strict_rows(out / "metrics.jsonl")] == [0, 1, 2, 3]


def test_a_locked_run_directory_is_refused(quad_file, tmp_path, capsys):
    import fcntl

    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        with pytest.raises(runner.RunLocked, match="in use by another analogtrain process"):
            run_experiment(tomllib.loads(QUAD), out, quiet=True)
        assert cli.main(["run", str(quad_file), "--out", str(out), "--quiet"]) == 4
    assert "in use" in capsys.readouterr().err


def test_two_concurrent_sweeps_run_each_cell_once(quad_file, tmp_path):
    out = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "analogtrain.cli", "sweep", str(quad_file), "--grid", "train.lr=0.05,0.1",
           "--seeds", "0,1", "--set", "train.epochs=2", "--out", str(out), "--quiet"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err.decode()[-2000:]
    runs = sorted(out.glob("*/seed_*/metrics.jsonl"))
    assert len(runs) == 4
    for path in runs:
        assert [r["epoch"] for r in strict_rows(path)] == [0, 1, 2], path  # no epoch twice
