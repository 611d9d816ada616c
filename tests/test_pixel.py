"Tests of the pixel world model and the wm-train / wm-eval commands (smoke scale, real CoinRun data)."
import json, subprocess, sys
from pathlib import Path
import pytest, torch
from worldmodels_nb.pixel import PixelWorldModel, PixelModelConfig, PixelConfig, frame_loss, clip_len
from worldmodels_nb.metrics import evaluate_rollouts, CopyLastFrame

def cli(*args, cwd=None):
    code = "import sys; from worldmodels_nb.cli import train_main, eval_main; sys.exit({}(sys.argv[1:]))"
    fn = "train_main" if args[0] == "train" else "eval_main"
    return subprocess.run([sys.executable, "-c", code.format(fn), *args[1:]], capture_output=True, text=True, cwd=cwd)

@pytest.mark.parametrize("n_pred,m,shape,A", [(1, 1, (3, 64, 64), 15), (2, 2, (3, 64, 64), 15), (1, 2, (1, 84, 84), 6)])
def test_shapes_and_gradients(n_pred, m, shape, A):
    cfg = PixelModelConfig(obs_shape=list(shape), num_actions=A, width=8, n_pred=n_pred, rollout_steps=m)
    model = PixelWorldModel(cfg)
    T = clip_len(cfg)
    b = {"frames": torch.randint(0, 256, (3, T, *shape), dtype=torch.uint8), "actions": torch.randint(0, A, (3, T))}
    out = model.loss(b)
    out["loss"].backward()
    assert set(out) >= {"loss", "copy_mse", *[f"loss_step{j + 1}" for j in range(m)]}
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    st = model.observe(b["frames"][:, :4].float() / 255, b["actions"][:, :3])
    pred = model.imagine(st, torch.randint(0, A, (3, 7)))
    assert pred.shape == (3, 7, *shape) and 0 <= pred.min() and pred.max() <= 1

def test_continuous_actions_and_ablation():
    cfg = PixelModelConfig(num_actions=0, action_dim=3, width=8)
    model = PixelWorldModel(cfg)
    ctx, acts = torch.rand(2, 4, 3, 64, 64), torch.randn(2, 4, 3)
    assert model(ctx, acts).shape == (2, 1, 3, 64, 64)
    noact = PixelWorldModel(PixelModelConfig(width=8, use_actions=False))
    with torch.no_grad():
        for p in noact.parameters(): p.add_(0.1 * torch.randn_like(p))
        a1, a2 = torch.zeros(2, 4, dtype=torch.long), torch.full((2, 4), 7)
        assert torch.equal(noact(ctx, a1), noact(ctx, a2)), "the ablation must ignore actions"

def test_untrained_model_is_the_copy_baseline():
    "The head starts at zero: an untrained model predicts the last frame, scored like CopyLastFrame."
    model = PixelWorldModel(PixelModelConfig(width=8))
    frames = torch.randint(1, 255, (4, 10, 3, 64, 64), dtype=torch.uint8)
    clips = [{"frames": frames, "actions": torch.randint(0, 15, (4, 10))}]
    r_model, r_copy = evaluate_rollouts(model, clips, 4, 6), evaluate_rollouts(CopyLastFrame(), clips, 4, 6)
    assert all(abs(a - b) < 1e-4 for a, b in zip(r_model["psnr"], r_copy["psnr"]))

def test_frame_loss_motion_weight():
    prev = torch.zeros(1, 1, 1, 2, 2); target = prev.clone(); target[..., 0, 0] = 1.0  # one moving pixel
    pred = torch.full_like(target, 0.5)
    plain = frame_loss(torch.logit(pred), target, prev)
    weighted = frame_loss(torch.logit(pred), target, prev, motion_weight=3.0)
    assert torch.isclose(plain, torch.tensor(0.25)) and torch.isclose(weighted, torch.tensor(0.25))  # all errors equal
    pred2 = target.clone(); pred2[..., 1, 1] = 0.5  # the error now sits on a static pixel: weighting lowers the loss
    assert frame_loss(torch.logit(pred2.clamp(1e-4, 1 - 1e-4)), target, prev, motion_weight=3.0) < frame_loss(torch.logit(pred2.clamp(1e-4, 1 - 1e-4)), target, prev)

def test_wm_train_and_wm_eval_end_to_end(tmp_path):
    data = tmp_path/"coinrun"
    res = cli("train", "pixel", "--scale", "smoke", "--data", str(data), "--out", str(tmp_path/"runs"), "train.max_steps=4")
    assert res.returncode == 0, res.stderr[-3000:]
    run = next((tmp_path/"runs").glob("*_pixel_*"))
    for f in ("resolved_config.yaml", "metrics.csv", "val_metrics.csv", "val_rollout_metrics.csv", "checkpoints/best.pt", "checkpoints/last.pt"):
        assert (run/f).exists(), f
    assert list((run/"videos").glob("rollout_*.mp4")) and list((run/"images").glob("strip_*.png"))
    res = cli("eval", "--checkpoint", str(run/"checkpoints"/"best.pt"), "--data", str(data), "--horizon", "6", "--max-clips", "16",
              "--out", str(tmp_path/"eval"))
    assert res.returncode == 0, res.stderr[-3000:]
    ev = json.loads(next((tmp_path/"eval").glob("*_eval/eval.json")).read_text())
    assert len(ev["model"]["psnr"]) == 6 and len(ev["copy-last-frame"]["psnr"]) == 6 and "controllability" in ev
    assert next((tmp_path/"eval").glob("*_eval/plots/psnr_vs_horizon.png"))
    # resume: the same run folder continues to the new step count
    res = cli("train", "pixel", "--scale", "smoke", "--data", str(data), "--resume", str(run), "train.max_steps=6")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "trained 6 steps" in res.stdout

def test_wm_eval_errors(tmp_path):
    bad = tmp_path/"bad.pt"; bad.write_bytes(b"not a checkpoint")
    res = cli("eval", "--checkpoint", str(bad), "--data", str(tmp_path))
    assert res.returncode != 0 and "wm-eval: cannot read checkpoint" in res.stderr and "corrupt" in res.stderr
    # a dataset of the wrong frame size
    from worldmodels_nb.data import collect
    from worldmodels_nb.core import save_checkpoint
    small = collect("procgen:coinrun", 200, tmp_path/"small", levels="0:5", size=32, progress=False)
    cfg = PixelConfig.smoke(); cfg.model.width = 8
    ck = save_checkpoint(tmp_path/"m.pt", cfg.build_model(), step=1, config=cfg)
    res = cli("eval", "--checkpoint", str(ck), "--data", str(small))
    assert res.returncode != 0
    assert "wm-eval: dataset frames are 32x32x3 but the model was trained on 64x64x3" in res.stderr.strip().splitlines()[-1]

def test_wm_train_unknown_family_and_bad_override(tmp_path):
    res = cli("train", "transformer-xl")
    assert res.returncode != 0 and "unknown family 'transformer-xl'; families: pixel, rssm, vae" in res.stderr
    res = cli("train", "pixel", "--scale", "smoke", "--data", str(tmp_path/"d"), "model.widht=3")
    assert res.returncode != 0 and "unknown config key 'model.widht'" in res.stderr
