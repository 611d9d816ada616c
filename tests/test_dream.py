"Tests of the family-agnostic dream (07_dream): the interface, BatchedDream, DreamEnv and dream_vs_real, on V+M and the RSSM."
import numpy as np
import pytest, torch
from gymnasium.utils.env_checker import check_env
from worldmodels_nb.core import ConfigError
from worldmodels_nb.dream import BatchedDream, DreamEnv, Dreamable, dream_starts, dream_vs_real, tree_where
from worldmodels_nb.mdnrnn import MDNRNN, MDNRNNModelConfig, VMWorldModel, mdn_mean
from worldmodels_nb.rssm import RSSMModelConfig, RSSMWorldModel
from worldmodels_nb.vae import ConvVAE, VAEModelConfig

def vm_model(continuous=False, seed=0):
    torch.manual_seed(seed)
    kw = dict(num_actions=0, action_dim=2, action_low=[-1.0, 0.0], action_high=[1.0, 1.0]) if continuous else dict(num_actions=4)
    return VMWorldModel(ConvVAE(VAEModelConfig(width=8, z_dim=4)), MDNRNN(MDNRNNModelConfig(z_dim=4, hidden=16, num_mixtures=3, **kw))).eval()

def rssm_model(reward_head=False, cont_head=False, seed=0):
    torch.manual_seed(seed)
    return RSSMWorldModel(RSSMModelConfig(obs_shape=[5], action_dim=2, stoch=4, deter=16, hidden=16, embed=16,
                                          reward_head=reward_head, cont_head=cont_head)).eval()

def starts(model, n=6, k=1):
    frames = torch.rand(n, k, 3, 64, 64) if isinstance(model, VMWorldModel) else torch.randn(n, k, 5)
    acts = torch.randint(0, 4, (n, k - 1)) if isinstance(model, VMWorldModel) and model.mdn.cfg.num_actions else torch.rand(n, k - 1, 2) * 2 - 1
    return dict(frames=frames, actions=acts)

def random_actions(model, B):
    sp = model.dream_action_space()
    return torch.randint(0, sp.n, (B,)) if hasattr(sp, "n") else torch.rand(B, 2) * 2 - 1

@pytest.mark.parametrize("make", [vm_model, rssm_model], ids=["V+M", "RSSM"])
def test_both_families_dream_through_one_interface(make):
    m = make()
    assert isinstance(m, Dreamable)
    st = starts(m, 6, 3)
    d = BatchedDream(m, st, tau=1.0, max_steps=9, done_mode="never")
    ret, lens = d.rollout(lambda o: random_actions(m, len(o)), 8, seed=0)
    assert lens.tolist() == [9] * 8 and ret.shape == (8,)
    frame = d.render()
    assert frame.shape == ((8, 3, 64, 64) if isinstance(m, VMWorldModel) else (8, 5))
    pol = (lambda o: (o[:, 0] > 0).long()) if hasattr(m.dream_action_space(), "n") else (lambda o: torch.tanh(o[:, :2]))
    a, b, c = (d.rollout(pol, 4, seed=s) for s in (1, 1, 2))
    assert torch.equal(d.render(), d.render()) and torch.equal(a[0], b[0])  # a seeded population replays exactly

def test_vm_dream_matches_the_mdnrnn_step_by_step():
    "dream_start / dream_step are M's own recurrence: the LSTM through the context, then one step per action."
    m = vm_model()
    x, a = torch.rand(2, 3, 3, 64, 64), torch.randint(0, 4, (2, 4))
    with torch.no_grad():
        st = m.dream_start(x, a[:, :2])
        z = m.vae.encode(x.flatten(0, 1))[0].view(2, 3, 4)
        state = None
        for t in range(2): _, _, _, _, state = m.mdn.step(z[:, t], a[:, t], state)
        assert torch.allclose(st["z"], z[:, -1]) and torch.allclose(st["h"], state[0][0]) and torch.allclose(st["c"], state[1][0])
        st2, r, p_done = m.dream_step(st, a[:, 2], tau=0.0)  # tau = 0: the mode, no randomness
        p, r_ref, d_ref, _, state = m.mdn.step(z[:, -1], a[:, 2], state)
        assert torch.allclose(st2["h"], state[0][0]) and torch.allclose(r, r_ref) and torch.allclose(p_done, torch.sigmoid(d_ref))
        assert torch.allclose(m.dream_features(st2), torch.cat([st2["z"], st2["h"]], -1))

def test_rssm_dream_is_its_prior():
    m = rssm_model(reward_head=True, cont_head=True)
    f, a = torch.randn(3, 4, 5), torch.rand(3, 5, 2) * 2 - 1
    with torch.no_grad():
        st = m.dream_start(f, a[:, :3])
        ref = m.imagine(m.observe(f, a[:, :3]), a[:, 3:5])  # the protocol's open-loop prediction (prior mode)
        s1, r, p = m.dream_step(st, a[:, 3], tau=0.0); s2, _, _ = m.dream_step(s1, a[:, 4], tau=0.0)
        assert torch.allclose(torch.stack([m.dream_decode(s1), m.dream_decode(s2)], 1), ref, atol=1e-6)
        assert r.shape == (3,) and ((0 <= p) & (p <= 1)).all()

def test_batched_dream_freezes_finished_dreams():
    m = vm_model()
    st = starts(m)
    with torch.no_grad(): m.mdn.head.bias[-1] = -30.0  # done logit: never done -> truncated at max_steps
    d = BatchedDream(m, st, max_steps=7, done_mode="threshold")
    assert d.rollout(lambda o: torch.randint(0, 4, (len(o),)), 6, seed=0)[1].tolist() == [7] * 6
    with torch.no_grad(): m.mdn.head.bias[-1] = 30.0; m.mdn.head.bias[-2] = 2.5; m.mdn.head.weight[-2:].zero_()  # done at once, reward 2.5
    d.reset(4, seed=1)
    o1, r1, term1, trunc1 = d.step(torch.zeros(4, dtype=torch.long))
    assert term1.all() and not trunc1.any() and torch.allclose(r1, torch.full((4,), 2.5))
    o2, r2, term2, _ = d.step(torch.zeros(4, dtype=torch.long))
    assert term2.all() and (r2 == 0).all() and torch.equal(o2, o1)  # frozen: same observation, no reward
    ret, lens = d.rollout(lambda o: torch.zeros(len(o), dtype=torch.long), 3, seed=0)
    assert lens.tolist() == [1, 1, 1] and torch.allclose(ret, torch.full((3,), 2.5))
    with torch.no_grad(): m.mdn.head.bias[-1] = 0.0  # p = 0.5: threshold (p > 0.5) never ends it; sample ends about half
    assert BatchedDream(m, st, max_steps=3, done_mode="threshold").rollout(lambda o: torch.zeros(len(o), dtype=torch.long), 50, seed=0)[1].eq(3).all()
    lens = BatchedDream(m, st, max_steps=3, done_mode="sample").rollout(lambda o: torch.zeros(len(o), dtype=torch.long), 200, seed=0)[1]
    assert 0.3 < (lens == 1).float().mean() < 0.7

def test_bad_inputs_are_one_line_errors():
    m = vm_model()
    with pytest.raises(ConfigError, match="done_mode must be one of"): BatchedDream(m, starts(m), done_mode="maybe")
    with pytest.raises(TypeError, match="does not implement the dream interface"): BatchedDream(torch.nn.Linear(2, 2), starts(m))
    d = BatchedDream(m, starts(m))
    with pytest.raises(RuntimeError, match="call reset"): d.step(torch.zeros(2, dtype=torch.long))
    d.reset(3, seed=0)
    with pytest.raises(ValueError, match="expected 3 actions"): d.step(torch.zeros(2, dtype=torch.long))

@pytest.mark.parametrize("continuous", [False, True])
def test_dream_env_passes_gymnasium_checker_and_is_deterministic(continuous):
    m = vm_model(continuous)
    env = DreamEnv(m, starts(m), tau=1.0, max_episode_steps=20, render_mode="rgb_array")
    check_env(env, skip_render_check=False)
    assert env.observation_space.shape == (4 + 16,)
    if continuous: assert env.action_space.low.tolist() == [-1.0, 0.0]
    acts = [env.action_space.sample() for _ in range(6)]
    def run(seed):
        o, _ = env.reset(seed=seed); out = [o]
        for a in acts: out.append(env.step(a)[0])
        return np.stack(out)
    np.testing.assert_array_equal(run(5), run(5))
    assert not np.array_equal(run(5), run(6))
    frame = env.render()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    with pytest.raises(ValueError, match="render_mode"): DreamEnv(m, starts(m), render_mode="human")

def test_rssm_dream_env_checks():
    m = rssm_model(reward_head=True, cont_head=True)
    check_env(DreamEnv(m, starts(m, k=2), max_episode_steps=10))

@pytest.mark.parametrize("make", [vm_model, rssm_model], ids=["V+M", "RSSM"])
def test_dream_vs_real_replays_the_episode_actions(make):
    m = make()
    T = 12
    if isinstance(m, VMWorldModel): ep = dict(frames=np.random.default_rng(0).integers(0, 256, (T, 64, 64, 3), dtype=np.uint8), actions=np.arange(T) % 4)
    else: ep = dict(frames=np.random.default_rng(0).standard_normal((T, 5)).astype(np.float32), actions=np.random.default_rng(1).uniform(-1, 1, (T, 2)).astype(np.float32))
    real, dreamed = dream_vs_real(m, ep, steps=20, context=2, tau=0.0)
    assert real.shape == dreamed.shape and len(real) == T - 2  # steps capped by the episode
    with torch.no_grad():  # tau = 0 is the deterministic dream: the same as stepping by hand
        x = torch.as_tensor(ep["frames"]); x = x.permute(0, 3, 1, 2).float() / 255 if x.dim() == 4 else x
        a = torch.as_tensor(ep["actions"])
        st = m.dream_start(x[None, :2], a[None, :1]); st, _, _ = m.dream_step(st, a[None, 1], 0.0)
        assert torch.allclose(m.dream_decode(st)[0], dreamed[0], atol=1e-6)
    with pytest.raises(ValueError, match="needs more than context"): dream_vs_real(m, {k: v[:2] for k, v in ep.items()}, context=2)

def test_tree_where_and_dream_starts(tmp_path):
    s = dict(z=torch.zeros(3, 2), probs=torch.zeros(3, 2, 2))
    n = {k: v + 1 for k, v in s.items()}
    out = tree_where(torch.tensor([True, False, True]), n, s)
    assert out["z"][:, 0].tolist() == [1, 0, 1] and out["probs"][1].sum() == 0
    from test_mdnrnn import frame_dataset
    ds = frame_dataset(tmp_path/"f")
    st = dream_starts(ds, context=2)
    assert st["frames"].shape == (ds.num_episodes, 2, 3, 64, 64) and st["actions"].shape == (ds.num_episodes, 1)
    assert st["frames"].max() <= 1.0 and st["frames"].dtype == torch.float32
    first = ds.episode(0)
    assert torch.allclose(st["frames"][0, 0], torch.as_tensor(first["frames"][0]).permute(2, 0, 1).float() / 255)
