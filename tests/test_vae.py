"Tests of the ConvVAE (V), its AE baseline, the shared Gaussian helpers, encode_dataset and train_vae (smoke scale)."
from pathlib import Path
import numpy as np
import pytest, torch
from torch.distributions import Normal, kl_divergence
from worldmodels_nb.core import CheckpointError, ConfigError, apply_overrides, load_model, save_checkpoint
from worldmodels_nb.data import FORMAT, DataConfig, DatasetError, EpisodeDataset, write_shard
from worldmodels_nb.metrics import to_unit
from worldmodels_nb.vae import (ConvAutoencoder, ConvVAE, VAEConfig, VAEModelConfig, beta_at, encode_dataset, fingerprint, free_bits,
                                kl_diag_gaussian, reparameterize, resolve_vae_config, train_vae, variance_regularizer)

def images(batch): return to_unit(batch["frames"]).flatten(0, -4)  # (B, T, C, H, W) uint8 -> (N, C, H, W) in [0, 1]

def frames_batch(B=3, T=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"frames": torch.randint(0, 256, (B, T, 3, 64, 64), dtype=torch.uint8, generator=g), "actions": torch.zeros(B, T, dtype=torch.long)}

@pytest.mark.parametrize("kind", ["vae", "ae"])
def test_shapes_and_gradients(kind):
    model = VAEConfig(model=VAEModelConfig(kind=kind, width=8, z_dim=16)).build_model()
    out = model.loss(frames_batch())
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and {"loss", "recon", "mse"} <= set(out)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in model.parameters())
    x = images(frames_batch())
    assert x.shape == (6, 3, 64, 64) and 0 <= x.min() and x.max() <= 1
    z = model.encode(x)[0]
    assert z.shape == (6, 16)
    assert model.decode(z).shape == (6, 3, 64, 64) and model.reconstruct(x).shape == (6, 3, 64, 64)
    s = model.sample(4)
    assert s.shape == (4, 3, 64, 64) and 0 <= s.min() and s.max() <= 1

def test_paper_architecture():
    m = ConvVAE(VAEModelConfig())
    assert abs(sum(p.numel() for p in m.parameters()) / 1e6 - 4.35) < 0.05  # Ha & Schmidhuber's 4.35M at width 32, z 32
    assert m.encoder(torch.rand(1, 3, 64, 64)).shape == (1, 1024)

def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mu, logvar = 3 * torch.randn(64, 32, generator=g), 4 * torch.randn(64, 32, generator=g)
    ref = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(torch.zeros_like(mu), torch.ones_like(mu)))
    torch.testing.assert_close(kl_diag_gaussian(mu, logvar), ref, rtol=1e-5, atol=1e-5)
    assert torch.all(kl_diag_gaussian(mu, logvar) >= 0)
    assert torch.equal(kl_diag_gaussian(mu, logvar), 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar))  # the N(0, I) form, bit for bit
    mu_p, logvar_p = torch.randn(64, 32, generator=g), 2 * torch.randn(64, 32, generator=g)
    ref_p = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(mu_p, torch.exp(0.5 * logvar_p)))
    torch.testing.assert_close(kl_diag_gaussian(mu, logvar, mu_p, logvar_p), ref_p, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(kl_diag_gaussian(mu, logvar, mu_p=torch.zeros_like(mu)), ref, rtol=1e-5, atol=1e-4)  # a missing logvar_p is 0
    assert torch.all(kl_diag_gaussian(mu_p, logvar_p, mu_p, logvar_p).abs() < 1e-5)  # q = p

def test_reparameterize_moments_and_gradient():
    torch.manual_seed(0)
    mu = torch.full((100_000,), -1.0, requires_grad=True); logvar = torch.full((100_000,), np.log(4.0), requires_grad=True)
    z = reparameterize(mu, logvar)
    assert abs(z.mean().item() + 1) < 0.02 and abs(z.var().item() - 4) < 0.05
    z.sum().backward()
    assert torch.allclose(mu.grad, torch.ones_like(mu)) and logvar.grad.abs().sum() > 0

def test_reparameterize_draws():
    "Without a generator it draws exactly as randn_like from the global stream; with one, from that stream only."
    mu, logvar = torch.randn(3, 5), torch.randn(3, 5)
    torch.manual_seed(4); z = reparameterize(mu, logvar)
    torch.manual_seed(4); assert torch.equal(z, mu + torch.exp(0.5 * logvar) * torch.randn_like(mu))
    torch.manual_seed(4); z1 = reparameterize(mu, logvar, torch.Generator().manual_seed(1)); after = torch.randn(1)
    torch.manual_seed(4); assert torch.equal(after, torch.randn(1))  # the global stream was not touched
    assert torch.equal(z1, reparameterize(mu, logvar, torch.Generator().manual_seed(1))) and not torch.equal(z1, z)

def test_free_bits_clamp():
    kl = torch.tensor([0.0, 10.0, 15.9, 17.0, 100.0], requires_grad=True)
    out = free_bits(kl, 0.5, 32)
    assert out.tolist() == [16.0, 16.0, 16.0, 17.0, 100.0]
    out.sum().backward()
    assert kl.grad.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]

def test_free_bits_in_the_loss():
    "With a tolerance no image reaches, the KL term is a constant: gradients equal those of the reconstruction alone."
    cfg = VAEModelConfig(width=8, z_dim=8, kl_tolerance=1e6)
    m = ConvVAE(cfg)
    torch.manual_seed(3); m.loss(frames_batch())["loss"].backward()
    g_full = [p.grad.clone() for p in m.parameters()]
    m.zero_grad(); x = images(frames_batch())
    torch.manual_seed(3); xh, mu, logvar, z = m(x)
    (xh - x).pow(2).flatten(1).sum(1).mean().backward()
    for a, b in zip(g_full, [p.grad for p in m.parameters()]): torch.testing.assert_close(a, b)
    # with no tolerance the KL pushes the encoder's heads
    m0 = ConvVAE(VAEModelConfig(width=8, z_dim=8, kl_tolerance=0.0)); m0.load_state_dict(m.state_dict())
    torch.manual_seed(3); m0.loss(frames_batch())["loss"].backward()
    assert not torch.allclose(m0.fc_logvar.weight.grad, m.fc_logvar.weight.grad)

def test_recon_sum_vs_mean_and_bad_recon():
    a, b = ConvVAE(VAEModelConfig(width=8)), ConvVAE(VAEModelConfig(width=8, recon="mean"))
    b.load_state_dict(a.state_dict())
    torch.manual_seed(0); la = a.loss(frames_batch())["loss"]
    torch.manual_seed(0); lb = b.loss(frames_batch())["loss"]
    torch.testing.assert_close(lb, la / (3 * 64 * 64))
    with pytest.raises(ConfigError, match="choose sum or mean"): ConvVAE(VAEModelConfig(width=8, recon="l1")).loss(frames_batch())

def test_beta_warmup_counts_training_steps_only():
    m = ConvVAE(VAEModelConfig(width=8, beta=2.0, beta_warmup=4))
    betas = [float(m.loss(frames_batch())["beta"]) for _ in range(6)]
    assert betas == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0] and int(m.updates) == 6
    m.eval(); m.loss(frames_batch()); assert int(m.updates) == 6  # validation does not advance the schedule
    m2 = ConvVAE(VAEModelConfig(width=8, beta=2.0, beta_warmup=4)); m2.load_state_dict(m.state_dict())
    assert int(m2.updates) == 6  # a resumed model continues the schedule
    assert beta_at(10, 3.0, 0) == 3.0

def test_variance_regularizer_by_hand():
    z = torch.tensor([[0.0, 0.0], [2.0, 4.0]])  # batch variances 2 and 8 (unbiased)
    assert torch.isclose(variance_regularizer(z, 1.0, 0.1), torch.tensor(0.1 * ((2 - 1) ** 2 + (8 - 1) ** 2) / 2))
    assert torch.isclose(variance_regularizer(z, 5.0, 1.0), torch.tensor(((2 - 5) ** 2 + (8 - 5) ** 2) / 2))
    ae = ConvAutoencoder(VAEModelConfig(kind="ae", width=8, var_lambda=0.0))
    out = ae.loss(frames_batch())
    assert out["var_reg"] == 0 and torch.isclose(out["loss"], out["recon"])

def test_config_errors():
    with pytest.raises(ConfigError, match="takes 64x64 frames"): ConvVAE(VAEModelConfig(obs_shape=[3, 84, 84]))
    with pytest.raises(ConfigError, match="needs pixel observations"): VAEConfig.for_env("quick", "HalfCheetah-v5")
    c = VAEConfig.for_env("quick", "CarRacing-v3")
    assert c.data.policy == "brownian" and c.data.train_steps <= 10_000 and c.env == "CarRacing-v3"
    assert VAEConfig.for_env("smoke", "procgen:coinrun").data.policy == "sticky"
    # the one data spec: CoinRun's settings per scale are the presets' (so runs and data folders are unchanged)
    assert VAEConfig.for_env("smoke").data == VAEConfig.smoke().data == DataConfig(3_000, 1_500, "0:20", "100000:100020")
    assert VAEConfig.for_env("quick").data == VAEConfig.quick().data == DataConfig()
    assert VAEConfig.for_env("full").data == VAEConfig.full().data == DataConfig(1_000_000, 50_000)
    full = VAEConfig.full()
    assert (full.model.z_dim, full.model.kl_tolerance, full.model.beta, full.train.lr, full.train.batch_size) == (32, 0.5, 1.0, 1e-4, 100)
    with pytest.raises(ConfigError, match="unknown config key"): apply_overrides(VAEConfig.smoke(), ["model.zdim=3"])

def tiny_dataset(path, lengths=((5, 3), (4,)), seed=0):
    "A hand-written pixel dataset in the shared format: shards of episodes of the given lengths."
    rng = np.random.default_rng(seed)
    m = dict(format=FORMAT, env_id="test:tiny", env_kwargs={}, settings={}, observation_space=dict(kind="box", shape=[64, 64, 3], dtype="uint8"),
             action_space=dict(kind="discrete", n=4, shape=[], dtype="int64"), policy="random", policy_kwargs={}, shards=[], target_steps=0)
    Path(path).mkdir(parents=True)
    for shard in lengths:
        N = sum(shard); done = np.zeros(N, bool); done[np.cumsum(shard) - 1] = True
        write_shard(path, m, dict(frames=rng.integers(0, 256, (N, 64, 64, 3), dtype=np.uint8), actions=rng.integers(0, 4, N),
                                  rewards=rng.standard_normal(N).astype(np.float32), done=done, truncated=np.zeros(N, bool)))
    return EpisodeDataset(path)

def test_encode_dataset_round_trip(tmp_path):
    ds = tiny_dataset(tmp_path/"frames")
    vae = ConvVAE(VAEModelConfig(width=8, z_dim=6)).eval()
    lat = encode_dataset(vae, ds, tmp_path/"lat", batch_size=3, shard_size=6)
    assert lat.obs_shape == (12,) and len(lat.manifest["shards"]) >= 2
    assert lat.manifest["latent"]["source"] == str(ds.path.resolve()) and lat.manifest["latent"]["z_dim"] == 6 and lat.manifest["complete"]
    np.testing.assert_array_equal(lat.episode_lengths, ds.episode_lengths)
    for i in range(ds.num_episodes):
        e, l = ds.episode(i), lat.episode(i)
        for f in ("actions", "rewards", "done", "truncated"): np.testing.assert_array_equal(l[f], e[f])
        assert l["frames"].dtype == np.float32
        with torch.no_grad(): mu, logvar = vae.encode(torch.from_numpy(np.array(e["frames"])).permute(0, 3, 1, 2).float() / 255)
        np.testing.assert_allclose(l["frames"], torch.cat([mu, logvar], 1).numpy(), rtol=1e-4, atol=1e-5)
    # clips of latents for M: never cross an episode
    b = lat.sample(4, 3, generator=0)
    assert b["frames"].shape == (4, 3, 12)
    # the same encoder again: reused; another encoder: re-encoded
    t = (tmp_path/"lat"/"manifest.json").stat().st_mtime_ns
    encode_dataset(vae, ds, tmp_path/"lat")
    assert (tmp_path/"lat"/"manifest.json").stat().st_mtime_ns == t
    vae2 = ConvVAE(VAEModelConfig(width=8, z_dim=6))
    lat2 = encode_dataset(vae2, ds, tmp_path/"lat")
    assert lat2.manifest["latent"]["fingerprint"] != lat.manifest["latent"]["fingerprint"]
    # a view (split) encodes only its episodes
    tr, va = ds.split(0.34, seed=0)
    latv = encode_dataset(vae, va, tmp_path/"lat_val")
    np.testing.assert_array_equal(latv.episode_lengths, va.episode_lengths)

def test_encode_dataset_errors(tmp_path):
    ds = tiny_dataset(tmp_path/"frames")
    with pytest.raises(ConfigError, match="needs a ConvVAE"): encode_dataset(ConvAutoencoder(VAEModelConfig(kind="ae", width=8)), ds, tmp_path/"x")
    with pytest.raises(DatasetError, match="holds another dataset"): encode_dataset(ConvVAE(VAEModelConfig(width=8)), ds, tmp_path/"frames")

def test_checkpoint_round_trip_and_corrupt(tmp_path):
    cfg = apply_overrides(VAEConfig.smoke(), ["model.z_dim=8"])
    m = cfg.build_model().eval()
    ck = save_checkpoint(tmp_path/"vae.pt", m, step=3, config=cfg)
    m2, cfg2, _ = load_model(ck)
    assert isinstance(m2, ConvVAE) and cfg2.model.z_dim == 8
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(m2.reconstruct(x), m.reconstruct(x))
    ds = tiny_dataset(tmp_path/"frames")
    lat = encode_dataset(ck, ds, tmp_path/"lat")  # a checkpoint path works too, and is recorded
    assert lat.manifest["latent"]["checkpoint"] == str(Path(ck).resolve())
    bad = tmp_path/"bad.pt"; bad.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"): load_model(bad)
    trunc = tmp_path/"trunc.pt"; trunc.write_bytes(Path(ck).read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="corrupt, truncated"): load_model(trunc)

def test_resolve_vae_config(tmp_path):
    ds = tiny_dataset(tmp_path/"frames")
    cfg = VAEConfig.smoke(); cfg.model.obs_shape = [1, 64, 64]
    assert resolve_vae_config(cfg, ds) is cfg and cfg.model.obs_shape == [3, 64, 64]
    class Small: obs_shape, model_obs_shape, path = (32, 32, 3), [3, 32, 32], "small"
    with pytest.raises(ConfigError, match="takes 64x64 frames, got 32x32; collect with size=64"): resolve_vae_config(VAEConfig.smoke(), Small())
    class States: obs_shape, path = (17,), "cheetah"
    with pytest.raises(ConfigError, match="needs pixel frames; cheetah holds 17-dim states"): resolve_vae_config(VAEConfig.smoke(), States())

def test_fingerprint_names_the_weights():
    a, b = ConvVAE(VAEModelConfig(width=8)), ConvVAE(VAEModelConfig(width=8))
    assert len(fingerprint(a)) == 16 and fingerprint(a) != fingerprint(b)
    b.load_state_dict(a.state_dict()); assert fingerprint(a) == fingerprint(b)

def test_train_vae_resume_and_encode(tmp_path):
    ds = tiny_dataset(tmp_path/"frames", lengths=((20, 16), (18,), (14, 20)))
    cfg = resolve_vae_config(apply_overrides(VAEConfig.smoke(), ["train.max_steps=4", "model.beta_warmup=100"]), ds)
    train, val = ds.split(0.34, seed=0)
    model, res = train_vae(cfg, train, val, tmp_path/"runs", progress=False)
    run = res.run_dir
    assert res.step == 4 and "_vae_" in run.name
    for f in ("resolved_config.yaml", "metrics.csv", "val_metrics.csv", "checkpoints/best.pt", "checkpoints/last.pt"):
        assert (run/f).exists(), f
    assert list((run/"images").glob("recon_*.png"))
    val_header = (run/"val_metrics.csv").read_text().splitlines()[0]
    assert "val_recon_psnr" in val_header and "val_kl" in val_header
    _, res2 = train_vae(apply_overrides(cfg, ["train.max_steps=6"]), train, val, run_dir=run, progress=False)
    assert res2.run_dir == run and res2.step == 6
    model, cfg2, st = load_model(run/"checkpoints"/"last.pt")
    assert st["step"] == 6 and int(model.updates) == 6 and cfg2.data == cfg.data  # the beta warm-up counter resumed with the run
    best = run/"checkpoints"/"best.pt"
    lat = encode_dataset(best, EpisodeDataset(train.path), tmp_path/"lat", checkpoint=best)
    assert lat.num_steps == ds.num_steps and lat.obs_shape == (2 * cfg.model.z_dim,)
    assert lat.manifest["latent"]["fingerprint"] == fingerprint(load_model(best)[0])
