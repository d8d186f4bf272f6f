"""make bench: training throughput of the project's path against a plain PyTorch loop and the textbook path.

For each (model, dataset shape) it trains the same synthetic uint8 tensors three ways in one process,
alternating the ways ``--repeats`` times, and reports median samples/s of a steady-state epoch (a
warm-up epoch first, then the timed one); ratios are medians of per-repeat ratios:
  project   the real path: the composed Hydra config, DataModule, LightningModule, Trainer.fit with the
            default callbacks (checkpointing) and TensorBoard logging (validation off, as in the others)
  plain     a hand-written loop: the same net, loss and Adam over the same device tensors, batched
            on-device transforms, no Lightning
  textbook  a torchvision-style dataset (PIL image + ToTensor, the same RandomCrop/Flip) and DataLoader
The console shows one line per timed run (no progress bars, no Lightning banners), then the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
import torchvision.transforms.v2 as T
from hydra import compose, initialize_config_dir
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from bvp.console import quiet
from bvp.data import DeviceDataModule, DeviceLoader, EpochSampler
from bvp.module import ClassifModule
from bvp.run import build
from bvp.sweep import quiet_console
from bvp.torchutil import sync

CONF = Path(__file__).resolve().parents[1] / "conf"
CASES = [(m, d) for d in ("mnist", "cifar10") for m in ("beta_vae", "cnn")]
WAYS = ("project", "plain", "textbook")


class EpochClock(L.Callback):
    """Wall time of the last epoch, from its first hook to the end of training (checkpoint included)."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        sync(pl_module.device)
        self.start = time.perf_counter()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        sync(pl_module.device)
        self.seconds = time.perf_counter() - self.start


class ArrayImages(Dataset):
    """What torchvision's MNIST/CIFAR10 do per sample: uint8 array -> PIL image -> transform."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform: Callable) -> None:
        self.images = x.permute(0, 2, 3, 1).squeeze(-1).cpu().numpy()  # HW or HWC, as the datasets store them
        self.labels, self.transform = y.cpu().tolist(), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def compose_cfg(model: str, dataset: str, overrides: Sequence[str]) -> Any:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=[f"model={model}", f"dataset={dataset}", "pruning=none", *overrides])


def synthetic(dm: DeviceDataModule, n: int, device: torch.device, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, *dm.shape), generator=g, dtype=torch.uint8)
    return x.to(device), torch.randint(0, dm.num_classes, (n,), generator=g).to(device)


def make_module(cfg: Any, out_dir: Path) -> tuple[DeviceDataModule, ClassifModule, L.Trainer]:
    cfg.output_dir = str(out_dir)
    return build(cfg)


def run_project(cfg: Any, data: tuple[torch.Tensor, torch.Tensor], out_dir: Path) -> float:
    dm, module, trainer = make_module(cfg, out_dir)
    clock = EpochClock()
    trainer.callbacks.append(clock)
    x, y = data
    dm.use_splits({"train": (x, y), "val": (x[:1], y[:1]), "test": (x[:1], y[:1])}, x.device)
    trainer.fit(module, datamodule=dm)
    return len(y) / clock.seconds


def epochs_of(loader_fn: Callable[[int], Iterator], step: Callable, device: torch.device) -> float:
    """Run a warm-up epoch and a timed one; seconds of the timed one."""
    for epoch in range(2):
        sync(device)
        start = time.perf_counter()
        for batch in loader_fn(epoch):
            step(batch)
        sync(device)
    return time.perf_counter() - start


def train_step(module: ClassifModule, opt: torch.optim.Optimizer) -> Callable:
    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        x, y = batch
        loss = module.loss_terms(module(x), x, y)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def run_plain(cfg: Any, data: tuple[torch.Tensor, torch.Tensor], out_dir: Path) -> float:
    dm, module, _ = make_module(cfg, out_dir)
    x, y = data
    module.to(x.device).train()
    dm.use_splits({"train": (x, y)}, x.device)
    opt = module.configure_optimizers()
    loader = DeviceLoader(x, y, cfg.batch_size, EpochSampler(len(y), True, cfg.seed))
    step = train_step(module, opt)

    def batches(epoch: int) -> Iterator:
        loader.sampler.set_epoch(epoch)
        return (dm.transform(b, augment=True) for b in loader)

    return len(y) / epochs_of(batches, step, x.device)


def run_textbook(cfg: Any, data: tuple[torch.Tensor, torch.Tensor], out_dir: Path, workers: int) -> float:
    dm, module, _ = make_module(cfg, out_dir)
    device = data[0].device
    module.to(device).train()
    ops: list[Callable] = [T.RandomCrop(dm.shape[1], padding=dm.crop_padding)] if dm.crop_padding else []
    ops += [T.RandomHorizontalFlip()] if dm.crop_padding and dm.hflip else []
    ops += [T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(dm.mean, dm.std)]
    loader = DataLoader(ArrayImages(*data, T.Compose(ops)), batch_size=cfg.batch_size, shuffle=True, num_workers=workers)
    step = train_step(module, module.configure_optimizers())
    to_device = lambda b: (b[0].to(device, non_blocking=True), b[1].to(device, non_blocking=True))  # noqa: E731
    return len(data[1]) / epochs_of(lambda _: map(to_device, loader), step, device)


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median over repeats of a[i] / b[i]: each repeat ran both back to back, so drift cancels."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def bench(
    samples: int,
    batch_size: int,
    repeats: int,
    device: str,
    workers: int,
    cases: Sequence[tuple[str, str]],
    overrides: Sequence[str],
) -> dict[str, Any]:
    dev = torch.device(device)
    accelerator = "gpu" if dev.type == "cuda" else "cpu"
    base = [
        f"batch_size={batch_size}",
        "epochs=2",
        "+trainer.limit_val_batches=0",
        f"trainer.accelerator={accelerator}",
        "trainer.enable_progress_bar=false",  # a bar per timed run would bury the results
        *overrides,
    ]
    results: dict[str, Any] = {"device": str(dev), "samples": samples, "batch_size": batch_size, "repeats": repeats, "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for model, dataset in cases:
            cfg = compose_cfg(model, dataset, base)
            dm = make_module(cfg, Path(tmp) / "probe")[0]
            data = synthetic(dm, samples, dev, seed=0)
            runners = {"project": run_project, "plain": run_plain, "textbook": partial(run_textbook, workers=workers)}
            rates: dict[str, list[float]] = {w: [] for w in WAYS}
            for r in range(repeats):
                for way in WAYS:
                    L.seed_everything(0, verbose=False)
                    out = Path(tmp) / f"{model}-{dataset}-{way}-{r}"
                    rates[way].append(runners[way](compose_cfg(model, dataset, base), data, out))
                    line = f"bench {model}/{dataset} {way} {r + 1}/{repeats}: {rates[way][-1]:.0f} samples/s"
                    print(line, file=sys.stderr, flush=True)
            median = {w: statistics.median(v) for w, v in rates.items()}
            results["cases"][f"{model}/{dataset}"] = {
                "samples_per_s": median,
                "all_samples_per_s": rates,
                # each repeat runs the ways back to back: the median of per-repeat ratios resists drift
                "project_vs_plain": paired_ratio(rates["project"], rates["plain"]),
                "textbook_vs_plain": paired_ratio(rates["textbook"], rates["plain"]),
            }
    return results


def table(results: dict[str, Any]) -> str:
    lines = [
        f"device={results['device']} samples/epoch={results['samples']} "
        f"batch={results['batch_size']} repeats={results['repeats']}",
        "| model/dataset | project (samples/s) | plain loop | textbook | project / plain | textbook / plain |",
        "|---|---|---|---|---|---|",
    ]
    for case, r in results["cases"].items():
        s = r["samples_per_s"]
        lines.append(
            f"| {case} | {s['project']:.0f} | {s['plain']:.0f} | {s['textbook']:.0f} | "
            f"{r['project_vs_plain']:.3f} | {r['textbook_vs_plain']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bvp.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--samples", type=int, default=16384, help="training samples per epoch")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="times each way is run, alternating")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the textbook path")
    parser.add_argument("--cases", nargs="*", default=[f"{m}/{d}" for m, d in CASES], help="model/dataset pairs")
    parser.add_argument("--json", type=Path, default=Path("bench.json"), help="where to write the results")
    parser.add_argument("overrides", nargs="*", default=[], help="config overrides, e.g. trainer=gpu compile=true")
    args = parser.parse_args(argv)
    quiet()  # no third-party tips, no known-harmless dependency warnings
    quiet_console()  # Lightning's device banner and fit summary, once per timed run, would bury the results
    cases = [tuple(c.split("/")) for c in args.cases]
    results = bench(args.samples, args.batch_size, args.repeats, args.device, args.workers, cases, args.overrides)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"results: {args.json}")


if __name__ == "__main__":
    main()
