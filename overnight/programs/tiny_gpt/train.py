"""Train a small byte-level GPT on Shakespeare for a fixed wall-clock budget.

This is the only file the research agent edits. The knobs below are the
obvious places to start, but anything in this file may change (model,
optimizer, schedule, training loop) as long as it trains within the time
budget from prepare.py and prints the final metric lines.
"""

import math
import resource
import time

import prepare  # the fixed harness next to this file
import torch
import torch.nn as nn
import torch.nn.functional as F

# fmt: off
LEARNING_RATE = 1e-3   # peak AdamW learning rate
BATCH_SIZE = 16        # sequences of prepare.SEQ_LEN bytes per step
DEPTH = 3              # number of transformer blocks
WIDTH = 96             # residual stream (embedding) dimension
HEAD_DIM = 32          # per-head dimension; heads = max(1, WIDTH // HEAD_DIM)
MLP_RATIO = 4.0        # MLP hidden size = MLP_RATIO * WIDTH
ACTIVATION = "gelu"    # MLP nonlinearity: "gelu" or "relu"
POSITION = "rope"      # "rope" (rotary) or "learned" (absolute embeddings)
DROPOUT = 0.0          # dropout on embeddings, attention and MLP outputs
WEIGHT_DECAY = 0.1     # AdamW decoupled weight decay on matrices
ADAM_BETA1 = 0.9       # AdamW beta1
ADAM_BETA2 = 0.99      # AdamW beta2
WARMUP_FRAC = 0.05     # fraction of the budget spent in linear LR warmup
WARMDOWN_FRAC = 0.3    # fraction of the budget at the end decaying LR to 0
GRAD_CLIP = 1.0        # max global grad norm; 0 disables clipping
TIE_EMBEDDINGS = True  # share input embedding and output head weights
# fmt: on

PROGRESS_EVERY_S = 10.0  # seconds between progress lines


def rotary_tables(seq_len: int, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables of shape (seq_len, head_dim // 2) for rotary embeddings."""
    half = head_dim // 2
    inv_freq = 1.0 / (10000.0 ** (torch.arange(half, dtype=torch.float32) / half))
    angles = torch.arange(seq_len, dtype=torch.float32)[:, None] * inv_freq[None, :]
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (i, i + half) of the last dim; an odd last channel passes through."""
    half = cos.shape[-1]
    t = x.shape[-2]
    cos, sin = cos[:t].to(x.dtype), sin[:t].to(x.dtype)
    x1, x2, rest = x[..., :half], x[..., half : 2 * half], x[..., 2 * half :]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos, rest), dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.n_head = max(1, WIDTH // HEAD_DIM)
        inner = self.n_head * HEAD_DIM
        self.qkv = nn.Linear(WIDTH, 3 * inner, bias=False)
        self.proj = nn.Linear(inner, WIDTH, bias=False)

    def forward(self, x: torch.Tensor, rope) -> torch.Tensor:
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, HEAD_DIM).unbind(2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # (B, H, T, D)
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        p = DROPOUT if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, self.n_head * HEAD_DIM))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        hidden = max(1, round(MLP_RATIO * WIDTH))
        self.fc = nn.Linear(WIDTH, hidden, bias=False)
        self.proj = nn.Linear(hidden, WIDTH, bias=False)
        if ACTIVATION == "gelu":
            self.act = nn.GELU(approximate="tanh")
        elif ACTIVATION == "relu":
            self.act = nn.ReLU()
        else:
            raise ValueError(f"unknown ACTIVATION {ACTIVATION!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.act(self.fc(x)))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(WIDTH)
        self.attn = CausalSelfAttention()
        self.ln2 = nn.LayerNorm(WIDTH)
        self.mlp = MLP()
        self.drop = nn.Dropout(DROPOUT)

    def forward(self, x: torch.Tensor, rope) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), rope))
        x = x + self.drop(self.mlp(self.ln2(x)))
        return x


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        if POSITION not in ("rope", "learned"):
            raise ValueError(f"unknown POSITION {POSITION!r}")
        self.tok_emb = nn.Embedding(prepare.VOCAB_SIZE, WIDTH)
        self.pos_emb = nn.Embedding(prepare.SEQ_LEN, WIDTH) if POSITION == "learned" else None
        cos, sin = rotary_tables(prepare.SEQ_LEN, HEAD_DIM)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.drop = nn.Dropout(DROPOUT)
        self.blocks = nn.ModuleList(Block() for _ in range(DEPTH))
        self.ln_f = nn.LayerNorm(WIDTH)
        self.head = nn.Linear(WIDTH, prepare.VOCAB_SIZE, bias=False)
        if TIE_EMBEDDINGS:
            self.head.weight = self.tok_emb.weight
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
        # GPT-2 style: shrink the residual output projections with depth.
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * DEPTH))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok_emb(idx)
        rope = None
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(idx.shape[1], device=idx.device))
        else:
            rope = (self.rope_cos, self.rope_sin)
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, rope)
        return self.head(self.ln_f(x))


def lr_multiplier(progress: float) -> float:
    """LR schedule over progress = elapsed / budget: warmup, flat, warmdown to 0."""
    m = 1.0
    if WARMUP_FRAC > 0 and progress < WARMUP_FRAC:
        m = min(m, (progress + 1e-3) / WARMUP_FRAC)
    if WARMDOWN_FRAC > 0 and progress > 1.0 - WARMDOWN_FRAC:
        m = min(m, max(0.0, 1.0 - progress) / WARMDOWN_FRAC)
    return m


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    params = list(model.parameters())  # tied weights appear once
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": WEIGHT_DECAY},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    betas = (ADAM_BETA1, ADAM_BETA2)
    return torch.optim.AdamW(groups, lr=LEARNING_RATE, betas=betas, eps=1e-8)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    budget = prepare.time_budget()
    run_seed = prepare.seed()
    torch.manual_seed(run_seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.manual_seed_all(run_seed)
        torch.set_float32_matmul_precision("high")
        autocast = torch.autocast("cuda", dtype=torch.bfloat16)
    else:
        autocast = torch.autocast("cpu", enabled=False)

    train_data, val_data = prepare.load_splits()
    batch_gen = torch.Generator().manual_seed(run_seed)
    model = GPT().to(device)
    num_params = sum(p.numel() for p in model.parameters())
    optimizer = make_optimizer(model)

    step = 0
    tokens_seen = 0
    elapsed = 0.0  # training time only; evaluation is not counted
    last_report = 0.0
    model.train()
    while elapsed < budget:
        t0 = time.perf_counter()
        lr = LEARNING_RATE * lr_multiplier(elapsed / budget)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = prepare.get_batch(train_data, BATCH_SIZE, batch_gen, device)
        with autocast:
            logits = model(x)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if GRAD_CLIP > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        loss_value = loss.item()  # also waits for the GPU, so timing is honest
        elapsed += time.perf_counter() - t0
        step += 1
        tokens_seen += x.numel()
        if not math.isfinite(loss_value):
            print("val_bpb: nan", flush=True)
            raise SystemExit(1)
        if elapsed - last_report >= PROGRESS_EVERY_S:
            last_report = elapsed
            print(f"[progress] step {step} {elapsed:.0f}s loss {loss_value:.4f}", flush=True)

    with autocast:
        val_bpb = prepare.evaluate_bpb(model, val_data, device)
    if not math.isfinite(val_bpb):
        print("val_bpb: nan", flush=True)
        raise SystemExit(1)
    print(f"val_bpb: {val_bpb:.6f}")
    print(f"training_seconds: {elapsed:.1f}")
    print(f"num_steps: {step}")
    print(f"num_params: {num_params}")
    print(f"tokens_seen: {tokens_seen}")
    print(f"peak_memory_mb: {peak_memory_mb(device):.1f}")
    prepare.save_model(model)  # for the holdout: evaluate.py rebuilds GPT() from this file and loads it


if __name__ == "__main__":
    main()
