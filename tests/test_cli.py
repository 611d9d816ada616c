"Tests of the one command line (91_cli): wm-train for every family through one parser, wm-eval on the same numbers as the notebooks."
import json, subprocess, sys
import numpy as np
import pytest, torch
from worldmodels_nb.cli import FAMILIES, check_compatible, family_config, train_parser
from worldmodels_nb.core import ConfigError, load_model, save_checkpoint, seed_everything
from worldmodels_nb.data import FORMAT, EpisodeDataset, write_shard
from worldmodels_nb.metrics import evaluate_rollouts
from worldmodels_nb.rssm import RSSMConfig

CODE = "import sys; from worldmodels_nb.cli import train_main, eval_main; sys.exit({}(sys.argv[1:]))"

def cli(fn, *args):
    return subprocess.run([sys.executable, "-c", CODE.format(fn), *map(str, args)], capture_output=True, text=True)

def write_dataset(path, pixel=True, lengths=(14, 12, 13, 15, 11), seed=0):
    "A hand-written dataset in the course format: 64x64 frames with 4 discrete actions, or 5-dim states with 2-dim actions."
    rng = np.random.default_rng(seed)
    N = sum(lengths); done = np.zeros(N, bool); done[np.cumsum(lengths) - 1] = True
    obs = dict(kind="box", shape=[64, 64, 3], dtype="uint8") if pixel else dict(kind="box", shape=[5], dtype="float32")
    act = dict(kind="discrete", n=4, shape=[], dtype="int64") if pixel else dict(kind="box", shape=[2], dtype="float32", low=[-1.0, -1.0], high=[1.0, 1.0])
    m = dict(format=FORMAT, env_id="test:tiny", env_kwargs={}, settings={}, observation_space=obs, action_space=act, policy="random",
             policy_kwargs={}, shards=[], target_steps=N)
    path.mkdir(parents=True)
    frames = rng.integers(0, 256, (N, 64, 64, 3), dtype=np.uint8) if pixel else np.cumsum(rng.standard_normal((N, 5)), 0).astype(np.float32)
    actions = rng.integers(0, 4, N) if pixel else rng.uniform(-1, 1, (N, 2)).astype(np.float32)
    write_shard(path, m, dict(frames=frames, actions=actions, rewards=np.zeros(N, np.float32), done=done, truncated=np.zeros(N, bool)))
    return EpisodeDataset(path)

def rssm_checkpoint(path, ds):
    "An untrained RSSM for dataset `ds` (sizes and normalisation from it), saved as a checkpoint."
    from worldmodels_nb.rssm import RSSMConfig, RSSMWorldModel, resolve_model_config
    seed_everything(0); cfg = RSSMConfig.smoke(); cfg.seq_len = 8
    cfg.model = resolve_model_config(cfg.model, ds)
    return save_checkpoint(path, RSSMWorldModel(cfg.model, norm_stats=ds.norm_stats), step=0, config=cfg)

def pixel_checkpoint(path, ds):
    "An untrained pixel world model for frame dataset `ds`, saved as a checkpoint."
    from worldmodels_nb.pixel import PixelConfig, resolve_model_config
    seed_everything(0); cfg = resolve_model_config(PixelConfig.smoke(), ds)
    return save_checkpoint(path, cfg.build_model(), step=0, config=cfg)

def test_one_parser_one_split_one_override_path():
    for fam in (f for f in FAMILIES if f != "controller"):  # the world-model families; C has no fit loop (tests/test_controller.py)
        a = train_parser(fam).parse_args(["--scale", "smoke", "data.val_fraction=0.2", "train.max_steps=3"])
        cfg = family_config(fam, a)
        assert (cfg.train.max_steps, cfg.data.val_fraction) == (3, 0.2), fam
        assert cfg.env  # every family's config names its environment
    assert family_config("rssm", train_parser("rssm").parse_args(["--scale", "smoke"])).data.val_fraction == 0.05  # one default
    cfg = family_config("pixel", train_parser("pixel").parse_args(["--scale", "smoke", "--env", "VizdoomTakeCover-v1"]))
    assert cfg.env == "VizdoomTakeCover-v1" and cfg.data.policy == "sticky"  # the env family's data settings
    with pytest.raises(ConfigError, match="unknown config key"): family_config("vae", train_parser("vae").parse_args(["model.zz=1"]))
    with pytest.raises(FileNotFoundError, match="no checkpoints/last.pt"): family_config("pixel", train_parser("pixel").parse_args(["--resume", "/nowhere"]))

@pytest.mark.parametrize("family", ["pixel", "vae"])
def test_wm_train_frames_then_resume_then_eval(family, tmp_path):
    ds = write_dataset(tmp_path/"data")
    runs = tmp_path/"runs"
    extra = ["--encode", tmp_path/"lat"] if family == "vae" else []
    r = cli("train_main", family, "--scale", "smoke", "--data", ds.path, "--out", runs, "data.val_fraction=0.4", "train.max_steps=2", *extra)
    assert r.returncode == 0, r.stderr[-3000:]
    run = next(runs.glob(f"*_{'pixel' if family == 'pixel' else 'vae'}_*"))
    assert (run/"checkpoints"/"last.pt").exists() and "data:\n" in (run/"resolved_config.yaml").read_text()
    r = cli("train_main", family, "--scale", "smoke", "--data", ds.path, "--out", runs, "--resume", run, "data.val_fraction=0.4", "train.max_steps=3")
    assert r.returncode == 0, r.stderr[-3000:]
    assert load_model(run/"checkpoints"/"last.pt")[2]["step"] == 3  # continued, not restarted
    if family == "vae": assert EpisodeDataset(tmp_path/"lat").manifest["latent"]["z_dim"] == 32
    else:
        r = cli("eval_main", "--checkpoint", run/"checkpoints"/"last.pt", "--data", ds.path, "--horizon", 3, "--out", tmp_path/"ev")
        assert r.returncode == 0, r.stderr[-3000:]
        assert "psnr dB" in r.stdout and "controllability at h=1" in r.stdout

def test_wm_eval_of_an_rssm_checkpoint_gives_the_notebook_number(tmp_path):
    "No training: one RSSM checkpoint scored by wm-eval and by 08_rssm's call to metrics.evaluate_rollouts."
    train, held = write_dataset(tmp_path/"train", pixel=False), write_dataset(tmp_path/"held", pixel=False, seed=1)
    ck = rssm_checkpoint(tmp_path/"rssm.pt", train)  # untrained weights, the train data's normalisation
    r = cli("eval_main", "--checkpoint", ck, "--data", held.path, "--train-data", train.path, "--context", 3, "--horizon", 4,
            "--out", tmp_path/"ev")
    assert r.returncode == 0, r.stderr[-3000:]
    ev = json.loads(next((tmp_path/"ev").glob("*_eval/eval.json")).read_text())
    m, _, _ = load_model(ck)
    ref = evaluate_rollouts(m, held.clips(7, max_clips=256, batch_size=64), 3, 4, std=m.obs_std)
    np.testing.assert_allclose(ev["model"]["mse"], ref["mse"], rtol=1e-6)
    assert "psnr" not in ev["model"] and "linear least squares" in ev and "mse_rise" in ev["controllability"]
    assert "training-std units" in r.stdout and "linear least squares" in r.stdout and "psnr" not in r.stdout

def test_mismatched_data_is_a_one_line_error(tmp_path):
    frames, states = write_dataset(tmp_path/"f"), write_dataset(tmp_path/"s", pixel=False)
    cfg = RSSMConfig.smoke()
    from worldmodels_nb.rssm import resolve_model_config
    resolve_model_config(cfg.model, states)
    with pytest.raises(ValueError, match=r"holds observations of shape \[3, 64, 64\] but the model was trained on \[5\]"):
        check_compatible(cfg.model, frames)
    cfg.model.obs_shape = [3, 64, 64]
    with pytest.raises(ValueError, match="4 discrete actions but the model was trained with 2-dim continuous actions"):
        check_compatible(cfg.model, frames)
    r = cli("train_main", "rssm", "--scale", "smoke", "--data", frames.path, "--out", tmp_path/"runs")
    assert r.returncode != 0 and "holds frames" in r.stderr and "Traceback" not in r.stderr
    r = cli("train_main", "rssm", "--scale", "smoke", "--data", states.path, "--heldout", tmp_path/"missing")
    assert r.returncode != 0 and "--heldout" in r.stderr and "Traceback" not in r.stderr
    r = cli("train_main", "vq-diffusion")
    assert r.returncode != 0 and "unknown family 'vq-diffusion'" in r.stderr
