"""The study's analysis (bvp.report.contrasts, docs/results.md): endpoints against the amount=0 branch, censoring
flags, the pre-registered family and its Holm correction, the verdict rules, and the generated results block."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from test_report import accuracies, read_csv, write_run

from bvp.io import atomic_write_json
from bvp.report import contrasts as ct
from bvp.report import report
from bvp.report import results as rp
from bvp.report import stats as st
from bvp.report.collect import load_runs

AMOUNTS = (0.0, 0.5, 0.9, 0.95, 0.99)
DROP95 = {"1": 0.020, "3": 0.015, "5": 0.002, "10": 0.060, "cnn": 0.021}  # reference - accuracy at 95%, per cell
REFERENCE = 0.985  # fine-tuned accuracy of the amount=0 branch
DENSE = 0.975  # before fine-tuning: the fine-tuning itself gains a point
FRESH = {"pruning.optimizer_state": "fresh"}  # as every record since the key exists (an absent key means carry)


def fake_study(root: Path, seeds: int = 5, cells: tuple[str, ...] = tuple(DROP95)) -> Path:
    """A study folder like docs/study: curves of the primary cells, each seed with every amount."""
    for cell in cells:
        model, beta = ("cnn", None) if cell == "cnn" else ("beta_vae", float(cell))
        for seed in range(seeds):
            noise = 0.001 * (seed - 2)
            for amount in AMOUNTS:  # a curve that falls slowly to 0.95, then fast
                drop = {0.0: 0.0, 0.5: 0.0, 0.9: 0.3 * DROP95[cell], 0.95: DROP95[cell] + noise, 0.99: 0.3}[amount]
                identity = {"dataset": "mnist", "model": model, "beta": beta, "seed": seed, "pruning.amount": amount} | FRESH
                metrics = accuracies(DENSE, REFERENCE - 2 * drop, REFERENCE - drop, amount)
                metrics |= {} if beta is None else {"dense_active_units": 10 - beta}  # the CNN has no KL
                write_run(root / "curves", [f"cell={cell}", f"seed={seed}", f"pruning.amount={amount}"], identity, metrics)
    (root / "curves" / "multirun.yaml").write_text("hydra:\n  sweeper:\n    params:\n      seed: 0,1,2,3,4,5,6,7,8,9\n")
    return root


def test_drops_are_measured_against_the_amount_zero_branch_not_the_dense_model(tmp_path: Path) -> None:
    curves = ct.seed_curves(load_runs(fake_study(tmp_path, seeds=1, cells=("1",))))
    (curve,) = curves
    assert curve.reference == REFERENCE and curve.dense == DENSE
    assert curve.endpoints["drop_at_95"] == pytest.approx(DROP95["1"] - 0.002)
    assert curve.endpoints["drop_at_95_dense"] == pytest.approx(DENSE - REFERENCE + DROP95["1"] - 0.002)  # the old reference


def test_branches_of_a_dense_model_trained_again_never_join_the_first_ones_curve(tmp_path: Path) -> None:
    """A lost dense cache, trained again, gives another model (0.9809 for 0.9818 on these CPUs): its branches at
    0.95 and 0.99 are left out of seed 1's curve, which lacks those amounts (no drop@95, not complete)."""
    study = fake_study(tmp_path, seeds=2, cells=("1",))
    for amount in (0.95, 0.99):
        record = study / "curves" / f"cell=1,seed=1,pruning.amount={amount}" / "metrics.json"
        info = json.loads(record.read_text())
        atomic_write_json(record, info | {"metrics": info["metrics"] | {"dense_test_acc": DENSE - 0.001}})
    first, second = ct.seed_curves(load_runs(study))
    assert first.flags["complete"] and not first.left_out
    assert not second.flags["complete"] and len(second.left_out) == 2
    assert math.isnan(second.endpoints["drop_at_95"]) and second.dense == DENSE  # only the reference's dense model
    assert rp.seeds_cell([first, second], {}) == "1 (plan unknown), 1 with branches of two dense models (left out)"


def test_tolerated_sparsity_flags_a_censored_endpoint_and_a_crossing_on_one_point() -> None:
    inside = st.tolerated([0, 0.5, 0.9], [0.98, 0.979, 0.975], 0.98)
    assert inside.censored and inside.value == pytest.approx(0.9)  # every amount within 1 point: '>= 0.9'
    thin = st.tolerated([0, 0.9], [0.98, 0.96], 0.98)
    assert thin.thin and not thin.censored and 0 < thin.value < 0.9
    both = st.tolerated([0, 0.5, 0.9], [0.98, 0.978, 0.96], 0.98)
    assert not both.thin and not both.censored and 0.5 < both.value < 0.9


def test_bonett_wright_ci_by_hand_and_the_exact_permutation_p() -> None:
    low, high = st.bonett_wright_ci(0.5, 10)  # z = atanh(.5) = .5493, se = sqrt(1.125 / 7) = .4009
    assert (low, high) == pytest.approx((math.tanh(0.5493 - 1.96 * 0.4009), math.tanh(0.5493 + 1.96 * 0.4009)), abs=1e-3)
    assert (low, high) == pytest.approx((-0.2321, 0.8706), abs=1e-3)
    monotone = st.spearman([1, 2, 3, 4], [2, 4, 6, 8])
    assert monotone.estimate == 1 and monotone.p == pytest.approx(2 / 24)  # 2 of the 4! pairings are as extreme
    r = st.spearman([1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5])
    assert r.ci_low < r.estimate < r.ci_high  # the interval always holds the estimate


def test_beyond_ten_points_spearman_p_comes_from_random_pairings_and_agrees_with_the_exact_one() -> None:
    x, y = np.arange(9.0), np.array([2, 0, 1, 5, 3, 4, 8, 6, 7.0])
    exact, drawn = st.exact_spearman_p(x, y), st.random_pairings_spearman_p(x, y)
    assert abs(drawn - exact) < 4 * math.sqrt(exact * (1 - exact) / st.RANDOM_PAIRINGS)  # a Monte Carlo estimate of it
    many = st.spearman(np.arange(12.0), np.arange(12.0) ** 2)
    assert "random pairings" in many.method and many.estimate == 1 and many.p < 1e-4


def test_hedges_g_is_nan_where_undefined() -> None:
    assert math.isnan(st.paired_t([0.01, 0.02]).effect_size)  # J(1) = 0: no g at n = 2
    assert math.isnan(st.hedges_g([0.1, 0.2], [0.3]))
    assert not math.isnan(st.paired_t([0.01, 0.02, 0.04]).effect_size)


def test_the_primary_family_is_eight_tests_holm_corrected_within_itself(tmp_path: Path) -> None:
    rows = ct.primary_rows(ct.cells(ct.seed_curves(load_runs(fake_study(tmp_path)))))
    assert len(rows) == 8 and {r["endpoint"] for r in rows} == set(ct.ENDPOINTS)
    names = {r["comparison"] for r in rows}
    assert names == {"beta=3 vs beta=1", "beta=5 vs beta=1", "beta=10 vs beta=1", "beta=1 vs CNN"}
    p = [r["p"] for r in rows]
    assert [r["p_holm"] for r in rows] == pytest.approx(list(st.holm(p)), nan_ok=True)
    b5 = next(r for r in rows if r["comparison"] == "beta=5 vs beta=1" and r["endpoint"] == "drop_at_95")
    assert b5["estimate"] == pytest.approx(DROP95["5"] - DROP95["1"]) and b5["n1"] == b5["n2"] == 5


def test_verdicts_follow_the_preregistered_rules(tmp_path: Path) -> None:
    rows = ct.primary_rows(ct.cells(ct.seed_curves(load_runs(fake_study(tmp_path)))))
    outcome = {c.name: ct.verdict(c, rows)[0] for c in ct.CLAIMS}
    assert outcome["1. beta near 5 beats beta=1 after pruning (beta=5)"] == "confirmed"
    assert outcome["2. at beta=10 accuracy drops severely"] == "confirmed"
    # beta=1 and the CNN: drop@95 differs by 0.001 with tiny noise: the CI sits inside +-SESOI: no effect of practical size
    assert outcome["4. reconstruction (and disentanglement) make pruning easier"] == "refuted"
    few = ct.primary_rows(ct.cells(ct.seed_curves(load_runs(fake_study(tmp_path / "few", seeds=1)))))
    assert all(ct.verdict(c, few)[0].startswith("inconclusive") for c in ct.CLAIMS)  # one seed: no test


def test_the_results_block_is_regenerated_between_its_markers_only(tmp_path: Path) -> None:
    study = fake_study(tmp_path / "study", seeds=3)
    page = tmp_path / "results.md"
    page.write_text(f"# Pre-registered text\n\n{rp.BEGIN} (generated) -->\nold numbers\n{rp.END}\n\nafter\n")
    report(study, tmp_path / "out", 200, results=page, figures_dir=tmp_path / "figures")
    text = page.read_text()
    assert text.startswith("# Pre-registered text") and text.endswith("after\n") and "old numbers" not in text
    assert "incomplete: 3 of 10 seeds" in text and "**confirmed**" in text
    assert (
        "![MNIST: accuracy against sparsity; drop@95 per seed](figures/study_mnist.png)" in text
        and (tmp_path / "figures" / "study_mnist.png").is_file()
    )
    rows = read_csv(tmp_path / "out" / "contrasts.csv")
    assert sum(r["family"].startswith("primary") for r in rows) == 8
    report(study, tmp_path / "out", 200, results=page, figures_dir=tmp_path / "figures")
    assert page.read_text() == text  # the same records give the same page
    bad = tmp_path / "plain.md"
    bad.write_text("no markers\n")
    with pytest.raises(rp.ResultsPageError, match="markers"):
        report(study, tmp_path / "out2", 200, results=bad)
    assert not (tmp_path / "out2").exists()  # refused before anything is written


def test_cells_of_ablations_are_compared_with_their_primary_twin(tmp_path: Path) -> None:
    study = fake_study(tmp_path, seeds=3, cells=("1",))
    for seed in range(3):
        for amount in (0.0, 0.95):
            identity = {"dataset": "mnist", "model": "beta_vae", "beta": 1.0, "seed": seed, "pruning.amount": amount} | FRESH
            identity["pruning.finetune_loss"] = "ce_kl"
            acc = 0.1 if amount else 0.11
            write_run(study / "objectives", [f"seed={seed}", f"a={amount}"], identity, accuracies(DENSE, acc, acc, amount))
    rows = ct.exploratory_rows(ct.cells(ct.seed_curves(load_runs(study))))
    (row,) = [r for r in rows if "ce_kl" in r["comparison"]]
    assert row["endpoint"] == "drop_at_95" and row["n1"] == 3 and "paired" in row["method"]
    assert row["estimate"] == pytest.approx(0.01 - DROP95["1"], abs=1e-3)
    assert np.isnan(row.get("p_holm", np.nan))  # exploratory: unadjusted


def test_summary_shows_each_dense_model_once_and_its_tests_once(tmp_path: Path) -> None:
    out = report(fake_study(tmp_path / "study", seeds=3), tmp_path / "out", 200)["out_dir"]
    md = (out / "summary.md").read_text()
    table = md.split("## dense_test_acc\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(table) == 2 + len(DROP95) and "pruning.amount" not in table[0]  # one row per dense setting
    units = md.split("## dense_active_units\n\n", 1)[1].split("\n\n", 2)
    assert units[0].startswith("In every row: `model=beta_vae`") and "model" not in units[1].splitlines()[0]  # stated once
    tests = [t for t in read_csv(out / "stats.csv") if t["metric"] == "dense_test_acc"]
    names = [t["comparison"] for t in tests]
    assert len(names) == len(set(names)) and not any("pruning.amount" in n for n in names)


def test_review_cases_missing_cells_other_data_old_records_and_running_seeds(tmp_path: Path) -> None:
    # Holm counts all eight pre-registered tests even when cells are missing (a missing test is p = 1)
    two = ct.primary_rows(ct.cells(ct.seed_curves(load_runs(fake_study(tmp_path / "two", seeds=3, cells=("1", "cnn"))))))
    assert len(two) == 8
    (drop,) = [r for r in two if r["comparison"] == "beta=1 vs CNN" and r["endpoint"] == "drop_at_95"]
    tol = next(r for r in two if r["comparison"] == "beta=1 vs CNN" and r["endpoint"] == "tolerated")
    assert drop["p_holm"] == pytest.approx(min(1.0, st.holm([drop["p"], tol["p"], *[1.0] * 6])[0]))
    # another dataset is its own family, and a claim's verdict reads its own family's rows only
    study = fake_study(tmp_path / "both", seeds=3)
    for path in (study / "curves").glob("*/metrics.json"):
        record = json.loads(path.read_text())
        record["identity"]["dataset"] = "fashion_mnist"
        atomic_write_json(study / "fashion" / path.parent.name / "metrics.json", record)
    rows = ct.primary_rows(ct.cells(ct.seed_curves(load_runs(study))))
    assert {r["family"] for r in rows} == {"primary (MNIST)", "primary (Fashion-MNIST)"} and len(rows) == 16
    # a record from before pruning.optimizer_state existed carried the Adam state: never pooled with the primary cells
    old = tmp_path / "old"
    fake_study(old, seeds=2, cells=("1",))
    for path in old.rglob("metrics.json"):
        record = json.loads(path.read_text())
        record["identity"].pop("pruning.optimizer_state")
        atomic_write_json(path, record)
    (cell,) = ct.cells(ct.seed_curves(load_runs(old)))
    assert ct.deviations(cell) == {"pruning.optimizer_state": "carry"}
    # a seed still running (amounts missing) has no tolerated sparsity yet
    running = fake_study(tmp_path / "running", seeds=2, cells=("1",))
    for path in (running / "curves").glob("*seed=1,pruning.amount=0.99/metrics.json"):
        path.unlink()
    curves = ct.seed_curves(load_runs(running), ct.study_plan(running))
    assert [math.isnan(c.endpoints["tolerated"]) for c in curves] == [False, True] and not curves[1].flags["complete"]
