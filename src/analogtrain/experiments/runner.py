"""The run loop: a config dict -> a run directory with metrics, checkpoint, summary and plot.

``run_experiment(config, out_dir)`` writes into ``out_dir``:

- ``config.toml``: the resolved config (defaults filled in; ``analogtrain run`` accepts it);
- ``metrics.jsonl``: one JSON line per evaluation (epoch 0 = before training, then every
  epoch): train loss, the task's metrics, lr, pulses per layer and array, wall time;
  flushed and fsynced per line;
- ``checkpoint.pt``: model + optimizer + scheduler + RNG states after the last finished epoch
  (``resume=True`` continues from it, bit for bit);
- ``summary.json``: final metrics, pulses per layer and array, counters, wall time;
- ``plot.png``: loss and accuracy vs epoch;
- ``tensorboard/``: TensorBoard event files, only with ``train.tensorboard = true`` (tblog.py).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .config import build_config, build_reference, dumps_toml, resolve, torch_device
from .plots import plot_run
from .tasks import make_task
from .tblog import TENSORBOARD, TensorBoardLog, require_tensorboard

METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoint.pt"
CONFIG = "config.toml"
PLOT = "plot.png"


def to_jsonable(value):
    """Tensors, numpy scalars and nested containers -> plain JSON values (NaN / inf -> None)."""
    if isinstance(value, torch.Tensor):
        return to_jsonable(value.item() if value.numel() == 1 else value.tolist())
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON: NaN / inf are written as null
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def analog_layers(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Analog layers by module name (modules with an algorithm tile)."""
    return {name: m for name, m in model.named_modules() if hasattr(m, "tile") and hasattr(m, "analog_step")}


def pulse_table(model) -> dict[str, dict[str, dict[str, float]]]:
    """``{layer: {array: {"up", "down", "total"}}}`` for every analog layer."""
    return {name: {k: dict(v) for k, v in layer.summary().get("pulses", {}).items()}
            for name, layer in analog_layers(model).items()}


def total_pulses(table: dict) -> float:
    return float(sum(c["total"] for arrays in table.values() for c in arrays.values()))


def apply_references(model, references: dict) -> None:
    """Set the reference of the named arrays in every analog layer, keeping the read values."""
    if not references:
        return
    layers = analog_layers(model)
    found = set()
    for layer in layers.values():
        for name, ref in references.items():
            arr = layer.arrays.get(name)
            if arr is None:
                continue
            found.add(name)
            read = arr.read().clone()
            arr.set_reference(ref)
            arr.program(read, count=False)
        with torch.no_grad():
            layer.weight.copy_(layer.tile.effective_weight())
    missing = sorted(set(references) - found)
    if missing:
        names = sorted({a for layer in layers.values() for a in layer.arrays})
        raise ValueError(f"reference: no analog array named {missing} in the model; arrays: {names}")


def build_run(cfg: dict, device: torch.device):
    """Task, model (converted), optimizer and scheduler from a resolved config."""
    import analogtrain as at

    from .config import DTYPES

    train = cfg["train"]
    dtype = DTYPES[train["dtype"]]
    task = make_task(cfg["task"])
    analog_config = build_config(cfg)
    references = build_reference(cfg.get("reference"))
    task.setup(device, dtype)
    model = task.build_model(train["seed"])
    if train["layers"] != "none":
        layers = None if train["layers"] == "all" else list(train["layers"])
        model = at.convert(model, analog_config, layers=layers, seed=train["seed"])
    apply_references(model, references)
    model = model.to(device=device, dtype=dtype)
    optimizer = at.optim.AnalogSGD(model.parameters(), lr=train["lr"], momentum=train["momentum"],
                                   weight_decay=train["weight_decay"])
    scheduler = None
    if train["lr_step_epochs"]:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=train["lr_step_epochs"],
                                                    gamma=train["lr_step_factor"])
    return task, model, optimizer, scheduler, analog_config


def _write_line(path: Path, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(to_jsonable(row), allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_metrics(run_dir) -> list[dict]:
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a crash: everything before it is intact
    return rows


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file, fsync, then rename over ``path``; the checkpoint it
    replaces is kept as ``<name>.prev`` (the last two are on disk)."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    _fsync_file(tmp)
    if path.exists():
        os.replace(path, previous_checkpoint(path))
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def previous_checkpoint(path: Path) -> Path:
    return path.with_name(path.name + ".prev")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunDiverged(RuntimeError):
    """A non-finite loss, gradient or update stopped the run (the message names the step and
    the quantity; the checkpoint of the last finished epoch is kept)."""


class RunLocked(RuntimeError):
    """Another process holds the run directory's lock."""


def load_checkpoint(path: Path, device) -> dict:
    """The latest readable checkpoint: ``path``, or its predecessor ``path.prev`` when the
    latest is unreadable (reported on stderr with the reason)."""
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:
        prev = previous_checkpoint(path)
        if not prev.exists():
            raise ValueError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}) and there is no "
                             f"previous checkpoint {prev.name}") from exc
        print(f"analogtrain: checkpoint {path} is unreadable ({type(exc).__name__}); resuming from "
              f"{prev.name}", file=sys.stderr)
        return torch.load(prev, map_location=device, weights_only=False)


class _DirectoryLock:
    """An exclusive lock on ``out/.lock`` (fcntl.flock) held for the run; ``wait=False`` makes
    a held lock a :class:`RunLocked` error, ``wait=True`` waits for it."""

    def __init__(self, out: Path, wait: bool):
        self.path, self.wait, self.handle = out / ".lock", wait, None

    def __enter__(self):
        import fcntl

        self.handle = open(self.path, "a")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
        except BlockingIOError as exc:
            self.handle.close()
            raise RunLocked(f"{self.path.parent} is in use by another analogtrain process (lock {self.path}); "
                            f"wait for it or use another output directory") from exc
        return self

    def __exit__(self, *exc):
        import fcntl

        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()
        return False


def _comparable(cfg: dict) -> dict:
    """The resolved config without the keys a resume may change (epochs, threads, tensorboard)."""
    out = json.loads(json.dumps(to_jsonable(cfg)))
    for key in ("epochs", "threads", "tensorboard"):
        out.get("train", {}).pop(key, None)
    return out


def is_finished(run_dir) -> bool:
    path = Path(run_dir) / SUMMARY
    if not path.exists():
        return False
    try:
        return json.loads(path.read_text()).get("status") == "finished"
    except json.JSONDecodeError:
        return False


def run_experiment(config: dict, out_dir, quiet: bool = False, resume: bool = False,
                   overwrite: bool = False, wait_for_lock: bool = False) -> dict:
    """Run one experiment; returns the summary dict (also written to ``out_dir/summary.json``).

    ``resume=True`` returns the summary of a finished run with the same config, or continues
    an interrupted one from its last checkpoint (``train.epochs`` may be raised to extend a
    finished run). Without ``resume`` an existing run in ``out_dir`` is an error unless
    ``overwrite=True``. The directory is locked for the run: another process finds it busy
    (:class:`RunLocked`) or, with ``wait_for_lock``, waits and then sees the finished run.
    A non-finite loss or update raises :class:`RunDiverged` (step and quantity named; metrics
    and the last epoch's checkpoint stay on disk).
    """
    cfg = resolve(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    threads = cfg["train"]["threads"]
    previous = torch.get_num_threads()
    with _DirectoryLock(out, wait_for_lock):
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            return _run(cfg, out, quiet, resume, overwrite)
        finally:
            torch.set_num_threads(previous)


def _run(cfg: dict, out: Path, quiet: bool, resume: bool, overwrite: bool) -> dict:
    train = cfg["train"]
    if train["tensorboard"]:
        require_tensorboard()  # before any file of the run directory is touched
    out.mkdir(parents=True, exist_ok=True)
    metrics_path, ckpt_path, summary_path = out / METRICS, out / CHECKPOINT, out / SUMMARY
    existing = [p.name for p in (metrics_path, ckpt_path, summary_path) if p.exists()]

    if existing and not (resume or overwrite):
        raise FileExistsError(f"{out} already holds a run ({', '.join(existing)}); use resume (--resume) or "
                              f"overwrite (--overwrite), or another output directory")
    if existing and overwrite and not resume:
        for p in (metrics_path, ckpt_path, previous_checkpoint(ckpt_path), summary_path, out / PLOT):
            p.unlink(missing_ok=True)
        shutil.rmtree(out / TENSORBOARD, ignore_errors=True)
        existing = []
    if existing and (out / CONFIG).exists():
        from .config import load_config

        old = load_config(out / CONFIG)
        if _comparable(resolve(old)) != _comparable(cfg):
            raise ValueError(f"cannot resume {out}: its config.toml differs from the given config "
                             f"(only train.epochs, train.threads and train.tensorboard may change); use another output "
                             f"directory")
    if resume and is_finished(out):
        summary = json.loads(summary_path.read_text())
        if summary.get("epochs") == train["epochs"]:
            return summary

    device = torch_device(train["device"])
    task, model, optimizer, scheduler, analog_config = build_run(cfg, device)
    _atomic_write(out / CONFIG, dumps_toml(to_jsonable(cfg)))

    data_gen = torch.Generator().manual_seed(train["seed"])
    batch_size = train["batch_size"] or task.default_batch_size
    start_epoch, step, wall = 0, 0, 0.0
    rows: list[dict] = []
    first_epoch = 0  # the first epoch this call records
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, device)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler") is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        data_gen.set_state(ckpt["data_rng"])
        torch.set_rng_state(ckpt["torch_rng"])
        if device.type == "cuda" and ckpt.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(ckpt["cuda_rng"], device)
        start_epoch, step, wall = ckpt["epoch"], ckpt["step"], ckpt["wall_time"]
        rows = [r for r in read_metrics(out) if r["epoch"] <= start_epoch]
        first_epoch = start_epoch + 1
    elif resume:
        rows = []
    # rewrite the metrics file with the rows that the checkpoint covers (drops partial epochs)
    _atomic_write(metrics_path, "".join(json.dumps(to_jsonable(r)) + "\n" for r in rows))
    summary_path.unlink(missing_ok=True)

    def record(epoch: int, train_loss) -> dict:
        table = pulse_table(model)
        row = {"epoch": epoch, "step": step, "lr": optimizer.param_groups[0]["lr"], "train_loss": train_loss,
               **task.evaluate(model), "pulses": {k: {a: c["total"] for a, c in v.items()} for k, v in table.items()},
               "total_pulses": total_pulses(table), "wall_time": wall + (time.perf_counter() - t0)}
        _write_line(metrics_path, row)
        rows.append(to_jsonable(row))
        if tb is not None:
            tb.record(rows[-1], analog_layers(model))
        return row

    def checkpoint(epoch: int) -> None:
        if not train["checkpoint"]:
            return
        _atomic_save({
            "epoch": epoch, "step": step, "wall_time": wall + (time.perf_counter() - t0),
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "data_rng": data_gen.get_state(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        }, ckpt_path)

    # on resume, purge_step makes TensorBoard drop the events a killed run wrote past the checkpoint
    tb = TensorBoardLog(out, first_epoch) if train["tensorboard"] else None
    try:
        t0 = time.perf_counter()
        model.train()
        label = f"{cfg['task']['name']}/{cfg['algorithm']['name']}"
        if start_epoch == 0 and train["eval_at_start"] and not rows:
            record(0, None)
        epochs = range(start_epoch + 1, train["epochs"] + 1)
        bar = tqdm(epochs, desc=label, disable=quiet, delay=2.0, leave=False, unit="epoch")
        for epoch in bar:
            loss_sum = torch.zeros((), device=device, dtype=torch.float64)
            n_steps = 0
            batches = task.train_batches(batch_size, data_gen)
            cap = train["steps_per_epoch"]
            inner = tqdm(batches, desc=f"epoch {epoch}", disable=quiet, delay=2.0, leave=False, unit="step",
                         total=cap)
            for x, y in inner:
                optimizer.zero_grad()
                loss = task.loss(model(x), y)
                if not bool(torch.isfinite(loss.detach())):
                    raise RunDiverged(f"{out}: the training loss is {float(loss.detach())} at step {step + 1} (epoch {epoch}); "
                                      f"the checkpoint of epoch {epoch - 1} is kept")
                loss.backward()
                try:
                    optimizer.step()
                except ValueError as exc:
                    if "not finite" not in str(exc):
                        raise
                    raise RunDiverged(f"{out}: step {step + 1} (epoch {epoch}): {exc}; the checkpoint of epoch "
                                      f"{epoch - 1} is kept") from exc
                loss_sum += loss.detach().to(torch.float64)
                n_steps += 1
                step += 1
                if cap is not None and n_steps >= cap:
                    break
            inner.close()
            if scheduler is not None:
                scheduler.step()
            row = record(epoch, float(loss_sum) / max(n_steps, 1))
            checkpoint(epoch)
            if not quiet:
                shown = {k: row[k] for k in ("train_loss", "test_accuracy", "loss", "weight_error") if k in row}
                tqdm.write(f"{label} epoch {epoch}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in shown.items())
                          + f", pulses={row['total_pulses']:.3g}")
        bar.close()
    finally:
        if tb is not None:
            tb.close()
    wall = wall + (time.perf_counter() - t0)

    summary = make_summary(cfg, task, model, rows, wall, analog_config, device, step)
    _atomic_write(summary_path, json.dumps(to_jsonable(summary), indent=2, allow_nan=False) + "\n")
    plot_run(rows, out / PLOT, title=label)
    return summary


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def make_summary(cfg, task, model, rows, wall, analog_config, device, step) -> dict:
    final = {k: v for k, v in rows[-1].items() if k not in ("pulses", "epoch", "step", "wall_time")} if rows else {}
    table = pulse_table(model)
    primary = final.get(task.primary_metric)
    return to_jsonable({
        "status": "finished",
        "diverged": isinstance(primary, float) and not math.isfinite(primary),
        "task": cfg["task"]["name"],
        "algorithm": cfg["algorithm"]["name"],
        "epochs": cfg["train"]["epochs"],
        "steps": step,
        "seed": cfg["train"]["seed"],
        "device": str(device),
        "primary_metric": task.primary_metric,
        "higher_is_better": task.higher_is_better,
        "metrics": final,
        "pulses": table,
        "total_pulses": total_pulses(table),
        "layers": {name: layer.summary() for name, layer in analog_layers(model).items()},
        "wall_time": wall,
        "analog_config": analog_config.describe(),
    })
