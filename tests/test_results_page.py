"""docs/results.md beyond the primary family: the structured curves (their endpoints, their family of four, cost per
fraction), a part's plan read as Hydra reads it, the claims x data sets table, and the compute per part."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_contrasts import DENSE, FRESH, REFERENCE, fake_study
from test_report import accuracies, write_run

from bvp.io import atomic_write_json
from bvp.report import contrasts as ct
from bvp.report import report, structured
from bvp.report import results as rp
from bvp.report.collect import load_runs

FRACTIONS = (0.0, 0.25, 0.5, 0.75)
HALF_DROP = {"1": 0.004, "10": 0.03, "cnn": 0.005}  # reference - accuracy at half the channels, per cell
MACS = {0.0: 1.0, 0.25: 0.6, 0.5: 0.3, 0.75: 0.1}  # pruned / dense MACs at each fraction


def fake_structured(root: Path, seeds: int = 3) -> Path:
    """Structured curves of beta 1, 10 and the CNN: within 1 point up to f=0.5 for beta 1 and the CNN (crossing
    between 0.5 and 0.75), beyond it already at f=0.5 for beta 10; each run with its MACs and params."""
    for cell, drop in HALF_DROP.items():
        model, beta = ("cnn", None) if cell == "cnn" else ("beta_vae", float(cell))
        for seed in range(seeds):
            for f in FRACTIONS:
                lost = {0.0: 0.0, 0.25: 0.001, 0.5: drop + 0.0005 * seed, 0.75: 0.2}[f]
                identity = {"dataset": "mnist", "model": model, "beta": beta, "seed": seed, "pruning.amount": f}
                identity |= FRESH | {"pruning.structure": "channels"}
                metrics = accuracies(DENSE, 0.1, REFERENCE - lost, 1 - MACS[f])
                metrics |= {"pruned_macs": 100 * MACS[f], "dense_macs": 100, "pruned_params": 50 * MACS[f], "dense_params": 50}
                write_run(root / "structured", [f"cell={cell}", f"seed={seed}", f"pruning.amount={f}"], identity, metrics)
    return root


def test_structured_endpoints_are_read_on_the_channel_fraction_against_the_f0_branch(tmp_path: Path) -> None:
    by_cell = ct.cells(ct.seed_curves(load_runs(fake_structured(tmp_path))))
    cells = structured.structured_cells(by_cell)
    assert len(cells) == 3 and all(structured.is_structured(c) for c in cells)
    beta1 = next(curves for cell, curves in cells.items() if dict(cell)["beta"] == 1)
    assert [c.endpoints["drop_at_half"] for c in beta1] == pytest.approx([0.004, 0.0045, 0.005])
    # within 1 point at f=0.5, 20 points out at 0.75: the crossing lies between them, on x = log(1/(1-f))
    tol = beta1[0].endpoints["tolerated_channels"]
    assert 0.5 < tol < 0.75 and not beta1[0].flags["censored_channels"] and not beta1[0].flags["thin_channels"]
    beta10 = next(curves for cell, curves in cells.items() if dict(cell)["beta"] == 10)
    assert 0.25 < beta10[0].endpoints["tolerated_channels"] < 0.5  # 3 points out at f=0.5


def test_structured_family_is_four_welch_tests_holm_within_them_and_apart_from_the_primary(tmp_path: Path) -> None:
    study = fake_study(fake_structured(tmp_path), seeds=3)
    by_cell = ct.cells(ct.seed_curves(load_runs(study)))
    rows = structured.family_rows(structured.structured_cells(by_cell))
    assert len(rows) == 4 and {r["comparison"] for r in rows} == {"beta=10 vs beta=1", "beta=1 vs CNN"}
    (drop,) = [r for r in rows if r["comparison"] == "beta=10 vs beta=1" and r["endpoint"] == "drop_at_half"]
    assert drop["estimate"] == pytest.approx(HALF_DROP["10"] - HALF_DROP["1"]) and drop["p_holm"] >= drop["p"]
    page = tmp_path / "results.md"
    page.write_text(f"{rp.BEGIN} -->\n{rp.END}\n")
    report(study, tmp_path / "out", 200, results=page, figures_dir=tmp_path / "figures")
    text = page.read_text()
    section = text.split("### Structured curves", 1)[1]
    assert "| MNIST | beta=1 pruning.structure=channels | 0.5 | 3 |" in section and "0.300x | " in section  # MACs at 0.5
    primary = text.split("### Primary contrasts", 1)[1].split("### Exploratory contrasts", 1)
    assert "channels" not in primary[0] and "channels" not in primary[1].split("### Structured curves")[0]
    assert (tmp_path / "figures" / "structured.png").is_file() and "(figures/structured.png)" in text


def test_a_part_plan_takes_the_amounts_given_on_the_command_line(tmp_path: Path) -> None:
    part = tmp_path / "structured"
    part.mkdir()
    (part / "multirun.yaml").write_text(
        "hydra:\n  sweeper:\n    params:\n      seed: 0,1,2,3,4\n      pruning.amount: 0,0.5,0.95\n"
        "  overrides:\n    task:\n    - seed=1\n    - pruning=structured\n    - pruning.amount=0,0.25,0.5\n"
    )
    assert ct.study_plan(tmp_path) == {"structured": (5, {0.0, 0.25, 0.5})}
    text = (part / "multirun.yaml").read_text().replace("pruning.amount=0,0.25,0.5", "+pruning.amount=range(0,1,0.25)")
    (part / "multirun.yaml").write_text(text)
    assert ct.study_plan(tmp_path) == {"structured": (5, set())}  # a sweep it cannot read: no amount is waited for


def test_claims_by_data_sets_and_compute_per_part(tmp_path: Path) -> None:
    study = fake_study(tmp_path, seeds=3)
    for path in (study / "curves").glob("*/metrics.json"):
        record = json.loads(path.read_text())
        record["timing"] = {"fit_seconds": 360.0}
        record["dense_source"] = {"trained_here": record["identity"]["pruning.amount"] == 0}
        atomic_write_json(path, record)
        record["identity"]["dataset"] = "cifar10"
        record["dataset_source"] = "jpeg-stand-in"
        atomic_write_json(study / "cifar" / path.parent.name / "metrics.json", record)
    block, _ = rp.results_markdown(load_runs(study), study, {})
    claims = block.split("### Verdicts", 1)[1].split("Each claim's pre-registered tests", 1)[0]
    assert "| claim | MNIST | CIFAR-10 (JPEG stand-in) |" in claims
    # the curves part plans 10 seeds (its multirun.yaml), the cifar folder has no plan
    assert "| 2. at beta=10 accuracy drops severely | confirmed (n=3 of 10, incomplete) | confirmed (n=3) |" in claims
    compute = block.split("### Compute", 1)[1]
    runs = 5 * 3 * 5  # cells x seeds x amounts
    assert f"| cifar | {runs} | 15 | {runs * 360 / 3600:.2f} |" in compute and f"| curves | {runs} | 15 |" in compute
    top = tmp_path / "top"
    for path in list((study / "cifar").glob("*/metrics.json"))[:2]:
        atomic_write_json(top / path.parent.name / "metrics.json", json.loads(path.read_text()))
    assert "| (top folder) | 2 |" in rp.results_markdown(load_runs(top), top, {})[0]  # runs right in the folder given


def test_a_baseline_is_paired_with_its_twin_though_the_mean_dense_accuracy_differs_in_the_last_bit(tmp_path: Path) -> None:
    dense = 0.9818  # the mean of 6 copies is 0.9817999999999999
    for seed in range(3):
        for amount in (0.0, 0.5, 0.8, 0.9, 0.95, 0.99):
            identity = {"dataset": "mnist", "model": "beta_vae", "beta": 1.0, "seed": seed, "pruning.amount": amount} | FRESH
            acc = REFERENCE - (0.02 if amount >= 0.95 else 0.0)
            write_run(tmp_path / "curves", [f"seed={seed}", f"a={amount}"], identity, accuracies(dense, acc, acc, amount))
            if amount in (0.0, 0.95):
                identity |= {"pruning.pruning_fn": "random_unstructured"}
                acc = 0.1 if amount else REFERENCE
                write_run(tmp_path / "random", [f"seed={seed}", f"a={amount}"], identity, accuracies(dense, acc, acc, amount))
    rows = ct.exploratory_rows(ct.cells(ct.seed_curves(load_runs(tmp_path))))
    (row,) = [r for r in rows if "random" in r["comparison"]]
    assert "paired" in row["method"] and row["n1"] == 3


SPRITE_AMOUNTS = (0.0, 0.5, 0.9, 0.95, 0.98)


def fake_sprites(root: Path, seeds: int = 3) -> Path:
    """A dSprites study (procedural sprites): per Beta-VAE dense model a MIG and a DCI that rise with beta, and a
    drop@95 that falls as they rise (disentanglement helps, by construction); a CNN with a large drop."""
    for beta in (None, 1.0, 2.0, 4.0, 8.0, 16.0):
        for seed in range(seeds):
            mig = 0.0 if beta is None else 0.02 * beta + 0.001 * seed  # the 15 Beta-VAE models all differ
            drop = 0.05 if beta is None else 0.04 - mig / 10
            for amount in SPRITE_AMOUNTS:
                identity = {"dataset": "dsprites", "model": "cnn" if beta is None else "beta_vae", "beta": beta, "seed": seed}
                identity |= FRESH | {"pruning.amount": amount}
                lost = {0.0: 0.0, 0.5: 0.0, 0.9: 0.002, 0.95: drop, 0.98: 0.3}[amount]
                metrics = accuracies(0.9, 0.5, 0.95 - lost, amount) | ({} if beta is None else {"dense_mig": mig})
                run = write_run(root / "curves", [f"beta={beta}", f"seed={seed}", f"a={amount}"], identity, metrics)
                record = json.loads((run / "metrics.json").read_text())
                record["dataset_source"] = "procedural-v1"
                dense = {"epoch": 30, "step": 900, "stage": "dense", "mig": mig, "dci_disentanglement": 2 * mig}
                record["disentanglement_curve"] = [{"epoch": 0, "step": 0, "stage": "dense"}, dense | {"dci_completeness": 0.5}]
                atomic_write_json(run / "metrics.json", record)
    (root / "curves" / "multirun.yaml").write_text("hydra:\n  sweeper:\n    params:\n      seed: 0,1,2,3,4\n")
    return root


def test_dsprites_link_tests_mig_and_dci_within_the_beta_vaes_and_gives_claim_five(tmp_path: Path) -> None:
    study = fake_sprites(tmp_path)
    block, rows = rp.results_markdown(load_runs(study), study, {})
    links = [r for r in rows if r["family"].startswith("link (")]
    assert len(links) == 4 and all(r["n1"] == 15 for r in links)  # 5 betas x 3 seeds, the CNN apart
    (mig_drop,) = [r for r in links if "MIG" in r["comparison"] and r["endpoint"] == "drop_at_95"]
    assert mig_drop["estimate"] == pytest.approx(-1) and mig_drop["p_holm"] < 0.05
    assert not any(r["family"].startswith("primary") for r in rows)  # the paper's MNIST-grid claims do not apply
    claims = block.split("### Verdicts", 1)[1].split("Each claim's pre-registered tests", 1)[0]
    assert f"| {rp.LINK_CLAIM} | confirmed (n=15) |" in claims and "| claim | dSprites (procedural-v1) |" in claims
    section = block.split("### Disentanglement and prunability (dSprites)", 1)[1]
    # beta=16: MIG 0.32 + 0.001 * seed over seeds 0-2, DCI disentanglement twice that, from the branch point
    assert "| dSprites (procedural-v1) | beta=16 | 3 of 5 | 0.3210 [" in section and "| 0.6420 [" in section
    assert "incomplete: 3 of 5 seeds" in block
