"""Fixed harness for the tiny_gpt research program: data, budget, seed, metric.

This file is READ-ONLY for the research agent. It owns everything that must
stay identical between trials so that results are comparable: the data split,
the context length, how the time budget and seed are read, and the metric
(bits per byte on a fixed set of held-out windows). Only train.py may change.
"""

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F

SEQ_LEN = 128  # fixed context length (bytes) for training and evaluation
VOCAB_SIZE = 256  # byte-level: every byte value is a token
VAL_FRACTION = 0.1  # the last 10% of the corpus is held out for validation
EVAL_WINDOWS = 512  # fixed number of evenly spaced validation windows (64 KiB)
EVAL_BATCH = 64  # windows per evaluation forward pass

DATA_PATH = Path(__file__).resolve().parent / "data" / "shakespeare.txt"
# Where train.py saves the trained weights, in the folder it runs in, for the holdout (evaluate.py). Under
# .overnight/, which overnight never copies into a trial's folder nor counts as part of the program.
MODEL_PATH = Path(".overnight") / "model.pt"


def time_budget() -> float:
    """Seconds of training allowed (env OVERNIGHT_TIME_BUDGET, default 300)."""
    return float(os.environ.get("OVERNIGHT_TIME_BUDGET", "300"))


def seed() -> int:
    """Random seed for this trial (env OVERNIGHT_SEED, default 0)."""
    return int(os.environ.get("OVERNIGHT_SEED", "0"))


def load_splits() -> tuple[torch.Tensor, torch.Tensor]:
    """Return (train, val) as 1-D torch.uint8 tensors of raw bytes."""
    raw = DATA_PATH.read_bytes()
    data = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    n_train = int(len(data) * (1.0 - VAL_FRACTION))
    return data[:n_train].clone(), data[n_train:].clone()


def save_model(model: torch.nn.Module) -> None:
    """Save the trained weights to MODEL_PATH, for evaluate.py to score on the holdout text."""
    MODEL_PATH.parent.mkdir(exist_ok=True)
    torch.save(model.state_dict(), MODEL_PATH)


def get_batch(
    data: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device | str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample random windows of SEQ_LEN bytes; y is x shifted left by one."""
    starts = torch.randint(len(data) - SEQ_LEN - 1, (batch_size,), generator=generator)
    chunk = data[starts[:, None] + torch.arange(SEQ_LEN + 1)].long()
    x, y = chunk[:, :-1], chunk[:, 1:]
    if torch.device(device).type == "cuda":
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


def _eval_starts(n: int) -> torch.Tensor:
    """Evenly spaced window starts over the validation split (seed-independent)."""
    last = n - SEQ_LEN - 1
    return torch.linspace(0, last, EVAL_WINDOWS, dtype=torch.float64).round().long()


@torch.no_grad()
def evaluate_bpb(model: torch.nn.Module, val: torch.Tensor, device) -> float:
    """Bits per byte of `model` on a fixed set of held-out windows.

    Contract: model(x) with x of shape (B, SEQ_LEN) int64 returns logits of
    shape (B, SEQ_LEN, 256). Every window is scored at every position.
    """
    was_training = model.training
    model.eval()
    starts = _eval_starts(len(val))
    total_nats = 0.0
    total_tokens = 0
    for i in range(0, len(starts), EVAL_BATCH):
        s = starts[i : i + EVAL_BATCH]
        chunk = val[s[:, None] + torch.arange(SEQ_LEN + 1)].long().to(device)
        x, y = chunk[:, :-1], chunk[:, 1:]
        logits = model(x)
        if tuple(logits.shape) != (*x.shape, VOCAB_SIZE):
            raise ValueError(
                f"model(x) must return logits of shape {(*x.shape, VOCAB_SIZE)}, got {tuple(logits.shape)}"
            )
        loss = F.cross_entropy(logits.float().reshape(-1, VOCAB_SIZE), y.reshape(-1), reduction="sum")
        total_nats += loss.item()
        total_tokens += y.numel()
    model.train(was_training)
    return total_nats / total_tokens / math.log(2)
