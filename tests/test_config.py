"""Config tree: every combination composes and builds; bad input fails before training, naming the key."""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException
from hydra.utils import instantiate

from bvp.config import ConfigError, check_config, command_line_errors
from bvp.run import build, prepare, train
from tests.conftest import CONF, TINY

ROOT = CONF.parent

GROUPS = {g: sorted(p.stem for p in (CONF / g).glob("*.yaml")) for g in ("dataset", "model", "pruning", "trainer")}


@pytest.mark.parametrize("combo", list(itertools.product(*GROUPS.values())), ids=lambda c: "-".join(c))
def test_every_combination_composes_and_builds(combo: tuple[str, ...], tmp_path: Path) -> None:
    overrides = [f"{g}={o}" for g, o in zip(GROUPS, combo, strict=True)] + [f"output_dir={tmp_path}", "trainer.accelerator=cpu"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    check_config(cfg)
    dm, module, trainer = build(cfg)
    assert module.net.in_shape == dm.shape
    assert (module.net.decoder is not None) == (combo[1] == "beta_vae")
    pruned = combo[2] != "none"
    window = cfg.pruning.steps * cfg.pruning.step_epochs if pruned else 0  # gradual pruning's window after the branch
    assert trainer.max_epochs == (cfg.pruning.prune_epoch + window + cfg.pruning.finetune_epochs if pruned else cfg.epochs)
    assert any(type(cb).__name__ == "DecoderStripPruning" for cb in trainer.callbacks) == pruned


def test_experiment_configs_compose(tmp_path: Path) -> None:
    experiments = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
    assert {"paper", "quick"} <= set(experiments)
    for exp in experiments:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("train", overrides=[f"experiment={exp}", f"output_dir={tmp_path}"])
        check_config(cfg)
        instantiate(cfg.dataset)


@pytest.mark.parametrize("group", ["dataset", "model"])
def test_unknown_choice_lists_the_valid_ones(group: str) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"), pytest.raises(MissingConfigException) as err:
        compose("train", overrides=[f"{group}=imagenet"])
    assert all(option in str(err.value) for option in GROUPS[group])


# Bad settings over every group, as a user would type them: (override, the key=value its error names).
# Every one is refused before anything is written, with a line naming its key (a top-level key that a group
# copies, such as batch_size, is named as typed).
BAD = [
    # dataset
    ("dataset.batch_size=0", "dataset.batch_size=0"),
    ("batch_size=-5", "batch_size=-5"),
    ("batch_size=abc", "batch_size='abc'"),
    ("batch_size=1.5", "batch_size=1.5"),
    ("dataset.eval_batch_size=0", "dataset.eval_batch_size=0"),
    ("dataset.val_size=0", "dataset.val_size=0"),
    ("dataset.val_size=-3", "dataset.val_size=-3"),
    ("dataset.val_size=999999", "dataset.val_size=999999"),  # against the data's size, known after loading it
    ("dataset.seed=-1", "dataset.seed=-1"),
    ("dataset.crop_padding=-2", "dataset.crop_padding=-2"),
    ("dataset.crop_padding=40", "dataset.crop_padding=40"),
    ("dataset.hflip=maybe", "dataset.hflip='maybe'"),
    ("data_dir=null", "data_dir=null"),
    ("+dataset.foo=1", "dataset.foo=1"),
    # model
    ("beta=-1", "beta=-1"),
    ("beta=inf", "beta=inf"),
    ("beta=nan", "beta=nan"),
    ("beta=abc", "beta='abc'"),
    ("beta=true", "beta=true"),
    ("model.cls_weight=-0.5", "model.cls_weight=-0.5"),
    ("model.cls_weight=-1", "model.cls_weight=-1"),
    ("model.cls_weight=inf", "model.cls_weight=inf"),
    ("lr=0", "lr=0"),
    ("lr=-1e-3", "lr=-0.001"),
    ("lr=inf", "lr=inf"),
    ("lr=abc", "lr='abc'"),
    ("model.seed=1.5", "model.seed=1.5"),
    ("compile=maybe", "compile='maybe'"),
    ("channels_last=1", "channels_last=1"),
    ("+model.num_images=-1", "model.num_images=-1"),
    ("+model.optimizer.weight_decay=-1", "model.optimizer='Adam'"),
    ("+model.optimizer.momentum=0.9", "model.optimizer.momentum=0.9"),
    # net
    ("latent_dim=0", "latent_dim=0"),
    ("latent_dim=2.5", "latent_dim=2.5"),
    ("model.net.hidden_dim=0", "model.net.hidden_dim=0"),
    ("model.net.width=-1", "model.net.width=-1"),
    ("model.net.head_dim=0", "model.net.head_dim=0"),
    ("+model.net.dropout=0.1", "model.net.dropout=0.1"),
    # trainer
    ("trainer.accelerator=tpux", "trainer.accelerator='tpux'"),
    ("trainer.devices=0", "trainer.devices=0"),
    ("trainer.devices=2", "trainer.devices=2"),  # a second process would find the run locked: a hang, not DDP
    ("trainer.devices=[0,1]", "trainer.devices=[0, 1]"),
    ("trainer.precision=bf17", "trainer.precision='bf17'"),
    ("trainer.check_val_every_n_epoch=0", "trainer.check_val_every_n_epoch=0"),
    ("trainer.log_every_n_steps=0", "trainer.log_every_n_steps=0"),
    ("trainer.num_sanity_val_steps=-2", "trainer.num_sanity_val_steps=-2"),
    ("trainer.deterministic=maybe", "trainer.deterministic='maybe'"),
    ("trainer.enable_model_summary=yes", "trainer.enable_model_summary='yes'"),
    ("+trainer.max_epoch=3", "trainer.max_epoch=3"),
    ("trainer.accelerator=tpu", "trainer.accelerator='tpu'"),  # not on this machine
    ("+trainer.limit_train_batches=0", "trainer.limit_train_batches=0"),  # would train nothing
    ("+trainer.max_steps=3", "trainer.max_steps=3"),  # would end before the branch
    ("+trainer.gradient_clip_val=abc", "trainer.gradient_clip_val='abc'"),
    ("+trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches=0"),
    ("+betta=3", "betta=3"),  # Hydra's hint for a misspelled key: nothing reads it
    # top-level and launch
    ("epochs=0", "epochs=0"),
    ("epochs=abc", "epochs='abc'"),
    ("finetune_epochs=-1", "finetune_epochs=-1"),
    ("seed=-1", "seed=-1"),
    ("seed=abc", "seed='abc'"),
    ("resume=maybe", "resume='maybe'"),
    ("ckpt_path=/nonexistent/last.ckpt", "ckpt_path='/nonexistent/last.ckpt'"),
    ("launch.gpus=0", "launch.gpus=0"),
    ("launch.jobs_per_gpu=0", "launch.jobs_per_gpu=0"),
    ("beta=${nope}", "beta='${nope}'"),
    ("model.net.width=???", "model.net.width='???'"),
    # pruning (its checks: bvp.pruning.callback)
    ("pruning.amount=1.0", "pruning.amount=1.0"),
    ("pruning.prune_epoch=99", "pruning.prune_epoch=99"),
]
LINE = re.compile(r"^[\w.+]+=.+: \S")  # key=value: what to write instead


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never touch the network: a download attempt fails as it does offline."""

    def unreachable(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr("torchvision.datasets.utils.urllib.request.urlopen", unreachable)


@pytest.mark.parametrize(("override", "named"), BAD, ids=[b[0] for b in BAD])
def test_bad_setting_is_refused_naming_its_key_before_anything_is_written(
    override: str, named: str, make_cfg, tmp_path: Path, offline: None
) -> None:
    cfg = make_cfg(override, *([] if override.startswith("pruning.") else ["pruning=none"]))
    with pytest.raises(ConfigError) as err:
        train(cfg)
    assert any(line.startswith(named + ":") for line in err.value.errors), err.value.errors
    assert all(LINE.match(line) and "\n" not in line for line in err.value.errors), err.value.errors
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()  # nothing written


def test_missing_data_is_refused_naming_data_dir(make_cfg, tmp_path: Path, offline: None) -> None:
    with pytest.raises(ConfigError) as err:
        train(make_cfg(f"data_dir={tmp_path / 'nowhere'}", "pruning=none"))
    (line,) = err.value.errors
    assert line.startswith(f"data_dir='{tmp_path / 'nowhere'}': no usable MNIST files") and "network unreachable" in line
    assert not (tmp_path / "run").exists() and not (tmp_path / "nowhere").exists()  # not even the download's folders


def test_a_refused_run_prints_its_error_alone_and_an_accepted_one_its_device_lines(
    make_cfg, tmp_path: Path, offline: None
) -> None:
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("lightning.pytorch").addHandler(handler)
    try:
        with pytest.raises(ConfigError):
            prepare(make_cfg(f"data_dir={tmp_path / 'nowhere'}", "pruning=none"), tmp_path)
        assert not any("GPU available" in line for line in lines), lines  # held back, then dropped with the run
        prepare(make_cfg("pruning=none"), tmp_path)
        assert any(line.startswith("GPU available") for line in lines), lines  # shown once the checks passed
    finally:
        logging.getLogger("lightning.pytorch").removeHandler(handler)


def test_every_bad_key_of_every_part_is_reported_at_once(make_cfg) -> None:
    expected = {  # a bad key in each part; epochs=0 also makes pruning.prune_epoch (${epochs}) bad: one line, as typed
        "epochs": "0",
        "launch.gpus": "0",
        "pruning.amount": "2",
        "dataset.batch_size": "0",
        "latent_dim": "0",
        "beta": "inf",
        "lr": "-1",
        "+callbacks.model_checkpoint.every": "1",
        "trainer.precision": "bf17",
    }
    with pytest.raises(ConfigError) as err:
        build(make_cfg(*(f"{k}={v}" for k, v in expected.items())))
    keys = [line.split("=", 1)[0] for line in err.value.errors]
    assert sorted(keys) == sorted(k.lstrip("+") for k in expected), err.value.errors


def test_values_that_do_not_resolve_are_refused_where_they_are_written(make_cfg) -> None:
    with pytest.raises(ConfigError) as err:
        build(make_cfg("beta=${nope}", "model.net.width=???", "dataset.batch_size=0"))
    assert err.value.errors == [  # model.beta copies beta: one line, at beta; the others wait for these
        "beta='${nope}': Interpolation key 'nope' not found",
        "model.net.width='???': must be given a value, e.g. model.net.width=...",
    ]


def test_errors_name_the_key_as_typed_and_its_example_too(make_cfg) -> None:
    with pytest.raises(ConfigError) as err:
        build(make_cfg("batch_size=0", "model.net.width=0", "pruning=none"))
    assert err.value.errors == [
        "batch_size=0: must be an integer >= 1, e.g. batch_size=128",
        "model.net.width=0: must be an integer >= 1, e.g. model.net.width=32",
    ]


def test_config_error_survives_a_launcher_worker() -> None:
    """joblib/submitit hand a job's exception back pickled: every line must come back, and the subclass."""
    from bvp.data import DataNotFoundError

    for err in (ConfigError(["a=1: must be b", "c=2: must be d"]), DataNotFoundError("data_dir='x': no files")):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and back.errors == err.errors


# -- train.py as a user runs it ---------------------------------------------------------------------------------
def train_py(tmp_path: Path, data: Path, *overrides: str, run_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    run_dir = run_dir or tmp_path / "run"
    args = [*TINY, f"data_dir={data}", f"hydra.run.dir={run_dir}", f"cache_dir={tmp_path / 'cache'}", *overrides]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def test_train_py_prints_one_error_line_per_bad_key_and_exits_2(mnist_root: Path, tmp_path: Path) -> None:
    done = train_py(tmp_path, mnist_root, "pruning=none", "beta=inf", "dataset.batch_size=0", "trainer.devices=0")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        "error: dataset.batch_size=0: must be an integer >= 1, e.g. dataset.batch_size=128",
        "error: beta=inf: must be a finite number >= 0, e.g. beta=4",
        "error: trainer.devices=0: must be a count >= 1, -1 or auto (all), or a list of device indices, e.g. trainer.devices=1",
    ]
    assert not (tmp_path / "run").exists()  # Hydra made it (with .hydra/ and train.log) before any check: removed


def test_a_refused_run_removes_the_empty_folders_hydra_made_above_it(mnist_root: Path, tmp_path: Path) -> None:
    """hydra.run.dir=outputs/runs/<date>/<time>: the <date> (and outputs/runs) Hydra made go too; a folder that
    was there before stays."""
    (tmp_path / "mine").mkdir()
    done = train_py(tmp_path, mnist_root, "beta=inf", run_dir=tmp_path / "mine" / "runs" / "day" / "time")
    assert done.returncode == 2 and done.stderr.startswith("error: beta=inf")
    assert (tmp_path / "mine").is_dir() and not any((tmp_path / "mine").iterdir())


@pytest.mark.parametrize(
    ("override", "line"),
    [
        ("dataset=imagenet", "error: dataset=imagenet: no such option in conf/dataset/, choose one of cifar10, "),
        ("beta=[1", "error: beta=[1: cannot be parsed ("),
        ("nosuchkey=1", "error: nosuchkey=1: nosuchkey is not a key of the config (python train.py --cfg job shows them)"),
        (
            "trainer.gradient_clip_val=1",
            "error: trainer.gradient_clip_val=1: trainer.gradient_clip_val is not in the "
            "config yet; write +trainer.gradient_clip_val=1 to add it",
        ),
    ],
    ids=["unknown-option", "unparsable", "unknown-key", "trainer-flag-without-plus"],
)
def test_train_py_turns_hydra_command_line_errors_into_one_line(
    override: str, line: str, mnist_root: Path, tmp_path: Path
) -> None:
    done = train_py(tmp_path, mnist_root, override)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (printed,) = done.stderr.splitlines()
    assert printed.startswith(line)


def test_train_py_reports_every_bad_override_of_a_run_at_once(mnist_root: Path, tmp_path: Path) -> None:
    """Hydra stops at the first override it cannot compose; the run's command line is checked override by
    override, so an unknown option, a misspelt key (with the closest real one) and a bad value all show in one try."""
    done = train_py(tmp_path, mnist_root, "dataset=mnst", "prunning.amount=0.5", "beta=inf")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.splitlines() == [
        "error: dataset=mnst: no such option in conf/dataset/, choose one of cifar10, cifar10_jpeg, dsprites, "
        "fashion_mnist, mnist",
        "error: prunning.amount=0.5: prunning.amount is not a key of the config; did you mean pruning.amount?",
        "error: beta=inf: must be a finite number >= 0, e.g. beta=4",
    ]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("overrides", "lines"),
    [  # Hydra picks group options and experiments before it sets keys, wherever they stand on the command line
        ("trainer.limit_train_batches=5 debug=fast epochs=abc", ["epochs='abc': must be an integer >= 1, e.g. epochs=30"]),
        ("dataset.train_size=10 dataset=dsprites beta=-1", ["beta=-1: must be a finite number >= 0, e.g. beta=4"]),
        (
            "model.recon_weight=0 model=cnn",
            ["model.recon_weight=0: model.recon_weight is not a key of the config; did you mean model.cls_weight?"],
        ),
        ("logger.nmae=x", ["logger.nmae=x: logger.nmae is not a key of the config; did you mean logger.name?"]),
        (  # a Trainer flag is added with +, whatever its value (a bad one is refused on the next try)
            "trainer.gradient_clip_val=-1",
            [
                "trainer.gradient_clip_val=-1: trainer.gradient_clip_val is not in the config yet; write "
                "+trainer.gradient_clip_val=-1 to add it"
            ],
        ),
    ],
    ids=["key-of-a-later-debug-file", "key-of-a-later-group-option", "key-the-later-option-lacks", "misspelt", "trainer-flag"],
)
def test_command_line_errors_read_the_command_line_as_hydra_does(overrides: str, lines: list[str]) -> None:
    assert command_line_errors(CONF, "train", overrides.split()) == lines


def test_train_py_keeps_the_traceback_of_a_crash(mnist_root: Path, tmp_path: Path) -> None:
    done = train_py(tmp_path, mnist_root, "pruning=none", "+callbacks.crash._target_=helpers.CrashAt", "+callbacks.crash.epoch=0")
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "RuntimeError: simulated crash at epoch 0" in done.stderr
    assert "error: " not in done.stderr


def test_train_py_refuses_wrong_types_and_derived_trainer_keys_in_one_line_each(mnist_root: Path, tmp_path: Path) -> None:
    """Each of these reached an interpolation, a constructor or bvp's own arithmetic before its check, or was
    overruled without a word (trainer.max_epochs): now the schema refuses them before anything is built."""
    bad = ["epochs=abc", "pruning.prune_epoch=abc", "pruning=structured", "pruning.amount=nan", "pruning.finetune_loss=kl"]
    done = train_py(tmp_path, mnist_root, *bad, "pruning.pruning_fn=magic", "++trainer.max_epochs=5")
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr, done.stderr[-2000:]
    keys = [line.removeprefix("error: ").split("=", 1)[0] for line in done.stderr.splitlines()]
    assert keys == [
        "epochs",
        "pruning.prune_epoch",
        "pruning.amount",
        "pruning.finetune_loss",
        "pruning.pruning_fn",
        "trainer.max_epochs",
    ]
    assert "bvp sets this itself, from pruning.prune_epoch + pruning.steps" in done.stderr.splitlines()[-1]
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_train_py_refuses_a_run_folder_that_cannot_be_created(mnist_root: Path, tmp_path: Path) -> None:
    (tmp_path / "run").write_text("a file where the run folder goes")
    done = train_py(tmp_path, mnist_root, f"hydra.run.dir={tmp_path / 'run' / 'job'}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"error: hydra.run.dir='{tmp_path / 'run' / 'job'}': cannot be created: {tmp_path / 'run'} is a file"
    ]


def test_train_py_refuses_a_ckpt_path_that_is_not_a_checkpoint_before_writing(mnist_root: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"not a checkpoint")
    done = train_py(tmp_path, mnist_root, "pruning=none", f"ckpt_path={ckpt}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: ckpt_path='{ckpt}': not a Lightning checkpoint (")
    assert not (tmp_path / "run").exists()  # no metrics.json, no TensorBoard file


def test_a_sweeps_unknown_key_gets_the_closest_key_as_a_single_runs_does() -> None:
    """Hydra's advice for a key not in the config is +key=value, which the schema then refuses for a typo."""
    from bvp.config import sweep_key_lines

    typo = "prunning.amount=0.5: " + (
        "prunning.amount is not a key of the config (--cfg job lists them; a new one: +prunning.amount=0.5)"
    )
    other = "beta=1,inf: something else"
    overrides = ["-m", "beta=1,3", "model=cnn", "prunning.amount=0.5"]
    assert sweep_key_lines(CONF, "train", overrides, [typo, other]) == [
        "prunning.amount=0.5: prunning.amount is not a key of the config; did you mean pruning.amount?",
        other,
    ]
