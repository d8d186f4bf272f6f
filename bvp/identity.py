"""A run's identity: the config values that decide what it computes, as one flat dict of dotted keys.

Defined once, used everywhere a run must be told apart: metrics.json (``identity``), TensorBoard's
HParams, bvp-report's grouping (every key that varies across a sweep, seed aside) and the key of the
dense-model cache (the identity without the pruning settings, see ``dense_identity``).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from bvp.rules import shown

PACKAGE = Path(__file__).resolve().parent
CODE_PATHS = ("bvp", "conf", "train.py", "pyproject.toml", "constraints.txt")  # what a run's numbers depend on

# bookkeeping: where things are written and how a run is launched or shown, never what it computes
BOOKKEEPING = (
    "output_dir",
    "data_dir",
    "dataset.jpeg_stand_in",  # where to look, like data_dir: dataset_source records what was read (the dense-cache key
    # and the report's cells take it from there), so runs on the real files stay one cell whichever way it is set
    "resume",
    "ckpt_path",
    "cache_dir",
    "launch",
    "logger",
    "callbacks",
    "hydra",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
    "trainer.default_root_dir",
)
# keys of the prune step and after it: everything else is shared by every branch of one dense model
AFTER_BRANCH = ("pruning", "finetune_epochs", "epochs")
REFERENCE = re.compile(r"^\$\{([\w.]+)\}$")  # ${other.key}: a copy of another key, not a setting of its own


def _name_of(target: str) -> str:
    """A readable name for a ``_target_``: the dataset's module (bvp.data.mnist.X -> mnist), else the class."""
    module, _, cls = target.rpartition(".")
    if module.startswith("bvp.data."):
        return module.rsplit(".", 1)[-1]
    return {"BetaVAEClassif": "beta_vae", "CNNClassif": "cnn"}.get(cls, cls)


def _skipped(key: str) -> bool:
    return any(key == b or key.startswith(b + ".") for b in BOOKKEEPING)


def _scalar(value: Any) -> Any:
    """One value, written one way: a list as a comma-joined string, a whole float as an int (``beta: 1.0`` and
    ``beta=1`` are one run, one dense-cache key and one report cell)."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(_scalar(v)) for v in value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def run_identity(cfg: DictConfig) -> dict[str, Any]:
    """Every scalar setting of ``cfg`` that is its own (not ``${...}`` of another key) and not bookkeeping,
    by dotted key, resolved; lists become comma-joined strings and whole floats ints. ``dataset`` and ``model`` name the
    dataset and network (from their ``_target_``); other ``_target_``/``_partial_`` entries are left out."""
    out: dict[str, Any] = {}
    if "dataset" in cfg and "_target_" in cfg.dataset:
        out["dataset"] = _name_of(cfg.dataset._target_)
    if "model" in cfg and "net" in cfg.model:
        out["model"] = _name_of(cfg.model.net._target_)

    def walk(node: Any, prefix: str) -> None:
        for key in node:
            path = f"{prefix}{key}"
            if _skipped(path) or key in ("_target_", "_partial_"):
                continue
            raw = node._get_node(key)
            if OmegaConf.is_interpolation(node, key) and REFERENCE.match(str(raw._value())):
                continue
            value = node[key]
            if isinstance(value, DictConfig):
                walk(value, path + ".")
            elif isinstance(value, ListConfig):
                out[path] = _scalar(OmegaConf.to_container(value, resolve=True))
            else:
                out[path] = _scalar(value)

    walk(cfg, "")
    return dict(sorted(out.items()))


def identity_difference(theirs: dict[str, Any], mine: dict[str, Any]) -> str | None:
    """The settings where a run's identity (``theirs``, from its record) differs from this config's (``mine``), as
    ``key=mine here, theirs there`` (at most four), or None if they agree. A key one side lacks is a difference
    only where that side has no other key of its group (``model.x`` beside other ``model.*`` keys: a setting newer
    code added to a part; ``pruning.*`` against none: a pruned run against a dense one)."""

    def counts(key: str) -> bool:
        if key in theirs and key in mine:
            return theirs[key] != mine[key]
        other = mine if key in theirs else theirs
        group = key.split(".")[0]
        return "." not in key or not any(k.split(".")[0] == group for k in other)

    differ = sorted(k for k in {*theirs, *mine} if counts(k))
    if not differ:
        return None
    said = "; ".join(f"{k}={shown(mine.get(k))} here, {shown(theirs.get(k))} there" for k in differ[:4])
    return said + "; ..." * (len(differ) > 4)


def dense_identity(identity: dict[str, Any], branch_epoch: int) -> dict[str, Any]:
    """What the dense model at the branch point depends on: the identity without the pruning settings and
    the epoch counts after the branch, plus the epoch at which it branches."""
    dense = {k: v for k, v in identity.items() if not any(k == a or k.startswith(a + ".") for a in AFTER_BRANCH)}
    return {**dense, "branch_epoch": branch_epoch}


@cache
def code_version() -> dict[str, Any]:
    """The git commit of the code that ran and whether its code paths had uncommitted changes (None outside git),
    recorded in every metrics.json so a table never mixes code versions unseen."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=PACKAGE, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    root = git("rev-parse", "--show-toplevel")
    if commit is None or root is None:
        return {"commit": None, "dirty": None}
    status = git("-C", root, "status", "--porcelain", "--", *CODE_PATHS)
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


@cache
def code_fingerprint() -> str:
    """SHA-256 of the package's training code (every bvp/**/*.py but the report): part of the dense-cache key, so a
    change to the data, the networks, the loss or the module never branches from a dense model older code trained."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if not rel.startswith("report/"):
            digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
