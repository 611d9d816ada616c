"Tests of worldmodels_nb.data: format, collection, resume after SIGKILL, readers, FACTR import, inspection, CLI errors."
import json, os, pickle, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest, torch
from gymnasium import spaces
from worldmodels_nb.core import ConfigError
from worldmodels_nb.data import (DatasetError, EpisodeDataset, FIELDS, collect, collect_main, ensure_dataset, heldout_kwargs,
                                 import_factr_buffer, inspect_main, read_manifest, safe_load_pickle, shard_file, run_vec_env,
                                 DataConfig, ENV_DATA, data_config, dataset_dirs, env_datasets)

# ---------------------------------------------------------------- a fake vec env with known content
class TaggedVecEnv:
    "obs pixel (0,0) = (env, episode, t); episode e of env i lasts 2 + (3*i + 5*e) % 7 steps; logs what it produced."
    def __init__(self, num_envs=3, seed=0):
        self.num_envs, self.env_id, self.kwargs, self.seed = num_envs, "fake:tagged", {"seed": seed}, seed
        self.single_observation_space = spaces.Box(0, 255, (4, 4, 3), np.uint8)
        self.single_action_space = spaces.Discrete(5)
        self.log = [[] for _ in range(num_envs)]  # per env: (obs, action, reward, terminated, truncated)
    def _obs(self):
        o = np.zeros((self.num_envs, 4, 4, 3), np.uint8)
        o[:, 0, 0] = np.stack([np.arange(self.num_envs), self.e % 256, self.t], 1)
        o[:, 1, 1, 0] = self.seed % 256
        return o
    def reset(self, seed=None):
        self.t, self.e = np.zeros(self.num_envs, int), np.zeros(self.num_envs, int); self.obs = self._obs(); return self.obs
    def step(self, a):
        self.t += 1
        ends = self.t >= 2 + (3 * np.arange(self.num_envs) + 5 * self.e) % 7
        term, trunc = ends & (self.e % 2 == 0), ends & (self.e % 2 == 1)  # odd episodes end by time-out
        r = (10 * self.e + self.t).astype(np.float32)
        for i in range(self.num_envs): self.log[i].append((self.obs[i].copy(), int(a[i]), r[i], term[i], trunc[i]))
        self.e[ends] += 1; self.t[ends] = 0; self.obs = self._obs()
        return self.obs, r, term, trunc, {}
    def close(self): pass

def seq_policy(obs): return (obs[:, 0, 0, 2].astype(np.int64) + obs[:, 0, 0, 0]) % 5  # depends on (env, t)

def fake_collect(out, steps=300, shard_size=100, envs=None, seed=0, num_envs=3):
    made = envs if envs is not None else []
    def env_fn(s): made.append(TaggedVecEnv(num_envs, s)); return made[-1]
    return collect("fake:tagged", steps, out, policy=seq_policy, seed=seed, shard_size=shard_size, num_envs=num_envs,
                   env_fn=env_fn, progress=False), made

# ---------------------------------------------------------------- format and round trip
def test_roundtrip_every_field(tmp_path):
    out, made = fake_collect(tmp_path/"d", steps=300, shard_size=100)
    m = read_manifest(out)
    assert m["total_steps"] == 300 and len(m["shards"]) == 3 == len(made)
    for sid, env in enumerate(made):
        got = {f: np.load(shard_file(out, sid, f)) for f in FIELDS}
        rows = [row for per_env in env.log for row in per_env]  # env-major
        assert len(rows) == len(got["frames"])
        np.testing.assert_array_equal(got["frames"], np.stack([r[0] for r in rows]))
        np.testing.assert_array_equal(got["actions"], [r[1] for r in rows])
        np.testing.assert_array_equal(got["rewards"], [r[2] for r in rows])
        last = np.zeros(len(rows), bool); last[np.cumsum([len(l) for l in env.log]) - 1] = True  # budget end per env
        np.testing.assert_array_equal(got["done"], [r[3] or r[4] for r in rows] | last)
        np.testing.assert_array_equal(got["truncated"], ([r[4] for r in rows] | last) & ~np.array([r[3] for r in rows]))
        assert got["actions"].dtype == np.int64 and got["rewards"].dtype == np.float32 and got["frames"].dtype == np.uint8
    assert m["action_space"] == dict(kind="discrete", n=5, shape=[], dtype="int64")
    assert m["shards"][0]["episodes"] == int(np.load(shard_file(out, 0, "done")).sum())

def test_clips_never_cross_episodes(tmp_path):
    out, _ = fake_collect(tmp_path/"d", steps=600, shard_size=200)
    ds = EpisodeDataset(out)
    for T in (1, 2, 5, 8):
        b = ds.sample(256, T, generator=T)
        f = b["frames"]  # (B, T, C, H, W)
        assert f.shape == (256, T, 3, 4, 4) and f.dtype == torch.uint8
        env, ep, t = f[:, :, 0, 0, 0], f[:, :, 1, 0, 0], f[:, :, 2, 0, 0]
        assert (env == env[:, :1]).all() and (ep == ep[:, :1]).all(), "a clip mixed two episodes"
        assert ((t[:, 1:] - t[:, :-1]) == 1).all(), "a clip is not consecutive"
        assert not b["dones"][:, :-1].any(), "only the last step of a clip can end the episode"
        np.testing.assert_array_equal(b["actions"], ((t.long() + env.long()) % 5))  # actions[:, t] taken at frames[:, t]
    seq = ds.sample(64, 5, 0)  # a sequence of 4 actions and 5 observations
    assert seq["frames"].shape[1] == 5 and seq["actions"].shape == (64, 5)
    with pytest.raises(DatasetError, match="no episode .* has T=50"): ds.sample(4, 50)

def test_sampler_deterministic_and_eval_clips(tmp_path):
    ds = EpisodeDataset(fake_collect(tmp_path/"d", steps=600, shard_size=200)[0])
    s1, s2 = ds.sampler(16, 3, seed=1), ds.sampler(16, 3, seed=1)
    assert torch.equal(s1(7)["frames"], s2(7)["frames"]) and not torch.equal(s1(7)["frames"], s1(8)["frames"])
    batches = list(ds.clips(3, batch_size=10))
    f = torch.cat([b["frames"] for b in batches])
    assert len(f) == sum(L // 3 for L in ds.episode_lengths)
    assert ((f[:, 1:, 2, 0, 0] - f[:, :-1, 2, 0, 0]) == 1).all()
    assert len(list(ds.clips(3, max_clips=5, batch_size=2))) == 3
    tr, va = ds.split(0.3, seed=0)
    va2 = pickle.loads(pickle.dumps(va))  # e.g. to DataLoader workers: re-opens the memmaps, keeps the view
    assert len(pickle.dumps(va)) < 10_000 and np.array_equal(va2.episodes, va.episodes)
    assert torch.equal(va2.sample(8, 3, 1)["frames"], va.sample(8, 3, 1)["frames"])
    assert torch.equal(torch.cat([b["frames"] for b in ds.clips(3, batch_size=10)]), f)  # deterministic

def test_split_by_episode_disjoint_and_seeded(tmp_path):
    ds = EpisodeDataset(fake_collect(tmp_path/"d", steps=600, shard_size=200)[0])
    tr, va = ds.split(0.2, seed=3)
    assert set(tr.episodes).isdisjoint(va.episodes) and len(tr.episodes) + len(va.episodes) == ds.num_episodes
    assert tr.num_steps + va.num_steps == ds.num_steps
    assert np.array_equal(ds.split(0.2, seed=3)[1].episodes, va.episodes)
    assert not np.array_equal(ds.split(0.2, seed=4)[1].episodes, va.episodes)
    b = va.sample(64, 2, 0)  # val clips come only from val episodes
    keys = {(int(e), int(p)) for e, p in zip(b["frames"][:, 0, 0, 0, 0], b["frames"][:, 0, 1, 0, 0])}
    val_keys = {(int(va.episode(i)["frames"][0, 0, 0, 0]), int(va.episode(i)["frames"][0, 0, 0, 1])) for i in range(va.num_episodes)}
    assert keys <= val_keys

# ---------------------------------------------------------------- folders: refusal, resume, stray files
def test_refuses_mismatched_folder(tmp_path):
    out, _ = fake_collect(tmp_path/"d", steps=100, shard_size=100, seed=0)
    with pytest.raises(DatasetError, match="holds a different dataset .*seed: 0 != 1"): fake_collect(out, steps=100, shard_size=100, seed=1)
    (tmp_path/"other").mkdir(); (tmp_path/"other"/"notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="not empty and is not a worldmodels_nb dataset"): fake_collect(tmp_path/"other")

def test_resume_extends_and_cleans_strays(tmp_path):
    out, _ = fake_collect(tmp_path/"d", steps=200, shard_size=100)
    (out/".shard_000002_frames.npy.123.tmp").write_bytes(b"junk"); np.save(shard_file(out, 2, "frames"), np.zeros(3))
    fake_collect(out, steps=400, shard_size=50)  # layout settings of the existing dataset win
    ref, _ = fake_collect(tmp_path/"ref", steps=400, shard_size=100)
    assert read_manifest(out)["total_steps"] == read_manifest(ref)["total_steps"] >= 400
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]
    for sid in range(4):
        for f in FIELDS: np.testing.assert_array_equal(np.load(shard_file(out, sid, f)), np.load(shard_file(ref, sid, f)))

def _procgen_cmd(out, steps):
    return [sys.executable, "-c", "import sys; from worldmodels_nb.data import collect_main; sys.exit(collect_main())",
            "--env", "procgen:coinrun", "--steps", str(steps), "--out", str(out), "--levels", "0:20", "--shard-size", "512",
            "--num-envs", "8", "--max-episode-steps", "60", "--seed", "5"]

def test_resume_after_sigkill(tmp_path):
    out = tmp_path/"coinrun"
    p = subprocess.Popen(_procgen_cmd(out, 12288), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < 60:
        m = (out/"manifest.json").exists() and read_manifest(out)
        if m and len(m["shards"]) >= 1: break
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL); p.wait()
    killed = read_manifest(out)
    assert killed and killed["total_steps"] < 12288, "the collection finished before it could be killed"
    EpisodeDataset(out)  # consistent after the kill
    r = subprocess.run(_procgen_cmd(out, 12288), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m = read_manifest(out)
    assert m["total_steps"] >= 12288 and len(m["shards"]) == 24 and not list(out.glob("*.tmp"))
    assert sorted(out.glob("shard_*")) == sorted(shard_file(out, s, f) for s in range(24) for f in FIELDS)
    ds = EpisodeDataset(out)
    assert ds.num_steps == m["total_steps"] and ds.episode_lengths.max() <= 60
    # deterministic: the resumed shards equal a fresh collection of the same shards
    ref = tmp_path/"ref"
    assert subprocess.run(_procgen_cmd(ref, 2048), capture_output=True).returncode == 0
    for sid in range(4): np.testing.assert_array_equal(np.load(shard_file(out, sid, "frames")), np.load(shard_file(ref, sid, "frames")))

# ---------------------------------------------------------------- real procgen: gym3 auto-reset boundaries
class Recording:
    "Wraps a real vec env and records (obs, action, first-of-next) per env."
    def __init__(self, venv): self.v, self.rows = venv, []
    def __getattr__(self, k): return getattr(self.v, k)
    def reset(self, seed=None): self.obs = self.v.reset(seed); return self.obs
    def step(self, a):
        o, r, te, tr, info = self.v.step(a)
        self.rows.append((self.obs.copy(), np.asarray(a).copy(), r, te | tr, info["first"].copy())); self.obs = o
        return o, r, te, tr, info

def test_procgen_autoreset_boundaries(tmp_path):
    from worldmodels_nb.envs import make_vec_env
    made = []
    def env_fn(s): made.append(Recording(make_vec_env("procgen:coinrun", 4, seed=s, num_levels=3, max_episode_steps=40))); return made[-1]
    out = collect("procgen:coinrun", 800, tmp_path/"c", levels="0:3", shard_size=800, num_envs=4, max_episode_steps=40, env_fn=env_fn, progress=False)
    ds, rec = EpisodeDataset(out), made[0].rows
    obs, act, ended = (np.stack([r[k] for r in rec], 1) for k in (0, 1, 3))  # (N, S, ...)
    first = np.stack([r[4] for r in rec], 1)
    np.testing.assert_array_equal(ds._arrays[0]["frames"], obs.reshape(-1, 64, 64, 3))
    np.testing.assert_array_equal(ds._arrays[0]["actions"], act.reshape(-1))
    done = ended.copy(); done[:, -1] = True
    np.testing.assert_array_equal(ds._arrays[0]["done"], done.reshape(-1))
    assert (ended >= first).all()  # every gym3 `first` (a level ended) is a done in our data
    assert ds.num_episodes > 4 and ds.episode_lengths.max() <= 40
    for k in range(ds.num_episodes):  # every episode of the data is one contiguous piece of one env's stream
        e = ds.episode(k); assert e["done"][-1] and not e["done"][:-1].any()
    b = ds.sample(512, 6, 0)
    assert not b["dones"][:, :-1].any()

# ---------------------------------------------------------------- FACTR import and the restricted unpickler
def _marker(path): Path(path).write_text("pwned")

class WritesMarker:
    def __init__(self, p): self.p = p
    def __reduce__(self): return (_marker, (self.p,))

class RunsSystem:
    def __init__(self, p): self.p = p
    def __reduce__(self): return (os.system, (f"touch {self.p}",))

@pytest.mark.parametrize("evil,name", [(WritesMarker, "test_data._marker"), (RunsSystem, "system")])
def test_restricted_unpickler_refuses_code(tmp_path, evil, name):
    marker = tmp_path/"marker"
    buf = tmp_path/"buf.pkl"; buf.write_bytes(pickle.dumps([[({"state": np.zeros(2)}, evil(marker), 0.0)]]))
    with pytest.raises(DatasetError) as e: safe_load_pickle(buf)
    assert "refusing to unpickle" in str(e.value) and name in str(e.value) and "from buf.pkl" in str(e.value) and "\n" not in str(e.value)
    assert collect_main(["--from-buffer", str(buf), "--out", str(tmp_path/"f")]) != 0
    assert not marker.exists(), "the malicious pickle ran code"

def _factr_buffer(path, n_traj=5, goals=True, seed=0):
    rng, trajs = np.random.default_rng(seed), []
    for i in range(n_traj):
        L = 5 + 3 * i
        trajs.append([({"state": rng.normal(size=6).astype(np.float32), **({"goals": np.full(2, i, np.float32)} if goals else {})},
                       rng.normal(size=3).astype(np.float32), float(t)) for t in range(L)])
    Path(path).write_bytes(pickle.dumps(trajs)); return trajs

@pytest.mark.parametrize("kind", ["flat", "grouped"])
def test_factr_roundtrip_with_norm_stats(tmp_path, kind):
    trajs = _factr_buffer(tmp_path/"buf.pkl")
    stats = ({"obs": {"mean": [0.5] * 8, "std": [2.0] * 8}, "action": {"mean": [0.0] * 3, "std": [1.0] * 3}} if kind == "flat" else
             {"norm_stats": {"state": {"state": {"mean": [0.5] * 6, "std": [2.0] * 6}, "goals": {"mean": [0.5] * 2, "std": [2.0] * 2}},
                             "action": {"mean": [0.0] * 3, "std": [1.0] * 3}}})
    import yaml; (tmp_path/"rollout_config.yaml").write_text(yaml.safe_dump(stats))
    assert collect_main(["--from-buffer", str(tmp_path/"buf.pkl"), "--out", str(tmp_path/"f"), "--rollout-config", str(tmp_path/"rollout_config.yaml")]) == 0
    ds = EpisodeDataset(tmp_path/"f")
    assert ds.num_episodes == 5 and list(ds.episode_lengths) == [5, 8, 11, 14, 17] and ds.obs_shape == (8,)
    for i, tr in enumerate(trajs):
        e = ds.episode(i)
        np.testing.assert_array_equal(e["frames"], np.stack([np.r_[s[0]["state"], s[0]["goals"]] for s in tr]))  # not re-normalised
        np.testing.assert_array_equal(e["actions"], np.stack([s[1] for s in tr]))
        np.testing.assert_array_equal(e["rewards"], [s[2] for s in tr])
        assert e["done"][-1] and e["truncated"][-1] and not e["done"][:-1].any()
    m = ds.manifest
    assert m["rollout_norm_stats"]["obs"] == {"mean": [0.5] * 8, "std": [2.0] * 8} and m["env_kwargs"]["goal_dim"] == 2
    allobs = np.concatenate([ds.episode(i)["frames"] for i in range(5)])
    np.testing.assert_allclose(ds.norm_stats["obs"]["mean"], allobs.mean(0), rtol=1e-5, atol=1e-6)
    b = ds.sample(8, 4, 0); assert b["frames"].shape == (8, 4, 8) and b["frames"].dtype == torch.float32 and b["actions"].shape == (8, 4, 3)
    import_factr_buffer(tmp_path/"buf.pkl", tmp_path/"n", tmp_path/"rollout_config.yaml", normalize=True)
    np.testing.assert_allclose(EpisodeDataset(tmp_path/"n").episode(0)["frames"], (ds.episode(0)["frames"] - 0.5) / 2, rtol=1e-6)

def test_factr_bad_buffer(tmp_path):
    _factr_buffer(tmp_path/"g.pkl"); (tmp_path/"rc.yaml").write_text("obs: {mean: [0, 0], std: [1, 1]}\n")
    with pytest.raises(DatasetError, match="obs stats have 2 dims but the buffer's obs has 8"): import_factr_buffer(tmp_path/"g.pkl", tmp_path/"o", tmp_path/"rc.yaml")
    (tmp_path/"b.pkl").write_bytes(pickle.dumps([[(1, 2)]]))
    with pytest.raises(DatasetError, match="trajectory 0 is not a non-empty list"): import_factr_buffer(tmp_path/"b.pkl", tmp_path/"o")
    (tmp_path/"t.pkl").write_bytes(pickle.dumps([[({"state": np.zeros(3)}, 0.0, 0.0)]] * 3)[:-10])
    with pytest.raises(DatasetError, match="not a readable pickle"): import_factr_buffer(tmp_path/"t.pkl", tmp_path/"o")

# ---------------------------------------------------------------- CLI errors and inspection
@pytest.mark.parametrize("args,msg", [
    (["--env", "procgen:nope", "--steps", "10"], "unknown procgen game 'nope'"),
    (["--env", "NoSuchEnv-v0", "--steps", "10"], "unknown env id 'NoSuchEnv-v0'"),
    (["--env", "procgen:coinrun", "--steps", "10", "--levels", "5:2"], "bad level range '5:2'"),
    (["--env", "HalfCheetah-v5", "--steps", "10", "--levels", "0:5"], "only meaningful for procgen"),
])
def test_collect_cli_errors_one_line(tmp_path, capsys, args, msg):
    assert collect_main(args + ["--out", str(tmp_path/"x")]) != 0
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1, err
    assert not (tmp_path/"x"/"manifest.json").exists()

def test_cli_refuses_other_env(tmp_path, capsys):
    out, _ = fake_collect(tmp_path/"d", steps=100, shard_size=100)
    assert collect_main(["--env", "procgen:coinrun", "--steps", "100", "--out", str(out)]) != 0
    assert "holds a different dataset (env_id: 'fake:tagged' != 'procgen:coinrun'" in capsys.readouterr().err

def test_inspect_ok_and_corrupt(tmp_path, capsys):
    out, _ = fake_collect(tmp_path/"d", steps=300, shard_size=100)
    assert inspect_main([str(out)]) == 0
    txt = capsys.readouterr().out
    assert "episodes" in txt and "action histogram" in txt and "problems: none found" in txt
    assert (out/"inspect"/"contact_sheet.png").stat().st_size > 1000
    rep = json.loads((out/"inspect"/"report.json").read_text()); assert rep["steps"] == 300
    p = shard_file(out, 1, "frames"); p.write_bytes(p.read_bytes()[:200])
    assert inspect_main([str(out)]) != 0
    err = capsys.readouterr().err
    assert "truncated or corrupt" in err and err.count("\n") == 1
    p.unlink(); assert inspect_main([str(out)]) != 0 and "is missing" in capsys.readouterr().err
    assert inspect_main([str(tmp_path/"nothing")]) != 0 and "no dataset at" in capsys.readouterr().err
    fake_collect(out, steps=300, shard_size=100)  # re-running the collection repairs it, as the message says
    ref, _ = fake_collect(tmp_path/"ref", steps=300, shard_size=100)
    for f in FIELDS: np.testing.assert_array_equal(np.load(shard_file(out, 1, f)), np.load(shard_file(ref, 1, f)))
    assert inspect_main([str(out)]) == 0

def test_lowdim_dataset_and_ensure(tmp_path):
    ds = ensure_dataset("HalfCheetah-v5", 400, tmp_path/"hc", shard_size=200, progress=False)
    assert ds.obs_shape == (17,) and not ds.is_pixel and ds.num_steps >= 400
    ns = ds.norm_stats
    allobs = np.concatenate([a["frames"] for a in ds._arrays])
    np.testing.assert_allclose(ns["obs"]["mean"], allobs.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ns["obs"]["std"], allobs.std(0), rtol=1e-3, atol=1e-5)
    assert len(ns["action"]["mean"]) == 6
    b = ds.sample(4, 3, 0); assert b["frames"].dtype == torch.float32 and b["actions"].shape == (4, 3, 6)
    t0 = read_manifest(tmp_path/"hc")["created"]
    assert ensure_dataset("HalfCheetah-v5", 400, tmp_path/"hc", shard_size=200).manifest["created"] == t0  # opened, not recollected
    assert heldout_kwargs("HalfCheetah-v5")["seed"] != 0
    assert heldout_kwargs("procgen:coinrun", "0:500")["levels"] == "100000:100500"
    with pytest.raises(DatasetError, match="finite training level range"): heldout_kwargs("procgen:coinrun")

def test_wm_bench_data_smoke(tmp_path, capsys):
    from worldmodels_nb.bench import main
    assert main(["data", "--seconds", "0.05", "--collect-steps", "1024", "--num-envs", "4", "--out", str(tmp_path/"b.json")]) == 0
    r = json.loads((tmp_path/"b.json").read_text())
    for k in ("raw_env_steps_per_s", "collect_steps_per_s", "sample_samples_per_s", "naive_samples_per_s"): assert r[k] > 0
    assert r["bench"] == "data" and "sample_samples_per_s" in capsys.readouterr().out

# ---------------------------------------------------------------- the shared data spec: DataConfig, data_config, env_datasets
def test_data_config_presets():
    assert data_config("procgen:coinrun", "quick") == DataConfig(60_000, 10_000, "0:500", "100000:100500", "sticky", 0.05)
    sm = data_config("procgen:bigfish", "smoke")
    assert (sm.train_steps, sm.heldout_steps, sm.policy, sm.train_levels, sm.heldout_levels) == (3_000, 1_500, "sticky", "0:20", "100000:100020")
    assert (data_config("CarRacing-v3", "quick").policy, data_config("CarRacing-v3", "quick").train_steps) == ("brownian", 8_000)
    hc = data_config("HalfCheetah-v5", "full")
    assert (hc.policy, hc.train_steps, hc.heldout_steps, hc.val_fraction) == ("random", 1_000_000, 50_000, 0.05)
    assert set(ENV_DATA) == {"procgen", "atari", "carracing", "vizdoom", "mujoco"}

@pytest.mark.parametrize("env,scale,msg", [("Pendulum-v1", "quick", "unknown env id 'Pendulum-v1'"),
                                           ("procgen:nope", "quick", "unknown procgen game 'nope'"),
                                           ("procgen:coinrun", "huge", "unknown scale 'huge'")])
def test_data_config_errors_one_line(env, scale, msg):
    with pytest.raises(ConfigError, match=msg) as e: data_config(env, scale)
    assert "\n" not in str(e.value)

def test_dataset_dirs_are_the_pixel_stage_names():
    tr, ho = dataset_dirs("procgen:coinrun", data_config("procgen:coinrun", "quick"), "data")
    assert (str(tr), str(ho)) == ("data/procgen-coinrun_sticky_60000", "data/procgen-coinrun_sticky_60000_heldout_10000")
    tr, ho = dataset_dirs("CarRacing-v3", data_config("CarRacing-v3", "smoke"), "/d")
    assert (str(tr), str(ho)) == ("/d/CarRacing-v3_brownian_1000", "/d/CarRacing-v3_brownian_1000_heldout_1000")

def test_env_datasets_real_procgen(tmp_path):
    dc = DataConfig(train_steps=640, heldout_steps=320, train_levels="0:5", heldout_levels="100000:100005", val_fraction=0.25)
    train, val, held = env_datasets("procgen:coinrun", dc, tmp_path, progress=False)
    tr_dir, ho_dir = dataset_dirs("procgen:coinrun", dc, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [tr_dir.name, ho_dir.name]
    assert (tr_dir.name, ho_dir.name) == ("procgen-coinrun_sticky_640", "procgen-coinrun_sticky_640_heldout_320")
    full = EpisodeDataset(tr_dir)
    assert set(train.episodes).isdisjoint(val.episodes) and train.num_steps + val.num_steps == full.num_steps >= 640
    assert val.num_episodes == round(0.25 * full.num_episodes) and held.num_steps >= 320 and held.path == ho_dir
    st, sh = full.manifest["settings"], held.manifest["settings"]
    assert (st["levels"], st["seed"], st["policy"], st["num_envs"], st["shard_size"]) == ("0:5", 0, "sticky", 32, 50_000)
    assert (sh["levels"], sh["seed"], sh["policy"]) == ("100000:100005", 1_000_003, "sticky")
    stamp = {p: p.stat().st_mtime_ns for d in (tr_dir, ho_dir) for p in d.iterdir() if p.name != ".lock"}
    train2, val2, _ = env_datasets("procgen:coinrun", dc, tmp_path, progress=False)  # reused: nothing is collected again
    assert {p: p.stat().st_mtime_ns for d in (tr_dir, ho_dir) for p in d.iterdir() if p.name != ".lock"} == stamp
    assert np.array_equal(val2.episodes, val.episodes)  # the same seeded split
    with pytest.raises(ConfigError, match="overlap training levels"):
        env_datasets("procgen:coinrun", DataConfig(640, 320, "0:5", "3:8"), tmp_path/"x", progress=False)
    with pytest.raises(DatasetError, match="holds a different dataset"):  # same folder name, other levels: refused, not mixed
        env_datasets("procgen:coinrun", DataConfig(640, 320, "0:6", "100000:100006", val_fraction=0.25), tmp_path, progress=False)

_ENSURE = ("import sys; from worldmodels_nb.data import ensure_dataset; "
           "ensure_dataset('procgen:coinrun', 2048, sys.argv[1], policy='sticky', levels='0:5', shard_size=512, progress=False)")

def test_ensure_dataset_waits_for_a_concurrent_collector(tmp_path):
    "While another process holds the folder's lock, ensure_dataset waits and writes nothing; afterwards it collects."
    from worldmodels_nb.core import folder_lock
    out = tmp_path/"d"
    with folder_lock(out, what="dataset folder"):  # another collector of this folder is busy
        p = subprocess.Popen([sys.executable, "-c", _ENSURE, str(out)], stderr=subprocess.PIPE, text=True)
        t0 = time.time()
        while time.time() - t0 < 10 and p.poll() is None and not list(out.glob("shard_*")): time.sleep(0.2)
        assert p.poll() is None and sorted(q.name for q in out.iterdir()) == [".lock"], "ensure_dataset did not wait for the folder's lock"
    assert p.wait(timeout=300) == 0, p.stderr.read()
    assert read_manifest(out)["total_steps"] >= 2048 and len(read_manifest(out)["shards"]) == 4

def test_the_policy_settings_are_part_of_the_data_spec(tmp_path):
    from dataclasses import replace
    from worldmodels_nb.data import data_config, dataset_dirs, env_datasets, read_manifest
    env = "VizdoomTakeCover-v1"
    dc = replace(data_config(env, "smoke"), train_steps=300, heldout_steps=100, policy_kwargs={"p": 0.95})
    train_dir, held_dir = dataset_dirs(env, dc, tmp_path)
    assert train_dir.name == "VizdoomTakeCover-v1_sticky-p0.95_300"  # its own folder, next to the default's
    assert dataset_dirs(env, replace(dc, policy_kwargs={}), tmp_path)[0].name == "VizdoomTakeCover-v1_sticky_300"
    tr, _, _ = env_datasets(env, dc, tmp_path, progress=False)
    assert read_manifest(train_dir)["settings"]["policy_kwargs"] == {"p": 0.95}
    assert read_manifest(held_dir)["settings"]["policy_kwargs"] == {"p": 0.95}
