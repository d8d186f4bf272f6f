"""A whole study, seed-major: seed 0 of every part, then seed 1, and so on, so a study stopped at any point is
balanced across its cells. Each part is an experiment (conf/experiment/<part>.yaml) whose sweep lists its seeds;
re-running finishes only what is left (a run whose metrics.json says done is skipped).

    python -m bvp.study mnist            (make study)
    python -m bvp.study fashion_mnist    (or cifar10, dsprites: Fashion-MNIST, the CIFAR-10 JPEG stand-in, dSprites)
    python -m bvp.study mnist --quick    (make study-quick: the same shape on a small budget, outputs/study-quick)
    python -m bvp.study mnist --records docs/study/mnist   (copy the finished runs' records there, to commit)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from bvp.io import atomic_write_bytes, readable_json, writable_folder
from bvp.names import METRICS_FILE, MULTIRUN_FILE, OVERRIDES_FILE, SWEEP_FILE

ROOT = Path(__file__).resolve().parents[1]
STUDIES = {  # the parts of each study, in the order they run within a seed
    "mnist": ("mnist_curves", "mnist_objectives", "mnist_random", "mnist_layerwise", "mnist_no_recon", "mnist_structured"),
    "fashion_mnist": ("fashion_mnist_curves",),
    "cifar10": ("cifar10_curves", "cifar10_cnn"),  # CIFAR-10 (JPEG stand-in): jpeg_stand_in=true, never CIFAR-10 results
    "dsprites": ("dsprites_curves",),  # the disentanglement-prunability link (docs/results.md), about 70 CPU-hours
}
# the same shape on a small budget: 2 + 1 epochs of 40 batches, amounts 0 and 0.95, two seeds
QUICK = (
    "epochs=2",
    "finetune_epochs=1",
    "+trainer.limit_train_batches=40",
    "trainer.log_every_n_steps=10",
    "pruning.amount=0,0.95",  # the reference and the primary endpoint drop@95
)
QUICK_SEEDS = (0, 1)


def part_seeds(part: str) -> list[int]:
    """The seeds a part's sweep lists (hydra.sweeper.params.seed of the composed experiment, so a part that
    inherits another's sweep inherits its seeds)."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        config = compose("train", overrides=[f"experiment={part}"], return_hydra_config=True)
    return [int(s) for s in str(config.hydra.sweeper.params.seed).split(",")]


def plan(parts: tuple[str, ...], seeds: dict[str, list[int]]) -> list[tuple[int, str]]:
    """(seed, part) in the order they run: every part's seed s before any part's seed s + 1."""
    return [(s, p) for s in sorted({s for v in seeds.values() for s in v}) for p in parts if s in seeds[p]]


def sweep_started(sweep_dir: Path, since: float) -> bool:
    """Whether a sweep in ``sweep_dir`` launched its jobs at or after ``since``: bvp.sweep.SweepProgress stamps
    sweep.json then, after every check that refuses a sweep as a whole (exit status 2 with no job run)."""
    started = ((readable_json(sweep_dir / SWEEP_FILE) or {}).get("invocation") or {}).get("started")
    return isinstance(started, (int, float)) and started >= since


RECORDS = (METRICS_FILE, OVERRIDES_FILE)  # of each finished run: what bvp-report reads (no checkpoints)
SWEEP_RECORDS = (MULTIRUN_FILE, SWEEP_FILE)  # of each part: its plan and its jobs


def copy_records(root: Path, dest: Path) -> int:
    """Copy every finished run's records (and each part's plan) from ``root`` into ``dest``, same layout,
    atomically, skipping files already there with the same bytes; returns how many runs ``dest`` then holds."""
    files = [p for p in root.rglob(METRICS_FILE) if (readable_json(p) or {}).get("status") == "done"]
    wanted = [run / name for run in (p.parent for p in files) for name in RECORDS]
    wanted += [part / name for part in {p.parent.parent for p in files} for name in SWEEP_RECORDS]
    for src in wanted:
        out = dest / src.relative_to(root)
        if src.is_file() and not (out.is_file() and out.read_bytes() == src.read_bytes()):
            atomic_write_bytes(out, src.read_bytes())
    return sum(1 for p in dest.rglob(METRICS_FILE) if (readable_json(p) or {}).get("status") == "done")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bvp.study", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("study", choices=sorted(STUDIES))
    parser.add_argument("--quick", action="store_true", help="2 + 1 epochs, amounts 0 and 0.95, seeds 0-1")
    parser.add_argument("--root", default=None, help="where the parts' sweeps go (default outputs/study[-quick]/<study>)")
    parser.add_argument(
        "--records", type=writable_folder, default=None, help="copy the finished runs' records here instead of running"
    )
    parser.add_argument("overrides", nargs="*", default=[], help="extra Hydra overrides for every run, e.g. trainer=gpu")
    args = parser.parse_intermixed_args(argv)  # options and overrides in any order (make study-quick ARGS=...)
    parts = STUDIES[args.study]
    seeds = {p: [s for s in part_seeds(p) if not args.quick or s in QUICK_SEEDS] for p in parts}
    root = Path(args.root or f"outputs/{'study-quick' if args.quick else 'study'}/{args.study}")
    if args.records is not None:
        if not any(root.rglob(METRICS_FILE)):
            parser.error(f"--root={root}: no run records under it; give the study's folder, e.g. outputs/study/mnist")
        print(f"study: {copy_records(root, args.records)} finished runs in {args.records}", file=sys.stderr)
        return 0
    failed = []
    for seed, part in plan(parts, seeds):
        cmd = [sys.executable, str(ROOT / "train.py"), "-m", f"experiment={part}", f"seed={seed}"]
        sweep_dir = root / part.removeprefix(args.study + "_")
        cmd += [f"hydra.sweep.dir={sweep_dir}", *(QUICK if args.quick else ()), *args.overrides]
        print(f"study: {part} seed={seed}", file=sys.stderr, flush=True)
        launched = time.time()
        status = subprocess.run(cmd).returncode
        if status == 2 and not sweep_started(sweep_dir, launched):  # refused before any job: so would every other be
            print(f"study: {part} seed={seed} was refused (above); nothing more is started", file=sys.stderr)
            return 2
        if status != 0:  # a failed job fails its sweep alone; the others go on
            failed.append(f"{part} seed={seed}")
    if failed:
        print(f"study: sweeps with failed jobs (re-run to retry them): {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
