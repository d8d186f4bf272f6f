"""The docs stay true to the code. Every config key, group option and make target that README.md and docs/*.md
name exists; every option in conf/ is in the group tables; every `python train.py` command in a fenced block
composes, as `--cfg job` would (Hydra's compose API, in-process: nothing trains); relative links resolve."""

from __future__ import annotations

import inspect
import re
import shlex
from functools import cache
from pathlib import Path

import lightning.pytorch as L
import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import bvp  # noqa: F401  (registers the ${mul:...} and ${join:...} resolvers of conf/)
from bvp.report.collect import records_digest
from bvp.sweep import sweep_jobs

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
CONFIGURATION = ROOT / "docs" / "configuration.md"
HYDRA_OWN = {"hydra/launcher": {"basic", "joblib", "submitit_local", "submitit_slurm"}, "hydra/help": {"default"}}
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
SET_BY_BVP = {"trainer.max_epochs", "trainer.callbacks", "trainer.logger"}  # bvp.run passes these to the Trainer


@cache
def groups() -> dict[str, set[str]]:
    """Every config group of conf/ (``dataset``, ``hydra/launcher``, ...) and its options."""
    out: dict[str, set[str]] = {}
    for path in CONF.rglob("*.yaml"):
        if path.parent != CONF:
            out.setdefault(path.parent.relative_to(CONF).as_posix(), set()).add(path.stem)
    return out


def _dotted(node: dict, prefix: str) -> set[str]:
    keys = set()
    for key, value in node.items():
        keys.add(f"{prefix}{key}")
        if isinstance(value, dict):
            keys |= _dotted(value, f"{prefix}{key}.")
    return keys


@cache
def config_keys() -> set[str]:
    """Every dotted key that some composition of conf/ has, Hydra's own (``hydra.*``) aside."""
    keys = set()
    for path in CONF.rglob("*.yaml"):
        group = path.parent.relative_to(CONF).as_posix()
        if group.startswith("hydra"):
            continue
        text = path.read_text()
        node = yaml.safe_load(text) or {}
        node.pop("defaults", None)
        prefix = "" if path.parent == CONF or "# @package _global_" in text else group.replace("/", ".") + "."
        keys |= {prefix[:-1]} if prefix else set()
        keys |= _dotted(node, prefix)
    return {k for k in keys if k != "hydra" and not k.startswith("hydra.")}


@cache
def default_keys() -> set[str]:
    """The dotted keys of the default composition: what `+key=value` must not name."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train")
    return _dotted(OmegaConf.to_container(cfg), "")


@cache
def roots() -> set[str]:
    """The first parts of keys that the docs are checked for: the top-level keys and the groups."""
    return {k.split(".")[0] for k in config_keys()} | {g.split("/")[0] for g in groups()}


def texts() -> dict[Path, str]:
    return {path: path.read_text() for path in DOCS}


def fenced(text: str) -> list[str]:
    return FENCE.findall(text)


def spans(text: str) -> list[str]:
    """The inline code spans outside fenced blocks."""
    return SPAN.findall(FENCE.sub("", text))


def tokens(text: str) -> list[str]:
    """Every whitespace-separated word of the code in ``text`` (spans and fenced blocks), quotes stripped; a line
    that quotes a refusal (``error: ...``, as train.py prints it) names a bad setting on purpose and is skipped."""
    lines = [line for c in [*spans(text), *fenced(text)] for line in c.splitlines() if not line.startswith("error: ")]
    return [w.strip("\"'()[],;:") for line in lines for w in line.split()]


def token_problem(token: str) -> str | None:
    """Why a word that names a config key or group option (``pruning.amount``, ``dataset=cifar10``,
    ``+trainer.limit_val_batches=2``) names nothing in conf/; None if it is fine or is not such a word."""
    plus = re.match(r"^(\+\+|\+|~)?", token).group(0)
    body = token[len(plus) :]
    key, eq, value = body.partition("=")
    if not re.fullmatch(r"[a-z_][\w./]*", key) or key.split(".")[0].split("/")[0] not in roots() | {"hydra"}:
        return None  # not a config word: a file name, a Python call, an environment variable, ...
    if key in groups() or "/" in key:  # a group option, or several in a sweep
        if not eq:
            return None
        if "=" in value or value == "...":
            return None  # a run folder's name (dataset=mnist,model=cnn,...), or a placeholder
        known = groups().get(key, set()) | HYDRA_OWN.get(key, set()) | {"null"}
        bad = [v for v in value.split(",") if v and v not in known]
        return f"{token}: no option {', '.join(bad)} in conf/{key}/" if bad else None
    if key == "hydra" or key.startswith("hydra."):
        return None  # Hydra's own config
    if not eq and "." not in key:
        return None  # a bare word such as `beta` is prose
    if plus == "+":
        if key in default_keys():
            return f"{token}: {key} is in the default config, so it takes no '+' (write {body})"
        if key.startswith("trainer.") and key.count(".") == 1:
            named = inspect.signature(L.Trainer).parameters
            return None if key.split(".")[1] in named else f"{token}: not a setting of lightning.pytorch.Trainer"
        return None
    if plus == "++" or key in config_keys() | SET_BY_BVP:
        return None
    return f"{token}: no key {key} in conf/"


def test_every_config_key_and_group_option_the_docs_name_exists() -> None:
    problems = [f"{path.name}: {p}" for path, text in texts().items() for t in tokens(text) if (p := token_problem(t))]
    assert not problems, "\n".join(sorted(set(problems)))


def group_rows(text: str) -> dict[str, set[str]]:
    """The group tables' rows: first cell `group`, second cell the options in backticks."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and (m := re.fullmatch(r"`([\w/]+)`", cells[0])) and m.group(1) in groups():
            rows[m.group(1)] = set(SPAN.findall(cells[1])) - {"null"}
    return rows


@pytest.mark.parametrize("path", [README, CONFIGURATION], ids=lambda p: p.name)
def test_the_group_tables_list_every_option_in_conf(path: Path) -> None:
    rows = group_rows(path.read_text())
    problems = [f"no row for the group {g}" for g in sorted(set(groups()) - set(rows))]
    for group, listed in sorted(rows.items()):
        options = groups()[group]
        problems += [f"{group}: {o} is in conf/{group}/ but not in the table" for o in sorted(options - listed)]
        extra = listed - options - HYDRA_OWN.get(group, set())
        problems += [f"{group}: {o} is in the table but not in conf/{group}/" for o in sorted(extra)]
    assert not problems, "\n".join(problems)


@cache
def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):(?!=)", (ROOT / "Makefile").read_text(), re.M))


def test_every_make_target_the_docs_name_exists() -> None:
    problems = []
    for path, text in texts().items():
        for code in [*spans(text), *fenced(text)]:
            named = re.findall(r"(?:^|[\s`])make ([a-z][\w-]*)", code)
            problems += [f"{path.name}: make {t}" for t in named if t not in make_targets()]
    assert not problems, "no such target in the Makefile:\n" + "\n".join(sorted(set(problems)))


def test_relative_links_resolve() -> None:
    problems = []
    for path, text in texts().items():
        for target in LINK.findall(text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            if not (path.parent / target.split("#")[0]).exists():
                problems.append(f"{path.name}: {target}")
    assert not problems, "links to nothing:\n" + "\n".join(problems)


def train_commands(text: str) -> list[tuple[str, list[str], bool]]:
    """(line, overrides, multirun) of every `python train.py ...` and `make train ARGS=...` in a fenced block."""
    out = []
    for block in fenced(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ")
            try:
                words = shlex.split(line, comments=True)
            except ValueError:  # not a shell line (a quote in output)
                continue
            if words[:2] == ["make", "train"]:
                args = [w for w in words[2:] if w.startswith("ARGS=")]
                words = shlex.split(args[0].removeprefix("ARGS=")) if args else []
            elif len(words) >= 2 and words[0].endswith("python") and words[1] == "train.py":
                words = words[2:]
            else:
                continue
            multirun = "-m" in words or "--multirun" in words
            overrides, skip = [], False
            for w in words:
                if skip or w in ("-m", "--multirun"):
                    skip = False
                    continue
                if w in ("--cfg", "-c", "--package", "-p", "--config-dir", "-cd", "--config-name", "-cn"):
                    skip = True  # an option with a value
                elif not w.startswith("-"):
                    overrides.append(w)
            out.append((line, overrides, multirun))
    return out


def jobs(overrides: list[str], multirun: bool) -> set[tuple[str, ...]]:
    """The first and the last job a command runs (a single run: itself), with an experiment's sweep expanded."""
    swept = sweep_jobs({}, overrides) if multirun else [overrides]
    out = set()
    for job in (swept[0], swept[-1]):
        params = compose_job(tuple(job)).hydra.sweeper.get("params") if multirun else None
        expanded = sweep_jobs(OmegaConf.to_container(params), job) if params else [job]
        out |= {tuple(expanded[0]), tuple(expanded[-1])}
    return out


@cache
def compose_job(overrides: tuple[str, ...]):
    """The job's config as `--cfg job` shows it, every interpolation resolved, and the launcher's too."""
    extra = () if any(o.startswith("output_dir=") for o in overrides) else ("output_dir=outputs/docs-check",)
    cfg = compose("train", overrides=[*overrides, *extra], return_hydra_config=True)
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    OmegaConf.resolve(job)
    OmegaConf.to_container(cfg.hydra.launcher, resolve=True)  # ${mul:...}
    return cfg


def test_every_train_command_in_a_fenced_block_composes() -> None:
    commands = [(path.name, *c) for path, text in texts().items() for c in train_commands(text)]
    assert any(name == README.name for name, *_ in commands), "README.md shows no python train.py command"
    problems = []
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for name, line, overrides, multirun in commands:
            try:
                for job in jobs(overrides, multirun):
                    compose_job(job)
            except Exception as err:
                problems.append(f"{name}: {line}\n    {type(err).__name__}: {' '.join(str(err).split())[:300]}")
    assert not problems, "\n".join(problems)


def test_the_results_page_was_made_from_the_committed_records() -> None:
    """docs/results.md names the digest of the records it was made from: a record added or changed in docs/study
    without the page regenerated fails here, not in a reader's recomputation."""
    digest = records_digest(ROOT / "docs" / "study")
    assert f"digest `{digest}`" in (ROOT / "docs" / "results.md").read_text(), (
        "docs/results.md is stale: regenerate it with "
        "`bvp-report docs/study --results docs/results.md --figures docs/figures --out outputs/report-study`"
    )
