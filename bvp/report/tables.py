"""The report's tables: runs.csv rows, per-group summaries with t and BCa CIs, the tests of stats.csv
(paired drops, beta vs beta=1, Beta-VAE vs CNN and their interaction, and any extra tests such as the
Spearman correlations, Holm-corrected together), the sparsity curves with their endpoints, what pruning
buys (cost.csv), and summary.md."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bvp.identity import AFTER_BRANCH
from bvp.names import ACCURACIES, COSTS, DROPS, MARKDOWN, RESUMED, SUMMARY
from bvp.report import stats
from bvp.report.collect import AXIS, SEED, Key, Run, group_runs, label, normalised_beta, show, values

BETWEEN = (ACCURACIES[0], ACCURACIES[-1])  # dense and fine-tuned, compared between groups
STATS_COLUMNS = ("comparison", "metric", "n1", "n2", "estimate", "ci_low", "ci_high", "method", "p", "p_holm", "effect_size")
SMALL_N = 5  # below this a cell is marked: a CI from so few seeds is wide and the bootstrap's is unreliable
MARK = "†"


def write_csv(path: Path, rows: Sequence[dict[str, Any]], fields: Sequence[str] | None = None) -> None:
    fields = list(fields or dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def flat(point: dict[str, Any]) -> dict[str, Any]:
    """A record's nested dict as one CSV row: {"mig_per_factor": {"shape": g}} -> {"mig_per_factor.shape": g}."""
    out: dict[str, Any] = {}
    for key, value in point.items():
        out |= {f"{key}.{k}": v for k, v in flat(value).items()} if isinstance(value, dict) else {key: value}
    return out


def num(value: Any) -> str:
    """A number for summary.md: '-' for missing/NaN, 4 decimals below 10, else 4 significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.4g}"


def count(n: int) -> str:
    return f"{n}{MARK}" if n < SMALL_N else str(n)


# -- runs and groups -----------------------------------------------------------------------------------
WHAT = ("dataset", "dataset_source", "model")  # runs.csv's columns always: which data (and files) and network


def run_rows(runs: list[Run], keys: list[str]) -> list[dict[str, Any]]:
    """runs.csv: every run, its data and model (varying or not), its varying keys, seed, normalised beta and every
    metric (lists as JSON)."""
    out = []
    for run in runs:
        row = {"run_dir": run.run_dir, "status": run.status, "error": run.error}
        row |= {k: run.identity.get(k) for k in (*WHAT, *keys)}
        row |= {SEED: run.identity.get(SEED), "beta_norm": normalised_beta(run)}
        row |= {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in run.metrics.items()}
        out.append(row)
    return out


def describe(x: np.ndarray, resamples: int) -> dict[str, float]:
    """n, mean, sample SD, 95% CI of the mean from the t distribution and from a BCa bootstrap."""
    t_low, t_high = stats.t_ci(x)
    bca_low, bca_high = stats.bootstrap_ci(x, resamples)
    sd = float(x.std(ddof=1)) if len(x) > 1 else math.nan
    return dict(n=len(x), mean=stats.mean(x), std=sd, t_low=t_low, t_high=t_high, bca_low=bca_low, bca_high=bca_high)


def summary_rows(
    groups: dict[Key, list[Run]], keys: list[str], resamples: int, metrics: Sequence[str] = SUMMARY
) -> list[dict[str, Any]]:
    """summary.csv: one row per group, its keys and normalised beta, and for every one of ``metrics`` present
    ``<metric>_{n,mean,std,t_low,t_high,bca_low,bca_high}``."""
    present = [m for m in metrics if any(m in r.metrics for rows in groups.values() for r in rows)]
    out = []
    for key, rows in groups.items():
        row: dict[str, Any] = {"group": label(keys, key), **dict(zip(keys, key, strict=True))}
        row.setdefault("beta", rows[0].identity.get("beta"))  # shown beside beta_norm even where beta is not swept
        row |= {"beta_norm": normalised_beta(rows[0]), "n": len(rows)}
        for metric in present:
            row |= {f"{metric}_{k}": v for k, v in describe(values(rows, metric), resamples).items()}
        out.append(row)
    return out


# -- tests ---------------------------------------------------------------------------------------------
def contrast(keys: list[str], a: Key, b: Key) -> str:
    """``beta=10 vs beta=1 (dataset=mnist model=beta_vae)``: the keys that differ, then those shared."""
    differ = [i for i in range(len(keys)) if a[i] != b[i]]
    same = [i for i in range(len(keys)) if i not in differ]

    def part(key: Key, idx: list[int]) -> str:
        return label([keys[i] for i in idx], tuple(key[i] for i in idx), empty="")

    shared = part(a, same)
    return f"{part(a, differ)} vs {part(b, differ)}" + (f" ({shared})" if shared else "")


def model_settings(groups: dict[Key, list[Run]], keys: list[str]) -> set[str]:
    """``model.*`` keys with one value per model (model.cls_weight: 10 for the Beta-VAE, 1 for the CNN):
    they come with the model, so a Beta-VAE vs CNN comparison matches on every key but these, model and
    beta (the dataset and all other settings must be equal)."""
    if "model" not in keys:
        return set()
    m = keys.index("model")
    out = {"model", "beta"}
    for i, k in enumerate(keys):
        if not k.startswith("model."):
            continue
        per_model: dict[Any, set[Any]] = {}
        for key in groups:
            per_model.setdefault(key[m], set()).add(key[i])
        if all(len(v) == 1 for v in per_model.values()):
            out.add(k)
    return out


def _row(comparison: str, metric: str, test: stats.Test) -> dict[str, Any]:
    return {"comparison": comparison, "metric": metric, **asdict(test)}


def stat_rows(groups: dict[Key, list[Run]], keys: list[str], extra: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """stats.csv: every test of the report, p-values Holm-corrected together (``p_holm``): those below, then
    ``extra`` (rows with the STATS_COLUMNS but p_holm, e.g. the Spearman correlations).

    - paired drop, per group: the per-run drops (dense - fine-tuned, dense - pruned), one-sample t;
    - beta vs beta=1, same other keys: Welch on dense and fine-tuned accuracy and on both drops;
    - Beta-VAE vs CNN, same dataset and other keys: Welch on dense and fine-tuned accuracy; on the drops
      it is the interaction (does pruning cost the Beta-VAE more or less than the CNN).
    """
    out: list[dict[str, Any]] = []
    dense_keys = [i for i, k in enumerate(keys) if not after_branch(k)]  # what tells dense models apart
    seen: set[tuple[Key, Key]] = set()

    def between(a: Key, b: Key, metric: str, x: np.ndarray, y: np.ndarray, kind: str = "") -> None:
        """Welch on groups a and b; a dense metric compares dense models, the same in every branch: once."""
        names = keys
        if metric.startswith("dense_"):
            a, b = tuple(a[i] for i in dense_keys), tuple(b[i] for i in dense_keys)
            names = [keys[i] for i in dense_keys]
            if (a, b) in seen:
                return
            seen.add((a, b))
        if len(x) and len(y):
            out.append(_row(kind + contrast(names, a, b), metric, stats.welch(x, y)))

    for key, runs in groups.items():
        for metric, what in DROPS.items():
            d = values(runs, metric)
            if len(d):
                name = f"paired drop, {what}: {label(keys, key)}"
                out.append(_row(name, metric, stats.paired_t(d)))
    if "beta" in keys:
        b = keys.index("beta")
        for key, runs in groups.items():
            ref_key = tuple(1 if i == b else v for i, v in enumerate(key))
            if key[b] is None or key[b] == 1 or ref_key not in groups:
                continue
            for metric in (*BETWEEN, *DROPS):
                between(key, ref_key, metric, values(runs, metric), values(groups[ref_key], metric))
    if "model" in keys:
        m, ignored = keys.index("model"), model_settings(groups, keys)
        matched = [i for i, k in enumerate(keys) if k not in ignored]
        cnns = {tuple(key[i] for i in matched): key for key in groups if key[m] == "cnn"}
        for key, runs in groups.items():
            cnn = cnns.get(tuple(key[i] for i in matched))
            if key[m] != "beta_vae" or cnn is None:
                continue
            for metric in (*BETWEEN, *DROPS):
                kind = "interaction: " if metric in DROPS else ""
                between(key, cnn, metric, values(runs, metric), values(groups[cnn], metric), kind)
    out += [dict(row) for row in extra]
    for row, p_holm in zip(out, stats.holm([r["p"] for r in out]), strict=True):
        row["p_holm"] = float(p_holm)
    return [{c: row[c] for c in STATS_COLUMNS} for row in out]


def after_branch(key: str) -> bool:
    """A key of the prune step or after it: branches of one dense model differ only in these."""
    return any(key == a or key.startswith(a + ".") for a in AFTER_BRANCH)


# -- what pruning buys ---------------------------------------------------------------------------------
def _both(runs: list[Run], a: str, b: str) -> list[Run]:
    return [r for r in runs if all(isinstance(r.metrics.get(k), (int, float)) for k in (a, b))]


def cost_rows(groups: dict[Key, list[Run]], keys: list[str]) -> list[dict[str, Any]]:
    """cost.csv: per group and cost of COSTS that runs report dense and pruned, the number of such runs,
    the mean dense and pruned figure, and the mean of the per-run pruned/dense ratios (a run measures its
    two models together, so the ratio is paired: machine load cancels in it)."""
    present = [c for c in COSTS if any(_both(runs, f"dense_{c}", f"pruned_{c}") for runs in groups.values())]
    out = []
    for key, runs in groups.items():
        row: dict[str, Any] = {"group": label(keys, key), **dict(zip(keys, key, strict=True))}
        for cost in present:
            both = _both(runs, f"dense_{cost}", f"pruned_{cost}")
            dense, pruned = values(both, f"dense_{cost}"), values(both, f"pruned_{cost}")
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = stats.mean(pruned / dense)
            row |= {f"{cost}_n": len(both), f"dense_{cost}": stats.mean(dense), f"pruned_{cost}": stats.mean(pruned)}
            row[f"{cost}_ratio"] = ratio
        out.append(row)
    return out


def cost_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """summary.md's "What pruning buys": per group, dense -> pruned (mean pruned/dense ratio) per cost."""
    present = [c for c in COSTS if rows and f"{c}_n" in rows[0]]
    if not present:
        return []
    lines = [
        "",
        "## What pruning buys",
        "",
        "The deployed classifier, dense and after pruning: mean over the group's runs, dense -> pruned, and in brackets "
        "the mean of each run's pruned/dense ratio. Unstructured pruning zeroes weights inside dense tensors, so "
        "parameters, MACs and latency stay at about 1x; structured pruning (`pruning.structure=channels`) removes them. "
        "Latency: median per call (bvp.evaluation.cost); n runs.",
        "",
    ]
    table = [
        [r["group"], count(max(r[f"{c}_n"] for c in present))]
        + [f"{num(r[f'dense_{c}'])} -> {num(r[f'pruned_{c}'])} ({num(r[f'{c}_ratio'])}x)" for c in present]
        for r in rows
    ]
    return lines + md_table(["group", "n", *(COSTS[c] for c in present)], table)


# -- curves --------------------------------------------------------------------------------------------
@dataclass
class Curve:
    """Accuracy against achieved sparsity for one setting of every varying key but ``pruning.amount``:
    per point (one per amount, ascending sparsity) the mean and t CI over seeds."""

    label: str
    key: dict[str, Any]
    sparsity: np.ndarray
    pruned: list[dict[str, float]]
    finetuned: list[dict[str, float]]
    dense: dict[str, float]
    endpoints: dict[str, float]
    seeds: list[dict[str, Any]]
    seed_runs: list[list[Run]]  # the runs of each seed's curve, in the order of ``seeds``


def _mean_ci(x: np.ndarray) -> dict[str, float]:
    low, high = stats.t_ci(x)
    return {"n": len(x), "mean": stats.mean(x), "low": low, "high": high}


def curves(groups: dict[Key, list[Run]], keys: list[str]) -> list[Curve]:
    """One curve per setting of the keys other than pruning.amount, from the runs that report a
    sparsity and a fine-tuned accuracy; the dense reference is the mean over seeds of each seed's dense
    accuracy; endpoints for the mean curve and for each seed's own curve."""
    curve_keys = [k for k in keys if k != AXIS]
    runs = [r for rows in groups.values() for r in rows if "sparsity" in r.metrics and "finetuned_test_acc" in r.metrics]
    out = []
    for ckey, members in group_runs(runs, curve_keys).items():
        points = list(group_runs(members, [AXIS]).values())
        points.sort(key=lambda rows: stats.mean(values(rows, "sparsity")))
        sparsity = np.array([stats.mean(values(rows, "sparsity")) for rows in points])
        finetuned = [_mean_ci(values(rows, "finetuned_test_acc")) for rows in points]
        seeds, seed_runs = [], list(group_runs(members, [SEED]).values())
        for rows in seed_runs:
            dense = stats.mean(values(rows, "dense_test_acc"))
            ends = stats.curve_endpoints(values(rows, "sparsity"), values(rows, "finetuned_test_acc"), dense)
            seed = rows[0].identity.get(SEED)
            seeds.append({**dict(zip(curve_keys, ckey, strict=True)), SEED: seed, "points": len(rows), "dense": dense, **ends})
        dense = _mean_ci(np.array([s["dense"] for s in seeds]))
        out.append(
            Curve(
                label=label(curve_keys, ckey),
                key=dict(zip(curve_keys, ckey, strict=True)),
                sparsity=sparsity,
                pruned=[_mean_ci(values(rows, "pruned_test_acc")) for rows in points],
                finetuned=finetuned,
                dense=dense,
                endpoints=stats.curve_endpoints(sparsity, [p["mean"] for p in finetuned], dense["mean"]),
                seeds=seeds,
                seed_runs=seed_runs,
            )
        )
    return out


# -- summary.md ----------------------------------------------------------------------------------------
def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def ci_cell(low: float, high: float) -> str:
    return "-" if math.isnan(low) else f"[{num(low)}, {num(high)}]"


def _seed_mean(seeds: list[dict[str, Any]], name: str) -> str:
    x = np.array([s[name] for s in seeds], dtype=float)
    x = x[~np.isnan(x)]
    return f"{num(stats.mean(x))} {ci_cell(*stats.t_ci(x))} n={count(len(x))}"


def count_of(n: int, thing: str) -> str:
    """``1 job``, ``2 jobs``."""
    return f"{n} {thing}{'' if n == 1 else 's'}"


def header(title: str, keys: list[str], runs: list[Run], repeats: list[Run], missing: list[tuple[str, list[str]]]) -> list[str]:
    """summary.md's head: the run counts, the data and models they ran, what the groups are, how to read a cell."""
    done = sum(r.status == "done" for r in runs)
    resumed = sum(r.status == RESUMED for r in runs)
    data = sorted(
        {
            f"{r.identity.get('dataset')}" + (f" ({r.identity['dataset_source']})" if r.identity.get("dataset_source") else "")
            for r in runs
            if r.identity  # an unreadable record has none
        }
    )
    models = sorted({str(r.identity.get("model")) for r in runs if r.identity})
    versions = Counter(r.version() for r in runs if r.status == "done")
    code = ", ".join(f"{commit} ({n} {'run' if n == 1 else 'runs'})" for commit, n in sorted(versions.items()))
    pooled = " More than one code version: these tables pool them; compare runs of one version." if len(versions) > 1 else ""
    return [
        f"# Sweep summary: {title}",
        "",
        f"{count_of(len(runs), 'run folder')}: {done} done ({done - len(repeats)} counted), {len(runs) - done - resumed} "
        f"failed or unfinished{f', {resumed} finished in another folder' if resumed else ''}; "
        f"{count_of(len(missing), 'job')} of sweep.json never started.",
        "",
        f"Data: {', '.join(data) or '-'}. Models: {', '.join(models) or '-'}. Code: {code or '-'}.{pooled}",
        "",
        "Groups: every identity key that varies across the done runs, seed aside (seeds are the replicates): "
        + (", ".join(f"`{k}`" for k in keys) or "none")
        + ". beta_norm = beta · latent_dim / input_dim (Higgins et al. 2017); beta does not apply to the CNN.",
        f"Cells: mean, 95% CI from the t distribution and from a BCa bootstrap of the mean, n runs; {MARK}: n < {SMALL_N}. "
        "Accuracies, drops and sparsity are fractions (0.01 = 1 point). With few seeds read the t CI: on normal data at "
        "n = 5 it covers 95%, the BCa only about 84% (python -m bvp.report.coverage).",
    ]


def group_tables(summary: list[dict[str, Any]], keys: list[str]) -> list[str]:
    """One table per metric of MARKDOWN (one per data set under it where a sweep spans several): each group's n,
    mean and CIs; the keys constant within a table are stated once above it, not as columns."""
    columns = list(keys)
    if any(r["beta_norm"] is not None for r in summary):
        columns += [] if "beta" in columns else ["beta"]
        columns.insert(columns.index("beta") + 1, "beta_norm")

    def cell(r: dict[str, Any], c: str) -> str:
        return num(r[c]) if c == "beta_norm" else show(r[c]) if r[c] is not None else "-"

    def table(have: list[dict[str, Any]], metric: str, shown: list[str]) -> list[str]:
        varying = [c for c in shown if len({repr(r[c]) for r in have}) > 1]
        rows = list(
            {
                (
                    *(cell(r, c) for c in varying),
                    count(r[f"{metric}_n"]),
                    num(r[f"{metric}_mean"]),
                    ci_cell(r[f"{metric}_t_low"], r[f"{metric}_t_high"]),
                    ci_cell(r[f"{metric}_bca_low"], r[f"{metric}_bca_high"]),
                ): None
                for r in have
            }
        )
        same = [f"`{c}={cell(have[0], c)}`" for c in shown if c not in varying and have[0][c] is not None]
        head = [f"In every row: {', '.join(same)}.", ""] if same else []
        return [*head, *md_table([*varying, "n", "mean", "95% CI (t)", "95% CI (BCa)"], rows)]

    lines: list[str] = []
    for metric in MARKDOWN:
        if f"{metric}_n" not in (summary[0] if summary else {}):
            continue
        dense = metric.startswith("dense_")  # the same dense models in every branch: one row per dense setting
        have = [r for r in summary if r.get(f"{metric}_n")]
        shown = [c for c in columns if not (dense and after_branch(c))]
        lines += ["", f"## {metric}"]
        datasets = sorted({show(r["dataset"]) for r in have}) if "dataset" in shown else []
        if len(datasets) < 2:
            lines += ["", *table(have, metric, shown)]
            continue
        for name in datasets:  # a data set's own keys (its factors, its source) are columns of its table alone
            rows = [r for r in have if show(r["dataset"]) == name]
            lines += ["", f"### {name}", "", *table(rows, metric, [c for c in shown if c != "dataset"])]
    return lines


def curve_table(curve_list: list[Curve]) -> list[str]:
    """Each sparsity curve's endpoints, on the mean curve and per seed (none without curves)."""
    if not curve_list:
        return []
    lines = [
        "",
        "## Sparsity curves",
        "",
        "Fine-tuned test accuracy against achieved sparsity, one curve per setting of every key but `pruning.amount`. "
        "tolerated: the highest sparsity whose accuracy stays within 1 point of dense, interpolated on x = log(1/(1-s)) "
        "(every point within: the highest measured). AUC: area under accuracy over x, divided by the x range (a mean "
        "accuracy). drop@90: dense - accuracy at 90% sparsity (a point measured there, else interpolated on x; none "
        "beyond the highest measured). 'mean curve' is computed on the mean over seeds; 'per seed' is the mean and "
        "t CI of each seed's own.",
        "",
    ]
    rows = [
        [
            c.label,
            count(c.dense["n"]),
            f"{num(c.dense['mean'])} {ci_cell(c.dense['low'], c.dense['high'])}",
            num(c.endpoints["tolerated_sparsity"]),
            _seed_mean(c.seeds, "tolerated_sparsity"),
            num(c.endpoints["auc"]),
            _seed_mean(c.seeds, "auc"),
            num(c.endpoints["drop_at_90"]),
            _seed_mean(c.seeds, "drop_at_90"),
        ]
        for c in curve_list
    ]
    header = ["curve", "seeds", "dense [t CI]", "tolerated (mean curve)", "tolerated (per seed)", "AUC (mean curve)"]
    return lines + md_table([*header, "AUC (per seed)", "drop@90 (mean curve)", "drop@90 (per seed)"], rows)


def tests_table(tests: list[dict[str, Any]]) -> list[str]:
    """The exploratory tests (stat_rows), Holm within this table."""
    lines = [
        "",
        f"## Exploratory tests ({len(tests)})",
        "",
        "Exploratory: no verdict rests on these. The pre-registered contrasts, against the amount=0 branch and Holm within "
        "their own family, are in the study's results page (bvp-report --results docs/results.md). Estimates and CIs in "
        "the metric's units; the drops here are against the dense model before fine-tuning. Paired drops: n1 = n2 = "
        "runs. A dense model's test appears once, however many prunings branched from it. p_holm: Holm within this table.",
        "",
    ]
    rows = [
        [
            *(t["comparison"], t["metric"], count(t["n1"]), count(t["n2"])),
            *(num(t["estimate"]), num(t["ci_low"]), num(t["ci_high"]), t["method"]),
            *(p_cell(t["p"]), p_cell(t["p_holm"]), num(t["effect_size"])),
        ]
        for t in tests
    ]
    return lines + (md_table(STATS_COLUMNS, rows) if rows else ["none"])


def uncounted(
    runs: list[Run], repeats: list[Run], refused: Sequence[dict[str, Any]], missing: list[tuple[str, list[str]]]
) -> list[str]:
    """Every run that is not counted: failed or unfinished, repeated, refused, never started."""
    failed = [r for r in runs if r.status not in ("done", RESUMED)]
    lines = ["", f"## Failed or unfinished runs ({len(failed)})", ""]
    lines += [f"- `{r.run_dir}`: {r.status}: {(r.error or 'no error recorded').splitlines()[0]}" for r in failed] or ["none"]
    if resumed := [r for r in runs if r.status == RESUMED]:  # resume=true finished them in another folder
        lines += ["", f"## Runs finished in another folder ({len(resumed)})", ""]
        lines += [f"- `{r.run_dir}`: {r.error}" for r in resumed]
    lines += ["", f"## Repeated runs not counted ({len(repeats)})", ""]
    lines += [f"- `{r.run_dir}`: same identity as a counted run" for r in repeats] or ["none"]
    lines += ["", f"## Refused runs ({len(refused)})", ""]
    lines += [f"- {_in(job['folder'])}{' '.join(job['overrides'])}: {'; '.join(job['errors'])}" for job in refused] or ["none"]
    lines += ["", f"## Missing runs ({len(missing)})", ""]
    return lines + ([f"- {_in(folder)}{' '.join(job)}" for folder, job in missing] or ["none"])


def _in(folder: str) -> str:
    """The sweep a job belongs to, where the report reads several (a study's parts)."""
    return f"`{folder}/`: " if folder else ""


def page(sections: Sequence[list[str]]) -> str:
    """summary.md from its sections, in order (each a list of lines)."""
    return "\n".join(line for section in sections for line in section) + "\n"


def p_cell(p: float) -> str:
    return "-" if math.isnan(p) else f"{p:.3g}"
