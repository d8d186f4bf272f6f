"""The schema, broken as a user would break it: every leaf key of the composed config of every option of every
group in conf/ gets values of the wrong kind, and each must be refused, naming its key, by check_config (what
``Parts`` runs before any part is built), without writing anything. In process: one compose per option, then
each case is a command-line override applied to a copy, as Hydra applies it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import _locate
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from bvp.config import OutputFolders, Schema, _is_part, _leaves, _parts, check_config, settings_of, user_key
from bvp.identity import dense_identity, run_identity
from bvp.io import atomic_write_json
from bvp.names import METRICS_FILE
from bvp.pruning.branch import DenseCache
from bvp.report.main import main as report_main
from bvp.rules import Boolean, Choice, ConfigError, Derived, Integer, Integers, Number, PathName, Spec, Subset, Text
from bvp.trainer import Batches, Devices
from tests.conftest import CONF
from tests.test_config import LINE

GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra")

# values of the wrong kind for a key of each spec: a string for a number, a list for a scalar, nan/inf/-inf for a
# float, a negative for a count, an unknown choice (as typed on the command line)
WRONG: dict[type[Spec], tuple[str, ...]] = {
    Integer: ("abc", "[1,2]", "1.5", "nan", "-7", "true"),
    Number: ("abc", "[0.5,0.9]", "nan", "inf", "-inf", "true"),
    Boolean: ("maybe", "2", "[true]"),
    Choice: ("no_such_choice", "[a,b]", "1.5"),
    Subset: ("encoder", "[]", "[encoder,no_such_part]", "[head,head]", "5"),
    Integers: ("abc", "5", "[]", "[32,0]", "[32,1.5]", "[a,b]", "[true]"),
    PathName: ("''", "5", "[a,b]"),
    Text: ("1.5", "[a,b]"),
    Devices: ("abc", "0", "-7", "1.5", "[0,0]"),
    Batches: ("abc", "-7", "1.5", "[1,2]"),
}


def compose_all(tmp_path: Path) -> dict[str, DictConfig]:
    """The composed config of each option of each group (the others at their defaults), writing under tmp_path."""
    fixed = [f"output_dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'cache'}", f"data_dir={tmp_path / 'data'}"]
    configs = {}
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for group in GROUPS:
            for option in sorted(p.stem for p in (CONF / group).glob("*.yaml")):
                configs[f"{group}={option}"] = compose("train", overrides=[f"{group}={option}", *fixed])
    return configs


def spec_of(cfg: DictConfig, specs: dict[str, Spec], key: str) -> Spec | None:
    """``key``'s own spec, or that of a key that copies it (model.beta is ${beta})."""
    return specs.get(key) or next((s for k, s in specs.items() if user_key(cfg, k) == key), None)


def cases(configs: dict[str, DictConfig]) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(option, override, the key its error must name) for every leaf key and wrong value, each (key, spec) once;
    and the leaf keys that have no spec at all."""
    out, seen, undeclared = [], set(), []
    for option, cfg in configs.items():
        specs = Schema(cfg).specs
        for key in _leaves(cfg):
            name = key.rsplit(".", 1)[-1]
            if name == "_partial_":
                continue
            if name == "_target_":
                spec, wrong = None, ("no.such.Target",)
            elif (spec := spec_of(cfg, specs, key)) is None:
                undeclared.append(f"{option}: {key}")
                continue
            else:
                wrong = WRONG[type(spec)]  # a KeyError: a new kind of Spec, give it its wrong values here
            if (key, spec) not in seen:
                seen.add((key, spec))
                out += [(option, f"{key}={value}", key) for value in wrong]
        for part in (p for outer in _parts(cfg) for p in nested(cfg, outer)):  # and the settings bvp derives
            for setting, spec in settings_of(_locate(OmegaConf.select(cfg, part)._target_)).items():
                if isinstance(spec, Derived) and (f"{part}.{setting}", spec) not in seen:
                    seen.add((f"{part}.{setting}", spec))
                    out.append((option, f"++{part}.{setting}=1", f"{part}.{setting}"))
    return out, undeclared


def nested(cfg: DictConfig, key: str) -> list[str]:
    """``key`` and the keys of the parts inside it (model: model, model.net, model.optimizer)."""
    node = OmegaConf.select(cfg, key)
    return [key] + [k for child in node if _is_part(node._get_node(child)) for k in nested(cfg, f"{key}.{child}")]


def test_every_wrong_value_of_every_key_is_refused_naming_it(tmp_path: Path) -> None:
    configs = compose_all(tmp_path)
    for cfg in configs.values():
        check_config(cfg)  # each option as it is: a refusal below is the wrong value's
    tried, undeclared = cases(configs)
    assert not undeclared, f"keys with no declared spec (bvp.rules.Spec in SETTINGS, or TOP_LEVEL): {undeclared}"
    parser, missed = OverridesParser.create(), []
    for option, override, named in tried:
        cfg = copy.deepcopy(configs[option])
        ConfigLoaderImpl._apply_overrides_to_config(parser.parse_overrides([override]), cfg)
        try:
            check_config(cfg)
        except ConfigError as err:  # anything else fails the test with its traceback
            lines = err.errors
            if not any(line.startswith(f"{named}=") for line in lines) or not all(LINE.match(x) for x in lines):
                missed.append(f"{option} {override}: {lines}")
        else:
            missed.append(f"{option} {override}: accepted")
    assert not missed, "\n".join(missed)
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    """A file where a folder is wanted: nothing can be created under it, whoever runs the tests (root too)."""
    path = tmp_path / "a_file"
    path.write_text("not a folder")
    return path


def test_folders_that_cannot_be_created_are_refused_naming_them(make_cfg, a_file: Path) -> None:
    with pytest.raises(ConfigError) as err:
        check_config(make_cfg(f"output_dir={a_file / 'run'}", f"cache_dir={a_file}"))
    assert err.value.errors == [
        f"output_dir='{a_file / 'run'}': cannot be created: {a_file} is a file",
        f"cache_dir='{a_file}': is a file, not a folder",
    ]


def test_a_ckpt_path_that_is_not_a_lightning_checkpoint_is_refused(make_cfg, tmp_path: Path, a_file: Path) -> None:
    plain = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, plain)  # a torch file, but no Lightning checkpoint
    for path, why in (
        (a_file, "not a Lightning checkpoint (UnpicklingError: "),
        (plain, "not a Lightning checkpoint (it holds"),
        (tmp_path, "is a folder, not a checkpoint file"),
    ):
        with pytest.raises(ConfigError) as err:
            check_config(make_cfg(f"ckpt_path={path}"))
        (line,) = err.value.errors
        assert line.startswith(f"ckpt_path='{path}': {why}") and line.endswith("; give the path of a last.ckpt"), line
    lightning = tmp_path / "old" / "checkpoints" / "last.ckpt"  # what Lightning's checkpoints hold at least
    lightning.parent.mkdir(parents=True)
    torch.save({"state_dict": {"weight": torch.zeros(2)}, "pytorch-lightning_version": "2.6.6", "epoch": 0}, lightning)
    atomic_write_json(tmp_path / "old" / METRICS_FILE, {"identity": run_identity(make_cfg())})  # the run that wrote it
    check_config(make_cfg(f"ckpt_path={lightning}"))


def test_a_ckpt_path_of_another_run_or_of_no_run_is_refused(make_cfg, tmp_path: Path) -> None:
    """Resuming another run's checkpoint would record its training under these settings (model=cnn, say)."""
    ckpt = tmp_path / "old" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, "pytorch-lightning_version": "2.6.6", "epoch": 0}, ckpt)
    with pytest.raises(ConfigError) as err:
        check_config(make_cfg(f"ckpt_path={ckpt}"))
    (line,) = err.value.errors
    assert line.startswith(f"ckpt_path='{ckpt}': no metrics.json with the run's identity beside its checkpoints/"), line
    atomic_write_json(tmp_path / "old" / METRICS_FILE, {"identity": run_identity(make_cfg("beta=4"))})
    with pytest.raises(ConfigError) as err:
        check_config(make_cfg(f"ckpt_path={ckpt}", "seed=3"))
    assert err.value.errors == [
        f"ckpt_path='{ckpt}': another run's checkpoint (beta=1 here, 4 there; seed=3 here, 0 there); "
        "give that run's settings, or drop ckpt_path"
    ]


def test_a_number_written_otherwise_is_the_same_run_and_the_same_dense_model(make_cfg, tmp_path: Path) -> None:
    """beta=1 typed and the default beta: 1.0 are one run: one identity and one dense-cache entry (no retraining)."""
    default, typed = run_identity(make_cfg()), run_identity(make_cfg("beta=1", "lr=0.001", "model.cls_weight=1e1"))
    assert default == typed and default["beta"] == 1 and isinstance(default["beta"], int)
    assert run_identity(make_cfg("beta=0.5"))["beta"] == 0.5
    assert DenseCache(tmp_path, dense_identity(default, 30)).key == DenseCache(tmp_path, dense_identity(typed, 30)).key


def test_a_key_that_nothing_reads_is_refused_with_the_nearest_setting(make_cfg) -> None:
    """Hydra's hint for a misspelled key (+betta=3) would otherwise run beta=1 with betta=3 in its identity."""
    with pytest.raises(ConfigError) as err:
        check_config(make_cfg("+betta=3", "+callbacks.bogus=1"))
    betta, bogus = sorted(err.value.errors)
    assert betta == "betta=3: not a setting of bvp (nothing reads it); did you mean beta?"
    assert bogus.startswith("callbacks.bogus=1: not a setting of bvp (nothing reads it); the settings outside the parts")
    check_config(make_cfg("callbacks.epoch_line=null"))  # a callback switched off is no setting of its own


def test_a_run_or_sweep_folder_that_cannot_be_created_exits_with_one_line(
    a_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hydra calls this callback before it makes the folder, and turns an exception into a warning: it exits."""
    config = OmegaConf.create({"hydra": {"run": {"dir": str(a_file / "run")}, "sweep": {"dir": str(a_file)}}})
    for start, line in (
        (OutputFolders().on_run_start, f"error: hydra.run.dir='{a_file / 'run'}': cannot be created: {a_file} is a file"),
        (OutputFolders().on_multirun_start, f"error: hydra.sweep.dir='{a_file}': is a file, not a folder"),
    ):
        with pytest.raises(SystemExit) as done:
            start(config=config)
        assert done.value.code == 2 and capsys.readouterr().err.splitlines() == [line]


def test_a_report_folder_that_cannot_be_created_is_refused_before_reading(
    a_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        report_main([str(tmp_path), "--out", str(a_file / "report")])
    assert done.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"bvp-report: error: argument --out: {a_file / 'report'}: cannot be created: {a_file} is a file"
    )
