"Behaviour of worldmodels_nb.envs: shapes per family, errors, seeding, episode boundaries, policies."
import subprocess, sys, warnings

import numpy as np
import pytest
from gymnasium import spaces

from worldmodels_nb.envs import (PROCGEN_GAMES, PROCGEN_MODES, PROCGEN_TIMEOUT, env_family, make_env, make_policy,
                                 make_vec_env, parse_levels, procgen_options)

warnings.filterwarnings("ignore", category=DeprecationWarning)

@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch): monkeypatch.chdir(tmp_path)  # VizDoom / MuJoCo write files into cwd

FAMILIES = [("procgen:coinrun", (64, 64, 3), np.uint8, 20), ("procgen:maze", (64, 64, 3), np.uint8, 20),
            ("ALE/Pong-v5", (64, 64, 3), np.uint8, 20), ("ALE/Breakout-v5", (64, 64, 3), np.uint8, 20),
            ("CarRacing-v3", (64, 64, 3), np.uint8, 5), ("VizdoomTakeCover-v1", (64, 64, 3), np.uint8, 10),
            ("HalfCheetah-v5", (17,), np.float32, 20), ("Reacher-v5", (10,), np.float32, 20)]

@pytest.mark.parametrize("env_id,shape,dtype,steps", FAMILIES)
def test_make_env_obs(env_id, shape, dtype, steps):
    env = make_env(env_id)
    obs, _ = env.reset(seed=0); env.action_space.seed(0)
    assert obs.shape == shape == env.observation_space.shape and obs.dtype == dtype
    for _ in range(steps):
        obs, r, term, trunc, _ = env.step(env.action_space.sample())
        assert obs.shape == shape and obs.dtype == dtype and isinstance(term, bool) and isinstance(trunc, bool)
        assert env.observation_space.contains(obs) or dtype == np.float32
    env.close()

@pytest.mark.parametrize("env_id", ["procgen:coinrun", "ALE/Pong-v5"])
def test_size_and_grayscale(env_id):
    env = make_env(env_id, size=32, grayscale=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (32, 32, 1) and obs.dtype == np.uint8 and env.observation_space.shape == (32, 32, 1)
    env.close()

def test_unknown_env_id():
    for bad in ("foo", "CartPole-v1"):
        with pytest.raises(ValueError, match=r"unknown env id .*supported: procgen:<game> \(16 games: bigfish.*ALE/.*CarRacing-v3.*Vizdoom.*HalfCheetah-v5"):
            make_env(bad)
    with pytest.raises(ValueError, match="unknown procgen game 'mario'"): make_env("procgen:mario")
    assert len(PROCGEN_GAMES) == 16 and env_family("ALE/Breakout-v5") == "atari"

def test_bad_distribution_mode_is_a_value_error():
    for game in PROCGEN_GAMES:  # every game's unsupported modes are refused before construction
        for mode in set(["easy", "hard", "extreme", "memory", "exploration"]) - set(PROCGEN_MODES[game]):
            with pytest.raises(ValueError, match=f"procgen:{game} has no distribution_mode '{mode}'"):
                make_env(f"procgen:{game}", distribution_mode=mode)
    with pytest.raises(ValueError, match="has no distribution_mode 'extreme'"):
        make_vec_env("procgen:coinrun", 2, distribution_mode="extreme")

def test_mode_table_matches_simulator():
    "A mode the table allows constructs; one it refuses really kills the process (checked in a subprocess)."
    code = ("import sys, numpy as np; from procgen import ProcgenGym3Env as E; "
            "e = E(num=1, env_name=sys.argv[1], distribution_mode=sys.argv[2]); e.act(np.zeros(1, np.int32)); print('ok')")
    run = lambda g, m: subprocess.run([sys.executable, "-c", code, g, m], capture_output=True, text=True)
    assert run("coinrun", "exploration").returncode == 0 and run("dodgeball", "memory").returncode == 0
    assert run("coinrun", "extreme").returncode != 0
    assert "memory" in PROCGEN_MODES["dodgeball"] and "extreme" not in PROCGEN_MODES["coinrun"]

def test_procgen_options_and_levels():
    assert parse_levels("0:500") == (0, 500) and parse_levels("500:600") == (500, 100)
    for bad in ("5:2", "a:b", "-1:3", "3", "2:2", "1:2:3"):
        with pytest.raises(ValueError, match="bad level range"): parse_levels(bad)
    with pytest.raises(ValueError, match="unknown procgen option"): procgen_options("coinrun", levels=3)
    with pytest.raises(ValueError, match="must be >= 0"): procgen_options("coinrun", num_levels=-1)
    assert "num_levels" not in procgen_options("coinrun", distribution_mode="exploration")

@pytest.mark.parametrize("env_id", ["procgen:coinrun", "ALE/Pong-v5", "VizdoomTakeCover-v1", "HalfCheetah-v5"])
def test_make_env_seeding(env_id):
    def run(seed):
        env = make_env(env_id); obs = [env.reset(seed=seed)[0]]
        rng = np.random.default_rng(0); env.action_space.seed(0)
        for _ in range(30):
            obs.append(env.step(env.action_space.sample())[0])
        env.close(); return np.stack(obs)
    a, b = run(3), run(3)
    np.testing.assert_array_equal(a, b)
    if env_id.startswith("procgen"): assert not np.array_equal(a, run(4))

def test_make_vec_env_seeding_procgen():
    def run(seed, reset_seed=None):
        with make_vec_env("procgen:coinrun", 4, seed=seed) as v:
            obs = [v.reset(reset_seed)]; rng = np.random.default_rng(0)
            for _ in range(50): obs.append(v.step(rng.integers(15, size=4))[0])
        return np.stack(obs)  # (T, N, 64, 64, 3)
    a = run(0)
    assert a.shape == (51, 4, 64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, run(0))
    np.testing.assert_array_equal(a, run(7, reset_seed=0))  # reset(seed=...) overrides the constructor's seed
    assert not np.array_equal(a, run(1))

def test_make_vec_env_gymnasium():
    with make_vec_env("ALE/Breakout-v5", 2, seed=0) as v:
        o = v.reset(); assert o.shape == (2, 64, 64, 3) and v.single_action_space == spaces.Discrete(4)
        o2 = make_vec_env("ALE/Breakout-v5", 2, seed=0).reset()
        np.testing.assert_array_equal(o, o2)
        o, r, term, trunc, _ = v.step(np.array([1, 1]))
        assert (o.shape, r.dtype, term.dtype, trunc.dtype) == ((2, 64, 64, 3), np.float32, np.bool_, np.bool_)
        assert v.kwargs == dict(size=64, grayscale=False, max_episode_steps=None)

def test_gymnasium_same_step_autoreset():
    "With max_episode_steps=5 every 5th step truncates and already returns the next episode's first obs."
    with make_vec_env("HalfCheetah-v5", 1, seed=0, max_episode_steps=5) as v:
        first = v.reset()
        assert first.shape == (1, 17) and first.dtype == np.float32
        for t in range(1, 6):
            o, r, term, trunc, info = v.step(np.ones((1, 6), np.float32))
        assert trunc[0] and not term[0] and not np.allclose(o, info["final_obs"][0])
        assert np.abs(o[0, :8]).max() < 0.2  # a reset pose: HalfCheetah starts near zero

def test_procgen_vec_episode_boundaries():
    "Run coinrun on 2 levels until episodes end: the ending step's obs is gym3's first frame of the next episode."
    with make_vec_env("procgen:coinrun", 4, seed=0, num_levels=2) as v:
        obs = v.reset(); rng = np.random.default_rng(0); ends = 0; lengths = np.zeros(4, int)
        for _ in range(2 * PROCGEN_TIMEOUT):
            prev = obs
            obs, r, term, trunc, info = v.step(rng.integers(15, size=4)); lengths += 1
            done = term | trunc
            np.testing.assert_array_equal(done, info["first"])  # every gym3 episode start is reported as an end
            assert not (term & trunc).any()
            for i in np.flatnonzero(done):
                assert not np.array_equal(prev[i], obs[i])  # a new level's first frame, not the continuation
                assert trunc[i] == (lengths[i] >= PROCGEN_TIMEOUT and r[i] == 0)  # timeout -> truncated
                ends += 1; lengths[i] = 0
            if ends >= 3: break
        assert ends >= 3
        assert v.kwargs["num_levels"] == 2 and v.kwargs["size"] == 64

def test_procgen_max_episode_steps_and_single_env_reset():
    with make_vec_env("procgen:coinrun", 2, seed=0, max_episode_steps=7) as v:
        v.reset()
        for t in range(7): _, _, term, trunc, _ = v.step(np.full(2, 4))  # 4 = no-op: nobody dies in 7 steps
        assert trunc.all() and not term.any()
    env = make_env("procgen:coinrun", max_episode_steps=3); o0, _ = env.reset(seed=1)
    for _ in range(3): o, r, term, trunc, info = env.step(4)
    assert trunc and not term and not info["first"]
    np.testing.assert_array_equal(env.reset(seed=1)[0], o0)

def test_policies():
    disc, car = spaces.Discrete(15), spaces.Box(np.array([-1, 0, 0], np.float32), np.array([1, 1, 1], np.float32))
    for name in ("random", "sticky"):
        a = make_policy(name, disc, 8, seed=0)(None)
        assert a.shape == (8,) and a.dtype == np.int64 and ((0 <= a) & (a < 15)).all()
    for name in ("random", "sticky", "brownian"):
        pi = make_policy(name, car, 8, seed=0)
        A = np.stack([pi(None) for _ in range(200)])
        assert A.shape == (200, 8, 3) and A.dtype == np.float32
        assert (A >= car.low).all() and (A <= car.high).all()
    pi = make_policy("brownian", car, 8, seed=0, sigma=0.05); A = np.stack([pi(None) for _ in range(100)])
    assert np.abs(np.diff(A, axis=0)).max() <= 0.05 * 6  # small steps: a random walk, not uniform noise
    a = make_policy("random", car, 2, seed=3)(None); b = make_policy("random", car, 2, seed=3)(None)
    np.testing.assert_array_equal(a, b)

@pytest.mark.parametrize("p", [0.5, 0.75, 0.9])
def test_sticky_repeat_rate(p):
    n = 15; pi = make_policy("sticky", spaces.Discrete(n), 100, seed=0, p=p)
    A = np.stack([pi(None) for _ in range(1000)])  # (T, N): 99,900 transitions
    rate, expect = (A[1:] == A[:-1]).mean(), p + (1 - p) / n  # a fresh uniform draw repeats by chance w.p. 1/n
    assert abs(rate - expect) < 5 * np.sqrt(expect * (1 - expect) / A[1:].size)
    pi = make_policy("sticky", spaces.Box(-1, 1, (2,)), 100, seed=0, p=p)  # continuous: no chance repeats
    A = np.stack([pi(None) for _ in range(1000)])
    assert abs((A[1:] == A[:-1]).all(-1).mean() - p) < 5 * np.sqrt(p * (1 - p) / (999 * 100))

def test_policy_reset_mask():
    pi = make_policy("sticky", spaces.Discrete(15), 4, seed=0, p=1.0)
    a = pi(None); pi.reset(np.array([True, False, False, False])); b = pi(None)
    np.testing.assert_array_equal(a[1:], b[1:])  # p=1: unmasked envs keep their action
    pi = make_policy("brownian", spaces.Box(-1, 1, (2,)), 4, seed=0)
    pi(None); pi.reset(np.array([False, True, False, False]))
    assert pi.fresh.tolist() == [False, True, False, False]

def test_policy_errors():
    with pytest.raises(ValueError, match="unknown policy 'greedy'; choose one of: random, sticky, brownian"):
        make_policy("greedy", spaces.Discrete(3), 2)
    with pytest.raises(ValueError, match="brownian policy needs a continuous"):
        make_policy("brownian", spaces.Discrete(3), 2)
    with pytest.raises(ValueError, match="sticky p must be in"):
        make_policy("sticky", spaces.Discrete(3), 2, p=1.5)

def test_vizdoom_workers_start_together_in_a_fresh_folder(tmp_path, monkeypatch):
    "Two VizDoom processes starting at once in a folder without ./_vizdoom used to race to create it, and one died."
    from worldmodels_nb.envs import make_vec_env
    monkeypatch.chdir(tmp_path)
    venv = make_vec_env("VizdoomTakeCover-v1", 2, seed=0)
    try: obs = venv.reset()
    finally: venv.close()
    assert (tmp_path/"_vizdoom").is_dir() and np.asarray(obs).shape == (2, 64, 64, 3)
