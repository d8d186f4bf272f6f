"""Real Hydra multiruns (subprocesses of train.py -m) on tiny data: isolation of failures, resuming
a sweep, the parallel joblib launcher, and the report built from the result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bvp.report import report
from bvp.resolvers import canonical_number, folder_name, job_key

ROOT = Path(__file__).resolve().parents[1]
GRID = ["beta=1,10", "seed=0,1"]
TINY_EXPERIMENT = """# @package _global_
epochs: 1
finetune_epochs: 1
batch_size: 32
latent_dim: 4
dataset: {val_size: 64, eval_batch_size: 64}
model:
  net: {hidden_dim: 32, width: 8, head_dim: 16}
trainer: {enable_progress_bar: false}
"""


@pytest.fixture
def tiny_experiment(tmp_path: Path) -> Path:
    """A test-only experiment=tiny in an extra config dir (experiment is left out of run folder names)."""
    folder = tmp_path / "extra_conf" / "experiment"
    folder.mkdir(parents=True)
    (folder / "tiny.yaml").write_text(TINY_EXPERIMENT)
    return folder.parent


def sweep(sweep_dir: Path, data: Path, extra_conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "train.py", "-m", f"--config-dir={extra_conf}", "experiment=tiny", f"data_dir={data}"]
    cmd += [f"hydra.sweep.dir={sweep_dir}", f"cache_dir={sweep_dir.parent / 'dense_cache'}", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *[("1", "1"), ("1.0", "1"), ("1e1", "10"), ("0.50", "0.5"), ("-2.0", "-2"), ("1e-07", "1e-07"), ("0x10", "0x10")],
        *[("inf", "inf"), ("nan", "nan"), ("beta_vae", "beta_vae"), ("true", "true"), ("[1,2]", "[1,2]"), ("", "")],
        *[("007", "007"), ("9007199254740993", "9007199254740993"), ("'1.0'", "'1.0'")],  # Hydra: a string, an int
    ],
)
def test_a_number_is_written_one_way_and_anything_else_as_it_is(text: str, expected: str) -> None:
    assert canonical_number(text) == expected


def test_run_folders_and_jobs_are_the_same_however_their_numbers_are_written() -> None:
    assert folder_name("dataset=mnist", "beta=1.0", "seed=0", "") == "dataset=mnist,beta=1,seed=0"
    assert folder_name("pruning.amount=0.50,model.cls_weight=1e1,pruning=none") == (
        "pruning.amount=0.5,model.cls_weight=10,pruning=none"
    )
    assert job_key(["seed=0", "beta=10.0"]) == job_key(["beta=10", "seed=0"]) != job_key(["beta=1", "seed=0"])


def records(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep_dir.glob("*/metrics.json")}


def test_failed_job_is_isolated_listed_and_a_rerun_finishes_only_what_is_left(
    mnist_root: Path, tmp_path: Path, tiny_experiment: Path
) -> None:
    out = tmp_path / "sweep"
    broken = out / "dataset=mnist,model=beta_vae,beta=10,seed=1" / "checkpoints" / "last.ckpt"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a checkpoint")  # this job would resume from it: it is refused, saying what to do

    first = sweep(out, mnist_root, tiny_experiment, *GRID)
    runs = records(out)
    assert sorted(runs) == [
        "dataset=mnist,model=beta_vae,beta=1,seed=0",
        "dataset=mnist,model=beta_vae,beta=1,seed=1",
        "dataset=mnist,model=beta_vae,beta=10,seed=0",
    ]
    assert [r["status"] for r in runs.values()].count("done") == 3
    (refused,) = json.loads((out / "sweep.json").read_text())["refused"]
    (line,) = refused["errors"]
    assert line.startswith(f"{broken}: not a Lightning checkpoint (") and line.endswith(
        "; delete it to train this run from the start"
    )
    assert "sweep: 100%" in first.stderr and "4/4" in first.stderr  # the progress bar
    console = (first.stdout + first.stderr).splitlines()  # one line per job, not one per epoch
    assert not [line for line in console if line.startswith("epoch ") or ("it/s]" in line and "sweep" not in line)]
    assert "Traceback" not in first.stdout + first.stderr and "[done: 3, refused: 1]" in first.stderr

    result = report(out, resamples=200)
    summary = (result["out_dir"] / "summary.md").read_text()
    assert "## Refused runs (1)" in summary and "delete it to train this run from the start" in summary
    assert result["done"] == 3 and result["missing"] == 0

    stamps = {name: (out / name / "metrics.json").stat().st_mtime_ns for name, r in runs.items() if r["status"] == "done"}
    broken.unlink()
    second = sweep(out, mnist_root, tiny_experiment, "beta=1.0,1,1e1", "seed=0,1")  # the same numbers, written otherwise
    assert second.returncode == 0, second.stderr[-2000:]
    assert len(records(out)) == 4 and all(r["status"] == "done" for r in records(out).values())
    assert all((out / name / "metrics.json").stat().st_mtime_ns == t for name, t in stamps.items())  # skipped
    assert len(json.loads((out / "sweep.json").read_text())["jobs"]) == 4  # one job each, however it was written
    # the bar's rate is this invocation's: 3 runs finished before it, none yet at its start (not 3 since the first)
    assert json.loads((out / "sweep.json").read_text())["invocation"]["finished"] == 3
    assert "3/4 [00:00<?, ?it/s]" in second.stderr
    again = report(out, resamples=200)
    assert again["done"] == 4 and again["missing"] == 0


def test_joblib_launcher_runs_two_jobs_in_parallel_on_cpu(mnist_root: Path, tmp_path: Path, tiny_experiment: Path) -> None:
    out = tmp_path / "parallel"
    args = ("seed=0,1", "epochs=10", "pruning=none", "hydra/launcher=gpus", "launch.jobs_per_gpu=2")  # long enough to overlap
    done = sweep(out, mnist_root, tiny_experiment, *args)
    assert done.returncode == 0, done.stderr[-2000:]
    procs = [r["process"] for r in records(out).values()]
    assert len(procs) == 2 and procs[0]["pid"] != procs[1]["pid"]
    (a, b) = sorted(procs, key=lambda p: p["started"])
    assert b["started"] < a["ended"]  # the second job started before the first one ended


def test_sweep_with_ddp_devices_is_refused_before_training(mnist_root: Path, tmp_path: Path, tiny_experiment: Path) -> None:
    out = tmp_path / "ddp"
    done = sweep(out, mnist_root, tiny_experiment, "seed=0", "trainer.devices=2")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (refused,) = json.loads((out / "sweep.json").read_text())["refused"]
    (line,) = refused["errors"]
    assert line.startswith("trainer.devices=2: ") and "hydra/launcher=gpus" in line
    assert f"error: {line}" in done.stderr.splitlines()
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["multirun.yaml", "sweep.json"]  # no job folder


def test_a_bad_value_anywhere_in_a_sweep_is_refused_before_its_first_job(
    mnist_root: Path, tmp_path: Path, tiny_experiment: Path
) -> None:
    """beta=inf as the last value, a group option that does not exist, two values that do not go together (the
    last job only): one error line each, before any job runs or any folder is made, instead of a refusal (or a
    crash of the whole sweep) hours in."""
    out = tmp_path / "bad"
    pair = ("model.cls_weight=1,0", "pruning=none,l1_unstructured")  # cls_weight=0 is refused with pruning only
    done = sweep(out, mnist_root, tiny_experiment, "beta=1,3,inf", "seed=0,1", "dataset=mnist,mnst", *pair)
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr
    assert sorted(line for line in done.stderr.splitlines() if line.startswith("error: ")) == [
        "error: beta=inf: must be a finite number >= 0, e.g. beta=4",
        "error: dataset=mnst: no such option in conf/dataset/, choose one of "
        + ", ".join(sorted(p.stem for p in (ROOT / "conf" / "dataset").glob("*.yaml"))),
        "error: model.cls_weight=0: a plain beta-VAE trains no classifier, and the fine-tuning after pruning "
        "(cls_weight * CE) would train nothing; give model.cls_weight > 0, or pruning=none",
    ]
    assert not out.exists()


def test_a_data_set_missing_from_a_sweep_is_refused_before_the_others_train(
    mnist_root: Path, tmp_path: Path, tiny_experiment: Path
) -> None:
    """dataset=mnist,cifar10_jpeg where only MNIST is on disk: the missing data is one error line before any job
    runs, not refused CIFAR-10 jobs after the MNIST ones have trained (the stand-in: no network is tried)."""
    out = tmp_path / "nodata"
    done = sweep(out, mnist_root, tiny_experiment, "seed=0", "dataset=mnist,cifar10_jpeg")
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert line.startswith("error: dataset.jpeg_stand_in=true: no decoded CIFAR-10 (JPEG stand-in) batches in ")
    assert str(mnist_root / "cifar10-jpeg-stand-in") in line
    assert not out.exists()


def test_parallel_launch_with_no_jobs_is_refused_before_the_sweep_starts(mnist_root: Path, tmp_path: Path, tiny_experiment: Path):
    out = tmp_path / "nojobs"
    done = sweep(out, mnist_root, tiny_experiment, "seed=0", "hydra/launcher=gpus", "launch.gpus=0")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == ["error: launch.gpus=0: must be an integer >= 1, e.g. launch.gpus=4"]
    assert not out.exists()


def test_a_slurm_sweep_off_a_cluster_is_refused_in_one_line(monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    """submitit fails with a traceback where srun is missing; the sweep check says so first, before sweep.json."""
    import shutil

    from hydra import compose, initialize_config_dir

    from bvp.sweep import SweepCheck
    from tests.conftest import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SystemExit) as stop:
        SweepCheck().on_multirun_start(cfg)
    assert stop.value.code == 2
    assert (
        capsys.readouterr().err
        == "error: hydra/launcher=slurm: no SLURM here (srun is not on PATH); sweep from a SLURM login node, or drop it\n"
    )


def test_a_single_run_of_a_config_that_lists_a_sweep_says_to_add_m() -> None:
    """train.py experiment=quick (no -m) runs one job of its sweep: the run warns, a plain run does not."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict

    from bvp.sweep import unlaunched_sweep
    from tests.conftest import CONF

    said, previous = [], HydraConfig.instance().cfg
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            for overrides in (["experiment=quick"], []):
                cfg = compose("train", overrides=overrides, return_hydra_config=True)
                with open_dict(cfg):
                    cfg.hydra.mode = RunMode.RUN
                HydraConfig.instance().set_config(cfg)
                said.append(unlaunched_sweep())
    finally:
        HydraConfig.instance().cfg = previous  # other tests run outside Hydra
    assert said[0] is not None and "sweep over beta, seed" in said[0] and "add -m" in said[0]
    assert said[1] is None
