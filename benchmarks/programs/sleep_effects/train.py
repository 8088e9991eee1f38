"""A trial that sleeps its time budget, with a score that its knobs really move, so 64 fit on two cores.

score = 1.0 - EFFECT x sum over RATE_00..RATE_07 of min(1, |log2 RATE_k|) + Gaussian noise of sd NOISE.
A move of one of those eight knobs by a factor of 2 or more lowers the score by EFFECT (5 noise sd): screening finds
it promising and the engine confirms it, crowns it and re-measures the new champion. RATE_08..RATE_31 do nothing.
The noise is seeded by OVERNIGHT_SEED and the knobs' values, so a trial's repeat gives the same score and each change
its own draw (as a real program's change alters its random stream). benchmarks/dispatch_utilisation.py runs it.
"""

import math
import os
import random
import time

RATE_00 = 1.0  # effective: moved off 1.0, it lowers the score
RATE_01 = 1.0  # effective: moved off 1.0, it lowers the score
RATE_02 = 1.0  # effective: moved off 1.0, it lowers the score
RATE_03 = 1.0  # effective: moved off 1.0, it lowers the score
RATE_04 = 1.0  # effective: moved off 1.0, it lowers the score
RATE_05 = 1.0  # effective: moved off 1.0, it lowers the score
RATE_06 = 1.0  # effective: moved off 1.0, it lowers the score
RATE_07 = 1.0  # effective: moved off 1.0, it lowers the score
RATE_08 = 1.0
RATE_09 = 1.0
RATE_10 = 1.0
RATE_11 = 1.0
RATE_12 = 1.0
RATE_13 = 1.0
RATE_14 = 1.0
RATE_15 = 1.0
RATE_16 = 1.0
RATE_17 = 1.0
RATE_18 = 1.0
RATE_19 = 1.0
RATE_20 = 1.0
RATE_21 = 1.0
RATE_22 = 1.0
RATE_23 = 1.0
RATE_24 = 1.0
RATE_25 = 1.0
RATE_26 = 1.0
RATE_27 = 1.0
RATE_28 = 1.0
RATE_29 = 1.0
RATE_30 = 1.0
RATE_31 = 1.0

EFFECTIVE = 8  # RATE_00 .. RATE_07
EFFECT = 0.05
NOISE = 0.01

start = time.time()
time.sleep(float(os.environ.get("OVERNIGHT_TIME_BUDGET", "1")))
rates = [value for name, value in sorted(globals().items()) if name.startswith("RATE_")]
seed = os.environ.get("OVERNIGHT_SEED", "0")
noise = random.Random(f"{seed}|{rates}").gauss(0.0, NOISE)
gain = EFFECT * sum(min(1.0, abs(math.log2(rate))) for rate in rates[:EFFECTIVE])
print(f"training_seconds: {time.time() - start:.3f}")
print(f"score: {1.0 - gain + noise:.6f}", flush=True)
