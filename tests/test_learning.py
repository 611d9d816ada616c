"""Every family learns a tiny synthetic world in seconds (a moving square, a bimodal code, a damped oscillator), beating its
baseline by a clear margin; exactness checks (warp, KL, V+M alignment) against brute-force or library references; every
preset of every family builds and trains one step."""
import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from worldmodels_nb.metrics import CopyLastFrame, MeanFrame, evaluate_rollouts

torch.set_num_threads(1)

def train(model, batch_fn, steps: int, lr: float = 3e-3, seed: int = 0):
    "Plain AdamW on `model.loss(batch_fn(step))['loss']`; returns the model in eval mode."
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    for s in range(steps):
        loss = model.loss(batch_fn(s))["loss"]
        opt.zero_grad(); loss.backward(); opt.step()
    return model.eval()

def clip_batch(frames, actions):
    "The clip-batch format of `EpisodeDataset.sample`, for one long episode per row."
    B, T = actions.shape[:2]
    return dict(frames=frames, actions=actions, rewards=torch.zeros(B, T), dones=torch.zeros(B, T, dtype=torch.bool),
                truncated=torch.zeros(B, T, dtype=torch.bool))

# --- the square world: a bright square on a dark canvas, moved by 5 discrete actions ------------------------------------

MOVES = torch.tensor([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]])  # stay, left, right, up, down: (dx, dy) in steps

def square_world(B: int, T: int, size: int = 16, side: int = 4, step: int = 2, seed: int = 0):
    "B episodes of T frames (B, T, 1, size, size) uint8 and the actions (B, T) int64; action t moves frame t to t+1."
    g = torch.Generator().manual_seed(seed)
    pos = torch.randint(0, size - side + 1, (B, 2), generator=g)  # (x, y) of the top-left corner
    actions = torch.randint(0, len(MOVES), (B, T), generator=g)
    frames = torch.zeros(B, T, 1, size, size, dtype=torch.uint8)
    for t in range(T):
        for b in range(B): frames[b, t, 0, pos[b, 1]:pos[b, 1] + side, pos[b, 0]:pos[b, 0] + side] = 255
        pos = (pos + step * MOVES[actions[:, t]]).clamp(0, size - side)
    return frames, actions

def corner(frame):
    "(x, y) of the square's top-left pixel in a (1, H, W) frame."
    ys, xs = torch.nonzero(frame[0], as_tuple=True)
    return torch.stack([xs.min(), ys.min()])

def test_square_world_moves_as_its_actions_say():
    frames, actions = square_world(8, 6, seed=1)
    for b in range(8):
        for t in range(5):
            p, q = corner(frames[b, t]), corner(frames[b, t + 1])
            assert torch.equal(q, (p + 2 * MOVES[actions[b, t]]).clamp(0, 12))  # two pixels per step, stopped by the walls

# --- pixel: the action's effect is learned, not copied ------------------------------------------------------------------

def test_warp_moves_an_image_by_the_flow():
    from worldmodels_nb.pixel import warp
    img = torch.zeros(1, 1, 8, 8); img[0, 0, 3, 2] = 1.0  # one bright pixel at (x=2, y=3)
    flow = torch.zeros(1, 2, 8, 8)
    torch.testing.assert_close(warp(img, flow), img)  # zero flow: the identity
    flow[:, 0] = 1.0  # dx = +1: each output pixel reads the input one pixel to its right, so the content moves left
    out = warp(img, flow)
    assert out[0, 0, 3, 1] == 1 and out.sum() == 1
    flow[:, 0], flow[:, 1] = 0.0, -2.0  # dy = -2: content moves down by two rows
    out = warp(img, flow)
    assert out[0, 0, 5, 2] == 1 and out.sum() == 1

def pixel_model(seed: int = 0):
    from worldmodels_nb.pixel import PixelModelConfig, PixelWorldModel
    torch.manual_seed(seed)
    return PixelWorldModel(PixelModelConfig(obs_shape=[1, 16, 16], num_actions=5, context=2, width=8))

def test_pixel_model_learns_the_actions_effect():
    "Open loop at h=1 on held-out episodes: the model (which starts as copy-last-frame) must learn where the square goes."
    data = [clip_batch(*square_world(32, 3, seed=s)) for s in range(40)]  # (B, T=3): 2 context frames + 1 target
    m = train(pixel_model(), lambda s: data[s % len(data)], 200, lr=3e-3)
    held = [clip_batch(*square_world(64, 3, seed=10_000))]
    mse = evaluate_rollouts(m, held, context=2, horizon=1)["mse"][0]
    copy = evaluate_rollouts(CopyLastFrame(), held, context=2, horizon=1)["mse"][0]
    assert mse < 0.2 * copy, (mse, copy)  # trained: ~0.01 x copy; the no-action ablation fails this

# --- V: the ConvVAE compresses the square into a few numbers; its KL is the library's -----------------------------------

def squares64(N: int, side: int = 32, seed: int = 0):
    "N frames (N, 1, 1, 64, 64) uint8 of a bright side x side square at a random position (clips of T=1)."
    g = torch.Generator().manual_seed(seed)
    pos = torch.randint(0, 64 - side + 1, (N, 2), generator=g)
    x = torch.zeros(N, 1, 1, 64, 64, dtype=torch.uint8)
    for i in range(N): x[i, 0, 0, pos[i, 1]:pos[i, 1] + side, pos[i, 0]:pos[i, 0] + side] = 255
    return x

def test_vae_reconstructs_held_out_squares_far_better_than_the_mean_frame():
    from worldmodels_nb.vae import ConvVAE, VAEModelConfig
    torch.manual_seed(0)
    vae = ConvVAE(VAEModelConfig(obs_shape=[1, 64, 64], z_dim=4, width=4))
    data = [dict(frames=squares64(32, seed=s)) for s in range(20)]
    train(vae, lambda s: data[s % len(data)], 250, lr=2e-3)
    held = squares64(256, seed=999).float().flatten(0, 1) / 255  # (N, 1, 64, 64), positions not seen in training
    rec = float(((vae.reconstruct(held) - held) ** 2).mean())
    mean = MeanFrame().fit([d["frames"] for d in data]).mean  # (1, 64, 64)
    base = float(((mean - held) ** 2).mean())
    assert rec < 0.5 * base, (rec, base)

def test_kl_matches_torch_distributions_for_the_standard_and_any_diagonal_prior():
    from worldmodels_nb.vae import kl_diag_gaussian
    g = torch.Generator().manual_seed(0)
    mu, logvar, mu_p, logvar_p = (torch.randn(5, 7, generator=g, dtype=torch.float64) for _ in range(4))
    q = Normal(mu, (0.5 * logvar).exp())
    torch.testing.assert_close(kl_diag_gaussian(mu, logvar), kl_divergence(q, Normal(0.0, 1.0)))
    ref = kl_divergence(q, Normal(mu_p, (0.5 * logvar_p).exp()))
    torch.testing.assert_close(kl_diag_gaussian(mu, logvar, mu_p=mu_p, logvar_p=logvar_p), ref)
    torch.testing.assert_close(kl_diag_gaussian(mu, logvar, mu_p=torch.zeros_like(mu), logvar_p=torch.zeros_like(logvar)),
                               kl_diag_gaussian(mu, logvar))  # the explicit N(0, I) prior is the default one

def test_vae_loss_reports_the_library_kl_of_its_encoder():
    from worldmodels_nb.vae import ConvVAE, VAEModelConfig
    torch.manual_seed(0)
    vae = ConvVAE(VAEModelConfig(obs_shape=[1, 64, 64], z_dim=4, width=4))
    with torch.no_grad(): vae.fc_mu.weight.mul_(30); vae.fc_logvar.weight.mul_(30)  # codes far from the prior: KL of order 1
    x = squares64(8, seed=1)
    with torch.no_grad(): mu, logvar = vae.encode(x.float().flatten(0, 1) / 255)  # (N, Z) each
    ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1).mean()  # nats per image
    out = vae.loss(dict(frames=x))
    assert float(ref) > 0.1
    torch.testing.assert_close(out["kl"], ref)

# --- M: the MDN-RNN finds both outcomes of a coin-flip transition --------------------------------------------------------

NOISE = 0.05  # std of the transition noise around z_t + 1 and z_t - 1

def coin_flip_codes(B: int, T: int, seed: int = 0):
    "Latent rows [mu, logvar] (B, T, 2) of z_{t+1} = z_t +- 1 (probability 1/2 each) + noise; V's own noise is ~0."
    g = torch.Generator().manual_seed(seed)
    step = torch.randint(0, 2, (B, T - 1), generator=g).float() * 2 - 1
    z = torch.cat([torch.randn(B, 1, generator=g), step + NOISE * torch.randn(B, T - 1, generator=g)], 1).cumsum(1)[..., None]  # (B, T, 1)
    b = clip_batch(torch.cat([z, torch.full_like(z, -14.0)], -1), torch.randint(0, 2, (B, T), generator=g))
    return dict(b, mask=torch.ones(B, T, dtype=torch.bool))

def test_mdnrnn_puts_mass_on_both_outcomes_of_a_bimodal_transition():
    from worldmodels_nb.mdnrnn import MDNRNN, MDNRNNModelConfig
    torch.manual_seed(0)
    m = MDNRNN(MDNRNNModelConfig(z_dim=1, num_actions=2, hidden=32, num_mixtures=2, reward_scale=1.0, sample_z=False))
    data = [coin_flip_codes(64, 8, seed=s) for s in range(50)]
    train(m, lambda s: data[s % len(data)], 400, lr=1e-2)
    held = coin_flip_codes(64, 8, seed=9999)
    with torch.no_grad():
        nll = float(m.loss(held)["nll"])  # nats per dimension per transition
        p = m(held["frames"][..., :1], held["actions"])[0]
    z, pi, mean = held["frames"][:, :-1, :1, None], p["logits"][:, :-1].softmax(-1), p["mean"][:, :-1]  # (B, T-1, 1, 1), (B, T-1, 1, K) x2
    mass = lambda target: float((pi * ((mean - target).abs() < 0.25)).sum(-1).mean())  # mixture weight within 0.25 of target
    assert mass(z + 1) > 0.3 and mass(z - 1) > 0.3, (mass(z + 1), mass(z - 1))
    best_gaussian = 0.5 * math.log(2 * math.pi * math.e * (1 + NOISE ** 2))  # the NLL of the best single Gaussian (variance 1 + noise^2)
    assert nll < best_gaussian - 1.5, (nll, best_gaussian)

# --- RSSM: a damped spring pushed by a force ----------------------------------------------------------------------------

def spring(B: int, T: int, seed: int = 0):
    "States (B, T, 2) = (position, velocity) of a damped oscillator driven by forces a_t in [-1, 1] (B, T, 1)."
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(B, T, 1, generator=g) * 2 - 1
    s = [torch.randn(B, 2, generator=g)]
    for t in range(T - 1):
        p, v = s[-1].unbind(-1)
        v = 0.9 * v - 0.5 * p + a[:, t, 0]  # damping, spring, force
        s.append(torch.stack([p + 0.5 * v, v], -1))
    return clip_batch(torch.stack(s, 1), a)

def test_rssm_predicts_a_driven_spring_open_loop():
    from worldmodels_nb.rssm import RSSMModelConfig, RSSMWorldModel
    torch.manual_seed(0)
    m = RSSMWorldModel(RSSMModelConfig(obs_shape=[2], action_dim=1, num_actions=0, stoch=4, deter=32, hidden=32, embed=32, free_nats=0.1))
    data = [spring(32, 12, seed=s) for s in range(50)]
    train(m, lambda s: data[s % len(data)], 200, lr=3e-3)
    held = [spring(128, 12, seed=9999)]
    model = np.array(evaluate_rollouts(m, held, context=4, horizon=8)["mse"])
    hold = np.array(evaluate_rollouts(CopyLastFrame(), held, context=4, horizon=8)["mse"])
    assert (model < 0.3 * hold).all() and model.mean() < 0.1 * hold.mean(), (model / hold).round(3)  # blind to actions: 0.54 at h=1

# --- V+M: observe + imagine is exactly the step-by-step loop ------------------------------------------------------------

@pytest.mark.parametrize("k,how,mixture", [(3, "mean", "per_dim"), (1, "mean", "per_dim"), (4, "mode", "joint")])
def test_vm_observe_imagine_equals_the_brute_force_loop(k, how, mixture):
    "Encode every frame to mu; step M over the k-1 context pairs (z_t, a_t), then over the future actions feeding back its prediction."
    from worldmodels_nb.mdnrnn import MDNRNN, MDNRNNModelConfig, VMWorldModel, mdn_mean, mdn_mode
    from worldmodels_nb.vae import ConvVAE, VAEModelConfig
    torch.manual_seed(0)
    vae = ConvVAE(VAEModelConfig(obs_shape=[1, 64, 64], z_dim=3, width=4)).eval()
    with torch.no_grad(): vae.fc_mu.weight.mul_(30); vae.decoder[0].weight.mul_(30)  # distinct codes, decoded to distinct frames
    mdn = MDNRNN(MDNRNNModelConfig(z_dim=3, num_actions=4, hidden=8, num_mixtures=2, mixture=mixture)).eval()
    B, H = 2, 4
    frames = squares64(B * k, side=16, seed=k).float().reshape(B, k, 1, 64, 64) / 255  # (B, k, C, H, W): the square moves
    ctx_a, fut_a = torch.randint(0, 4, (B, k - 1)), torch.randint(0, 4, (B, H))
    with torch.no_grad():
        vm = VMWorldModel(vae, mdn, how=how)
        pred = vm.imagine(vm.observe(frames, ctx_a), fut_a)  # (B, H, 1, 64, 64)
        z, state, out = [vae.encode(frames[:, t])[0] for t in range(k)], None, []  # k codes (B, Z)
        for t in range(k - 1): state = mdn.step(z[t], ctx_a[:, t], state)[-1]
        zt = z[-1]
        for t in range(H):
            p, _, _, _, state = mdn.step(zt, fut_a[:, t], state)
            zt = mdn_mean(p) if how == "mean" else mdn_mode(p)
            out.append(vae.decode(zt))
    assert pred.shape == (B, H, 1, 64, 64)
    ref = torch.stack(out, 1)
    assert (ref[:, 1:] - ref[:, :1]).abs().amax() > 1e-3  # the rollout moves: a misaligned loop could not match by accident
    torch.testing.assert_close(pred, ref, rtol=0, atol=1e-6)

# --- every preset of every family builds and trains one step ------------------------------------------------------------

def _families():
    from worldmodels_nb.mdnrnn import MDNRNNConfig
    from worldmodels_nb.pixel import PixelConfig
    from worldmodels_nb.rssm import RSSMConfig
    from worldmodels_nb.vae import VAEConfig
    return dict(pixel=PixelConfig, vae=VAEConfig, mdnrnn=MDNRNNConfig, rssm=RSSMConfig)

def tiny_batch(family: str, cfg, B: int = 2, T: int = 3):
    "A random clip batch shaped as `cfg`'s model expects (dataset-derived sizes filled in where the preset leaves them unset)."
    g, m = torch.Generator().manual_seed(0), cfg.model
    if family == "pixel":
        from worldmodels_nb.pixel import clip_len
        T = clip_len(m); frames = torch.randint(0, 256, (B, T, *m.obs_shape), dtype=torch.uint8, generator=g)
    elif family == "vae": frames = torch.randint(0, 256, (B, T, *m.obs_shape), dtype=torch.uint8, generator=g)
    elif family == "mdnrnn":
        m.num_actions = m.num_actions or 4  # set from the latent dataset in a real run
        frames = torch.randn(B, T, 2 * m.z_dim, generator=g)
    else: frames = torch.randn(B, T, *m.obs_shape, generator=g)
    n = getattr(m, "num_actions", 0)
    A = getattr(m, "action_dim", 1)  # the VAE has no actions (and ignores them)
    actions = torch.randint(0, n, (B, T), generator=g) if n else torch.rand(B, T, A, generator=g) * 2 - 1
    return dict(clip_batch(frames, actions), mask=torch.ones(B, T, dtype=torch.bool))

@pytest.mark.parametrize("family", ["pixel", "vae", "mdnrnn", "rssm"])
def test_every_preset_builds_and_takes_one_training_step(family):
    from worldmodels_nb.core import SCALES, preset
    cls, steps = _families()[family], []
    for scale in SCALES:
        cfg = preset(cls, scale)
        assert cfg is not preset(cls, scale) and cfg == preset(cls, scale)  # a fresh, equal object each call
        batch = tiny_batch(family, cfg)
        torch.manual_seed(0)
        model = cfg.build_model()
        before = [p.detach().clone() for p in model.parameters()]
        train(model, lambda s: batch, 1, lr=1e-3)
        assert all(torch.isfinite(p).all() for p in model.parameters())
        assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters())), f"{family} {scale}: one step changed nothing"
        steps.append(cfg.train.max_steps)
    assert steps[0] < steps[1] <= steps[2], steps  # smoke < quick <= full
