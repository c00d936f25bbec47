"""Sweeps with the Ray executor (a local Ray instance of 2 CPUs): same runs and table as the local one."""

import csv
import importlib.util
import json
import math
import sys
import tomllib

import pytest

from analogtrain import cli
from analogtrain.experiments import read_metrics, run_sweep
from analogtrain.experiments.executors import run_jobs
from analogtrain.experiments.sweep import grid_cells, run_dir

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="ray is not installed (pip install -e \".[cluster]\")")

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
epochs = 2
lr = 0.1
threads = 1
"""

GRID = ["--grid", "train.lr=0.05,0.1", "--grid", "device.preset=offset_softbounds,paper_linear"]
CELLS = grid_cells({"train.lr": [0.05, 0.1], "device.preset": ["offset_softbounds", "paper_linear"]})
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def quad_file(tmp_path):
    path = tmp_path / "quad.toml"
    path.write_text(QUAD)
    return path


def table_without_wall_time(out) -> list[dict]:
    with open(out / "table.csv") as f:
        return [{k: v for k, v in row.items() if not k.startswith("wall_time")} for row in csv.DictReader(f)]


def metrics_without_wall_time(rdir) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "wall_time"} for row in read_metrics(rdir)]


def sweep(quad_file, out, *extra) -> int:
    return cli.main(["sweep", str(quad_file), *GRID, "--seeds", "0,1", "--out", str(out), "--quiet", *extra])


@needs_ray
def test_ray_sweep_gives_the_local_table_and_skips_finished_runs(local_ray, quad_file, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert sweep(quad_file, local) == 0
    assert sweep(quad_file, remote, "--executor", "ray") == 0
    table = table_without_wall_time(local)
    assert len(table) == 4 and all(r["n_seeds"] == "2" and r["n_failed"] == "0" for r in table)
    assert table_without_wall_time(remote) == table
    assert (remote / "table.md").exists() and (remote / "curves.png").exists()
    for cell in CELLS:
        for seed in SEEDS:
            rows = metrics_without_wall_time(run_dir(remote, cell, seed))
            assert [r["epoch"] for r in rows] == [0, 1, 2]
            assert rows == metrics_without_wall_time(run_dir(local, cell, seed))  # bit for bit, per epoch

    # a rerun skips every finished run: no metrics file is touched
    paths = [run_dir(remote, cell, seed) / "metrics.jsonl" for cell in CELLS for seed in SEEDS]
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in paths}
    assert sweep(quad_file, remote, "--executor", "ray") == 0
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in paths} == before
    assert table_without_wall_time(remote) == table


@needs_ray
def test_ray_sweep_resumes_an_interrupted_run(local_ray, quad_file, tmp_path):
    out = tmp_path / "ray"
    assert sweep(quad_file, out, "--executor", "ray") == 0
    table = table_without_wall_time(out)
    # one run as if killed during its last epoch: checkpoint of epoch 1, no summary, a partial line
    rdir = run_dir(out, CELLS[3], 1)
    finished = metrics_without_wall_time(rdir)
    (rdir / "checkpoint.pt").unlink()
    (rdir / "checkpoint.pt.prev").rename(rdir / "checkpoint.pt")
    (rdir / "summary.json").unlink()
    lines = (rdir / "metrics.jsonl").read_text().splitlines(keepends=True)
    (rdir / "metrics.jsonl").write_text("".join(lines[:2]) + lines[2][:10])
    untouched = run_dir(out, CELLS[0], 0) / "metrics.jsonl"
    stamp = untouched.stat().st_mtime_ns
    assert sweep(quad_file, out, "--executor", "ray") == 0
    assert json.loads((rdir / "summary.json").read_text())["status"] == "finished"
    assert metrics_without_wall_time(rdir) == finished  # epoch 2 rerun from the checkpoint, same numbers
    assert untouched.stat().st_mtime_ns == stamp
    assert table_without_wall_time(out) == table


@needs_ray
def test_ray_sweep_records_failed_runs(local_ray, tmp_path):
    # AnalogSGD has no array P: that cell fails at run time (after validation), in its Ray task
    config = tomllib.loads(QUAD)
    config["reference"] = {"P": 0.1}
    out = tmp_path / "ray"
    rows = run_sweep(config, {"algorithm.name": ["AnalogSGD", "TikiTaka"]}, [0], out, quiet=True, executor="ray")
    assert [(r["n_seeds"], r["n_failed"]) for r in rows] == [(0, 1), (1, 0)]
    error = (out / "algorithm.name=AnalogSGD" / "seed_0" / "error.txt").read_text()
    assert "no analog array named ['P']" in error
    assert not (out / "algorithm.name=TikiTaka" / "seed_0" / "error.txt").exists()


@needs_ray
def test_run_jobs_results_in_job_order_and_one_thread_per_ray_task(local_ray):
    import torch

    # (a function of this test module would not import in the workers: torch's is picklable by name)
    assert run_jobs([(), ()], torch.get_num_threads, executor="ray", quiet=True) == [1, 1]
    seen = []
    assert run_jobs([(i,) for i in range(3)], lambda i: i * i, on_done=lambda job, r: seen.append((job, r)),
                    quiet=True) == [0, 1, 4]
    assert seen == [((0,), 0), ((1,), 1), ((2,), 4)]
    # an exception that escapes a task is that job's result (the sweep writes it to error.txt)
    results = run_jobs([(4.0,), (-1.0,)], math.sqrt, executor="ray", quiet=True)
    assert results[0] == 2.0 and isinstance(results[1], Exception) and "math domain error" in str(results[1])


def test_without_ray_installed_the_executor_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ValueError, match=r'executor "ray" needs Ray: pip install -e "\.\[cluster\]"'):
        run_jobs([(1,)], print, executor="ray")
    with pytest.raises(ValueError, match="needs Ray"):
        run_sweep(tomllib.loads(QUAD), {}, [0], tmp_path / "sweep", executor="ray")
    assert not (tmp_path / "sweep").exists()  # refused before anything is written


def test_executor_options_are_checked(quad_file, tmp_path):
    with pytest.raises(ValueError, match=r"executor must be one of \['local', 'ray'\]"):
        run_jobs([], print, executor="dask")
    with pytest.raises(ValueError, match="apply to the ray executor only"):
        run_jobs([], print, address="auto")
    with pytest.raises(ValueError, match="with an address"):
        run_jobs([], print, executor="ray", address="auto", num_cpus=2)
    with pytest.raises(ValueError, match=r"num_cpus \(--num-cpus\) must be an integer >= 1"):
        run_jobs([], print, executor="ray", num_cpus=0)
    assert cli.main(["sweep", str(quad_file), "--num-cpus", "2", "--out", str(tmp_path / "s")]) == 2
    assert not (tmp_path / "s").exists()
