"""Reading a sweep: one ``Run`` per metrics.json (any status), the jobs of sweep.json that never started,
and the grouping of finished runs by every identity key that varies across the sweep, seed aside."""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bvp.io import read_json, readable_json
from bvp.names import CURVE, METRICS_FILE, OVERRIDES_FILE, SWEEP_FILE
from bvp.resolvers import job_key

log = logging.getLogger(__name__)

SEED = "seed"
AXIS = "pruning.amount"  # the key that moves a run along a sparsity curve
FIRST_KEYS = ("dataset", "model", "beta", "latent_dim")  # shown first in tables and labels, then the rest sorted
# C * H * W of the shipped datasets, for records written before metrics.json held input_shape (the MNIST study's)
RECORDED_BEFORE = {"mnist": 784, "fashion_mnist": 784, "cifar10": 3072, "dsprites": 4096}
Key = tuple[Any, ...]  # the values of a list of identity keys


class NoRuns(Exception):
    """The folder holds no metrics.json and no sweep.json: not a sweep folder."""


@dataclass
class Run:
    """One run folder's metrics.json: ``identity`` is the flat dict of dotted config keys (beta is None
    for the CNN, which ignores it), ``metrics`` its numbers (NaN/inf restored from their JSON strings)."""

    run_dir: str
    status: str
    error: str
    identity: dict[str, Any]
    metrics: dict[str, Any]
    overrides: frozenset[str] = field(default_factory=frozenset)
    code: dict[str, Any] = field(default_factory=dict)  # the commit that ran it, and whether its tree was dirty
    timing: dict[str, Any] = field(default_factory=dict)  # fit_seconds, epoch_seconds_sum, ...
    input_dim: int | None = None  # C * H * W of the data, from the record's input_shape
    curve: list[dict[str, Any]] = field(default_factory=list)  # the disentanglement monitor's points, if it ran
    dense_trained: bool | None = None  # a pruned run: True if it trained its dense model, False if it loaded one

    def key(self, keys: list[str]) -> Key:
        return tuple(self.identity.get(k) for k in keys)

    def version(self) -> str:
        """The code that ran it: its commit, marked (dirty) where the tree had changes."""
        return f"{self.code.get('commit') or 'unknown'}{' (dirty)' if self.code.get('dirty') else ''}"


def _number(value: Any) -> Any:
    """bvp.io writes non-finite floats as the strings 'nan', 'inf', '-inf'."""
    return float(value) if isinstance(value, str) and value in ("nan", "inf", "-inf") else value


def _plain(name: Any) -> str:
    """A dataset's name without case or punctuation: a torchvision set's source (its DataModule's name, e.g.
    FashionMNIST) is the dataset itself (fashion_mnist), not a second source."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def read_run(path: Path, sweep_dir: Path) -> Run:
    """A Run from ``path`` (a metrics.json); runs written before ``identity`` existed fall back to ``run``.
    A file that is not a JSON object, or a finished run's record without an identity, is a run with status
    ``unreadable``, listed with the failed ones (never counted in a cell)."""
    try:
        record = read_json(path) or {}
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, not an object
        record = {"status": "unreadable", "error": f"metrics.json: {err}"}
    identity = record.get("identity") or record.get("run") or {}
    if not isinstance(identity, dict) or not isinstance(record.get("metrics") or {}, dict):
        record, identity = {"status": "unreadable", "error": "metrics.json: identity or metrics is not an object"}, {}
    elif record.get("status") == "done" and "dataset" not in identity:
        record = {"status": "unreadable", "error": "metrics.json: a finished run without an identity (dataset, settings)"}
    identity = dict(identity)
    source = record.get("dataset_source")
    if source is not None and _plain(source) != _plain(identity.get("dataset")):  # dSprites: official vs procedural
        identity["dataset_source"] = source  # other data, another cell: never pooled
    if identity.get("model") == "cnn":
        identity["beta"] = None
    overrides_file = path.parent / OVERRIDES_FILE
    overrides = job_key(yaml.safe_load(overrides_file.read_text()) or []) if overrides_file.is_file() else frozenset()
    return Run(
        run_dir=str(path.parent.relative_to(sweep_dir)),
        status=record.get("status", "unknown"),
        error=record.get("error") or "",
        identity=identity,
        metrics={k: _number(v) for k, v in (record.get("metrics") or {}).items()},
        overrides=overrides,
        code=record.get("code") or {},
        timing=record.get("timing") or {},
        curve=list(record.get(CURVE) or []),
        dense_trained=(record.get("dense_source") or {}).get("trained_here"),
        input_dim=math.prod(record["input_shape"]) if record.get("input_shape") else RECORDED_BEFORE.get(identity.get("dataset")),
    )


def load_runs(sweep_dir: Path) -> list[Run]:
    return [read_run(path, sweep_dir) for path in sorted(sweep_dir.rglob(METRICS_FILE))]


def records_digest(sweep_dir: Path) -> str:
    """A sha256 (first 16 hex digits) over every metrics.json under ``sweep_dir``, path and bytes, in load_runs's
    order: the results page names it, so a reader can tell whether the page was made from the records beside it."""
    digest = hashlib.sha256()
    for path in sorted(sweep_dir.rglob(METRICS_FILE)):
        digest.update(path.relative_to(sweep_dir).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def sweeps(sweep_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every sweep.json under ``sweep_dir`` with its folder relative to it ("" at the top): a study's parts each
    keep their own (outputs/study/mnist/curves/sweep.json)."""
    found = sorted(sweep_dir.rglob(SWEEP_FILE))
    return [("" if p.parent == sweep_dir else str(p.parent.relative_to(sweep_dir)), sweep_plan(p)) for p in found]


def _overrides(value: Any) -> bool:
    """A list of strings: a job's overrides, or a refused job's error lines."""
    return isinstance(value, list) and all(isinstance(o, str) for o in value)


def sweep_plan(path: Path) -> dict[str, Any]:
    """A sweep.json's plan (``jobs``: each job's overrides; ``refused``: those jobs' records), or {} with a
    warning where the file is damaged or not of that shape: the report goes on without its missing-job list."""
    info = readable_json(path) or {}
    jobs, refused = info.get("jobs", []), info.get("refused", [])
    shaped = isinstance(jobs, list) and all(map(_overrides, jobs)) and isinstance(refused, list)
    records = (isinstance(r, dict) and _overrides(r.get("overrides")) and _overrides(r.get("errors")) for r in refused)
    shaped = shaped and all(records)
    if not shaped:
        log.warning("%s is not a sweep plan (jobs: lists of overrides, refused: their records): read as missing", path)
        return {}
    return info


def refused_jobs(found: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The jobs of each sweep.json (``sweeps``) refused for a bad setting (their overrides and error lines, and the
    sweep's ``folder``): no run folder is left."""
    return [job | {"folder": folder} for folder, info in found for job in info.get("refused", [])]


def missing_jobs(found: list[tuple[str, dict[str, Any]]], runs: list[Run]) -> list[tuple[str, list[str]]]:
    """(folder, overrides) of each sweep.json's jobs (``sweeps``) that no run folder under that sweep was started
    with and that were not refused."""
    out = []
    for folder, info in found:
        present = {run.overrides for run in runs if Path(run.run_dir).is_relative_to(folder)}
        present |= {job_key(job["overrides"]) for job in info.get("refused", [])}
        out += [(folder, job) for job in info.get("jobs", []) if job_key(job) not in present]
    return out


def done_runs(runs: list[Run]) -> tuple[list[Run], list[Run]]:
    """Finished runs, one per identity, and the repeats left out: a CNN swept once per beta is one run."""
    seen: set[tuple[Any, ...]] = set()
    kept, repeats = [], []
    for run in runs:
        if run.status != "done":
            continue
        identity = tuple(sorted(run.identity.items()))
        (repeats if identity in seen else kept).append(run)
        seen.add(identity)
    return kept, repeats


def _order(key: str) -> tuple[int, int, str]:
    first = FIRST_KEYS.index(key) if key in FIRST_KEYS else len(FIRST_KEYS)
    return first, key.startswith("pruning."), key


def varying_keys(runs: list[Run]) -> list[str]:
    """Identity keys with more than one value across ``runs`` (a key a run lacks counts as None), seed aside."""
    values: dict[str, set[Any]] = defaultdict(set)
    names = {k for run in runs for k in run.identity}
    for run in runs:
        for name in names:
            values[name].add(run.identity.get(name))
    return sorted((k for k, v in values.items() if len(v) > 1 and k != SEED), key=_order)


def sortable(value: Any) -> tuple[bool, bool, Any]:
    """Sort None last and strings apart from numbers, so mixed keys never compare str with float."""
    return value is None, isinstance(value, str), 0 if value is None else value


def group_runs(runs: list[Run], keys: list[str]) -> dict[Key, list[Run]]:
    """Runs by their values of ``keys``, in sorted order; runs differing in any of them are never merged."""
    out: dict[Key, list[Run]] = defaultdict(list)
    for run in runs:
        out[run.key(keys)].append(run)
    return {k: out[k] for k in sorted(out, key=lambda key: tuple(map(sortable, key)))}


def show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def label(keys: list[str], key: Key, empty: str = "all runs") -> str:
    """``model=beta_vae beta=10 pruning.amount=0.9``: the config values, None (not applicable) left out."""
    return " ".join(f"{k}={show(v)}" for k, v in zip(keys, key, strict=True) if v is not None) or empty


def normalised_beta(run: Run) -> float | None:
    """beta · latent_dim / input_dim (Higgins et al. 2017, "beta-VAE", ICLR): beta per input dimension, so
    betas are comparable across datasets of different sizes. None where beta does not apply (CNN)."""
    beta, latent = run.identity.get("beta"), run.identity.get("latent_dim")
    if beta is None:
        return None
    return math.nan if run.input_dim is None or latent is None else float(beta) * float(latent) / run.input_dim


def values(runs: list[Run], metric: str) -> np.ndarray:
    """The finite-or-NaN float values of ``metric`` over ``runs`` that have it (NaN kept: a diverged run)."""
    return np.array([float(r.metrics[metric]) for r in runs if isinstance(r.metrics.get(metric), (int, float))], dtype=float)


def branch_point(runs: list[Run]) -> dict[str, Any]:
    """The disentanglement monitor's last point before the branch (the dense model as pruned), across ``runs``
    (the branches of one dense model all carry its curve); {} if none trained with the monitor on."""
    points = [p for r in runs for p in r.curve if p.get("stage") == "dense" and p.get("epoch")]
    return max(points, key=lambda p: p["step"], default={})
