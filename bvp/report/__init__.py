"""bvp-report: a sweep's metrics.json files as tables, tests and figures (SWEEP_DIR/report/).

- runs.csv: one row per run folder (any status): every identity key that varies, seed, beta_norm, every metric;
- summary.csv / summary.md: per group of runs that agree on every varying key (seeds are the replicates),
  n, mean, 95% CI from the t distribution and from a BCa bootstrap, for each metric;
- stats.csv (and in summary.md): paired tests of the accuracy drops, beta vs beta=1, Beta-VAE vs CNN and
  their interaction, with Holm's correction over the whole report;
- curves.png and endpoints.csv: accuracy against achieved sparsity, with each curve's endpoints;
- disentanglement.csv, prunability.csv, spearman.csv, disentanglement*.png: the dense models' disentanglement
  and its Spearman correlation with each seed's prunability (also in stats.csv);
- cost.csv: what pruning buys (params, MACs, latency, export bytes), dense and pruned;
- accuracy_*.png box plots; every figure also as a TensorBoard image under report/tb.
Failed, unfinished, repeated and never-started runs are listed in summary.md, never dropped silently.
"""

from bvp.report.main import main, report

__all__ = ["main", "report"]
