"Tests of the explorer (11_explorer) without a browser: the class and its widgets, on tiny models of three families."
import numpy as np
import pytest, torch
from torch import nn
from worldmodels_nb.core import save_checkpoint, seed_everything
from worldmodels_nb.explorer import Explorer, clip_rollouts, to_image
from test_cli import rssm_checkpoint, write_dataset

def pixel_checkpoint(path, ds, seed=0, context=4):
    "A pixel world model whose frames move (random output heads instead of the copy-last-frame start), saved as a checkpoint."
    from worldmodels_nb.pixel import PixelConfig, resolve_model_config
    seed_everything(seed); cfg = resolve_model_config(PixelConfig.smoke(), ds); cfg.model.context = context
    m = cfg.build_model()
    for conv in (m.head, m.flow): nn.init.normal_(conv.weight, std=0.05)
    return save_checkpoint(path, m, step=0, config=cfg)

def vm_checkpoint(tmp, ds):
    "An untrained V+M: a V checkpoint and an MDN-RNN checkpoint whose config names it."
    from worldmodels_nb.mdnrnn import MDNRNNConfig
    from worldmodels_nb.vae import VAEConfig, resolve_vae_config
    seed_everything(0); vc = resolve_vae_config(VAEConfig.smoke(), ds)
    vck = save_checkpoint(tmp/"vae.pt", vc.build_model(), step=0, config=vc)
    mc = MDNRNNConfig.smoke(); mc.model.z_dim, mc.model.num_actions, mc.vae_checkpoint = vc.model.z_dim, 4, str(vck)
    return save_checkpoint(tmp/"mdn.pt", mc.build_model(), step=0, config=mc)

@pytest.fixture(scope="module")
def pix(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("explorer")
    ds = write_dataset(tmp/"frames")
    return ds, pixel_checkpoint(tmp/"pixel.pt", ds), vm_checkpoint(tmp, ds), tmp

def test_clicking_an_action_changes_the_frame_and_the_step_counter(pix):
    ds, ck, _, _ = pix
    ex = Explorer(ck, ds.path)
    w = ex.play()
    before = w.parts["image"].value
    assert "step <b>0</b>" in w.parts["status"].value and len(w.parts["actions"].children) == 4
    w.parts["actions"].children[2].click()
    assert w.parts["image"].value != before and "step <b>1</b>" in w.parts["status"].value and ex.t == 1
    assert w.parts["image"].value[:4] == b"\x89PNG" and to_image(ex.frame).shape == (256, 256, 3)  # 64x64 upscaled x4, nearest neighbour
    assert w.parts["image"].layout.width == "256px"  # shown at that size, not stretched by the box
    w.parts["reset"].click()
    assert ex.t == 0 and w.parts["image"].value == before  # reset: the same real start, the same frame
    assert w.parts["tau"].layout.display == "none" and not ex.samples  # the pixel model does not sample: no temperature slider
    assert w.parts["keys"] is None  # actions of an unknown game have no arrow keys

def test_the_dream_is_the_model_step_by_step(pix):
    "Explorer.step is dream_step + dream_decode from the real start: the same frames as stepping the model by hand."
    ds, ck, _, _ = pix
    ex = Explorer(ck, ds)
    ep = ds.episode(0); k = ex.context
    x = torch.as_tensor(np.array(ep["frames"][:k])).permute(0, 3, 1, 2).float()[None] / 255
    st = ex.model.dream_start(x, torch.as_tensor(np.array(ep["actions"][:k - 1]))[None])
    for a in (1, 3, 0):
        st, _, _ = ex.model.dream_step(st, torch.tensor([a]))
        assert torch.allclose(ex.step(a), ex.model.dream_decode(st)[0])
    assert ex.latency_ms()["steps"] == 3

def test_vm_samples_and_has_a_temperature(pix):
    ds, _, vm, _ = pix
    ex = Explorer(vm, ds, seed=3)
    assert ex.family == "mdnrnn" and ex.samples
    w = ex.play()
    assert w.parts["tau"].layout.display is None
    w.parts["tau"].value = 0.0
    assert ex.tau == 0.0
    w.parts["actions"].children[0].click(); a = ex.frame.clone()
    w.parts["reset"].click(); w.parts["actions"].children[0].click()
    assert torch.equal(ex.frame, a)  # tau = 0 and a seeded dream: the same press gives the same frame

def test_bad_checkpoints_give_a_message_in_the_widget_not_a_traceback(pix, tmp_path):
    ds, ck, _, _ = pix
    ex = Explorer(ck, ds); w = ex.play(); w.parts["actions"].children[1].click()
    bad = tmp_path/"garbage.pt"; bad.write_bytes(b"not a checkpoint")
    other = write_dataset(tmp_path/"states", pixel=False)
    wrong = rssm_checkpoint(tmp_path/"rssm.pt", other)  # a model of another environment (5-dim states)
    long = pixel_checkpoint(tmp_path/"long.pt", ds, context=20)  # fits the data, but needs more context than episode 0 has
    for path, says in (("no/such/best.pt", "FileNotFoundError: no/such/best.pt"), (bad, str(bad)), (wrong, "shape"),
                       (long, "ValueError: held-out episode 0 has 14 steps; the model needs 20")):
        w.parts["checkpoint"].value = str(path); w.parts["load"].click()
        assert says in w.parts["msg"].value and "Traceback" not in w.parts["msg"].value, w.parts["msg"].value
        assert "\n" not in w.parts["msg"].value and ex.t == 1 and ex.checkpoint == str(ck) and ex.context == 4  # all kept
    w.parts["checkpoint"].value = str(ck); w.parts["load"].click()
    assert w.parts["msg"].value == "" and ex.t == 0
    with pytest.raises(FileNotFoundError, match="no dataset there"): Explorer(ck, tmp_path/"nowhere")

def test_scrub_slider_selects_frame_h_and_switching_family_rerenders(pix):
    ds, ck, vm, _ = pix
    ex = Explorer(ck, ds).add("V+M", vm)
    s = ex.scrub(clip=1, horizon=6)
    assert list(s.parts["family"].options) == ["pixel", "V+M"]
    gt, pred, score = s.rollouts["pixel"]
    assert gt.shape == pred.shape == (6, 3, 64, 64) and len(score) == 6
    shots = {}
    for h in (1, 4, 6):
        s.parts["h"].value = h; shots[h] = (s.parts["image"].value, s.parts["curve"].value)
    assert len({v[0] for v in shots.values()}) == 3 and len({v[1] for v in shots.values()}) == 3  # frame h and the marker move
    s.parts["family"].value = "V+M"
    assert s.parts["image"].value != shots[6][0] and s.parts["msg"].value == ""
    # the same clip for every family: one ground truth, each model's own prediction (the rollout protocol)
    assert torch.equal(s.rollouts["V+M"][0], gt) and not torch.equal(s.rollouts["V+M"][1], pred)
    ref = clip_rollouts({"pixel": ex.model}, ds, clip=1, horizon=6, context=4)["pixel"]
    assert torch.allclose(ref[1], pred)

def test_continuous_actions_and_states(tmp_path):
    "The RSSM on 5-dim states with 2-dim actions: sliders and a step button, states drawn as bars."
    ds = write_dataset(tmp_path/"states", pixel=False)
    ex = Explorer(rssm_checkpoint(tmp_path/"rssm.pt", ds), ds)
    w = ex.play()
    sliders, go = w.parts["actions"].children[:-1], w.parts["actions"].children[-1]
    assert len(sliders) == 2 and go.description == "step"
    before = w.parts["image"].value
    sliders[0].value = 0.8; go.click()
    assert ex.t == 1 and w.parts["image"].value != before and to_image(ex.frame).shape[2] == 3
    s = ex.scrub(clip=0, horizon=4)
    assert s.rollouts["rssm"][0].shape == (4, 5)

def test_record_writes_a_gif_of_play(pix, tmp_path):
    from PIL import Image
    ds, ck, _, _ = pix
    ex = Explorer(ck, ds, scale=2)
    gif = ex.record([0, 1, 2, 3, 3], tmp_path/"play.gif")
    im = Image.open(gif)
    assert im.n_frames == 6 and im.size == (128, 128) and ex.t == 5

def test_versus_needs_the_real_env_and_says_so(pix):
    ds, ck, _, _ = pix
    ex = Explorer(ck, ds)
    with pytest.raises(ValueError, match="test:tiny"): ex.versus(0)  # a hand-written dataset has no real environment

def test_dream_vs_real_steps_the_real_game_beside_the_dream(tmp_path):
    "versus(): the real CoinRun level beside the dream; one press moves both and adds a PSNR point."
    from worldmodels_nb.data import EpisodeDataset, collect
    ds = EpisodeDataset(collect("procgen:coinrun", 600, tmp_path/"coin", policy="sticky", levels="100000:100004", seed=0, progress=False))
    ex = Explorer(pixel_checkpoint(tmp_path/"pixel.pt", ds), ds)
    v = ex.versus(level=1)
    real0, curve0 = v.parts["real"].value, v.parts["curve"].value
    first = ex.real_frame.clone()
    for _ in range(5): v.parts["actions"].children[7].click()  # → five times
    assert len(ex.scores) == 5 and all(np.isfinite(ex.scores)) and v.parts["curve"].value != curve0
    assert v.parts["real"].value != real0 and "PSNR" in v.parts["status"].value
    v.parts["keys"]._handle_mouse_msg(None, {"type": "keydown", "key": "ArrowRight"}, [])  # the arrow key, as ipyevents delivers it
    assert ex.t == 6 and len(ex.scores) == 6
    v.parts["reset"].click()
    assert torch.equal(ex.real_frame, first) and ex.scores == []  # the held-out level replays exactly
