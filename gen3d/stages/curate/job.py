"""The resumable preparation job: inputs -> tasks -> executor -> duplicates -> manifest + summary.

Kill safety: an asset folder appears only by rename once complete; each finished row is appended
to OUT/manifest.jsonl as it arrives (a torn last line is ignored on resume) and an accepted row is
also inside its folder's meta.json, so a kill between the two loses nothing. Resume skips assets
whose result is recorded under the same config hash, and the run ends by rewriting the manifest
sorted by source, with the duplicate decision applied to all accepted assets.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np

from gen3d.errors import InputError
from gen3d.stages.curate.config import PrepareConfig
from gen3d.stages.curate.dedup import duplicate_groups, keeper
from gen3d.stages.curate.executors import LocalPool, RayPool
from gen3d.stages.curate.prepare import DUPLICATES, Task, asset_id, find_inputs, write_json
from gen3d.utils.config import config_hash, to_dict
from gen3d.utils.files import atomic_write

RETRIED = ("failed",)  # statuses processed again on resume


def prepare(src: str | Path, out: str | Path, cfg: PrepareConfig, *, executor: str = "local", workers: int = 1,
            threads: int = 1, timeout: float = 600.0, memory_mb: int = 0, ray_address: str | None = None,
            limit: int | None = None, force: bool = False, progress: bool = False) -> dict:
    """Run the job; returns the summary (also written to OUT/summary.json)."""
    src, out = Path(src), Path(out)
    started = time.time()
    inputs = find_inputs(src)[:limit]
    base = src.parent if src.is_file() else src
    digest = config_hash(cfg)
    out.mkdir(parents=True, exist_ok=True)
    previous = _check_job(out, cfg, digest, force)
    for stale in out.glob(".tmp-*"):  # partial folders of a killed run
        shutil.rmtree(stale, ignore_errors=True)
    rows = {} if force else _recorded_rows(out, digest, previous)
    tasks, sources = [], set()
    for path in inputs:
        source = path.relative_to(base).as_posix() if path.is_relative_to(base) else str(path)
        sources.add(source)
        if source in rows and rows[source]["status"] not in RETRIED:
            continue
        tasks.append(Task(source, str(path), asset_id(path), str(out), to_dict(cfg), digest))
    rows = {s: r for s, r in rows.items() if s in sources}
    pool = RayPool(workers, threads, timeout, memory_mb, ray_address) if executor == "ray" else \
        LocalPool(workers, threads, timeout, memory_mb)
    bar = _bar(len(inputs), len(inputs) - len(tasks), progress)
    with open(out / "manifest.jsonl", "a") as journal:
        def on_row(row: dict) -> None:
            rows[row["source"]] = row
            journal.write(json.dumps(row) + "\n")
            journal.flush()
            bar.update(1)

        pool.run(tasks, on_row)
    bar.close()
    _deduplicate(out, rows, cfg.filters.duplicate_distance)
    ordered = [rows[s] for s in sorted(rows)]
    atomic_write(out / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in ordered).encode())
    summary = _summary(ordered, len(tasks), time.time() - started)
    write_json(out / "summary.json", summary)
    return summary


def _check_job(out: Path, cfg: PrepareConfig, digest: str, force: bool) -> dict | None:
    """OUT/job.json holds the config; a different one needs --force (which starts over)."""
    job = out / "job.json"
    previous = json.loads(job.read_text()) if job.exists() else None
    if previous is not None and previous.get("config_hash") != digest:
        if not force:
            raise InputError("config_changed", f"{out} was prepared with another config (hash "
                             f"{previous.get('config_hash')}, now {digest}); use --force to redo it")
    if force:
        for child in out.iterdir():
            if child.is_dir() and (len(child.name) == 16 or child.name in (DUPLICATES,)):
                shutil.rmtree(child)
        (out / "manifest.jsonl").unlink(missing_ok=True)
        previous = None
    write_json(job, {"config": to_dict(cfg), "config_hash": digest})
    return previous


def _recorded_rows(out: Path, digest: str, previous: dict | None) -> dict:
    """Rows of the journal plus the rows inside completed folders (a kill between the rename and
    the journal append loses nothing). A torn last journal line is skipped."""
    rows = {}
    journal = out / "manifest.jsonl"
    if previous is not None and journal.exists():
        for line in journal.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            rows[row["source"]] = row
    for meta_path in list(out.glob("*/meta.json")) + list((out / DUPLICATES).glob("*/meta.json")):
        meta = json.loads(meta_path.read_text())
        if meta.get("config_hash") == digest:
            rows[meta["source"]] = dict(meta["row"])
    for row in rows.values():  # an ok row whose folder is gone is not done
        if row["status"] == "ok" and not (_folder(out, row["id"]) / "meta.json").exists():
            row["status"] = "failed"
    return rows


def _folder(out: Path, identifier: str) -> Path:
    return out / identifier if (out / identifier).exists() else out / DUPLICATES / identifier


def _deduplicate(out: Path, rows: dict, threshold: float) -> None:
    """One member per duplicate group stays `ok` (textured first, then more faces, then the
    smallest id: independent of order); the others become rejected/duplicate and their folders
    move to OUT/.duplicates. Recomputed over all accepted assets on every run."""
    seen_ids: dict[str, str] = {}
    for source in sorted(rows):  # the same bytes under two names: the first name stays
        row = rows[source]
        if row["status"] == "ok" or (row.get("reason") == "duplicate" and row.get("duplicate_of") == row["id"]):
            if row["id"] in seen_ids:
                row.update(status="rejected", reason="duplicate", duplicate_of=row["id"])
            else:
                seen_ids[row["id"]] = source
                row.update(status="ok", reason=None)
                row.pop("duplicate_of", None)
    candidates = {}
    for row in rows.values():
        if row.get("duplicate_of") == row["id"]:
            continue
        if row["status"] == "ok" or row.get("reason") == "duplicate":
            meta = _folder(out, row["id"]) / "meta.json"
            if meta.exists():
                candidates[row["id"]] = np.array(json.loads(meta.read_text())["fingerprint"])
    groups = duplicate_groups(candidates, threshold)
    quality = {r["id"]: (int(r["measured"].get("textured", False)), r["measured"].get("faces", 0))
               for r in rows.values() if r["id"] in candidates}
    kept_of = {}
    for group in groups:
        chosen = keeper(group, quality)
        kept_of.update({member: chosen for member in group if member != chosen})
    (out / DUPLICATES).mkdir(exist_ok=True)
    for row in rows.values():
        if row["id"] not in candidates:
            continue
        if row["id"] in kept_of:
            row.update(status="rejected", reason="duplicate", duplicate_of=kept_of[row["id"]])
            if (out / row["id"]).exists():
                shutil.rmtree(out / DUPLICATES / row["id"], ignore_errors=True)
                (out / row["id"]).replace(out / DUPLICATES / row["id"])
        else:
            row.update(status="ok", reason=None)
            row.pop("duplicate_of", None)
            if not (out / row["id"]).exists():
                (out / DUPLICATES / row["id"]).replace(out / row["id"])


def _summary(rows: list[dict], processed: int, seconds: float) -> dict:
    by_status = Counter(r["status"] for r in rows)
    by_reason = Counter(f"{r['status']}:{r['reason']}" for r in rows if r["reason"])
    return {"ok": True, "inputs": len(rows), "processed_now": processed, "accepted": by_status.get("ok", 0),
            "rejected": by_status.get("rejected", 0), "failed": by_status.get("failed", 0),
            "reasons": dict(sorted(by_reason.items())), "seconds": round(seconds, 2),
            "assets_per_second": round(processed / seconds, 3) if seconds > 0 else None}


def _bar(total: int, done: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc="prepare", unit="asset", disable=not enabled)
