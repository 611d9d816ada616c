"Tests of the pixel world model: shapes, the copy-baseline start, the index arithmetic of n_pred > 1, training and resume."
from pathlib import Path
import numpy as np
import pytest, torch
from worldmodels_nb.core import apply_overrides, load_model
from worldmodels_nb.data import FORMAT, EpisodeDataset, write_shard
from worldmodels_nb.metrics import evaluate_rollouts, CopyLastFrame, to_unit
from worldmodels_nb.pixel import (PixelWorldModel, PixelModelConfig, PixelConfig, frame_loss, clip_len, resolve_model_config,
                                  train_pixel)

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
    st = model.observe(to_unit(b["frames"][:, :4]), b["actions"][:, :3])
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

def test_n_pred_2_uses_the_right_frames_and_actions():
    "Zero-initialised heads copy the last frame exactly; with n_pred=2 every forward call sees the frames and actions at the right offsets."
    k, n = 4, 2
    model = PixelWorldModel(PixelModelConfig(width=8, n_pred=n, rollout_steps=2)).eval()
    calls, forward = [], model.forward
    def recording_forward(ctx, actions):
        calls.append((ctx.clone(), actions.clone()))
        return forward(ctx, actions)
    model.forward = recording_forward
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(3, 253, (2, k + n * 2, 3, 64, 64), dtype=torch.uint8, generator=g)  # (B, T, C, H, W)
    actions = torch.arange(k + n * 2).repeat(2, 1)  # action t = t: offsets are visible in the recorded calls
    x = to_unit(frames)
    # loss: step j takes context frames jn..jn+k-1 (true, then predicted) and actions jn..jn+k+n-2; targets jn+k..jn+k+n-1
    out = model.loss({"frames": frames, "actions": actions})
    assert [a[0].tolist() for _, a in calls] == [[0, 1, 2, 3, 4], [2, 3, 4, 5, 6]]
    torch.testing.assert_close(calls[0][0], x[:, :k])
    torch.testing.assert_close(calls[1][0][:, :2], x[:, 2:4])  # the two true frames that stay in the context
    torch.testing.assert_close(calls[1][0][:, 2:], x[:, 3:4].expand(-1, 2, -1, -1, -1), atol=1e-5, rtol=0)  # two copies of o_3
    torch.testing.assert_close(out["loss_step1"], ((x[:, 3:4] - x[:, 4:6]) ** 2).mean(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out["loss_step2"], ((x[:, 3:4] - x[:, 6:8]) ** 2).mean(), atol=1e-6, rtol=1e-5)
    # imagine: H=5 frames from 3 forward calls of 2 frames; the last chunk pads with the last action
    calls.clear()
    past, fut = torch.tensor([[10, 11, 12]] * 2), torch.tensor([[5, 6, 7, 8, 9]] * 2)
    pred = model.imagine(model.observe(x[:, :k], past), fut)
    assert pred.shape == (2, 5, 3, 64, 64)
    torch.testing.assert_close(pred, x[:, k - 1:k].expand(-1, 5, -1, -1, -1), atol=1e-5, rtol=0)  # copy-last-frame, exactly
    assert [a[0].tolist() for _, a in calls] == [[10, 11, 12, 5, 6], [12, 5, 6, 7, 8], [6, 7, 8, 9, 9]]

def tiny_dataset(path, lengths=((20, 16), (18,), (14, 20)), seed=0, num_actions=15):
    "A hand-written 64x64 pixel dataset in the shared format: shards of episodes of the given lengths."
    rng = np.random.default_rng(seed)
    m = dict(format=FORMAT, env_id="test:tiny", env_kwargs={}, settings={}, observation_space=dict(kind="box", shape=[64, 64, 3], dtype="uint8"),
             action_space=dict(kind="discrete", n=num_actions, shape=[], dtype="int64"), policy="random", policy_kwargs={}, shards=[], target_steps=0)
    Path(path).mkdir(parents=True)
    for shard in lengths:
        N = sum(shard); done = np.zeros(N, bool); done[np.cumsum(shard) - 1] = True
        write_shard(path, m, dict(frames=rng.integers(0, 256, (N, 64, 64, 3), dtype=np.uint8), actions=rng.integers(0, num_actions, N),
                                  rewards=np.zeros(N, np.float32), done=done, truncated=np.zeros(N, bool)))
    return EpisodeDataset(path)

def test_train_pixel_run_folder_checkpoint_and_resume(tmp_path):
    ds = tiny_dataset(tmp_path/"data", num_actions=6)
    cfg = resolve_model_config(apply_overrides(PixelConfig.smoke(), ["train.max_steps=4", "train.batch_size=4"]), ds)
    assert cfg.model.obs_shape == [3, 64, 64] and (cfg.model.num_actions, cfg.model.action_dim) == (6, 0)
    train, val = ds.split(0.34, seed=0)
    model, res = train_pixel(cfg, train, val, tmp_path/"runs", progress=False)
    run = res.run_dir
    assert res.step == 4 and run.parent == tmp_path/"runs" and "_pixel_" in run.name
    for f in ("resolved_config.yaml", "metrics.csv", "val_metrics.csv", "val_rollout_metrics.csv", "checkpoints/best.pt", "checkpoints/last.pt"):
        assert (run/f).exists(), f
    assert list((run/"videos").glob("rollout_*.mp4")) and list((run/"images").glob("strip_*.png"))
    m2, cfg2, st = load_model(run/"checkpoints"/"last.pt")  # the checkpoint alone rebuilds the model
    assert isinstance(m2, PixelWorldModel) and cfg2.model.act_embed == cfg.model.act_embed and cfg2.data == cfg.data
    b = next(val.clips(clip_len(cfg.model) + 2, batch_size=2))
    x = to_unit(b["frames"])
    with torch.no_grad():
        p1 = model.eval().imagine(model.observe(x[:, :4], b["actions"][:, :3]), b["actions"][:, 3:6])
        p2 = m2.imagine(m2.observe(x[:, :4], b["actions"][:, :3]), b["actions"][:, 3:6])
    torch.testing.assert_close(p1, p2)
    _, res2 = train_pixel(apply_overrides(cfg, ["train.max_steps=6"]), train, val, run_dir=run, progress=False)
    assert res2.run_dir == run and res2.step == 6  # resumed from last.pt, not restarted
