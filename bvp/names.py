"""One home for the names several layers share: the files of a run folder and of a sweep, and the keys of
metrics.json by group. The report, the TensorBoard dashboard and the console read these lists, so a new metric
is one line here (in its group) beside the code that computes it; tests/test_names.py fails on a key in no group.
"""

from __future__ import annotations

METRICS_FILE = "metrics.json"  # a run's record: status, identity, metrics (bvp.run)
LAST_CHECKPOINT = "checkpoints/last.ckpt"  # what a killed run resumes from
RESUMED = "resumed"  # the status of a run that resume=true finished in a newer folder (its record says where)
RUN_LOCK = ".run.lock"  # held by the process running a run (bvp.io.locked): a second sweep over the folder skips it
SWEEP_FILE = "sweep.json"  # a sweep's plan: every job's overrides, and the refused ones (bvp.sweep)
SWEEP_LOCK = ".sweep.json.lock"  # held while a job reads-modifies-writes sweep.json: parallel jobs take turns
OVERRIDES_FILE = ".hydra/overrides.yaml"  # a job's command-line overrides, as Hydra writes them
MULTIRUN_FILE = "multirun.yaml"  # a sweep's composed config, as Hydra writes it (its hydra.sweeper.params)
EXPORT_FILE = "classifier.pt2"  # the deployed classifier (torch.export, bvp.export)

# Logged during training (train/ per step, val/ per epoch): the console's one line per epoch.
LOGGED = ("train/loss", "train/acc", "val/loss", "val/acc")

# The disentanglement monitor (bvp.evaluation.monitor, callbacks=disentanglement): metrics.json's key of its series,
# a list of points (not a scalar: no group below) with these fields, logged as <CURVE_TAG>/<field> (and
# <CURVE_TAG>/mig/<factor>). The dci_* fields only with callbacks.disentanglement.metrics=[mig,dci].
CURVE = "disentanglement_curve"
CURVE_TAG = "disentanglement"
CURVE_FIELDS = (
    "epoch",  # training epochs done (0: before training)
    "step",  # optimizer steps done
    "samples",  # training samples seen
    "stage",  # dense (up to the branch point) or finetune
    "val_acc",  # the deployed path's accuracy on the whole validation split
    "mig",  # MIG of the validation split's mean codes (null with fewer than 2 latent dimensions)
    "mig_per_factor",  # {factor: its normalised gap}; mig is their mean
    "dci_disentanglement",
    "dci_completeness",
    "dci_informativeness",
    "seconds",  # wall time of the measurement
)

# metrics.json "metrics": the scalar keys, by group. Stages: dense (the branch point), pruned (right after
# pruning), units_removed (after removing inactive latent units), finetuned (the end); latent statistics
# without a prefix are of the final model.
ACCURACIES = ("dense_test_acc", "pruned_test_acc", "finetuned_test_acc")  # the paper's Table 1, one run's curve
VALIDATION = ("dense_val_acc", "pruned_val_acc", "finetuned_val_acc", "units_removed_val_acc")
UNPRUNED = ("val_acc", "test_acc")  # a run with pruning=none: its final accuracies, the same as dense_val/test_acc
DROPS = {"accuracy_drop": "dense - fine-tuned", "pruning_drop": "dense - pruned"}  # paired: both from one run
REMOVED = ("sparsity", "params_removed", "macs_removed", "latent_units_removed", "units_removed_test_acc", "step")
LATENT = ("dense_active_units", "dense_kl", "active_units", "kl", "active_units_cov", "dense_active_units_cov")
DISENTANGLEMENT = (
    "mig",
    "dense_mig",
    "label_mig",
    "dense_label_mig",
    "label_informative_dims",
    "dense_label_informative_dims",
)
COMPRESSION = (  # bvp.evaluation.compression
    "compression_ratio_full",
    "compression_ratio",
    "compression_ratio_bytes",
    "params_full_model",
    "params_classifier",
    "nonzero_classifier",
    "bytes_dense",
    "bytes_sparse",
    "dense_classifier_params",
)
COSTS = {  # what pruning buys (bvp.evaluation.cost): dense_<cost> and pruned_<cost> of the deployed classifier
    "params": "params",
    "macs": "MACs",
    "latency_ms_b1": "CPU ms, batch 1",
    "latency_ms_b256": "CPU ms, batch 256",
    "latency_ms_b1_cuda": "GPU ms, batch 1",
    "latency_ms_b256_cuda": "GPU ms, batch 256",
    "export_bytes": "export bytes",
}
DEPLOYMENT = (
    "exported_test_acc",
    "latency_threads",
    *(f"{stage}_{cost}" for cost in (*COSTS, "nonzero") for stage in ("dense", "pruned")),
)

SCALARS = frozenset((*ACCURACIES, *VALIDATION, *UNPRUNED, *DROPS, *REMOVED, *LATENT, *DISENTANGLEMENT, *COMPRESSION, *DEPLOYMENT))

# What the report summarises per group, in this order, when present; and the shorter list of its markdown table.
SUMMARY = (
    *(key for pair in zip(VALIDATION[:3], ACCURACIES, strict=True) for key in pair),
    *DROPS,
    "sparsity",
    *LATENT[:5],
    "mig",
    "label_mig",
    "label_informative_dims",
    "latent_units_removed",
    "units_removed_test_acc",
    *COMPRESSION[:3],
)
MARKDOWN = (*ACCURACIES, *DROPS, "sparsity", "compression_ratio", "dense_active_units", "dense_kl")
