"""TensorBoard event files of a run (train.tensorboard / --tensorboard) equal its metrics.jsonl."""

import importlib.util
import json
import sys
import tomllib

import pytest

from analogtrain import cli
from analogtrain.experiments import apply_overrides, read_metrics, resolve, run_experiment
from analogtrain.experiments.config import TRAIN_DEFAULTS

needs_tensorboard = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                       reason="tensorboard is not installed (pip install -e \".[tensorboard]\")")

CONFIG = """
[task]
name = "quadratic"
dim = 8
w_star = 0.3
noise_std = 0.2
steps = 10

[algorithm]
name = "TikiTaka"

[device]
preset = "offset_softbounds"

[engine]
name = "stochastic"
bit_length = 15

[train]
epochs = 3
lr = 0.1
threads = 1
"""


def events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


def without_wall_time(rows) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in rows]


def scalar_series(acc, tag) -> dict[int, float]:
    return {e.step: e.value for e in acc.Scalars(tag)}


def test_default_is_off_and_the_key_is_validated(tmp_path):
    assert TRAIN_DEFAULTS["tensorboard"] is False
    config = tomllib.loads(CONFIG)
    for bad in (1, "yes", None):
        with pytest.raises(ValueError, match="train.tensorboard must be true or false"):
            resolve(apply_overrides(config, {"train.tensorboard": bad}))
    run_experiment(apply_overrides(config, {"train.epochs": 1}), tmp_path / "plain", quiet=True)
    assert not (tmp_path / "plain" / "tensorboard").exists()


def test_without_tensorboard_installed_the_run_refuses_before_writing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard -> ImportError
    config = apply_overrides(tomllib.loads(CONFIG), {"train.tensorboard": True})
    with pytest.raises(ValueError, match=r"train.tensorboard = true needs the tensorboard package: "
                                         r"pip install tensorboard"):
        run_experiment(config, tmp_path / "run", quiet=True)
    assert not (tmp_path / "run" / "metrics.jsonl").exists() and not (tmp_path / "run" / "config.toml").exists()
    path = tmp_path / "quad.toml"
    path.write_text(CONFIG)
    assert cli.main(["sweep", str(path), "--tensorboard", "--out", str(tmp_path / "sweep"), "--quiet"]) == 2
    assert not (tmp_path / "sweep").exists()  # refused before any run


@needs_tensorboard
def test_scalars_equal_the_metrics_and_histograms_exist(tmp_path):
    path = tmp_path / "quad.toml"
    path.write_text(CONFIG)
    out = tmp_path / "run"
    assert cli.main(["run", str(path), "--out", str(out), "--tensorboard", "--quiet"]) == 0
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    rows = read_metrics(out)
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3]
    # a view only: the same run without tensorboard gives the same metrics
    assert cli.main(["run", str(path), "--out", str(tmp_path / "plain"), "--quiet"]) == 0
    assert without_wall_time(read_metrics(tmp_path / "plain")) == without_wall_time(rows)
    acc = events(out)
    tags = acc.Tags()
    for key in ("train_loss", "loss", "weight_error", "lr", "total_pulses", "wall_time"):
        expected = {r["epoch"]: r[key] for r in rows if r.get(key) is not None}
        assert expected, key
        got = scalar_series(acc, key)
        assert got.keys() == expected.keys(), key
        for epoch, value in expected.items():
            assert got[epoch] == pytest.approx(value, rel=1e-6, abs=1e-30), (key, epoch)
    assert "epoch" not in tags["scalars"] and "step" not in tags["scalars"]
    # pulses per array, cumulative; TikiTaka has arrays A and C (or W/P) and transfers
    pulse_tags = [t for t in tags["scalars"] if t.startswith("pulses/")]
    assert pulse_tags
    for tag in pulse_tags:
        _, layer, array = tag.split("/")
        series = scalar_series(acc, tag)
        assert series == pytest.approx({r["epoch"]: r["pulses"][layer][array] for r in rows}, rel=1e-6)
    assert sum(scalar_series(acc, t)[3] for t in pulse_tags) == pytest.approx(rows[-1]["total_pulses"], rel=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    transfers = summary["layers"]["w"]["transfers"]
    assert transfers and all(count > 0 for count in transfers.values())
    for key, count in transfers.items():
        assert scalar_series(acc, f"transfers/w/{key}")[3] == count
    # a histogram of the effective weight and of every array's state per evaluation
    assert "weights/w" in tags["histograms"]
    assert [h.step for h in acc.Histograms("weights/w")] == [0, 1, 2, 3]
    hist = acc.Histograms("weights/w")[-1].histogram_value
    assert hist.num == 8  # dim = 8 weights
    for array in rows[-1]["pulses"]["w"]:
        assert f"arrays/w/{array}" in tags["histograms"]


@needs_tensorboard
def test_resume_continues_the_event_stream_without_duplicates(tmp_path):
    config = apply_overrides(tomllib.loads(CONFIG), {"train.tensorboard": True})
    straight = tmp_path / "straight"
    run_experiment(config, straight, quiet=True)
    expected = scalar_series(events(straight), "loss")
    assert sorted(expected) == [0, 1, 2, 3]
    # a run of 1 epoch extended to 3: a second event file continues at epoch 2
    out = tmp_path / "resumed"
    run_experiment(apply_overrides(config, {"train.epochs": 1}), out, quiet=True)
    run_experiment(config, out, quiet=True, resume=True)
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 2
    acc = events(out)
    assert [e.step for e in acc.Scalars("loss")] == [0, 1, 2, 3]
    assert scalar_series(acc, "loss") == pytest.approx(expected, rel=1e-12)  # as the uninterrupted run
    # tensorboard may be turned on at a resume: the events start at the first epoch it records
    late = tmp_path / "late"
    run_experiment(apply_overrides(config, {"train.epochs": 1, "train.tensorboard": False}), late, quiet=True)
    assert not (late / "tensorboard").exists()
    run_experiment(config, late, quiet=True, resume=True)
    assert scalar_series(events(late), "loss") == pytest.approx({e: expected[e] for e in (2, 3)}, rel=1e-12)


@needs_tensorboard
def test_resume_after_a_kill_past_the_checkpoint_purges_the_extra_events(tmp_path):
    config = apply_overrides(tomllib.loads(CONFIG), {"train.tensorboard": True})
    out = tmp_path / "run"
    run_experiment(apply_overrides(config, {"train.epochs": 2}), out, quiet=True)
    # as if killed after epoch 2's events were written but before its checkpoint: roll back to epoch 1
    (out / "checkpoint.pt").unlink()
    (out / "checkpoint.pt.prev").rename(out / "checkpoint.pt")
    (out / "summary.json").unlink()
    run_experiment(config, out, quiet=True, resume=True)
    acc = events(out)
    rows = read_metrics(out)
    steps = [e.step for e in acc.Scalars("loss")]
    assert steps == [0, 1, 2, 3]  # epoch 2 of the first writer was purged, not duplicated
    assert scalar_series(acc, "loss") == pytest.approx({r["epoch"]: r["loss"] for r in rows}, rel=1e-6)
    assert [h.step for h in acc.Histograms("weights/w")] == [0, 1, 2, 3]
