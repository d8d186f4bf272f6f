"""The dSprites pilot's curve so far (experiment=dsprites_pilot, still running: its metrics.json holds the curve
only at the end), read from the disentanglement monitor's TensorBoard scalars in the run folder.
    python docs/measurements-2026-12-01-dsprites/pilot_curve.py RUN_FOLDER
"""

import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

tb = Path(sys.argv[1]) / "tb"
rows = {}
for ev in sorted(tb.rglob("events.out.tfevents.*")):
    acc = EventAccumulator(str(ev))
    acc.Reload()
    for tag in acc.Tags()["scalars"]:
        if tag.startswith("disentanglement/"):
            for e in acc.Scalars(tag):
                rows.setdefault(e.step, {})[tag.split("/", 1)[1]] = e.value
FIELDS = ("samples", "val_acc", "mig", "mig/shape", "mig/scale", "mig/orientation", "mig/pos_x", "mig/pos_y")
print("step," + ",".join(FIELDS))
for step, r in sorted(rows.items()):
    print(f"{step}," + ",".join(f"{r[k]:.4f}" if k != "samples" else f"{r[k]:.0f}" for k in FIELDS))
