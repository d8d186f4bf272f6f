"""What is trained after the prune step: the fine-tune objectives (``pruning.finetune_loss``).

- ``ce`` (default): the deployed classifier alone (encoder -> latent mean -> head) is trained, pruned and
  shipped; the decoder and the log-variance layer leave at the prune step. Loss: cls_weight * CE.
- ``full``: the whole training loss and network while fine-tuning (recon + beta * KL + cls_weight * CE;
  the head reads sampled z); only the deployed part is pruned; decoder and log-variance leave at the end.
- ``ce_kl``: the paper's literal protocol: the decoder leaves, the loss is cls_weight * CE + beta * KL.
  Since CE >= H(Y) - I(Z;Y) and KL >= I(X;Z) >= I(Z;Y), a collapsed posterior (KL = 0, CE = H(Y)) is
  optimal once beta >= cls_weight: fine-tuning then destroys the classifier, whatever was pruned.
"""

from __future__ import annotations

from typing import NamedTuple


class Objective(NamedTuple):
    name: str
    keep_decoder: bool  # while fine-tuning
    keep_logvar: bool  # while fine-tuning (the head reads sampled z, and KL is defined)
    use_kl: bool  # beta * KL in the fine-tune loss


OBJECTIVES = {
    "ce": Objective("ce", keep_decoder=False, keep_logvar=False, use_kl=False),
    "full": Objective("full", keep_decoder=True, keep_logvar=True, use_kl=True),
    "ce_kl": Objective("ce_kl", keep_decoder=False, keep_logvar=True, use_kl=True),
}
