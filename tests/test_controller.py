"Tests of the controller stage (07_dream_controller): controllers, batched populations, CMA-ES in a toy dream, resume after SIGKILL, bad input."
import os, signal, subprocess, sys, textwrap, time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest, torch
from worldmodels_nb.controller import (CAR_RACING, TAKE_COVER, Controller, ControllerConfig, RealFeatures, load_controller, make_es,
                                       population_actions, population_policy, real_fitness, real_returns, to_env_action,
                                       train_controller, train_controller_in_dream, l2_penalty)
from worldmodels_nb.core import CheckpointError, ConfigError, load_checkpoint
from worldmodels_nb.dream import action_space
from worldmodels_nb.mdnrnn import MDNRNN, MDNRNNModelConfig, VMWorldModel
from worldmodels_nb.rssm import RSSMModelConfig, RSSMWorldModel
from worldmodels_nb.vae import ConvVAE, VAEModelConfig

def tiny_vm(done_weight=1.0):
    torch.manual_seed(0)
    return VMWorldModel(ConvVAE(VAEModelConfig(width=8, z_dim=4)), MDNRNN(MDNRNNModelConfig(z_dim=4, hidden=8, num_mixtures=2, num_actions=3,
                                                                                          done_weight=done_weight))).eval()

def flat(ctrl): return torch.nn.utils.parameters_to_vector(ctrl.parameters()).detach()

@pytest.mark.parametrize("env", [TAKE_COVER, CAR_RACING])
@pytest.mark.parametrize("hidden", [0, 16])
def test_controller_maps_features_to_valid_actions(env, hidden):
    c = Controller(32 + 256, env, hidden)
    with torch.no_grad(): torch.nn.utils.vector_to_parameters(torch.randn(c.num_params) * 3, c.parameters())
    with torch.no_grad(): a = to_env_action(c(torch.randn(500, 288)), env)
    space = gym.spaces.Discrete(3) if env == TAKE_COVER else gym.spaces.Box(np.array([-1, 0, 0], np.float32), np.array([1, 1, 1], np.float32))
    assert all(space.contains(np.asarray(x, dtype=space.dtype) if env == CAR_RACING else int(x)) for x in a)
    if env == TAKE_COVER: assert set(a.tolist()) == {0, 1, 2}  # all three bands are reachable
    if env == CAR_RACING and hidden == 0: assert c.num_params == 867  # the paper's count
    if env == TAKE_COVER and hidden == 0: assert c.num_params == 288 and c.net.bias is None

def test_take_cover_thresholds_match_the_paper():
    y = torch.atanh(torch.tensor([[-0.9], [-0.34], [-0.32], [0.32], [0.34], [0.9]]))
    assert to_env_action(y, TAKE_COVER).tolist() == [2, 2, 0, 0, 1, 1]  # 2 = MOVE_LEFT, 0 = nothing, 1 = MOVE_RIGHT

def test_population_actions_equal_one_candidate_at_a_time():
    c = Controller(7, CAR_RACING, hidden=5)
    theta, obs = torch.randn(4, c.num_params), torch.randn(12, 7)
    got = population_policy(c, theta, 3)(obs)
    for b in range(12):
        torch.nn.utils.vector_to_parameters(theta[b // 3], c.parameters())
        with torch.no_grad(): assert torch.allclose(got[b], to_env_action(c(obs[b]), CAR_RACING), atol=1e-5)

class SignDream(torch.nn.Module):
    "A toy Dreamable with a known optimum: features are noise; reward 1 when the action follows the sign of feature 0 (50 of 50 at best)."
    def dream_start(self, frames, actions): return dict(f=frames[:, -1])
    def dream_step(self, state, actions, tau=1.0, generator=None):
        f = state["f"]
        ok = torch.where(f[:, 0] > 0, actions == 1, actions == 2)  # right when f0 > 0, left when f0 < 0
        nxt = 3 * torch.randn(f.shape, generator=generator)
        return dict(f=nxt), ok.float(), torch.zeros(len(f))
    def dream_observe(self, state, actions, frames): return dict(f=frames)
    def dream_features(self, state): return state["f"]
    def dream_decode(self, state): return state["f"]
    def dream_action_space(self): return action_space(3)

def test_cma_es_in_a_toy_dream_improves(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # pycma must not write outcmaes/ here
    starts = dict(frames=3 * torch.randn(32, 1, 6), actions=torch.zeros(32, 0, dtype=torch.long))
    cfg = ControllerConfig(popsize=8, rollouts=2, generations=16, max_steps=50, eval_every=4, eval_rollouts=16, done_mode="never",
                           survival_reward=False)
    ctrl, run, hist = train_controller_in_dream(cfg, SignDream(), starts, out_dir=tmp_path/"runs", progress=False)
    assert hist[0]["mean"] < 25 and hist[-1]["eval_mean"] > hist[0]["mean"] + 15, [(h["mean"], h["eval_mean"]) for h in hist]
    w = flat(ctrl)
    assert w[0] > 0 and w[0].abs() == w.abs().max()  # it found the feature that matters, with the right sign
    assert not list(tmp_path.glob("outcmaes*")) and not list(tmp_path.glob("*.dat"))
    assert (run/"checkpoints"/"last.pt").is_file() and (run/"checkpoints"/"best.pt").is_file() and (run/"metrics.csv").is_file()

def quadratic(theta, rollouts, seed):
    return -((np.asarray(theta) - 0.2) ** 2).sum(1) + np.random.default_rng(seed).normal(0, 0.01, len(theta))

def test_weight_decay_is_a_penalty():
    theta = np.array([[0.0, 0.0], [3.0, -3.0]])
    assert l2_penalty(theta, 0.1).tolist() == [0.0, 0.9]  # subtracted from the return: big weights score lower

SCRIPT = textwrap.dedent("""
    import sys, time, numpy as np
    from worldmodels_nb.controller import ControllerConfig, train_controller
    def slow(theta, rollouts, seed):
        time.sleep(0.3)
        return -((np.asarray(theta) - 0.2) ** 2).sum(1) + np.random.default_rng(seed).normal(0, 0.01, len(theta))
    cfg = ControllerConfig(obs_dim=20, popsize=6, generations=30, eval_every=5, eval_rollouts=2)
    train_controller(cfg, slow, sys.argv[1], progress=False)
""")

def test_a_killed_run_resumes_at_the_saved_generation(tmp_path):
    cfg = ControllerConfig(obs_dim=20, popsize=6, generations=30, eval_every=5, eval_rollouts=2)
    ref, _, ref_hist = train_controller(cfg, quadratic, tmp_path/"ref", progress=False)
    run = tmp_path/"killed"
    script = tmp_path/"run.py"; script.write_text(SCRIPT)
    p = subprocess.Popen([sys.executable, str(script), str(run)], env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    t0 = time.time()
    while time.time() - t0 < 300:  # a loaded machine may take a minute just to import torch in the child
        last = run/"checkpoints"/"last.pt"
        if last.exists() and load_checkpoint(last)["step"] >= 3: break
        time.sleep(0.1)
    os.kill(p.pid, signal.SIGKILL); p.wait()
    saved = load_checkpoint(run/"checkpoints"/"last.pt")["step"]
    assert 3 <= saved < 30
    resumed, _, hist = train_controller(cfg, quadratic, run, stop_after=saved + 1, progress=False)
    assert [h["generation"] for h in hist] == list(range(1, saved + 2))  # continued at the saved generation, none repeated
    resumed, _, hist = train_controller(cfg, quadratic, run, progress=False)
    assert torch.equal(flat(resumed), flat(ref))  # bit-identical to the run that was never killed
    assert [h["mean"] for h in hist] == [h["mean"] for h in ref_hist]

def test_evolution_runs_at_the_configured_thread_count(tmp_path):
    "A dream's outcome changes with torch's thread count, so C evolves at cfg.threads whatever the caller set, then the count is restored."
    seen, outer = [], torch.get_num_threads()
    def fitness(theta, rollouts, seed):
        seen.append(torch.get_num_threads())
        return quadratic(theta, rollouts, seed)
    torch.set_num_threads(2)
    try:
        train_controller(ControllerConfig(obs_dim=20, popsize=4, generations=2, eval_every=1, eval_rollouts=1, threads=1), fitness,
                         tmp_path/"tc", progress=False)
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2
    finally: torch.set_num_threads(outer)
    with pytest.raises(ConfigError, match="threads >= 0"): train_controller(ControllerConfig(threads=-1), quadratic, tmp_path/"x")
    assert ControllerConfig.full().threads == 0 and ControllerConfig.quick().threads == 2  # full: every free core

def test_bad_input_is_one_line(tmp_path):
    cfg = ControllerConfig(obs_dim=20, popsize=4, generations=1, eval_every=1, eval_rollouts=1)
    _, run, _ = train_controller(cfg, quadratic, tmp_path/"tc", progress=False)
    with pytest.raises(ConfigError, match="controller for VizdoomTakeCover-v1, not CarRacing-v3"): load_controller(run/"checkpoints"/"last.pt", CAR_RACING)
    assert isinstance(load_controller(run/"checkpoints"/"last.pt", TAKE_COVER)[0], Controller)
    starts = dict(frames=torch.rand(2, 1, 3, 64, 64), actions=torch.zeros(2, 0, dtype=torch.long))
    for m in (tiny_vm(done_weight=0.0), RSSMWorldModel(RSSMModelConfig(obs_shape=[5], action_dim=2, stoch=4, deter=8, hidden=8, embed=8))):
        with pytest.raises(ConfigError, match="has no done head"):
            train_controller_in_dream(ControllerConfig(), m, starts, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="no controller head"): ControllerConfig(env="procgen:coinrun").build_model()
    with pytest.raises(ConfigError, match="popsize"): train_controller(ControllerConfig(popsize=1), quadratic, tmp_path/"x")
    (tmp_path/"bad"/"checkpoints").mkdir(parents=True); (tmp_path/"bad"/"checkpoints"/"last.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="corrupt"): train_controller(cfg, quadratic, tmp_path/"bad")

def test_real_game_population_is_batched_and_seeded():
    vm, c = tiny_vm(), Controller(4 + 8, TAKE_COVER)
    theta = np.random.default_rng(0).normal(0, 1, (2, c.num_params))
    a = real_fitness(vm, c, theta, 2, seed=5, num_envs=3, max_steps=15)
    b = real_fitness(vm, c, theta, 2, seed=5, num_envs=3, max_steps=15)
    assert a.shape == (2,) and np.array_equal(a, b) and (a > 0).all() and (a <= 15).all()
    ret, steps = real_returns(TAKE_COVER, lambda f, ep: np.zeros(len(ep), int), 3, 2, 0, 10)
    assert ret.tolist() == [10.0] * 3 and steps == 30  # the 2100-step cap is the env's TimeLimit; here 10

def test_wm_train_controller_bad_input_is_one_line(tmp_path):
    from worldmodels_nb.cli import train_main
    with pytest.raises(SystemExit, match="wm-train controller: no controller head for env 'procgen:coinrun'"):
        train_main(["controller", "--env", "procgen:coinrun", "--scale", "smoke", "--out", str(tmp_path)])
    cfg = ControllerConfig(obs_dim=20, popsize=4, generations=1, eval_every=1, eval_rollouts=1)
    _, run, _ = train_controller(cfg, quadratic, tmp_path/"tc", progress=False)
    with pytest.raises(SystemExit, match="is not an MDN-RNN checkpoint"):  # a controller given where V+M is expected
        train_main(["controller", "--scale", "smoke", "--world-model", str(run/"checkpoints"/"last.pt"), "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match="an evolution for VizdoomTakeCover-v1, not CarRacing-v3"):  # resuming another game's run
        train_controller(ControllerConfig(env=CAR_RACING, obs_dim=20, popsize=4, generations=2), quadratic, run, progress=False)

def test_gae_cuts_at_episode_ends_and_matches_returns():
    from worldmodels_nb.controller import gae
    r, v, e = torch.ones(3, 1), torch.zeros(3, 1), torch.tensor([[0.], [1.], [0.]])
    adv, ret = gae(r, v, torch.zeros(1), e, gamma=0.5, lam=1.0)
    assert torch.allclose(ret[:, 0], torch.tensor([1.5, 1.0, 1.0]))  # step 1 ends its episode: nothing flows back across it

def test_ppo_counts_real_steps_and_changes_the_policy():
    from worldmodels_nb.controller import ActorCritic, train_ppo_real
    vm = tiny_vm()
    agent, steps, rets = train_ppo_real(vm, TAKE_COVER, 40, num_envs=2, horizon=8, max_steps=10)
    assert isinstance(agent, ActorCritic) and steps == 48  # 3 rollouts of 2 envs x 8 steps: every real step counted
    assert len(rets) == 4 and (rets == 10).all()  # finished episodes, each capped at 10 steps (+1 per step)
    torch.manual_seed(0); fresh = ActorCritic(4 + 8)
    assert not torch.allclose(flat(agent), flat(fresh))

def old_vm_features(vm, frames_seq, actions_seq):
    "The V+M loop of the paper written out: V's mean code of each frame, M's LSTM stepped on (z_t, a_t); features [z_t, h_t] per step."
    z = vm.vae.encode(frames_seq[0])[0]; h, c = vm.mdn.initial(len(z)); out = [torch.cat([z, h[0]], -1)]
    for a, f in zip(actions_seq, frames_seq[1:]):
        _, _, _, _, (h, c) = vm.mdn.step(z, a, (h, c)); z = vm.vae.encode(f)[0]; out.append(torch.cat([z, h[0]], -1))
    return out

def test_real_features_of_vm_are_the_paper_loop():
    "The generic adapter (dream_start + dream_observe) gives V+M exactly the features of V encoding each frame and M's LSTM stepping."
    vm, g = tiny_vm(), np.random.default_rng(0)
    obs = g.integers(0, 256, (5, 3, 64, 64, 3), dtype=np.uint8)  # (T, B, H, W, C): env observations
    acts = torch.as_tensor(g.integers(0, 3, (4, 3)))
    x = torch.as_tensor(obs).permute(0, 1, 4, 2, 3).float() / 255
    with torch.no_grad(): want = old_vm_features(vm, x, acts)
    rf = RealFeatures(vm)
    got = [rf.reset(obs[0])] + [rf.step(a.numpy(), o) for a, o in zip(acts, obs[1:])]
    for w, f in zip(want, got): assert torch.allclose(w, f, atol=1e-6)
    mask = np.array([False, True, False])  # env 1 starts a new episode: its state restarts, the others keep theirs
    f = rf.reset(obs[0], mask)
    assert torch.allclose(f[1], want[0][1], atol=1e-6) and torch.allclose(f[[0, 2]], got[-1][[0, 2]])

@pytest.mark.parametrize("pixels", [True, False], ids=["pixel", "low-dim"])
def test_rssm_dream_observe_is_its_filter(pixels):
    "RSSM: dream_start on the first frame then dream_observe step by step equals the posterior (mode) of `filter` over the same frames."
    torch.manual_seed(0)
    kw = dict(obs_shape=[3, 64, 64], num_actions=3, depth=4) if pixels else dict(obs_shape=[5], action_dim=2)
    m = RSSMWorldModel(RSSMModelConfig(stoch=4, deter=16, hidden=16, embed=16, latent="categorical", groups=4, classes=4, **kw)).eval()
    T = 6
    x = torch.rand(2, T, 3, 64, 64) if pixels else torch.randn(2, T, 5)
    a = torch.randint(0, 3, (2, T)) if pixels else torch.rand(2, T, 2) * 2 - 1
    with torch.no_grad():
        _, post, _ = m.filter(x, a, sample=False)
        st = m.dream_start(x[:, :1], a[:, :0])
        for t in range(1, T):
            st = m.dream_observe(st, a[:, t - 1], x[:, t])
            assert torch.allclose(m.dream_features(st), torch.cat([post["h"][:, t], post["z"][:, t]], -1), atol=1e-5)

def test_real_features_play_the_real_game_with_an_rssm():
    "The same adapter plays real Take Cover with a pixel RSSM's features [h, z]: right width, seeded episodes replay."
    torch.manual_seed(0)
    m = RSSMWorldModel(RSSMModelConfig(obs_shape=[3, 64, 64], num_actions=3, depth=4, stoch=4, deter=16, hidden=16, latent="categorical",
                                       groups=4, classes=4)).eval()
    c = Controller(16 + 16, TAKE_COVER)
    theta = torch.randn(2, c.num_params)
    widths = []
    def pol(feat, ep): widths.append(feat.shape[-1]); return population_actions(c, theta, torch.as_tensor(ep) // 2, feat)
    r1, s1 = real_returns(TAKE_COVER, pol, 4, 2, 3, 12, RealFeatures(m))
    r2, _ = real_returns(TAKE_COVER, pol, 4, 2, 3, 12, RealFeatures(m))
    assert set(widths) == {32} and np.array_equal(r1, r2) and s1 >= 4

def test_rssm_continue_head_learns_from_an_episodes_last_step():
    "The terminal step is always a clip's last (no frame follows it): the continue loss must read it, and p_done is the prior's, as in the dream."
    torch.manual_seed(0)
    m = RSSMWorldModel(RSSMModelConfig(obs_shape=[3, 64, 64], num_actions=3, depth=4, stoch=4, deter=16, hidden=16, latent="categorical",
                                       groups=4, classes=4, cont_head=True)).eval()
    b = dict(frames=torch.randint(0, 256, (2, 5, 3, 64, 64), dtype=torch.uint8), actions=torch.randint(0, 3, (2, 5)), rewards=torch.zeros(2, 5),
             dones=torch.zeros(2, 5, dtype=torch.bool))
    with torch.no_grad():
        torch.manual_seed(1); alive = m.loss(b)["cont"]
        b["dones"][:, -1] = True
        torch.manual_seed(1); dead = m.loss(b)["cont"]
        assert not torch.isclose(alive, dead)  # the last step's label counts
        p = m.p_done(b["frames"], b["actions"])  # (B, T)
        st = m.dream_start(b["frames"][:, :1], b["actions"][:, :0])
        for t in range(5):  # the prior after action t, from the filter up to frame t: what dream_step's p_done reads
            nxt, _, pd = m.dream_step(st, b["actions"][:, t], tau=0.0)
            assert torch.allclose(pd, p[:, t], atol=1e-5)
            if t < 4: st = m.dream_observe(st, b["actions"][:, t], b["frames"][:, t + 1].float() / 255)
    plain = RSSMWorldModel(RSSMModelConfig(obs_shape=[5], action_dim=2))
    with pytest.raises(ConfigError, match="no continue head"): plain.p_done(torch.randn(1, 3, 5), torch.randn(1, 3, 2))

def test_pixel_model_observes_by_shifting_its_window():
    "The pixel model's filter is its context window: dream_observe drops the oldest frame and action and appends the real ones."
    from worldmodels_nb.dream import Dreamable
    from worldmodels_nb.pixel import PixelModelConfig, PixelWorldModel
    m = PixelWorldModel(PixelModelConfig(num_actions=3, width=8)).eval()
    k = m.cfg.context
    x, a = torch.rand(2, k + 1, 3, 64, 64), torch.randint(0, 3, (2, k))
    st = m.dream_observe(m.dream_start(x[:, :k], a[:, :k - 1]), a[:, k - 1], x[:, k])
    want = m.observe(x[:, 1:], a[:, 1:])
    assert isinstance(m, Dreamable) and torch.equal(st["frames"], want["frames"]) and torch.equal(st["actions"], want["actions"])

def test_v_alone_drives_carracing_on_its_codes():
    from worldmodels_nb.controller import VFeatures, agent_features
    torch.manual_seed(0)
    vae = ConvVAE(VAEModelConfig(width=8, z_dim=4)).eval()
    f = agent_features(vae)
    assert isinstance(f, VFeatures) and isinstance(agent_features(tiny_vm()), RealFeatures) and agent_features(f) is f
    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad(): mu = vae.encode(torch.as_tensor(frames).permute(0, 3, 1, 2).float() / 255)[0]
    assert torch.allclose(f.reset(frames), mu) and torch.allclose(f.step(None, frames), mu)  # the code of each frame, no memory
    c = Controller(4, CAR_RACING)
    theta = np.random.default_rng(1).normal(0, 0.5, (2, c.num_params))
    a = real_fitness(vae, c, theta, 1, seed=3, num_envs=2, max_steps=12)
    assert a.shape == (2,) and np.allclose(a, real_fitness(vae, c, theta, 1, seed=3, num_envs=2, max_steps=12))

def test_course_vae_refuses_the_wrong_checkpoint(tmp_path):
    from worldmodels_nb.controller import course_vae
    from worldmodels_nb.core import save_checkpoint
    from worldmodels_nb.vae import VAEConfig
    cfg = VAEConfig(env=TAKE_COVER)
    cfg.model = VAEModelConfig(width=8, z_dim=4)
    ck = save_checkpoint(tmp_path/"v.pt", ConvVAE(cfg.model), step=1, config=cfg)
    v, path = course_vae(TAKE_COVER, checkpoint=str(ck))
    assert isinstance(v, ConvVAE) and path == str(ck)
    with pytest.raises(ConfigError, match="is a V of VizdoomTakeCover-v1, not of CarRacing-v3"): course_vae(CAR_RACING, checkpoint=str(ck))

def test_episode_seeds_give_every_candidate_the_same_episodes():
    stay = lambda f, ep: np.zeros(len(ep), int)
    ret, _ = real_returns(TAKE_COVER, stay, 3, 2, 0, 2100, episode_seeds=[7, 7, 7])  # the 3rd episode on a re-seeded env
    assert ret[0] < 2100 and ret.tolist() == [ret[0]] * 3  # the same seed: the same death, whichever env played it
    other, _ = real_returns(TAKE_COVER, stay, 2, 2, 0, 2100, episode_seeds=[8, 9])
    assert len({*ret.tolist(), *other.tolist()}) > 1  # other seeds: other episodes
    vm, c = tiny_vm(), Controller(4 + 8, TAKE_COVER)
    x = np.random.default_rng(0).normal(0, 1, (1, c.num_params))
    f = real_fitness(vm, c, np.repeat(x, 3, 0), 2, seed=5, num_envs=4, max_steps=300, common=True)
    assert np.allclose(f, f[0])  # one controller played three times on common episodes: one fitness

def test_wm_train_controller_v_only_drives_the_real_carracing(tmp_path, capsys):
    from worldmodels_nb.cli import train_main
    from worldmodels_nb.core import save_checkpoint
    from worldmodels_nb.vae import VAEConfig
    cfg = VAEConfig(env=CAR_RACING)
    cfg.model = VAEModelConfig(width=8, z_dim=4)
    ck = save_checkpoint(tmp_path/"v.pt", ConvVAE(cfg.model), step=1, config=cfg)
    args = ["controller", "--env", CAR_RACING, "--scale", "smoke", "--v-only", "--world-model", str(ck), "--out", str(tmp_path)]
    with pytest.raises(SystemExit, match="wm-train controller: --v-only needs fitness=real"): train_main(args + ["fitness=dream"])
    assert train_main(args + ["generations=1", "max_steps=10"]) == 0  # CarRacing's own preset: in the real game, common tracks
    run = next(tmp_path.glob("*_controller_CarRacing-v3"))
    ctrl, c = load_controller(run/"checkpoints"/"last.pt", CAR_RACING)
    assert c.obs_dim == 4 and ctrl.num_params == 3 * 4 + 3 and c.world_model == str(ck)
    assert c.fitness == "real" and c.common_episodes and c.popsize == ControllerConfig.for_env("smoke", CAR_RACING).popsize
    assert "1 generations in the real" in capsys.readouterr().out

def tiny_mdn(seed, done_weight=1.0, **kw):
    torch.manual_seed(seed)
    return MDNRNN(MDNRNNModelConfig(**{**dict(z_dim=4, hidden=8, num_mixtures=2, num_actions=3, done_weight=done_weight), **kw})).eval()

def test_an_ensemble_dreams_one_code_path_and_ends_with_its_most_pessimistic_member(tmp_path):
    from worldmodels_nb.controller import VMEnsemble
    from worldmodels_nb.dream import Dreamable
    vm = tiny_vm()
    a, b = tiny_mdn(1), tiny_mdn(2)
    with torch.no_grad(): b.head.bias[-1] = 5.0  # b is sure every step ends the episode
    ens = VMEnsemble(vm.vae, [a, b]).eval()
    assert isinstance(ens, Dreamable) and ens.members == [a, b]
    frames, acts = torch.rand(3, 1, 3, 64, 64), torch.tensor([0, 1, 2])
    with torch.no_grad():
        s = ens.dream_start(frames, torch.zeros(3, 0, dtype=torch.long))
        new, r, p_done = ens.dream_step(s, acts, 1.0, torch.Generator().manual_seed(0))
        pa = torch.sigmoid(a.step(s["z"], acts, (s["h"][None], s["c"][None]))[2])
        pb = torch.sigmoid(b.step(s["z"], acts, (s["h1"][None], s["c1"][None]))[2])
        torch.testing.assert_close(p_done, torch.maximum(pa, pb))
        assert (pb > pa).all() and (p_done > 0.9).all()
        # the features C sees are the first member's, the same width as a single V+M's
        single = VMWorldModel(vm.vae, a)
        torch.testing.assert_close(ens.dream_features(s), single.dream_features(single.dream_start(frames, torch.zeros(3, 0, dtype=torch.long))))
        # in the real game V's code replaces the draw and every member keeps its own memory
        obs = ens.dream_observe(s, acts, torch.rand(3, 3, 64, 64))
        assert not torch.equal(obs["h"], obs["h1"]) and obs["z"].shape == (3, 4)
    with pytest.raises(ConfigError, match="share V's codes and the actions"):
        VMEnsemble(vm.vae, [a, tiny_mdn(3, num_actions=0, action_dim=2)])
    starts = dict(frames=torch.rand(2, 1, 3, 64, 64), actions=torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(ConfigError, match="has no done head"):
        train_controller_in_dream(ControllerConfig(), VMEnsemble(vm.vae, [a, tiny_mdn(4, done_weight=0.0)]), starts, out_dir=tmp_path)

def test_several_m_checkpoints_of_one_v_are_dreamed_together(tmp_path):
    from worldmodels_nb.controller import VMEnsemble, course_world_model
    from worldmodels_nb.core import save_checkpoint
    from worldmodels_nb.mdnrnn import MDNRNNConfig
    from worldmodels_nb.vae import VAEConfig
    vcfg = VAEConfig(env=TAKE_COVER)
    vcfg.model = VAEModelConfig(width=8, z_dim=4)
    vcks = [str(save_checkpoint(tmp_path/f"v{i}.pt", ConvVAE(vcfg.model), step=1, config=vcfg)) for i in range(2)]
    def m_ckpt(name, vck, seed):
        cfg = MDNRNNConfig(MDNRNNModelConfig(z_dim=4, hidden=8, num_mixtures=2, num_actions=3), env=TAKE_COVER, vae_checkpoint=vck)
        return str(save_checkpoint(tmp_path/name, tiny_mdn(seed), step=1, config=cfg))
    a, b, c = m_ckpt("a.pt", vcks[0], 1), m_ckpt("b.pt", vcks[0], 2), m_ckpt("c.pt", vcks[1], 3)
    one, _ = course_world_model(TAKE_COVER, checkpoint=a)
    two, ck = course_world_model(TAKE_COVER, checkpoint=f"{a},{b}")
    assert not isinstance(one, VMEnsemble) and isinstance(two, VMEnsemble) and len(two.members) == 2 and ck == f"{a},{b}"
    with pytest.raises(ConfigError, match="codes of different Vs"): course_world_model(TAKE_COVER, checkpoint=f"{a},{c}")
    with pytest.raises(ConfigError, match="is an M of VizdoomTakeCover-v1, not of CarRacing-v3"):
        course_world_model(CAR_RACING, checkpoint=f"{a},{b}")
