"""Training cost per sample of experiment=dsprites_pilot's network (issue 20): MACs, FLOPs and wall time.

    OMP_NUM_THREADS=1 .venv/bin/python docs/measurements-2026-12-01-dsprites/cost.py 300 [config overrides]

Builds the network and optimiser the pilot composes, renders 50 batches of procedural sprites and times
``steps`` training steps (forward, loss, backward, Adam) on one thread after 5 warm-up steps, outside Lightning.
``count_macs`` is Torch-Pruning's counter (what bvp records for the deployed classifier); FlopCounterMode is
torch's own (a multiply-accumulate is 2 FLOPs; backward included on a training step).
"""

import sys
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch.utils.flop_counter import FlopCounterMode

from bvp.data.dsprites import NUM_SPRITES, SIZES, render
from bvp.evaluation.cost import count_macs

CONF = Path(__file__).resolve().parents[2] / "conf"

torch.set_num_threads(1)
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
    cfg = compose("train", overrides=["experiment=dsprites_pilot", "output_dir=/tmp/cost", *sys.argv[2:]])
module = instantiate(cfg.model, net={"in_shape": [1, 64, 64], "num_classes": 3}, recon="bernoulli")
net, opt, batch = module.net, module.configure_optimizers(), cfg.batch_size
one = torch.zeros(1, 1, 64, 64)
print("count_macs, forward MACs/sample: training net", count_macs(net, one), "deployed", count_macs(net.classifier(), one))
idx = np.random.default_rng(0).choice(NUM_SPRITES, batch * 50, replace=False)
x_all = torch.from_numpy(render(idx)).float().unsqueeze(1)
y_all = torch.from_numpy(np.unravel_index(idx, SIZES)[0].astype(np.int64))


def step(i: int) -> None:
    j = (i % 50) * batch
    x, y = x_all[j : j + batch], y_all[j : j + batch]
    loss = module.loss_terms(module(x), x, y)["loss"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


net.train()
with FlopCounterMode(display=False) as fc, torch.no_grad():
    module(x_all[:batch])
print(f"FlopCounterMode: forward {fc.get_total_flops() / batch / 2e6:.2f}M MACs/sample (training net), ", end="")
with FlopCounterMode(display=False) as fc, torch.no_grad():
    net.classifier()(x_all[:batch])
print(f"deployed classifier {fc.get_total_flops() / batch / 2e6:.2f}M MACs/sample")
with FlopCounterMode(display=False) as fc:
    step(0)
print(f"FlopCounterMode: one training step (fwd+bwd) {fc.get_total_flops() / batch / 1e6:.1f} MFLOP/sample")
for i in range(5):  # warm-up
    step(i)
t0, c0 = time.perf_counter(), time.process_time()
for i in range(steps):
    step(i)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(
    f"{steps} steps of batch {batch}: wall {wall:.1f}s ({1000 * wall / steps:.0f} ms/step, {1000 * wall / steps / batch:.2f} "
    f"ms/sample), CPU {cpu:.1f}s ({1000 * cpu / steps / batch:.2f} ms/sample), threads {torch.get_num_threads()}"
)
