"Tests of the leaderboard (10_evaluation) and `wm-leaderboard` (91_cli): tiny checkpoints in tmp folders, never runs/."
import json, subprocess, sys
import numpy as np
import pytest, torch
from test_cli import pixel_checkpoint, rssm_checkpoint, write_dataset
from worldmodels_nb.core import TrainConfig, save_checkpoint, seed_everything
from worldmodels_nb.evaluation import (FAMILIES, EvalProtocol, Family, crossings, find_family, reported_psnr, row_name, training_stats)
from worldmodels_nb.metrics import controllability, evaluate_rollouts

def wm_leaderboard(*args):
    code = "import sys; from worldmodels_nb.cli import leaderboard_main; sys.exit(leaderboard_main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True)

def pixel_rssm_checkpoint(path, ds):
    "An untrained pixel RSSM (categorical latent) for frame dataset `ds`."
    from worldmodels_nb.rssm import RSSMConfig, RSSMModelConfig, RSSMWorldModel, resolve_model_config
    seed_everything(0)
    cfg = RSSMConfig.smoke(); cfg.model = resolve_model_config(RSSMModelConfig(depth=4, latent="categorical", groups=4, classes=4, deter=16, hidden=16), ds)
    return save_checkpoint(path, RSSMWorldModel(cfg.model), step=0, config=cfg)

def test_wm_leaderboard_scores_every_checkpoint_on_the_same_clips(tmp_path):
    train, held = write_dataset(tmp_path/"train"), write_dataset(tmp_path/"held", seed=1)
    cks = [pixel_checkpoint(tmp_path/"a"/"last.pt", train),  # a loose file: named by its config (pixel.PixelConfig)
           pixel_rssm_checkpoint(tmp_path/"20260101-000000_rssm-pixel_test-tiny"/"checkpoints"/"last.pt", train)]  # by its run folder
    r = wm_leaderboard("--checkpoints", *cks, "--data", held.path, "--train-data", train.path, "--horizon", 4, "--max-clips", 5,
                       "--ctrl-clips", 4, "--out", tmp_path/"out")
    assert r.returncode == 0, r.stderr[-3000:]
    run = next((tmp_path/"out").glob("*_leaderboard_test-tiny"))
    assert {p.name for p in run.iterdir()} >= {"leaderboard.json", "leaderboard.md", "leaderboard_psnr.png"}
    b = json.loads((run/"leaderboard.json").read_text())
    assert b["format"] == "worldmodels_nb.leaderboard/1" and b["protocol"]["shown"] == [1, 4]
    assert list(b["rows"]) == ["pixel", "RSSM (pixel)", "copy-last-frame", "mean-frame"]
    from worldmodels_nb.core import load_model
    m = load_model(cks[0])[0]
    ref = evaluate_rollouts(m, held.clips(8, max_clips=5, batch_size=64), 4, 4)  # the same clips, scored directly: the same number
    np.testing.assert_allclose(b["rows"]["pixel"]["psnr"], ref["psnr"], rtol=1e-6)
    c = controllability(m, held.clips(8, max_clips=4, batch_size=64), 4, 4)
    np.testing.assert_allclose(b["rows"]["pixel"]["controllability"]["delta_psnr"], c["delta_psnr"], rtol=1e-6, atol=1e-9)
    assert b["rows"]["pixel"]["num_clips"] == 5 and b["rows"]["pixel"]["train_levels"]["num_clips"] == 5
    assert b["rows"]["copy-last-frame"]["params"] == 0 and b["rows"]["pixel"]["params"] == sum(p.numel() for p in m.parameters())
    assert b["rows"]["pixel"]["imagine_fps_b64"] > 0 and set(b["crossings"]) == {"pixel", "RSSM (pixel)"}
    assert "| pixel |" in r.stdout and "| copy-last-frame |" in r.stdout

def test_wm_leaderboard_refuses_what_does_not_fit_in_one_line(tmp_path):
    frames, states = write_dataset(tmp_path/"f"), write_dataset(tmp_path/"s", pixel=False)
    ok, wrong = pixel_checkpoint(tmp_path/"ok.pt", frames), rssm_checkpoint(tmp_path/"wrong.pt", states)
    old = save_checkpoint(tmp_path/"old.pt", torch.nn.Linear(2, 2), step=1, config=TrainConfig())  # an older pixel RSSM run saved only this
    for bad, msg in ((wrong, "holds observations of shape [3, 64, 64] but the model was trained on [5]"), (old, "has no build_model()")):
        r = wm_leaderboard("--checkpoints", ok, bad, "--data", frames.path, "--horizon", 4, "--out", tmp_path/"out")
        assert r.returncode != 0 and f"wm-leaderboard: refused {bad}" in r.stderr and msg in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path/"out").exists()  # nothing scored, nothing written
    r = wm_leaderboard("--checkpoints", ok, "--data", tmp_path/"nowhere")
    assert r.returncode != 0 and "no dataset there" in r.stderr and "Traceback" not in r.stderr
    r = wm_leaderboard("--checkpoints", ok, "--data", frames.path, "--horizon", 40)
    assert r.returncode != 0 and "no episode of 44 steps" in r.stderr

def test_a_course_run_is_found_with_what_its_notebook_reported(tmp_path):
    ds = write_dataset(tmp_path/"d")
    run = tmp_path/"course"/"04_pixel"/"20260101-000000_pixel_test-tiny"
    ck = pixel_checkpoint(run/"checkpoints"/"last.pt", ds)
    (run.parent/"summary_pixel.json").write_text(json.dumps(dict(stage="pixel", figures={"PSNR h=1": 20.5, "PSNR h=4": 18.0, "other": 1})))
    (tmp_path/"course"/"08_rssm"/"20260101-000001_rssm-pixel_test-tiny"/"checkpoints").mkdir(parents=True)
    save_checkpoint(tmp_path/"course"/"08_rssm"/"20260101-000001_rssm-pixel_test-tiny"/"checkpoints"/"last.pt", torch.nn.Linear(1, 1), config=TrainConfig())
    roots = [tmp_path/"course"/"10_evaluation", tmp_path/"course"]  # the stage's out_dir and its parent
    model, cfg, found = find_family(FAMILIES["pixel"], "test:tiny", roots, ds)
    assert found == ck.resolve() and model.cfg.context == cfg.model.context
    assert reported_psnr(FAMILIES["pixel"], found) == {1: 20.5, 4: 18.0}
    model, cfg, why = find_family(FAMILIES["RSSM (pixel)"], "test:tiny", roots, ds)  # only a run that cannot be rebuilt: passed over, with the reason
    assert model is None and "rssm-pixel_test-tiny" in why and "build_model" in why
    assert find_family(Family("x", "nothing", "00"), "test:tiny", roots, ds)[2].startswith("no run folder *_nothing_test-tiny")
    assert row_name(found) == "pixel" and row_name(found, {"pixel": 1}) == "pixel (2)"

def test_training_cost_is_read_from_metrics_csv(tmp_path):
    (tmp_path/"metrics.csv").write_text("step,loss,steps_per_s,samples_per_s\n50,1,5,160\n100,1,10,320\n120,1,2,64\n")
    s = training_stats(tmp_path)  # 50/5 + 50/10 + 20/2 = 25 s of 120 steps of 32 samples
    assert s["train_steps"] == 120 and s["train_minutes"] == pytest.approx(25 / 60) and s["train_samples_per_s"] == pytest.approx(120 * 32 / 25)
    assert training_stats(tmp_path/"none") == {}

def test_crossings_and_protocol():
    rows = {"copy-last-frame": dict(kind="baseline", h=[1, 2, 3], psnr=[20.0, 15.0, 10.0]),
            "late": dict(kind="model", h=[1, 2, 3], psnr=[19.0, 16.0, 11.0]), "never": dict(kind="model", h=[1, 2, 3], psnr=[1.0, 1.0, 1.0])}
    assert crossings(rows, [1, 3]) == {"late": dict(beats_copy_at=[2, 3], first_loss_shown=1), "never": dict(beats_copy_at=[], first_loss_shown=1)}
    assert EvalProtocol.at("quick").shown == [1, 4, 8, 16, 32] and EvalProtocol.at("smoke").shown == [1, 4, 8]
