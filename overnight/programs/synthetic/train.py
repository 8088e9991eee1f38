"""A synthetic research program: the score is a known function of these knobs plus seeded noise.

It trains nothing and runs in milliseconds, so the research loop, its statistics and search strategies can be checked
against the truth. Lower is better. The metric lives in truth.py, which the agent may not edit (nor read: the planner
sees only this file and program.md), the way autoresearch's prepare.py owns val_bpb.
"""

import os
import sys

from truth import HARDWARE_OFFSET, KNOBS, measure

# fmt: off
LEARNING_RATE = 1e-3    # peak learning rate (log scale)
BATCH_SIZE = 16         # sequences per step (log scale)
DEPTH = 3               # number of blocks
WARMUP_FRAC = 0.0       # fraction of the budget in warmup
WEIGHT_DECAY = 0.1      # decoupled weight decay
ACTIVATION = "gelu"     # "gelu" or "swiglu"
NORM = "layer"          # "layer" or "rms"
GRAD_CLIP = 1.0         # max gradient norm
TIE_EMBEDDINGS = True   # share input and output embeddings
# fmt: on


def main() -> None:
    knobs = {name: globals()[name] for name in KNOBS}
    seed = int(os.environ.get("OVERNIGHT_SEED", "0"))
    hardware = os.environ.get("OVERNIGHT_HARDWARE") or None
    if hardware is not None and hardware not in HARDWARE_OFFSET:
        sys.exit(f"OVERNIGHT_HARDWARE={hardware!r} is not one of {', '.join(HARDWARE_OFFSET)}")
    print(f"seed: {seed}")
    print(f"score: {measure(knobs, seed, hardware):.6f}")


if __name__ == "__main__":
    main()
