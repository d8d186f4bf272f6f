"""Pruning: the callback that strips the decoder and prunes (the branch protocol), its engines (one per
``pruning.structure``: unstructured, structured) and the prune scope."""

from bvp.pruning.callback import DecoderStripPruning, check_pruning_args
from bvp.pruning.scope import SCOPES, scope_parameters, sparsity_report

__all__ = ["SCOPES", "DecoderStripPruning", "check_pruning_args", "scope_parameters", "sparsity_report"]
