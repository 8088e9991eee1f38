"""A trial that only waits: it sleeps its time budget and reports a constant metric, so 64 fit on two cores.

The benchmarks use it to measure what the engine costs around trials (planning, dispatch, MLflow, Prefect).
"""

import os
import time

RATE_00 = 1.0  # a knob (no effect): the planner needs enough to fill a wave of 64
RATE_01 = 1.0
RATE_02 = 1.0
RATE_03 = 1.0
RATE_04 = 1.0
RATE_05 = 1.0
RATE_06 = 1.0
RATE_07 = 1.0
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

time.sleep(float(os.environ.get("OVERNIGHT_TIME_BUDGET", "1")))
print("score: 1.0")
