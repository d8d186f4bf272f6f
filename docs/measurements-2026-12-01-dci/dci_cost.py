"""How long DCI (bvp.evaluation.disentanglement.dci: one GradientBoostingClassifier per factor, as
disentanglement_lib) takes on dSprites-shaped data, in CPU seconds on one thread, and how much its scores move
with the number of training points.

Codes: 10 dimensions; the first five are the five dSprites factors (shape 3, scale 6, orientation 40, pos_x 32,
pos_y 32 classes), each scaled to [0, 1] plus Gaussian noise (sd 0.1), the other five pure noise: a partly
disentangled code whose factors are known. Train on N points, score informativeness on 5,000 others.
    OMP_NUM_THREADS=1 python docs/measurements-2026-12-01-dci/dci_cost.py [N ...]   (default: 500 1000 2000)
"""

import sys
import time

import numpy as np

from bvp.evaluation.disentanglement import dci

SIZES = (3, 6, 40, 32, 32)  # dSprites: shape, scale, orientation, pos_x, pos_y


def sample(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    factors = np.stack([rng.integers(0, k, n) for k in SIZES], axis=1)
    signal = factors / (np.array(SIZES) - 1) + rng.normal(0, 0.1, (n, len(SIZES)))
    return np.concatenate([signal, rng.normal(0, 0.3, (n, 5))], axis=1), factors


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    test_codes, test_factors = sample(5000, rng)
    for n in [int(a) for a in sys.argv[1:]] or [500, 1000, 2000]:
        codes, factors = sample(n, rng)
        start = time.process_time()
        d = dci(codes, factors, test_codes, test_factors)
        print(
            f"N={n:>5} train points: {time.process_time() - start:7.1f} CPU-s  D={d.disentanglement:.3f} "
            f"C={d.completeness:.3f} I={d.informativeness:.3f}",
            flush=True,
        )
