"""One wave of the research loop, a module per stage, named one-to-one after `tasks/*.py`:

plan.py -> dispatch.py -> evaluate.py -> reflect.py, all working on a `WaveScope` (scope.py). The decisions themselves
are the decision policy's (overnight/policy.py); these modules record them in MLflow as they are made.
"""
