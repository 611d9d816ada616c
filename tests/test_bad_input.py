"Bad input to every command is answered in one line naming what was wrong, before any work; a folder being written refuses a second writer."
import pickle, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
from test_cli import pixel_checkpoint, rssm_checkpoint, write_dataset
from worldmodels_nb.data import DatasetError, collect, read_manifest

MAINS = dict(collect="worldmodels_nb.data:collect_main", train="worldmodels_nb.cli:train_main", eval="worldmodels_nb.cli:eval_main",
             bench="worldmodels_nb.bench:main")

def run(cmd, *args, timeout=300):
    "Run `wm-<cmd> args` in a fresh process, as a user would."
    mod, fn = MAINS[cmd].split(":")
    code = f"import sys; from {mod} import {fn}; sys.exit({fn}(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=timeout)

def one_line_error(r, *msgs):
    "The command failed with exactly one line on stderr that contains every `msgs`."
    assert r.returncode != 0, r.stdout[-2000:]
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr[-3000:]
    for m in msgs: assert m in r.stderr, r.stderr

@pytest.fixture(scope="module")
def d(tmp_path_factory):
    "Frame and state datasets, a checkpoint for each, a FACTR buffer and a broken rollout config."
    t = tmp_path_factory.mktemp("bad")
    frames, states = write_dataset(t/"frames"), write_dataset(t/"states", pixel=False)
    rng = np.random.default_rng(0)
    trajs = [[({"state": rng.normal(size=5).astype(np.float32)}, rng.normal(size=2).astype(np.float32), 0.0) for _ in range(12)] for _ in range(6)]
    (t/"buf.pkl").write_bytes(pickle.dumps(trajs))
    (t/"bad.yaml").write_text("obs: {mean: [0, 0\n  - : ]]\n")
    return dict(t=t, frames=frames.path, states=states.path, rssm=rssm_checkpoint(t/"rssm.pt", states),
                pixel=pixel_checkpoint(t/"pixel.pt", frames), buf=t/"buf.pkl", bad_yaml=t/"bad.yaml")

# ---------------------------------------------------------------- arguments: refused by the parser, naming the flag
@pytest.mark.parametrize("cmd,args,msgs", [
    ("collect", ["--env", "HalfCheetah-v5", "--steps", "0"], ["wm-collect: argument --steps: must be >= 1, got 0"]),
    ("collect", ["--env", "HalfCheetah-v5", "--steps", "10", "--num-envs", "0"], ["argument --num-envs: must be >= 1, got 0"]),
    ("collect", ["--env", "HalfCheetah-v5", "--steps", "10", "--env-kwargs", "{bad"], ["argument --env-kwargs: not valid JSON"]),
    ("collect", ["--env", "HalfCheetah-v5", "--steps", "10", "--policy-kwargs", "[0.9]"], ["argument --policy-kwargs: expected a JSON object"]),
    ("collect", ["--env", "HalfCheetah-v5", "--steps", "ten"], ["argument --steps: expected an integer, got 'ten'"]),
    ("collect", ["--from-buffer", "{t}/buf.pkl", "--rollout-config", "{t}/nope.yaml"], ["argument --rollout-config: no file", "nope.yaml"]),
    ("train", ["rssm", "--buffer", "{t}/buf.pkl", "--rollout-config", "{t}/nope.yaml"], ["wm-train rssm: argument --rollout-config: no file"]),
    ("train", ["rssm", "--buffer", "{t}/nope.pkl"], ["argument --buffer: no file"]),
    ("eval", ["--checkpoint", "{t}/pixel.pt", "--data", "{t}/frames", "--max-clips", "0"], ["wm-eval: argument --max-clips: must be >= 1, got 0"]),
    ("eval", ["--checkpoint", "{t}/pixel.pt", "--data", "{t}/frames", "--horizon", "0"], ["argument --horizon: must be >= 1, got 0"]),
    ("eval", ["--checkpoint", "{t}/pixel.pt", "--data", "{t}/frames", "--context", "-1"], ["argument --context: must be >= 1, got -1"]),
    ("eval", ["--checkpoint", "{t}/nope.pt", "--data", "{t}/frames"], ["argument --checkpoint: no file"]),
    ("bench", ["data", "--num-envs", "0"], ["wm-bench data: argument --num-envs: must be >= 1, got 0"]),
])
def test_bad_argument_is_one_line_naming_the_flag(d, cmd, args, msgs):
    out = d["t"]/f"out_{cmd}"
    extra = ["--out", out] if cmd in ("collect", "train", "eval") else []
    r = run(cmd, *[a.replace("{t}", str(d["t"])) for a in args], *extra)
    one_line_error(r, *msgs)
    assert r.returncode == 2 and not (out/"manifest.json").exists()  # refused before any work

# ---------------------------------------------------------------- bad files and values found after parsing
def test_broken_rollout_config_is_one_line(d):
    for cmd, args in (("collect", ["--from-buffer", d["buf"], "--out", d["t"]/"fb"]),
                      ("train", ["rssm", "--scale", "smoke", "--buffer", d["buf"], "--data", d["t"]/"fb", "--out", d["t"]/"runs"])):
        r = run(cmd, *args, "--rollout-config", d["bad_yaml"])
        one_line_error(r, "bad.yaml is not valid YAML (line 2:", "fix the file")
        assert read_manifest(d["t"]/"fb") is None and not (d["t"]/"runs").exists()  # nothing imported, no run started

@pytest.mark.parametrize("override,msg", [("train.max_steps=-3", "bad value train.max_steps=-3: it must be an integer >= 1"),
                                          ("data.val_fraction=1.5", "bad value data.val_fraction=1.5")])
def test_out_of_range_config_value_is_refused_before_training(d, override, msg):
    r = run("train", "rssm", "--scale", "smoke", "--data", d["states"], "--out", d["t"]/"runs_cfg", override)
    one_line_error(r, f"wm-train rssm: {msg}")
    assert not (d["t"]/"runs_cfg").exists()

def test_resume_of_a_missing_run_folder_is_refused(d):
    r = run("train", "rssm", "--scale", "smoke", "--data", d["states"], "--out", d["t"]/"runs_res", "--resume", d["t"]/"no_such_run")
    one_line_error(r, "--resume", "no checkpoints/last.pt there")
    assert not (d["t"]/"runs_res").exists()  # no fresh run started instead

def test_checkpoint_on_the_other_kind_of_data(d):
    "A state model on frames and a frame model on states: one line naming both shapes (no tensor size mismatch)."
    r = run("eval", "--checkpoint", d["rssm"], "--data", d["frames"], "--out", d["t"]/"ev")
    one_line_error(r, "holds observations of shape [3, 64, 64] but the model was trained on [5]")
    r = run("eval", "--checkpoint", d["pixel"], "--data", d["states"], "--out", d["t"]/"ev")
    one_line_error(r, "holds observations of shape [5] but the model was trained on [3, 64, 64]")

def test_library_calls_refuse_zero_counts(d, tmp_path):
    "The functions behind the commands check the same ranges: 0 is not taken to mean the default."
    with pytest.raises(DatasetError, match="num_envs must be >= 1, got 0"): collect("HalfCheetah-v5", 10, tmp_path/"c", num_envs=0)
    with pytest.raises(DatasetError, match="max_episode_steps must be >= 1, got 0"): collect("HalfCheetah-v5", 10, tmp_path/"c", max_episode_steps=0)
    from worldmodels_nb.cli import evaluate_checkpoint
    for k in ("horizon", "context", "max_clips"):
        with pytest.raises(ValueError, match=f"{k} must be >= 1, got 0"): evaluate_checkpoint(d["pixel"], d["frames"], tmp_path/"ev", **{k: 0})
    assert not (tmp_path/"ev").exists()

# ---------------------------------------------------------------- one writer per dataset folder
HOLD = ("import sys, time; from worldmodels_nb.core import folder_lock\n"
        "with folder_lock(sys.argv[1], what='dataset folder'): print('held', flush=True); time.sleep(float(sys.argv[2]))")

def test_second_writer_of_a_dataset_folder_is_refused_with_the_holders_pid(d, tmp_path):
    "While one process writes a dataset folder, wm-collect (either way) refuses it in one line naming that process, and writes nothing."
    out = tmp_path/"hc"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out), "120"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        r = run("collect", "--env", "HalfCheetah-v5", "--steps", "50", "--seed", "7", "--out", out)
        one_line_error(r, f"dataset folder {out} is being written by process {holder.pid}", "use another folder")
        r = run("collect", "--from-buffer", d["buf"], "--out", out)
        one_line_error(r, f"is being written by process {holder.pid}")
        assert read_manifest(out) is None and sorted(p.name for p in out.iterdir()) == [".lock"]
    finally: holder.kill(); holder.wait()
    r = run("collect", "--env", "HalfCheetah-v5", "--steps", "50", "--seed", "7", "--num-envs", "1", "--out", out)  # the holder is gone
    assert r.returncode == 0, r.stderr[-3000:]
    assert read_manifest(out)["settings"]["seed"] == 7
