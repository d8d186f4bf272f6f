"""The LightningModule for Beta-VAE-Classif and the CNN-Classif baseline."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import lightning.pytorch as L
import torch
import torch.nn.functional as F
import torchvision
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torchmetrics.classification import MulticlassAccuracy

from bvp.evaluation.disentanglement import latent_traversal
from bvp.evaluation.latent import LatentKL, active_units
from bvp.losses import LIKELIHOODS, TermMeans, collapse_is_optimal, kl_per_dim, nonfinite, recon_loss, total_loss
from bvp.models import LatentClassifier, Output, match_shapes
from bvp.objectives import Objective
from bvp.rules import SEED, Boolean, Choice, Derived, Integer, Number, Rules, Spec
from bvp.torchutil import derived_seed

Batch = tuple[Tensor, Tensor]


class ClassifModule(L.LightningModule):
    """Trains a LatentClassifier on recon_weight * recon + beta * KL + cls_weight * CE (CE alone for CNN-Classif).
    ``recon_weight=0`` removes the decoder before training: the variational information bottleneck classifier
    (Alemi et al. 2017), which separates the KL pressure from the reconstruction.

    From the prune step on (``enter_finetune``) it trains what the fine-tune objective keeps
    (bvp.objectives): the deployed classifier alone, the whole network, or the paper's CE + beta * KL.
    """

    SETTINGS: ClassVar[dict[str, Spec]] = {  # model.<key>
        "beta": Number(ge=0, example=4),
        "cls_weight": Number(ge=0, example=10),  # 0: a plain beta-VAE (no classifier trained), pruning=none only
        "recon_weight": Number(ge=0, example=1),
        "recon": Derived("the dataset (the likelihood its images suit)", Choice(LIKELIHOODS)),
        "seed": SEED,
        "num_images": Integer(ge=0, example=8),
        "compile": Boolean(),
        "channels_last": Boolean(),
    }

    def __init__(
        self,
        net: LatentClassifier,
        optimizer: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer],
        beta: float = 1.0,
        cls_weight: float = 1.0,
        recon_weight: float = 1.0,
        recon: str = "bernoulli",
        seed: int = 0,
        num_images: int = 8,
        compile: bool = False,
        channels_last: bool = False,
    ) -> None:
        rules = Rules.of(self.SETTINGS, locals())  # refused before anything is built or trained
        if cls_weight == 0 and (not net.variational or recon_weight == 0):
            rules.add("cls_weight", cls_weight, "CE is this model's whole loss (no reconstruction): give a weight > 0")
        rules.optimizer("optimizer", optimizer, net.parameters())
        rules.check()
        super().__init__()
        if recon_weight == 0:  # no reconstruction: no decoder (a variational information bottleneck classifier)
            net.strip(keep_decoder=False, keep_logvar=True)
            if net.variational and collapse_is_optimal(beta, cls_weight):  # cls_weight=0 was refused above
                rank_zero_warn(
                    f"model.recon_weight=0 with beta={beta:g} >= model.cls_weight={cls_weight:g}: with no reconstruction "
                    "a posterior that ignores the input is an optimum of cls_weight*CE + beta*KL, so the dense model "
                    "can collapse to chance accuracy (docs/method.md); beta < model.cls_weight keeps it informative"
                )
        self.net, self.optimizer_factory = net, optimizer
        self.channels_last = channels_last
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        # kept outside the module tree: checkpoints, pruning and state_dict keys see only self.net
        object.__setattr__(self, "_net_fn", torch.compile(self.net) if compile else self.net)
        self.beta, self.cls_weight, self.recon, self.seed = float(beta), float(cls_weight), recon, seed
        self.recon_weight = float(recon_weight)
        self.num_images = num_images
        self.use_kl = net.variational
        self.finetuning = False
        num_classes = net.head[-1].out_features
        self.train_acc, self.val_acc, self.test_acc = (
            MulticlassAccuracy(num_classes, average="micro", validate_args=False) for _ in range(3)
        )
        self.train_terms, self.val_terms, self.test_terms = TermMeans(), TermMeans(), TermMeans()
        self.val_kl = LatentKL(net.latent_dim)
        self.register_buffer("bad_loss", torch.zeros((), dtype=torch.bool), persistent=False)
        self._images: Tensor | None = None  # inputs and reconstructions of the first validation batch
        self._traversal: Tensor | None = None  # each latent dimension swept over +-3 around its first image's code
        # wall time of each training epoch, validation included (and the callbacks' epoch-end work: the branch point)
        self.epoch_seconds: list[float] = []
        self._epoch_start = 0.0

    # -- loss -----------------------------------------------------------------------------------
    def loss_terms(self, out: Output, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Every term of the objective for one batch; ``loss`` is what gets optimised."""
        terms = {"ce": F.cross_entropy(out.logits, y)}
        kl = None
        if out.logvar is not None:
            terms["kl_dims"] = kl_per_dim(out.mu, out.logvar)
            terms["kl"] = terms["kl_dims"].sum(1).mean()
            kl = terms["kl"] if self.use_kl else None
        if out.recon is not None:
            terms["recon"] = recon_loss(out.recon, x, self.recon)
        terms["loss"] = total_loss(terms.get("recon"), kl, terms["ce"], self.beta, self.cls_weight, self.recon_weight)
        return terms

    def forward(self, x: Tensor) -> Output:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self._net_fn(x)

    def _step(self, batch: Batch, stage: str) -> tuple[dict[str, Tensor], Output]:
        """Forward, loss and metric updates on the device; nothing is logged per step (see TermMeans)."""
        x, y = batch
        out = self(x)
        terms = self.loss_terms(out, x, y)
        getattr(self, f"{stage}_acc").update(out.logits, y)
        getattr(self, f"{stage}_terms").update(terms, len(y))
        return terms, out

    def _log_epoch(self, stage: str) -> None:
        """Log the epoch means of every loss term and the accuracy of ``stage``, then reset them."""
        terms, acc = getattr(self, f"{stage}_terms"), getattr(self, f"{stage}_acc")
        self.log_dict({f"{stage}/{k}": v for k, v in terms.compute().items()})
        self.log(f"{stage}/acc", acc.compute(), prog_bar=stage == "val")
        terms.reset()
        acc.reset()

    # -- steps ----------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        # noise (reparameterisation, augmentation) drawn from (seed, epoch): a resumed run matches
        torch.manual_seed(derived_seed(self.seed, self.current_epoch))
        self._epoch_start = time.perf_counter()

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        terms, _ = self._step(batch, "train")
        self.bad_loss |= nonfinite(terms["loss"])
        return terms["loss"]

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        terms, out = self._step(batch, "val")
        if "kl_dims" in terms:
            self.val_kl.update(terms["kl_dims"])
        if batch_idx == 0 and out.recon is not None:
            x = batch[0][: self.num_images]
            recon = out.recon[: self.num_images]
            self._images = torch.cat([x, torch.sigmoid(recon) if self.recon == "bernoulli" else recon])
            self._traversal = latent_traversal(self.net, x[0], likelihood=self.recon)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self.check_finite()

    def on_train_epoch_end(self) -> None:
        self.check_finite()
        self._log_epoch("train")
        self.epoch_seconds.append(time.perf_counter() - self._epoch_start)
        self.log("time/epoch_seconds", self.epoch_seconds[-1])

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")
        if self.net.variational and self.net.latent.logvar is not None:
            kl = self.val_kl.compute().reshape(-1)  # torchmetrics squeezes a one-dimensional latent to 0-d
            self.log("val/active_units", active_units(kl).float())
            self.log_dict({f"val/kl_dim/{d}": v for d, v in enumerate(kl)})
            self.val_kl.reset()
        if self._images is not None and isinstance(self.logger, TensorBoardLogger) and not self.trainer.sanity_checking:
            grid = torchvision.utils.make_grid(self._images, nrow=self.num_images, normalize=True, scale_each=True)
            self.logger.experiment.add_image("val/reconstruction", grid, self.global_step)
            self.logger.experiment.add_image("val/latent_traversal", self._traversal, self.global_step)
        self._images = None

    def check_finite(self) -> None:
        """One host sync per epoch: stop the run if any training loss this epoch was NaN/inf."""
        if bool(self.bad_loss):
            raise FloatingPointError(
                f"training loss became NaN/inf in epoch {self.current_epoch} (beta={self.beta}); "
                "lower lr or beta, or check the data"
            )

    # -- optimisation -----------------------------------------------------------------------------
    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.parameters())

    # -- pruning stage ------------------------------------------------------------------------------
    def enter_finetune(self, objective: Objective) -> None:
        """From the prune step on: strip what ``objective`` does not keep and train on its loss."""
        self.net.strip(keep_decoder=objective.keep_decoder, keep_logvar=objective.keep_logvar)
        self.use_kl = self.net.variational and objective.use_kl
        self.finetuning, self.objective = True, objective.name

    def strip_to_classifier(self) -> None:
        """Leave only the deployed classifier (encoder -> latent mean -> head), e.g. after ``full`` fine-tuning."""
        self.net.strip()
        self.use_kl = False

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["bvp"] = {
            "finetuning": self.finetuning,
            "objective": getattr(self, "objective", None),
            "decoder": self.net.decoder is not None,
            "logvar": getattr(self.net.latent, "logvar", None) is not None,
            "use_kl": self.use_kl,
        }

    def latent_resized(self) -> None:
        """Latent dimensions were removed (``pruning.latent_units``): size the per-dimension KL metric to match."""
        self.val_kl = LatentKL(self.net.latent_dim).to(self.device)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Before its weights are loaded: drop what the checkpoint no longer has (decoder, log-variance) and give
        every layer the checkpoint's shapes (structured pruning or removed latent units made them smaller)."""
        state = checkpoint.get("bvp", {})
        if state.get("finetuning"):
            self.net.strip(keep_decoder=state["decoder"], keep_logvar=state["logvar"])
            self.use_kl, self.finetuning, self.objective = state["use_kl"], True, state["objective"]
        if match_shapes(self.net, checkpoint["state_dict"], prefix="net."):
            self.latent_resized()
            if self.channels_last:  # the resized layers were made contiguous
                self.net.to(memory_format=torch.channels_last)
