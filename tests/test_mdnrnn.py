"Tests of the MDN-RNN (M), its baselines, V+M as a WorldModel and `wm-train mdnrnn` (smoke scale); the dream is tested in test_dream.py."
import math, subprocess, sys
from pathlib import Path
import numpy as np
import pytest, torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal
from worldmodels_nb.core import ConfigError, apply_overrides, load_model, save_checkpoint
from worldmodels_nb.data import FORMAT, EpisodeDataset, write_manifest, write_shard
from worldmodels_nb.mdnrnn import (GaussianZ, LatentSequences, MDNRNN, MDNRNNConfig, MDNRNNModelConfig, StaticZ,
                                   VMWorldModel, evaluate_latents, mdn_log_prob, mdn_mean, mdn_mode, mdn_out_size, mdn_sample, mdn_split,
                                   noise_floor, resolve_model_config)
from worldmodels_nb.metrics import find_eval, roc_auc
from worldmodels_nb.metrics import evaluate_rollouts
from worldmodels_nb.vae import ConvVAE, VAEConfig, VAEModelConfig, encode_dataset

def frame_dataset(path, lengths=((12, 9), (10, 11)), seed=0, truncate_last=False, continuous=False):
    "A hand-written 64x64 pixel dataset in the shared format: shards of episodes of the given lengths."
    rng = np.random.default_rng(seed)
    aspace = dict(kind="box", shape=[2], dtype="float32", low=[-1.0, 0.0], high=[1.0, 1.0]) if continuous else \
        dict(kind="discrete", n=4, shape=[], dtype="int64")
    m = dict(format=FORMAT, env_id="test:tiny", env_kwargs={}, settings={}, observation_space=dict(kind="box", shape=[64, 64, 3], dtype="uint8"),
             action_space=aspace, policy="random", policy_kwargs={}, shards=[], target_steps=0)
    Path(path).mkdir(parents=True)
    for shard in lengths:
        N = sum(shard); done = np.zeros(N, bool); done[np.cumsum(shard) - 1] = True
        trunc = np.zeros(N, bool)
        if truncate_last: trunc[N - 1] = True
        acts = rng.uniform(-1, 1, (N, 2)).astype(np.float32) if continuous else rng.integers(0, 4, N)
        write_shard(path, m, dict(frames=rng.integers(0, 256, (N, 64, 64, 3), dtype=np.uint8), actions=acts,
                                  rewards=rng.standard_normal(N).astype(np.float32), done=done, truncated=trunc))
    return EpisodeDataset(path)

@pytest.fixture
def latents(tmp_path):
    "(frame dataset, latent dataset, V, V checkpoint path): a tiny V (z=4) and the codes it wrote."
    ds = frame_dataset(tmp_path/"frames")
    vcfg = VAEConfig(model=VAEModelConfig(width=8, z_dim=4))
    vae = vcfg.build_model().eval()
    ck = save_checkpoint(tmp_path/"vae.pt", vae, step=0, config=vcfg)
    lat = encode_dataset(vae, ds, tmp_path/"lat", checkpoint=ck)
    return ds, lat, vae, ck

def model_cfg(**kw):
    return MDNRNNModelConfig(**{**dict(z_dim=4, num_actions=4, hidden=16, num_mixtures=3), **kw})

@pytest.mark.parametrize("mixture", ["per_dim", "joint"])
def test_mdn_log_prob_matches_torch_distributions(mixture):
    g = torch.Generator().manual_seed(0)
    y = 2 * torch.randn(5, 6, mdn_out_size(7, 4, mixture), generator=g, dtype=torch.float64)
    p, z = mdn_split(y, 7, 4, mixture), 3 * torch.randn(5, 6, 7, generator=g, dtype=torch.float64)
    if mixture == "per_dim": ref = MixtureSameFamily(Categorical(logits=p["logits"]), Normal(p["mean"], p["log_sigma"].exp())).log_prob(z).sum(-1)
    else: ref = MixtureSameFamily(Categorical(logits=p["logits"]), Independent(Normal(p["mean"], p["log_sigma"].exp()), 1)).log_prob(z)
    torch.testing.assert_close(mdn_log_prob(p, z), ref, rtol=1e-10, atol=1e-10)
    # K = 1 is a plain diagonal Gaussian
    p1 = mdn_split(torch.randn(3, mdn_out_size(7, 1, mixture), dtype=torch.float64), 7, 1, mixture)
    z1 = torch.randn(3, 7, dtype=torch.float64)
    ref1 = Normal(p1["mean"].reshape(3, 7), p1["log_sigma"].exp().reshape(3, 7)).log_prob(z1).sum(-1)
    torch.testing.assert_close(mdn_log_prob(p1, z1), ref1)

def test_temperature_sampling_moments():
    N = 200_000
    p = dict(logits=torch.log(torch.tensor([0.7, 0.3])).expand(N, 1, 2), mean=torch.tensor([-8.0, 8.0]).expand(N, 1, 2),
             log_sigma=torch.log(torch.tensor([1.0, 0.5])).expand(N, 1, 2), mixture="per_dim")
    for tau in (0.5, 1.0, 2.0):
        x = mdn_sample(p, tau, torch.Generator().manual_seed(1))[:, 0]
        w = torch.softmax(torch.log(torch.tensor([0.7, 0.3])) / tau, 0)
        assert abs(float((x < 0).float().mean()) - float(w[0])) < 0.005
        assert abs(float(x[x < 0].std()) - math.sqrt(tau)) < 0.02 and abs(float(x[x > 0].std()) - 0.5 * math.sqrt(tau)) < 0.02
    assert torch.equal(mdn_sample(p, 0.0)[:2, 0], torch.tensor([-8.0, -8.0]))  # tau = 0: the most likely component's mean
    torch.testing.assert_close(mdn_mean(p)[0], torch.tensor([0.7 * -8 + 0.3 * 8]))
    assert torch.equal(mdn_mode(p)[0], torch.tensor([-8.0]))
    # seeded sampling is reproducible
    pj = mdn_split(torch.randn(9, mdn_out_size(3, 2, "joint")), 3, 2, "joint")
    assert torch.equal(mdn_sample(pj, 1.0, torch.Generator().manual_seed(3)), mdn_sample(pj, 1.0, torch.Generator().manual_seed(3)))

@pytest.mark.parametrize("mixture,continuous", [("per_dim", False), ("joint", False), ("per_dim", True)])
def test_shapes_and_gradients(mixture, continuous):
    cfg = model_cfg(mixture=mixture, **(dict(num_actions=0, action_dim=2) if continuous else {}))
    m = MDNRNN(cfg)
    B, T = 3, 6
    acts = torch.rand(B, T, 2) if continuous else torch.randint(0, 4, (B, T))
    batch = dict(frames=torch.randn(B, T, 8), actions=acts, rewards=torch.randn(B, T), dones=torch.zeros(B, T, dtype=torch.bool),
                 truncated=torch.zeros(B, T, dtype=torch.bool))
    out = m.loss(batch)
    out["loss"].backward()
    assert {"loss", "nll", "reward_mse", "done_bce", "mix_entropy"} <= set(out) and torch.isfinite(out["loss"])
    assert 0 <= float(out["mix_entropy"]) <= math.log(cfg.num_mixtures) + 1e-6
    assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in m.parameters())
    p, r, d, h, st = m(torch.randn(B, T, 4), acts)
    assert r.shape == (B, T) and d.shape == (B, T) and h.shape == (B, T, 16) and st[0].shape == (1, B, 16)
    ps, rs, ds, hs, _ = m.step(torch.randn(B, 4), acts[:, 0])
    assert mdn_sample(ps).shape == (B, 4) and rs.shape == (B,) and hs.shape == (B, 16)

def test_bad_inputs_are_one_line_errors():
    m = MDNRNN(model_cfg())
    b = dict(frames=torch.randn(2, 5, 8), actions=torch.randint(0, 4, (2, 5)), rewards=torch.zeros(2, 5), dones=torch.zeros(2, 5, dtype=torch.bool),
             truncated=torch.zeros(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="latent rows"): m.loss(dict(b, frames=torch.randn(2, 5, 3, 64, 64)))
    with pytest.raises(ValueError, match=r"action ids must lie in \[0, 4\)"): m.loss(dict(b, actions=torch.full((2, 5), 7)))
    with pytest.raises(ValueError, match="discrete actions"): m.loss(dict(b, actions=torch.rand(2, 5, 3)))
    with pytest.raises(ConfigError, match="num_actions"): MDNRNN(MDNRNNModelConfig(z_dim=4))
    with pytest.raises(ConfigError, match="unknown mixture"): MDNRNN(model_cfg(mixture="full"))

def test_windows_masks_and_padding(latents):
    import copy
    _, lat, _, _ = latents
    s = LatentSequences(lat)
    assert len(s) == lat.num_steps
    # every row once, and nothing of another episode inside a window
    seen = sum(int(b["mask"].sum()) for b in s.batches(5, 3))
    assert seen == len(s)
    for b in [s.sample(64, 7, 0), *s.batches(7)]:
        m, d = b["mask"], b["dones"]
        assert not (d & ~m).any()  # no done in the padding
        valid_after_done = (d[:, :-1] & m[:, 1:])
        assert not valid_after_done.any()  # a window stops at its episode's end
    # the loss of a padded window equals the loss of its real rows alone (the LSTM is causal, the padding masked)
    m = MDNRNN(model_cfg()).eval()
    last = int(s.ep_start[0] + s.ep_len[0] - 1)
    w, w_short = s.window([last - 3], 9), s.window([last - 3], 4)
    assert w["mask"][0].sum() == 4 and w_short["mask"].all()
    torch.testing.assert_close(m.loss(w)["loss"], m.loss(w_short)["loss"])
    # the episode's last row is seen as often as any other (uniform starts, cut windows): about T windows of T cover it.
    # Measured through `sample` itself, on a copy whose rows carry their own index.
    tagged = copy.copy(s); tagged.frames = torch.arange(len(s), dtype=torch.float32)[:, None]  # (N, 1): row i holds i
    b = tagged.sample(20000, 4, 0)
    cover = np.bincount(b["frames"][..., 0].long()[b["mask"]].numpy(), minlength=len(s))  # real (unmasked) rows drawn
    ends = s.ep_start + s.ep_len - 1
    middle = np.concatenate([np.arange(a + 3, a + n) for a, n in zip(s.ep_start, s.ep_len)])
    assert abs(cover[ends].mean() / cover[middle].mean() - 1) < 0.15

def test_done_target_is_terminal_not_truncation(tmp_path):
    ds = frame_dataset(tmp_path/"f", lengths=((6, 5),), truncate_last=True)
    vae = ConvVAE(VAEModelConfig(width=8, z_dim=4)).eval()
    s = LatentSequences(encode_dataset(vae, ds, tmp_path/"lat"))
    m = MDNRNN(model_cfg())
    with torch.no_grad(): m.head.bias[-1] = 20.0  # P(done) ~ 1 everywhere
    b = next(s.batches(6, 4))
    loss_all = float(m.eval().loss(b)["done_bce"])
    b2 = dict(b, truncated=torch.zeros_like(b["truncated"]))
    assert float(m.loss(b2)["done_bce"]) < loss_all  # the truncated end is a negative target, the real end a positive one
    e = evaluate_latents(m, s)
    assert e["terminals"] == 1  # the episode cut by the time-out is not a terminal

def test_baselines_recover_their_statistics():
    "StaticZ fits the step variance of a random walk; GaussianZ the mean and variance of the codes."
    class Seqs:  # a minimal LatentSequences: one long episode of a random walk with step std 0.3 (logvar -inf: exact codes)
        pass
    g = torch.Generator().manual_seed(0)
    z = torch.cumsum(0.3 * torch.randn(20_000, 3, generator=g), 0)
    s = Seqs(); s.frames = torch.cat([z, torch.full_like(z, -80.0)], 1)
    s.batches = lambda T, B: iter([dict(frames=s.frames[None], mask=torch.ones(1, len(z), dtype=torch.bool))])
    st = StaticZ().fit(s)
    torch.testing.assert_close(st.log_s.exp(), torch.full((3,), 0.3), atol=0.01, rtol=0)
    ga = GaussianZ().fit(s)
    torch.testing.assert_close(ga.m, z.mean(0), atol=1e-3, rtol=1e-3)
    lp = st.transition_log_prob(z[None], None)
    assert lp.shape == (1, len(z) - 1)

def test_roc_auc_matches_pair_counting():
    rng = np.random.default_rng(1)
    s, y = rng.integers(0, 6, 300).astype(float), rng.random(300) < 0.2
    ref = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a in s[y] for b in s[~y]])
    assert abs(roc_auc(s, y) - ref) < 1e-12
    assert roc_auc([0.2, 0.9, 0.1], [False, True, False]) == 1.0 and roc_auc([1, 1], [True, False]) == 0.5
    assert math.isnan(roc_auc([0.1, 0.2], [False, False]))

def test_vm_world_model_through_the_protocol(latents):
    ds, lat, vae, ck = latents
    cfg = resolve_model_config(MDNRNNConfig.smoke(), lat)
    assert cfg.model.z_dim == 4 and cfg.model.num_actions == 4 and cfg.vae_checkpoint == str(Path(ck).resolve())
    m = cfg.build_model()
    for how in ("mean", "mode", "sample"):
        res = evaluate_rollouts(VMWorldModel(vae, m, how), ds.clips(6, batch_size=4), context=3, horizon=3)
        assert res["kind"] == "pixel" and len(res["psnr"]) == 3 and res["num_clips"] >= 2
    vm = m.as_world_model(cfg)
    x = torch.rand(2, 3, 3, 64, 64)
    st = vm.observe(x, torch.randint(0, 4, (2, 2)))
    assert st["z"].shape == (2, 4) and st["state"][0].shape == (1, 2, cfg.model.hidden)
    assert vm.imagine(st, torch.randint(0, 4, (2, 5))).shape == (2, 5, 3, 64, 64)
    with pytest.raises(ConfigError, match="z_dim"): VMWorldModel(ConvVAE(VAEModelConfig(width=8, z_dim=6)), m)
    out = vm.train().loss(next(ds.clips(4, batch_size=2)))  # M's loss on frames through the frozen V
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and all(p.grad is None for p in vm.vae.parameters())
    assert all(p.grad is not None for p in vm.mdn.parameters())

def run_py(code, *args, cwd=None):
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd)

WM = "import sys; from worldmodels_nb.cli import {f}; sys.exit({f}(sys.argv[1:]))"

def test_wm_train_mdnrnn_and_wm_eval_end_to_end(latents, tmp_path):
    ds, lat, vae, ck = latents
    held = encode_dataset(vae, frame_dataset(tmp_path/"held", lengths=((9, 10),), seed=1), tmp_path/"held_lat", checkpoint=ck)
    runs = tmp_path/"runs"
    res = run_py(WM.format(f="train_main"), "mdnrnn", "--data", str(lat.path), "--heldout", str(held.path), "--scale", "smoke",
                 "--out", str(runs), "train.max_steps=4", "seq_len=5")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "held-out NLL" in res.stdout and "z-stays-same" in res.stdout
    run = next(runs.glob("*_mdnrnn_*"))
    for f in ("resolved_config.yaml", "metrics.csv", "val_metrics.csv", "checkpoints/best.pt", "checkpoints/last.pt"):
        assert (run/f).exists(), f
    res = run_py(WM.format(f="train_main"), "mdnrnn", "--data", str(lat.path), "--scale", "smoke", "--resume", str(run), "train.max_steps=6",
                 "seq_len=5")
    assert res.returncode == 0, res.stderr[-3000:]
    model, cfg, st = load_model(run/"checkpoints"/"last.pt")
    assert st["step"] == 6 and isinstance(model, MDNRNN) and cfg.vae_checkpoint == str(Path(ck).resolve())
    # wm-eval scores V+M on frames with the protocol, from the M checkpoint alone
    res = run_py(WM.format(f="eval_main"), "--checkpoint", str(run/"checkpoints"/"best.pt"), "--data", str(ds.path), "--context", "3",
                 "--horizon", "3", "--out", str(tmp_path/"ev"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert next((tmp_path/"ev").glob("*_eval/eval.json"))
    # clear one-line errors: codes given to wm-eval, frames given to wm-train mdnrnn, codes of another V as held-out data
    res = run_py(WM.format(f="eval_main"), "--checkpoint", str(run/"checkpoints"/"best.pt"), "--data", str(lat.path), "--context", "3", "--horizon", "3")
    assert res.returncode != 0 and "holds codes, not frames" in res.stderr and "Traceback" not in res.stderr
    res = run_py(WM.format(f="train_main"), "mdnrnn", "--data", str(ds.path), "--scale", "smoke", "--out", str(runs))
    assert res.returncode != 0 and "not a latent dataset" in res.stderr and "Traceback" not in res.stderr
    other = encode_dataset(ConvVAE(VAEModelConfig(width=8, z_dim=4)), EpisodeDataset(tmp_path/"held"), tmp_path/"other_lat")
    res = run_py(WM.format(f="train_main"), "mdnrnn", "--data", str(lat.path), "--heldout", str(other.path), "--scale", "smoke", "--out", str(runs))
    assert res.returncode != 0 and "another V" in res.stderr and "Traceback" not in res.stderr
    res = run_py(WM.format(f="train_main"), "mdnrnn", "--data", str(tmp_path/"missing"), "--scale", "smoke")
    assert res.returncode != 0 and "no dataset at" in res.stderr and "Traceback" not in res.stderr

def test_noise_floor_is_the_entropy_of_q_and_bounds_every_model(latents):
    _, lat, _, _ = latents
    s = LatentSequences(lat)
    from worldmodels_nb.mdnrnn import normal_logpdf, split_latents
    s.frames[:, 4:] = math.log(0.25)  # every code has sigma = 0.5
    assert abs(noise_floor(s) - 0.5 * math.log(2 * math.pi * math.e * 0.25)) < 1e-6
    # sigmas that differ per row, and tiny ones on each episode's first row (never predicted: it must not count)
    s.frames[:, 4:] = torch.empty(len(s), 4).uniform_(math.log(0.01), 0.0, generator=torch.Generator().manual_seed(0))
    s.frames[torch.from_numpy(s.ep_start), 4:] = math.log(1e-6)
    class Oracle(torch.nn.Module):
        "Knows q(z_{t+1}|x_{t+1}) itself: log N(z_{t+1}; mu_{t+1}, sigma_{t+1}), the rows found by ids that ride in the actions."
        def __init__(self, rows): super().__init__(); self.mu, self.logvar = split_latents(rows)
        def transition_log_prob(self, z, actions):
            nxt = actions[:, 1:]  # (B, T-1) row ids of z_{t+1}
            return normal_logpdf(z[:, 1:], self.mu[nxt], 0.5 * self.logvar[nxt]).sum(-1)  # (B, T-1)
    for model in (StaticZ().fit(s), GaussianZ().fit(s), MDNRNN(model_cfg())):
        assert evaluate_latents(model, s)["nll_per_dim"] > noise_floor(s) - 0.05  # no model goes below the floor...
    s.actions = torch.arange(len(s))  # ...and the oracle, handed the row ids, reaches it
    nll = np.mean([evaluate_latents(Oracle(s.frames), s, seed=i)["nll_per_dim"] for i in range(20)])  # 20 draws of z ~ q
    assert abs(nll - noise_floor(s)) < 0.05, (nll, noise_floor(s))

def test_find_eval_matches_protocol_and_data(tmp_path):
    import json, os, time
    def write(run, ctx, hor, n, data=None, age=0):
        d = tmp_path/run; d.mkdir(parents=True)
        e = {"model": {"context": ctx, "horizon": hor, "num_clips": n, "psnr": [20.0] * hor}}
        if data: e["meta"] = {"data": data}
        (d/"eval.json").write_text(json.dumps(e)); t = time.time() - age; os.utime(d/"eval.json", (t, t))
    write("a/20260101-000000_pixel_procgen-coinrun", 4, 32, 256, "/data/held", age=30)
    write("20260102-000000_pixel_procgen-coinrun", 4, 32, 256, "/data/other", age=20)  # newer, other data
    write("20260103-000000_pixel_procgen-coinrun", 4, 8, 256, "/data/held", age=10)  # newer, too short
    write("20260104-000000_pixel-noact_procgen-coinrun", 4, 32, 256, "/data/held")  # another stage name
    p, e = find_eval("pixel", "procgen:coinrun", [tmp_path], 4, 32, 256, data="/data/held")
    assert p.parent.name == "20260101-000000_pixel_procgen-coinrun"
    assert find_eval("pixel", "procgen:coinrun", [tmp_path], 4, 32, 100) is None
    assert find_eval("pixel", "procgen:coinrun", [tmp_path], 4, 32, 256)[0].parent.name == "20260102-000000_pixel_procgen-coinrun"
