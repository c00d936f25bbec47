"""Executors of a sweep's jobs: ``local`` (one after another in this process) or ``ray``.

``run_jobs(jobs, fn, executor=...)`` calls ``fn(*job)`` for every job and ``on_done(job, result)``
in this process as each one ends (in job order for ``local``, in order of completion for
``ray``). ``fn`` handles its own errors (the sweep's writes error.txt); an exception of the
executor itself, e.g. a Ray worker that died, is passed to ``on_done`` as the result.

With ``ray`` every job is a Ray task of one CPU (torch limited to one thread, so numbers
equal the local executor's for the same config); ``address`` is passed to ``ray.init``
(``"auto"`` or ``"ray://host:10001"`` for an existing cluster, None to start a local
instance with ``num_cpus`` CPUs). The workers must import analogtrain and see the
run directories (a shared filesystem on a cluster).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tqdm.auto import tqdm

EXECUTORS = ("local", "ray")


def run_jobs(jobs: Sequence[tuple], fn: Callable, executor: str = "local", on_done: Callable | None = None,
             address: str | None = None, num_cpus: int | None = None, quiet: bool = False,
             desc: str = "sweep") -> list:
    """Run ``fn(*job)`` for every job; returns the results in job order."""
    check_executor(executor, address, num_cpus)
    if executor == "local":
        return _run_local(list(jobs), fn, on_done, quiet, desc)
    return _run_ray(list(jobs), fn, on_done, address, num_cpus, quiet, desc)


def check_executor(executor: str, address: str | None = None, num_cpus: int | None = None) -> None:
    """ValueError for an unknown executor, options it does not take, or a missing Ray."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {list(EXECUTORS)}, got {executor!r}")
    if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 1):
        raise ValueError(f"num_cpus (--num-cpus) must be an integer >= 1, got {num_cpus!r}")
    if executor == "local":
        if address is not None or num_cpus is not None:
            raise ValueError("address and num_cpus (--address, --num-cpus) apply to the ray executor only")
        return
    if address is not None and num_cpus is not None:
        raise ValueError("num_cpus (--num-cpus) sizes a local Ray instance; with an address (--address) the "
                         "cluster's CPUs are used")
    import_ray()


def _run_local(jobs, fn, on_done, quiet, desc) -> list:
    results = []
    for job in tqdm(jobs, desc=desc, disable=quiet, unit="run"):
        result = fn(*job)
        results.append(result)
        if on_done is not None:
            on_done(job, result)
    return results


def import_ray():
    """The ``ray`` module, or a ValueError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ValueError('executor "ray" needs Ray: pip install -e ".[cluster]" (or pip install "ray>=2.9")') \
            from exc
    return ray


def _one_thread_call(fn, *args):
    """The body of a Ray task: ``fn(*args)`` with one torch thread (the task holds one CPU)."""
    import torch

    torch.set_num_threads(1)
    return fn(*args)


def _run_ray(jobs, fn, on_done, address, num_cpus, quiet, desc) -> list:
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        if address is None:
            ray.init(num_cpus=num_cpus, include_dashboard=False)
        else:
            ray.init(address=address)
    try:
        task = ray.remote(num_cpus=1)(_one_thread_call)
        index = {task.remote(fn, *job): i for i, job in enumerate(jobs)}
        results = [None] * len(jobs)
        pending = list(index)
        with tqdm(total=len(jobs), desc=desc, disable=quiet, unit="run") as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    i = index[ref]
                    try:
                        results[i] = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 -- a lost worker fails its job, not the sweep
                        results[i] = exc
                    if on_done is not None:
                        on_done(jobs[i], results[i])
                    bar.update()
        return results
    finally:
        if started:
            ray.shutdown()
