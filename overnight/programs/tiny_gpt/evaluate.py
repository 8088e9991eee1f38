"""Holdout evaluator of the tiny_gpt program: the saved model of a trial, scored on text it was never trained on.

This file is READ-ONLY for the research agent. The engine runs it (`metric.holdout` in campaign.yaml) in a fresh
process, in a champion's trial folder, after that trial's `train.py` trained and saved its model. It rebuilds the
model from that folder's own `train.py` (importing it trains nothing: training runs under `__main__` only), loads
the weights train.py saved (`prepare.MODEL_PATH`), and prints `val_bpb: <value>`: the program's metric, computed the
same way (`prepare.evaluate_bpb`), on the holdout text. That text lives outside the program folder, so no trial's
folder holds it; only this process is told where it is, in the environment variable OVERNIGHT_HOLDOUT_DATA.
"""

import math
import os
from pathlib import Path

import prepare  # the fixed harness next to this file
import torch

HOLDOUT_ENV = "OVERNIGHT_HOLDOUT_DATA"


def holdout_bytes() -> torch.Tensor:
    """The holdout text named by OVERNIGHT_HOLDOUT_DATA, as a 1-D torch.uint8 tensor of raw bytes."""
    where = os.environ.get(HOLDOUT_ENV)
    if not where:
        raise SystemExit(f"{HOLDOUT_ENV} is not set: the engine sets it for the holdout command only")
    path = Path(where)
    if not path.is_file():
        raise SystemExit(f"{HOLDOUT_ENV}={where}: no such file")
    return torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)


def load_model(device: torch.device) -> torch.nn.Module:
    """The model of this folder's train.py (its knobs, its GPT class) with the weights that training saved."""
    if not prepare.MODEL_PATH.is_file():
        raise SystemExit(f"no saved model: {prepare.MODEL_PATH} not found (train.py saves it at its end)")
    import train  # this trial's own train.py: defines the model and trains nothing when imported

    model = train.GPT().to(device)
    model.load_state_dict(torch.load(prepare.MODEL_PATH, map_location=device, weights_only=True))
    return model


def main() -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":  # as train.py evaluates
        autocast = torch.autocast("cuda", dtype=torch.bfloat16)
    else:
        autocast = torch.autocast("cpu", enabled=False)
    test = holdout_bytes()
    model = load_model(device)
    with autocast:
        bpb = prepare.evaluate_bpb(model, test, device)
    if not math.isfinite(bpb):
        print("val_bpb: nan", flush=True)
        raise SystemExit(1)
    print(f"val_bpb: {bpb:.6f}")


if __name__ == "__main__":
    main()
