"""Take Cover at quick: C evolved in the dream of two Ms trained on data where holding an action is common.

    python tools/take_cover_recipe.py [--seeds 0 1 2 3] [--members 2] [--p 0.95] [--seq-len 256]
        [--v-steps 1000] [--v-width 32] [--data-root data]

The experiment behind 07_dream_controller's "Where the dream lies" section and its exercise 9, as one command:
1. 30,000 (+ 5,000 held-out) steps of Take Cover with sticky random actions repeated with probability `--p` (the
   course: 0.75), in folders of their own (`data/VizdoomTakeCover-v1_sticky-p0.95_30000`; the course's are untouched);
2. a V trained as 06_mdnrnn trains Take Cover's (1,000 steps, width 32; `--v-steps`, `--v-width`), the data encoded.
   Codes already in `--data-root` are reused with their V, so another V needs a data root of its own;
3. `--members` Ms on `--seq-len`-step windows (batch 8 x 256 = the course's 64 x 32 steps per batch), seeds 0, 11, 12...;
4. the dream check (`dream_calibration`) of the ensemble at the preset's tau;
5. per CMA-ES seed: C evolved with the quick preset in the ensemble's dream, scored over the same 100 seeded real
   episodes as the notebook (seed 10,000).
Prints one JSON line per result. About 7 minutes of data, V and Ms, then about 2 minutes per seed on 2 idle cores
(measured: seed 0 gives 409.0 ± 214.3 over the 100 episodes, the random policy 226.3 ± 108.4)."""
import argparse, json, time
from dataclasses import replace

import numpy as np
import torch

from worldmodels_nb.controller import (TAKE_COVER, ControllerConfig, RealFeatures, VMEnsemble, dream_calibration,
                                       population_actions, random_returns, real_returns, train_controller_in_dream)
from worldmodels_nb.core import apply_overrides, load_checkpoint, preset
from worldmodels_nb.data import EpisodeDataset
from worldmodels_nb.dream import dream_starts
from worldmodels_nb.mdnrnn import MDNRNNConfig, latent_datasets, train_mdnrnn


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="CMA-ES seeds")
    ap.add_argument("--members", type=int, default=2, help="Ms dreamed together (1: a single M)")
    ap.add_argument("--p", type=float, default=0.95, help="probability that the sticky random policy repeats its action")
    ap.add_argument("--seq-len", type=int, default=256, help="M's training windows (steps)")
    ap.add_argument("--v-steps", type=int, default=1000, help="V's training steps (06_mdnrnn's Take Cover V: 1,000)")
    ap.add_argument("--v-width", type=int, default=32, help="V's conv width (06_mdnrnn's Take Cover V: 32)")
    ap.add_argument("--data-root", default="data")
    ap.add_argument("--out", default="runs/recipe")
    ap.add_argument("--episodes", type=int, default=100, help="real episodes that score each C")
    a = ap.parse_args()
    torch.set_num_threads(2)
    out = lambda **kw: print(json.dumps(kw), flush=True)
    t0 = time.time()
    small_v = [f"train.{k}={a.v_steps}" for k in ("max_steps", "val_every", "ckpt_every")]  # 06_mdnrnn's: 1,000
    small_v.append(f"model.width={a.v_width}")
    pin = ["train.threads=2"]  # not chosen by the machine's load: another thread count trains other weights
    data = [f"data.policy_kwargs={{p: {a.p}}}"]  # its own folders: data/VizdoomTakeCover-v1_sticky-p0.95_30000...
    L = latent_datasets(TAKE_COVER, "quick", a.data_root, a.out, vae_overrides=small_v + data + pin, progress=False)
    vc = load_checkpoint(L["vae_checkpoint"])["config"]  # codes found in data_root come with the V that wrote them
    if (vc["train"]["max_steps"], vc["model"]["width"]) != (a.v_steps, a.v_width):
        raise SystemExit(f"{a.data_root} holds codes of a V trained {vc['train']['max_steps']} steps at width "
                         f"{vc['model']['width']}, not {a.v_steps} at {a.v_width}: give this V a --data-root of its own")
    window = [f"seq_len={a.seq_len}", f"train.batch_size={max(1, 64 * 32 // a.seq_len)}"]
    mdns = []
    for k in range(a.members):
        cfg = apply_overrides(preset(MDNRNNConfig, "quick"), window + pin + [f"train.seed={0 if k == 0 else 10 + k}"])
        mdns.append(train_mdnrnn(cfg, L["train"], L["val"], a.out, progress=False)[0].eval())
    ens = VMEnsemble(L["vae"], mdns).eval()
    out(stage="data, V and Ms", minutes=round((time.time() - t0) / 60, 2), p=a.p, seq_len=a.seq_len, members=a.members)
    starts = dream_starts(EpisodeDataset(L["frames_train"].path), context=1)
    pc = replace(preset(ControllerConfig, "quick"), env=TAKE_COVER)
    calib = dream_calibration({"dream": ens}, starts, TAKE_COVER, pc.tau, 64, 32, pc.max_steps, 10_000)
    out(stage="dream check", tau=pc.tau, **{k: {c: round(v) for c, v in r.items()} for k, r in calib.iterrows()})
    r_ret = random_returns(TAKE_COVER, a.episodes, pc.num_envs, seed=10_000, max_steps=pc.max_steps)[0]
    out(stage="random policy", real=round(r_ret.mean(), 1), std=round(r_ret.std(), 1))
    for s in a.seeds:
        t1 = time.time()
        ctrl, run, hist = train_controller_in_dream(replace(pc, seed=s), ens, starts, out_dir=a.out, progress=False)
        load_checkpoint(run/"checkpoints"/"best.pt", ctrl)
        x = torch.nn.utils.parameters_to_vector(ctrl.parameters()).detach().numpy()[None]
        ret = real_returns(TAKE_COVER, lambda f, ep: population_actions(ctrl, x, np.zeros(len(ep), int), f),
                           a.episodes, pc.num_envs, 10_000, pc.max_steps, RealFeatures(ens))[0]
        out(stage="controller", seed=s, dream_evals=[round(h["eval_mean"]) for h in hist if h["eval_mean"] == h["eval_mean"]],
            real=round(ret.mean(), 1), std=round(ret.std(), 1), minutes=round((time.time() - t1) / 60, 2))


if __name__ == "__main__":
    main()
