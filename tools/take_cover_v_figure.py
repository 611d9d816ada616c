"""Held-out Take Cover frames with a fireball coming, and what each V given keeps of them (07_dream_controller's figure).

    python tools/take_cover_v_figure.py DATASET OUT.png "V, 1,000 steps=run1/checkpoints/last.pt" "V, 4,000 steps=run2/..."

DATASET is a Take Cover frame dataset (e.g. data/VizdoomTakeCover-v1_sticky-p0.95_30000_heldout_5000). Frames are
picked by their count of fireball-coloured pixels (a ball of about 30-400 pixels: coming, not yet exploding), at least
40 steps apart."""
import argparse

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from worldmodels_nb.core import load_model
from worldmodels_nb.data import EpisodeDataset


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset")
    ap.add_argument("out")
    ap.add_argument("vaes", nargs="+", help="LABEL=CHECKPOINT, one row each")
    ap.add_argument("--frames", type=int, default=6)
    a = ap.parse_args()
    vaes = {lab: load_model(ck)[0].eval() for lab, ck in (v.split("=", 1) for v in a.vaes)}
    ds = EpisodeDataset(a.dataset)
    eps, n = [], 0
    while n < 5000 and len(eps) < ds.num_episodes:  # the first 5,000 frames, episode by episode
        eps.append(ds.episode(len(eps))["frames"][: 5000 - n])
        n += len(eps[-1])
    x = torch.from_numpy(np.concatenate(eps)).permute(0, 3, 1, 2).float() / 255  # (T, C, H, W)
    ball = ((x[:, 0] > 0.8) & (x[:, 1] > 0.6) & (x[:, 2] < 0.6)).flatten(1).sum(1)  # yellow-white pixels
    pick = []
    for i in torch.argsort(torch.where((ball > 30) & (ball < 400), ball, 0), descending=True).tolist():
        if all(abs(i - j) > 40 for j in pick): pick.append(i)
        if len(pick) == a.frames: break
    with torch.no_grad():
        rows = [("the game", x[pick])] + [(k, v.decode(v.encode(x[pick])[0]).clamp(0, 1)) for k, v in vaes.items()]
    fig, ax = plt.subplots(len(rows), len(pick), figsize=(1.5 * len(pick), 1.6 * len(rows)), squeeze=False)
    for r, (name, im) in enumerate(rows):
        for c in range(len(pick)):
            ax[r, c].imshow(im[c].permute(1, 2, 0).numpy())
            ax[r, c].set_xticks([]), ax[r, c].set_yticks([])
        ax[r, 0].set_ylabel(name, fontsize=9)
    fig.suptitle("Take Cover, held-out frames with a fireball coming: what V keeps of it", fontsize=10)
    plt.tight_layout()
    plt.savefig(a.out, dpi=64)


if __name__ == "__main__":
    main()
