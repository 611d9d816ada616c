"Tests of the RSSM stage (worldmodels_nb.rssm): KL terms, latents, shapes, alignment, resume, FACTR end to end."
import math, pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from worldmodels_nb.core import ConfigError, TrainConfig, fit, load_checkpoint
from worldmodels_nb.metrics import CopyLastFrame, evaluate_rollouts
from worldmodels_nb.rssm import (RSSM, LinearDynamics, RSSMConfig, RSSMModelConfig, RSSMWorldModel, categorical_stats,
                                 dream_mse, gaussian_stats, kl_divergence, kl_loss, posterior_mse,
                                 sample_latent, windows)

torch.set_num_threads(1)

def tiny(pixels=False, D=3, A=2, **kw):
    "A small config: D-dim states with A-dim continuous actions, or 64x64 frames with A discrete actions."
    shape = dict(obs_shape=[3, 64, 64], num_actions=A, action_dim=0) if pixels else dict(obs_shape=[D], num_actions=0, action_dim=A)
    return RSSMModelConfig(**{**shape, **dict(stoch=4, groups=3, classes=4, deter=16, hidden=16, embed=16, depth=4), **kw})

def open_loop(model, clips, context, horizon, std=None):
    "Per-step, per-dimension open-loop MSE (H, D) from the one rollout evaluator."
    return torch.tensor(evaluate_rollouts(model, clips, context, horizon, std=std, per_dim=True)["mse_per_dim"])

def clip(B=2, T=6, D=3, A=2, pixels=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (B, T, 3, 64, 64), dtype=torch.uint8, generator=g) if pixels else torch.randn(B, T, D, generator=g)
    actions = torch.randint(0, 15, (B, T), generator=g) if pixels else torch.rand(B, T, A, generator=g) * 2 - 1
    return dict(frames=frames, actions=actions, rewards=torch.randn(B, T, generator=g), dones=torch.zeros(B, T, dtype=torch.bool))

# --- KL balancing and free nats -----------------------------------------------------------------------------------------

def _gaussians():
    q = dict(mu=torch.ones(1, 2, requires_grad=True), std=torch.ones(1, 2, requires_grad=True))
    p = dict(mu=torch.zeros(1, 2, requires_grad=True), std=torch.full((1, 2), 2.0, requires_grad=True))
    return q, p

def test_gaussian_kl_hand_value_and_library():
    q, p = _gaussians()
    hand = 2 * (math.log(2) + (1 + 1) / (2 * 4) - 0.5)  # KL[N(1,1) || N(0,4)] per dim, two dims
    assert kl_divergence(q, p).item() == pytest.approx(hand, abs=1e-6)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(q["mu"], q["std"]), torch.distributions.Normal(p["mu"], p["std"])).sum(-1)
    torch.testing.assert_close(kl_divergence(q, p), ref)

def test_categorical_kl_matches_library():
    q, p = categorical_stats(torch.randn(4, 12), 3, 4), categorical_stats(torch.randn(4, 12), 3, 4)
    ref = torch.distributions.kl_divergence(torch.distributions.Categorical(probs=q["probs"]), torch.distributions.Categorical(probs=p["probs"])).sum(-1)
    torch.testing.assert_close(kl_divergence(q, p), ref)

def test_free_nats_clamp():
    q, p = _gaussians()
    kl = kl_divergence(q, p).item()  # 0.886
    loss, kl_mean = kl_loss(q, p, alpha=0.8, free_nats=0.5)
    assert loss.item() == pytest.approx(kl, abs=1e-6) and kl_mean.item() == pytest.approx(kl, abs=1e-6)
    loss, _ = kl_loss(q, p, alpha=0.8, free_nats=1.0)
    assert loss.item() == pytest.approx(1.0)  # below the free nats the loss is the constant F...
    grads = torch.autograd.grad(loss, [q["mu"], q["std"], p["mu"], p["std"]], allow_unused=True)
    assert all(g is None or g.abs().sum() == 0 for g in grads)  # ...and no gradient flows

@pytest.mark.parametrize("alpha", [0.8, 0.3])
def test_kl_balancing_gradient_split(alpha):
    q, p = _gaussians()
    loss, _ = kl_loss(q, p, alpha=alpha, free_nats=0.0)
    gq_mu, gq_std, gp_mu, gp_std = torch.autograd.grad(loss, [q["mu"], q["std"], p["mu"], p["std"]])
    rq_mu, rq_std, rp_mu, rp_std = torch.autograd.grad(kl_divergence(q, p).mean(), [q["mu"], q["std"], p["mu"], p["std"]])
    torch.testing.assert_close(gp_mu, alpha * rp_mu); torch.testing.assert_close(gp_std, alpha * rp_std)  # prior: alpha term only
    torch.testing.assert_close(gq_mu, (1 - alpha) * rq_mu); torch.testing.assert_close(gq_std, (1 - alpha) * rq_std)  # posterior: 1-alpha term

# --- latents ------------------------------------------------------------------------------------------------------------

def test_unimix_probabilities():
    logits = torch.tensor([[100.0, 0, 0, 0] * 2])  # two groups, one class certain
    probs = categorical_stats(logits, 2, 4, unimix=0.01)["probs"]
    torch.testing.assert_close(probs[0, 0], torch.tensor([0.99 + 0.0025, 0.0025, 0.0025, 0.0025]))
    torch.testing.assert_close(probs.sum(-1), torch.ones(1, 2))
    probs = categorical_stats(torch.randn(16, 32 * 32), 32, 32, unimix=0.01)["probs"]
    assert probs.min() >= 0.01 / 32 - 1e-8

@pytest.mark.parametrize("sample", [True, False])
def test_categorical_straight_through(sample):
    logits = torch.randn(6, 3 * 5, requires_grad=True)
    z = sample_latent(categorical_stats(logits, 3, 5), sample)
    zz = z.detach().view(6, 3, 5)
    torch.testing.assert_close(zz, torch.nn.functional.one_hot(zz.argmax(-1), 5).float())  # forward value: one-hot per group (to float rounding)
    (z * torch.randn(6, 15)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0  # gradients reach the logits

def test_gaussian_min_std_and_mode():
    st = gaussian_stats(torch.full((2, 8), -50.0), min_std=0.1)
    torch.testing.assert_close(st["std"], torch.full((2, 4), 0.1))
    torch.testing.assert_close(sample_latent(st, sample=False), st["mu"])

# --- shapes and config errors -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pixels", [False, True])
@pytest.mark.parametrize("latent", ["gaussian", "categorical"])
def test_imagine_shapes_and_gradients(pixels, latent):
    m = RSSMWorldModel(tiny(pixels=pixels, latent=latent, A=15 if pixels else 2, reward_head=True, cont_head=True))
    b = clip(pixels=pixels)
    out = m.loss(b)
    assert {"loss", "recon", "kl", "reward", "cont", "kl_weight"} <= set(out) and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    with torch.no_grad():
        state = m.observe(b["frames"][:, :3], b["actions"][:, :2])
        pred = m.imagine(state, b["actions"][:, 2:6])
        assert m.observe(b["frames"][:, :1], b["actions"][:, :0])["h"].shape == (2, 16)  # k = 1: no actions
    assert pred.shape == ((2, 4, 3, 64, 64) if pixels else (2, 4, 3)) and pred.dtype == torch.float32
    if pixels: assert 0 <= pred.min() and pred.max() <= 1
    z_dim = 12 if latent == "categorical" else 4
    post, prior = m.rssm.observe(torch.randn(2, 5, m.rssm.post_net[0].in_features - 16), torch.randn(2, 5, m.c.act_size))
    assert post["z"].shape == prior["z"].shape == (2, 5, z_dim)
    assert m.rssm.imagine(m.rssm.initial(2), torch.randn(2, 7, m.c.act_size))["h"].shape == (2, 7, 16)

def test_bad_config_and_inputs_fail_in_one_line():
    with pytest.raises(ConfigError, match="unknown model.latent 'vq'; choose gaussian or categorical"): RSSM(tiny(latent="vq"), 4)
    with pytest.raises(ConfigError, match="obs_window=1 for pixels"): RSSMWorldModel(tiny(pixels=True, obs_window=2))
    m, b = RSSMWorldModel(tiny()), clip()
    with pytest.raises(ValueError, match="k-1 actions") as e: m.observe(b["frames"][:, :3], b["actions"][:, :3])
    assert "\n" not in str(e.value)

# --- alignment ----------------------------------------------------------------------------------------------------------

def test_windows_and_previous_actions_alignment():
    x = torch.arange(5.).view(1, 5, 1)
    assert windows(x, 2)[0].tolist() == [[0, 0], [0, 1], [1, 2], [2, 3], [3, 4]]
    m = RSSMWorldModel(tiny(A=1))
    seen = {}
    orig = m.rssm.observe
    def spy(embeds, prev, **kw): seen["prev"] = prev; return orig(embeds, prev, **kw)
    m.rssm.observe = spy
    acts = torch.arange(1., 7.).view(1, 6, 1)
    m.filter(torch.zeros(1, 6, 3), acts)
    assert seen["prev"][0, :, 0].tolist() == [0, 1, 2, 3, 4, 5]  # step t uses a_{t-1}; a_0 = 0; the last action is unused

def _additive(B, T, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(B, T, 2, generator=g) * 2 - 1
    o0 = torch.randn(B, 1, 2, generator=g)
    return dict(frames=torch.cat([o0, o0 + a[:, :-1].cumsum(1)], 1), actions=a, rewards=torch.zeros(B, T), dones=torch.zeros(B, T, dtype=torch.bool))

def test_alignment_is_learnable():
    "o_{t+1} = o_t + a_t: a correctly aligned RSSM predicts it open loop far better than holding the last state."
    torch.manual_seed(0)
    m = RSSMWorldModel(RSSMModelConfig(obs_shape=[2], action_dim=2, stoch=4, deter=32, hidden=32, embed=32, free_nats=0.1))
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for s in range(150):
        loss = m.loss(_additive(32, 12, s))["loss"]; opt.zero_grad(); loss.backward(); opt.step()
    val = [_additive(64, 12, 999)]
    assert open_loop(m, val, 4, 8).mean() < 0.5 * open_loop(CopyLastFrame(), val, 4, 8).mean()

# --- baselines and evaluation -------------------------------------------------------------------------------------------

def test_linear_baseline_recovers_linear_dynamics():
    g = torch.Generator().manual_seed(0)
    Am = torch.eye(3) * 0.9 + 0.05 * torch.randn(3, 3, generator=g); Bm = torch.randn(2, 3, generator=g); c = torch.randn(3, generator=g)
    B, T = 16, 20
    a = torch.randn(B, T, 2, generator=g); s = [torch.randn(B, 3, generator=g)]
    for t in range(T - 1): s.append(s[-1] @ Am + a[:, t] @ Bm + c)
    b = dict(frames=torch.stack(s, 1), actions=a)
    lin = LinearDynamics().fit([b])
    assert open_loop(lin, [b], 3, 10).max() < 1e-6
    assert open_loop(CopyLastFrame(), [b], 3, 10).mean() > 1e-2

def test_eval_functions_shapes_and_std_units():
    m, b = RSSMWorldModel(tiny()), clip(B=4, T=10)
    assert open_loop(m, [b], 3, 5).shape == (5, 3)
    assert posterior_mse(m, [b]).shape == dream_mse(m, [b]).shape == (10, 3)
    e1, e2 = open_loop(CopyLastFrame(), [b], 3, 5), open_loop(CopyLastFrame(), [b], 3, 5, std=torch.full((3,), 2.0))
    torch.testing.assert_close(e2, e1 / 4)
    with pytest.raises(ValueError, match="context=5 \\+ horizon=6"): open_loop(m, [b], 5, 6)
    assert m.training  # evaluation restores the training flag

# --- KL warm-up, resume -------------------------------------------------------------------------------------------------

def test_kl_warmup_counts_training_calls_only():
    m, b = RSSMWorldModel(tiny(kl_warmup=4, kl_scale=2.0)), clip()
    assert [m.loss(b)["kl_weight"].item() for _ in range(5)] == [0.5, 1.0, 1.5, 2.0, 2.0]
    m.eval(); m.loss(b); assert m.updates.item() == 5

def test_resume_through_fit(tmp_path):
    c = tiny(kl_warmup=100)
    sampler = lambda step: clip(B=4, T=6, seed=step)
    tc = TrainConfig(max_steps=3, batch_size=4, lr=1e-3, log_every=1, val_every=100, ckpt_every=3, device="cpu")
    r = fit(RSSMWorldModel(c), sampler, tc, tmp_path, progress=False)
    assert r.step == 3
    m2 = RSSMWorldModel(c)
    tc.max_steps = 5
    r2 = fit(m2, sampler, tc, tmp_path, progress=False)
    assert r2.step == 5 and m2.updates.item() == 5  # the step count and the KL warm-up counter both continue
    st = load_checkpoint(tmp_path/"checkpoints"/"last.pt", RSSMWorldModel(c))
    assert st["step"] == 5 and st["optimizer"] is not None

# --- FACTR buffer end to end --------------------------------------------------------------------------------------------

def test_factr_buffer_end_to_end(tmp_path):
    from worldmodels_nb import data
    rng, trajs = np.random.default_rng(0), []
    for i in range(6):
        trajs.append([({"state": rng.normal(size=7).astype(np.float32), "goals": np.full(2, i, np.float32)},
                       rng.normal(size=3).astype(np.float32), float(t == 19)) for t in range(20 + i)])  # reward 1 at t=19: the FACTR RSSM's "is_first"
    (tmp_path/"buf.pkl").write_bytes(pickle.dumps(trajs))
    ds = data.EpisodeDataset(data.import_factr_buffer(tmp_path/"buf.pkl", tmp_path/"ds"))
    assert ds.num_episodes == 6
    b = ds.sample(8, 10, 0)
    assert not b["dones"][:, :-1].any()  # clips never cross an episode
    c = tiny(D=9, A=3, obs_window=2, kl_warmup=5)
    m = RSSMWorldModel(c, norm_stats=ds.norm_stats)
    tc = TrainConfig(max_steps=4, batch_size=8, lr=1e-3, log_every=2, val_every=2, val_batches=1, ckpt_every=2, device="cpu")
    r = fit(m, ds.sampler(8, 10), tc, tmp_path/"run", val_data=list(ds.clips(10, batch_size=8)), config=RSSMConfig(model=c, train=tc), progress=False)
    assert r.step == 4 and math.isfinite(r.val["val_loss"])
    assert open_loop(m, ds.clips(15, batch_size=8), 5, 10).shape == (10, 9)

def test_vae_option():
    m, b = RSSMWorldModel(tiny(vae_latent=2)), clip()
    out = m.loss(b)
    assert {"vae_recon", "vae_kl"} <= set(out)
    out["loss"].backward()
    assert all(p.grad is not None for p in m.vae.parameters())
    with torch.no_grad(): assert m.imagine(m.observe(b["frames"][:, :2], b["actions"][:, :1]), b["actions"][:, 1:5]).shape == (2, 4, 3)
    assert m.encoder[0].in_features == 2 and m.decoder[-1].out_features == 2  # the RSSM works on the 2-d VAE latent
    with pytest.raises(ConfigError, match="vae_latent=0 for pixels"): RSSMWorldModel(tiny(pixels=True, vae_latent=2))


def test_wm_train_rssm_and_wm_eval_end_to_end(tmp_path):
    "wm-train rssm collects a small HalfCheetah dataset, trains at smoke scale; wm-eval rebuilds it from the checkpoint."
    import json, subprocess, sys
    code = "import sys; from worldmodels_nb.cli import train_main, eval_main; sys.exit({}(sys.argv[1:]))"
    run = lambda fn, *a: subprocess.run([sys.executable, "-c", code.format(fn), *a], capture_output=True, text=True)
    data = tmp_path/"cheetah"
    r = run("train_main", "rssm", "--scale", "smoke", "--data", str(data), "--out", str(tmp_path/"runs"), "data.train_steps=3000", "train.max_steps=4")
    assert r.returncode == 0, r.stderr[-3000:]
    ckpt = next((tmp_path/"runs").glob("*_rssm_*/checkpoints/best.pt"))
    r = run("eval_main", "--checkpoint", str(ckpt), "--data", str(data), "--horizon", "5", "--max-clips", "32", "--out", str(tmp_path/"eval"))
    assert r.returncode == 0, r.stderr[-3000:]
    ev = json.loads(next((tmp_path/"eval").glob("*_eval/eval.json")).read_text())
    assert ev["model"]["kind"] == "state" and len(ev["model"]["mse"]) == 5 and len(ev["copy-last-frame"]["mse"]) == 5
    r = run("train_main", "rssm", "--scale", "smoke", "--data", str(tmp_path/"nope"), "model.stochh=3")
    assert r.returncode != 0 and "unknown config key 'model.stochh'" in r.stderr

# --- best.pt is chosen by open-loop prediction ----------------------------------------------------------------------------

def _factr_dataset(tmp_path, episodes=8, length=30):
    from worldmodels_nb import data
    rng = np.random.default_rng(0)
    trajs = [[({"state": rng.normal(size=5).astype(np.float32)}, rng.normal(size=2).astype(np.float32), 0.0) for t in range(length + i)]
             for i in range(episodes)]
    (tmp_path/"buf.pkl").write_bytes(pickle.dumps(trajs))
    return data.EpisodeDataset(data.import_factr_buffer(tmp_path/"buf.pkl", tmp_path/"ds")).split(0.25, seed=0)

def _val_rows(run):
    import csv
    with open(run/"val_metrics.csv") as f: return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]

def _small_cfg(**model):
    from worldmodels_nb.core import preset
    cfg = RSSMConfig.smoke()
    assert all(preset(RSSMConfig, s).train.monitor == "val_open_loop_mse" for s in ("smoke", "quick", "full"))
    cfg.seq_len, cfg.context, cfg.horizon = 10, 3, 50  # a horizon longer than the episodes: validation falls back to a shorter one
    cfg.model = RSSMModelConfig(stoch=4, deter=16, hidden=16, embed=16, **model)
    cfg.train = TrainConfig(max_steps=8, batch_size=4, lr=1e-3, log_every=2, val_every=2, val_batches=2, ckpt_every=2, device="cpu",
                            monitor="val_open_loop_mse")
    return cfg

def test_best_pt_is_the_lowest_open_loop_error(tmp_path):
    from worldmodels_nb.rssm import train_rssm
    tr, va = _factr_dataset(tmp_path)
    _, res = train_rssm(_small_cfg(), tr, va, run_dir=tmp_path/"run", progress=False)
    rows = _val_rows(tmp_path/"run")
    assert [r["step"] for r in rows] == [2, 4, 6, 8] and all(math.isfinite(r["val_open_loop_mse"]) for r in rows)
    best = min(rows, key=lambda r: r["val_open_loop_mse"])
    assert load_checkpoint(tmp_path/"run"/"checkpoints"/"best.pt")["step"] == best["step"] and res.best == pytest.approx(best["val_open_loop_mse"])

def test_best_pt_follows_prediction_while_val_loss_rises(tmp_path, monkeypatch):
    "The KL weight ramps up (val_loss rises) while the prediction error falls: best.pt is the last validation, not the first."
    from worldmodels_nb import metrics
    from worldmodels_nb.rssm import train_rssm
    falling = iter([4.0, 3.0, 2.0, 1.0])
    calls = []
    def fake(model, clips, context, horizon, **kw):
        calls.append((context, horizon)); v = next(falling)
        return dict(mse=[v] * horizon)
    monkeypatch.setattr(metrics, "evaluate_rollouts", fake)
    tr, va = _factr_dataset(tmp_path)
    train_rssm(_small_cfg(kl_scale=100.0, kl_warmup=8), tr, va, run_dir=tmp_path/"run", progress=False)
    rows = _val_rows(tmp_path/"run")
    losses = [r["val_loss"] for r in rows]
    assert losses == sorted(losses), "the total validation loss rises with the KL weight"
    assert calls[0] == (3, int(va.episode_lengths.max()) - 3)  # horizon shortened to what the validation episodes hold
    assert load_checkpoint(tmp_path/"run"/"checkpoints"/"best.pt")["step"] == 8

# --- the pixel RSSM: coinrun_config, budget-curve validation, a checkpoint wm-eval reloads -------------------------------

def _frames_dataset(path, lengths=(30, 28, 32, 26), n_actions=4, seed=0):
    "A hand-written frame dataset in the course format: 64x64 frames, `n_actions` discrete actions."
    from worldmodels_nb.data import FORMAT, EpisodeDataset, write_shard
    rng = np.random.default_rng(seed)
    N = sum(lengths); done = np.zeros(N, bool); done[np.cumsum(lengths) - 1] = True
    m = dict(format=FORMAT, env_id="test:tiny", env_kwargs={}, settings={}, observation_space=dict(kind="box", shape=[64, 64, 3], dtype="uint8"),
             action_space=dict(kind="discrete", n=n_actions, shape=[], dtype="int64"), policy="random", policy_kwargs={}, shards=[], target_steps=N)
    path.mkdir(parents=True)
    write_shard(path, m, dict(frames=rng.integers(0, 256, (N, 64, 64, 3), dtype=np.uint8), actions=rng.integers(0, n_actions, N),
                              rewards=np.zeros(N, np.float32), done=done, truncated=np.zeros(N, bool)))
    return EpisodeDataset(path)

def test_coinrun_config_presets():
    from worldmodels_nb.rssm import coinrun_config
    q = coinrun_config("quick")
    assert (q.env, q.context, q.horizon, q.seq_len, q.train.monitor) == ("procgen:coinrun", 4, 32, 16, "val_open_loop_mse")  # 04_pixel's protocol
    assert coinrun_config("full").model.depth > q.model.depth and coinrun_config("smoke").train.max_steps < q.train.max_steps
    with pytest.raises(ConfigError, match="unknown scale 'big'"): coinrun_config("big")

def test_pixel_rssm_run_reloads_in_wm_eval(tmp_path):
    "train_rssm on frames writes the budget curve (prior and posterior PSNR) and a checkpoint that evaluate_checkpoint rebuilds."
    import csv
    from worldmodels_nb.cli import evaluate_checkpoint
    from worldmodels_nb.core import load_model
    from worldmodels_nb.rssm import coinrun_config, train_rssm
    ds = _frames_dataset(tmp_path/"data")
    tr, va = ds.split(0.25, seed=0)
    cfg = coinrun_config("smoke")
    cfg.model.depth, cfg.model.deter, cfg.model.hidden, cfg.model.groups, cfg.model.classes = 4, 16, 16, 3, 4
    cfg.train.max_steps, cfg.train.batch_size, cfg.train.device = 2, 2, "cpu"
    model, res = train_rssm(cfg, tr, va, tmp_path/"runs", progress=False, name="rssm-pixel")
    assert res.run_dir.name.endswith("_rssm-pixel_procgen-coinrun") and model.c.pixels and model.c.num_actions == 4
    with open(res.run_dir/"val_metrics.csv") as f: row = list(csv.DictReader(f))[-1]
    assert all(math.isfinite(float(row[k])) for k in ("val_open_loop_mse", "val_psnr_h1", "val_psnr_h4", "val_psnr_h8", "val_posterior_psnr"))
    m, c, _ = load_model(res.run_dir/"checkpoints"/"last.pt")
    assert (c.context, c.horizon) == (4, 8) and c.model.obs_shape == [3, 64, 64]
    run, ev = evaluate_checkpoint(res.run_dir/"checkpoints"/"last.pt", ds.path, tmp_path/"ev", max_clips=8, num_videos=1)
    assert ev["model"]["context"] == 4 and len(ev["model"]["psnr"]) == 8 and "delta_psnr" in ev["controllability"]
    ref = evaluate_rollouts(m, ds.clips(12, max_clips=8, batch_size=64), 4, 8)
    np.testing.assert_allclose(ev["model"]["psnr"], ref["psnr"], rtol=1e-5)  # wm-eval gives the notebook's number
