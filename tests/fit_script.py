"""A small real training run through `core.fit`, used by the tests (resume after SIGKILL, torchrun, NaN stop).

python tests/fit_script.py RUN_DIR [--steps N] [--sleep S] [--nan-at STEP]   (also under torchrun)
"""
import argparse, hashlib, os, time
from dataclasses import dataclass, field
import torch
from torch import nn
from worldmodels_nb.core import TrainConfig, fit, seed_everything, dist_info

@dataclass
class ScriptConfig:
    hidden: int = 32
    train: TrainConfig = field(default_factory=TrainConfig)

class Net(nn.Module):
    "Regress y = sin(3x) + x^2 with an MLP; optional NaN injection at a given step."
    def __init__(self, hidden, nan_at=-1):
        super().__init__(); self.nan_at, self.calls = nan_at, 0
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, 1))
    def loss(self, batch):
        x, y = batch
        if self.training: self.calls += 1
        mse = ((self.net(x) - y) ** 2).mean()
        if self.training and self.calls == self.nan_at: mse = mse * float("nan")
        return {"loss": mse}

def sampler(step, sleep=0.0):
    if sleep: time.sleep(sleep)
    g = torch.Generator().manual_seed(step)
    x = torch.rand(16, 1, generator=g) * 4 - 2
    return x, torch.sin(3 * x) + x ** 2

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("run_dir"); p.add_argument("--steps", type=int, default=60); p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--nan-at", type=int, default=-1); p.add_argument("--ckpt-every", type=int, default=5)
    a = p.parse_args()
    seed_everything(0)
    cfg = ScriptConfig(train=TrainConfig(max_steps=a.steps, batch_size=16, lr=1e-2, log_every=5, val_every=10,
                                         val_batches=2, ckpt_every=a.ckpt_every, device="cpu"))
    model = Net(cfg.hidden, a.nan_at)
    val = [sampler(10_000 + i) for i in range(2)]
    res = fit(model, lambda s: sampler(s, a.sleep), cfg.train, a.run_dir, val_data=val, config=cfg, progress=False)
    rank, world = dist_info()
    digest = hashlib.sha256(b"".join(t.detach().numpy().tobytes() for t in model.parameters())).hexdigest()
    with open(os.path.join(a.run_dir, f"params_rank{rank}.sha"), "w") as f: f.write(digest)
    print(f"done step={res.step} rank={rank}/{world}")
