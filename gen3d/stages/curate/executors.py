"""Executors for the preparation job: a local process pool with a per-asset timeout and memory
guard, and Ray. Both call `prepare.process_asset` and hand each row to `on_row` as it finishes.

The local pool keeps its own worker processes (spawned, so no state leaks from the parent) and
sends one task at a time to each; a worker past its deadline is killed and replaced, a worker that
dies is replaced, and either way the asset gets a `failed` row while the job goes on.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import deque
from multiprocessing.connection import wait

# libigl's parallel loops read IGL_NUM_THREADS (else they use every core)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "IGL_NUM_THREADS")


def _limit_threads(threads: int) -> None:
    import logging

    logging.getLogger("gen3d").setLevel(logging.ERROR)  # load warnings go into the manifest rows
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _memory_guard(memory_mb: int):
    """Lower the soft address-space limit to (current + memory_mb); returns a function restoring it."""
    import resource

    if memory_mb <= 0:
        return lambda: None
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as stream:
        current = int(stream.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = current + memory_mb * 2**20
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _worker_main(connection, threads: int, memory_mb: int) -> None:
    _limit_threads(threads)
    scorers: dict = {}
    while True:
        task = connection.recv()
        if task is None:
            return
        connection.send(_guarded(task, memory_mb, scorers))


def _guarded(task, memory_mb: int, scorers: dict) -> dict:
    """process_asset under the memory guard; an error outside it (the pose model cannot load)
    fails this asset, not the worker."""
    from gen3d.stages.curate.prepare import failed_row, process_asset

    restore = _memory_guard(memory_mb)
    try:
        return process_asset(task, _scorer(task, scorers))
    except Exception as error:  # noqa: BLE001 - the row says why
        return failed_row(task, "error", f"{type(error).__name__}: {error}")
    finally:
        restore()


def _scorer(task, cache: dict):
    """One pose scorer per worker (loading the classifier once, not per asset)."""
    name = task.config.get("pose", "classifier")
    if name == "none":
        return None
    if name not in cache:
        from gen3d.stages.curate.pose import SCORERS

        cache[name] = SCORERS[name]()
    return cache[name]


class LocalPool:
    """`workers` spawned processes with `threads` threads each."""

    def __init__(self, workers: int = 1, threads: int = 1, timeout: float = 600.0, memory_mb: int = 0):
        self.workers, self.threads, self.timeout, self.memory_mb = max(1, workers), max(1, threads), timeout, memory_mb
        self.context = multiprocessing.get_context("spawn")

    def _start(self):
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_worker_main, args=(child, self.threads, self.memory_mb), daemon=True)
        process.start()
        child.close()
        return {"process": process, "connection": parent, "task": None, "since": 0.0}

    def run(self, tasks, on_row) -> None:
        from gen3d.stages.curate.prepare import failed_row

        queue = deque(tasks)
        pool = [self._start() for _ in range(min(self.workers, len(queue)))]
        try:
            while queue or any(w["task"] is not None for w in pool):
                for worker in pool:
                    if worker["task"] is None and queue:
                        worker["task"], worker["since"] = queue.popleft(), time.monotonic()
                        worker["connection"].send(worker["task"])
                busy = [w for w in pool if w["task"] is not None]
                ready = wait([w["connection"] for w in busy], timeout=0.1)
                for i, worker in enumerate(pool):
                    if worker["task"] is None:
                        continue
                    if worker["connection"] in ready:
                        try:
                            row = worker["connection"].recv()
                        except (EOFError, ConnectionError):
                            code = worker["process"].join(5) or worker["process"].exitcode
                            reason = "memory" if self.memory_mb > 0 else "crashed"
                            on_row(failed_row(worker["task"], reason, f"worker died (exit code {code})"))
                            pool[i] = self._replace(worker)
                            continue
                        worker["task"] = None
                        on_row(row)
                    elif time.monotonic() - worker["since"] > self.timeout:
                        on_row(failed_row(worker["task"], "timeout", f"no result within {self.timeout:g} s"))
                        pool[i] = self._replace(worker)
        finally:
            for worker in pool:
                self._stop(worker)

    def _replace(self, worker):
        worker["process"].kill()
        worker["process"].join()
        worker["connection"].close()
        return self._start()

    @staticmethod
    def _stop(worker) -> None:
        try:
            worker["connection"].send(None)
        except (OSError, ValueError):
            pass
        worker["process"].join(timeout=5)
        if worker["process"].is_alive():
            worker["process"].kill()
            worker["process"].join()


def _ray_process(task, threads: int, memory_mb: int):
    _limit_threads(threads)
    return _guarded(task, memory_mb, _RAY_SCORERS)


_RAY_SCORERS: dict = {}


class RayPool:
    """Ray tasks (one CPU each); `address` None starts a local Ray, else joins that cluster."""

    def __init__(self, workers: int = 1, threads: int = 1, timeout: float = 600.0, memory_mb: int = 0,
                 address: str | None = None):
        self.workers, self.threads, self.timeout, self.memory_mb = max(1, workers), max(1, threads), timeout, memory_mb
        self.address = address

    def run(self, tasks, on_row) -> None:
        try:
            import ray
        except ImportError as error:
            raise RuntimeError("the Ray executor needs ray: pip install 'gen3d[ray]'") from error
        from gen3d.stages.curate.prepare import failed_row

        started_here = not ray.is_initialized()
        if started_here:
            options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
            if self.address:
                ray.init(address=self.address, **options)
            else:
                ray.init(num_cpus=self.workers * self.threads, **options)
        remote = ray.remote(num_cpus=self.threads, max_retries=0)(_ray_process)
        queue, running = deque(tasks), {}
        try:
            while queue or running:
                while queue and len(running) < self.workers:
                    task = queue.popleft()
                    running[remote.remote(task, self.threads, self.memory_mb)] = (task, time.monotonic())
                done, _ = ray.wait(list(running), num_returns=1, timeout=0.1)
                for ref in done:
                    task, _ = running.pop(ref)
                    try:
                        on_row(ray.get(ref))
                    except ray.exceptions.RayError as error:
                        message = str(error).strip().splitlines()[-1][:300] if str(error).strip() else ""
                        on_row(failed_row(task, "crashed", f"Ray task failed: {type(error).__name__}: {message}"))
                for ref, (task, since) in list(running.items()):
                    if time.monotonic() - since > self.timeout:
                        ray.cancel(ref, force=True)
                        running.pop(ref)
                        on_row(failed_row(task, "timeout", f"no result within {self.timeout:g} s"))
        finally:
            if started_here:
                ray.shutdown()
