"""TensorBoard event files of a run (``train.tensorboard = true`` or ``analogtrain run --tensorboard``).

Written into ``<run dir>/tensorboard/`` with ``torch.utils.tensorboard.SummaryWriter``; the
global step of every event is the epoch (0 = before training), as in metrics.jsonl:

- scalars, per evaluation row: every numeric value of the metrics.jsonl row under its key
  (``train_loss``, ``loss``, ``test_accuracy``, ``lr``, ``total_pulses``, ``wall_time``, ...),
  the cumulative pulses per array as ``pulses/<layer>/<array>`` and, for algorithms that
  transfer, the cumulative transfers as ``transfers/<layer>/<name>``;
- histograms, per evaluation row: each analog layer's effective weight as
  ``weights/<layer>`` and each of its arrays' device state as ``arrays/<layer>/<array>``.

A resumed run opens a new event file with ``purge_step`` = the first epoch it records, so
TensorBoard drops the events a killed run wrote past its checkpoint and the curves continue
without duplicates. metrics.jsonl stays the record; these files are for viewing
(``tensorboard --logdir runs/``).
"""

from __future__ import annotations

import math
from pathlib import Path

TENSORBOARD = "tensorboard"
_SKIP = ("epoch", "step")  # the axes, not metrics


def require_tensorboard():
    """``torch.utils.tensorboard.SummaryWriter``, or a ValueError saying how to install tensorboard."""
    try:
        import tensorboard  # noqa: F401 -- SummaryWriter needs the tensorboard package
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ValueError("train.tensorboard = true needs the tensorboard package: pip install tensorboard "
                           "(or pip install -e \".[tensorboard]\")") from exc
    return SummaryWriter


def _tag(name: str) -> str:
    return name or "model"  # a model that is itself one analog layer has the empty module name


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class TensorBoardLog:
    """Scalars and histograms of one run directory; ``first_epoch`` is the first epoch this
    writer records (earlier events of a resumed run are kept, later ones purged)."""

    def __init__(self, out_dir, first_epoch: int):
        SummaryWriter = require_tensorboard()
        self.log_dir = Path(out_dir) / TENSORBOARD
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=first_epoch)

    def record(self, row: dict, layers: dict) -> None:
        """One metrics row (as written to metrics.jsonl) and the analog layers ``{name: layer}``."""
        epoch = row["epoch"]
        for key, value in row.items():
            if key not in _SKIP and _is_number(value):
                self.writer.add_scalar(key, value, epoch)
        for layer, arrays in (row.get("pulses") or {}).items():
            for array, count in arrays.items():
                if _is_number(count):
                    self.writer.add_scalar(f"pulses/{_tag(layer)}/{array}", count, epoch)
        for name, layer in layers.items():
            for key, count in layer.summary().get("transfers", {}).items():
                self.writer.add_scalar(f"transfers/{_tag(name)}/{key}", count, epoch)
            weight = layer.weight.detach()
            if weight.numel() and math.isfinite(float(weight.abs().max())):
                self.writer.add_histogram(f"weights/{_tag(name)}", weight.float().cpu(), epoch)
            for array, arr in layer.arrays.items():
                state = arr.state.detach()
                if state.numel() and math.isfinite(float(state.abs().max())):
                    self.writer.add_histogram(f"arrays/{_tag(name)}/{array}", state.float().cpu(), epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
