"Tests of worldmodels_nb.metrics: metrics against references, the rollout protocol's index arithmetic, baselines, controllability, outputs."
import json, math, os
import numpy as np
import pytest, torch
from torch import nn
from skimage.metrics import structural_similarity
from worldmodels_nb.metrics import (mse, psnr, ssim, WorldModel, CopyLastFrame, MeanFrame, evaluate_rollouts, save_eval,
                                    controllability, derangement, plot_metric_vs_horizon, save_rollout_video, image_strip,
                                    evaluate_with_baselines, roc_auc, find_eval, to_hwc_uint8, save_figure)

def clip_batch(frames, actions):
    "A clip batch dict from frames (B, T, ...) and actions (B, T)."
    B, T = actions.shape[:2]
    return dict(frames=frames, actions=actions, rewards=torch.zeros(B, T), dones=torch.zeros(B, T, dtype=torch.bool))

def counter_clips(B=6, T=12, seed=0):
    "Pixel clips whose frame t encodes the running sum of the actions before it: value 10 * sum(a_0..a_{t-1})."
    a = torch.randint(0, 3, (B, T), generator=torch.Generator().manual_seed(seed))
    pos = torch.cat([torch.zeros(B, 1, dtype=torch.long), a.cumsum(1)[:, :-1]], 1)  # (B, T) position before step t
    frames = (10 * pos).to(torch.uint8)[:, :, None, None, None].expand(B, T, 3, 16, 16).contiguous()  # (B, T, C, H, W)
    return clip_batch(frames, a)

class CounterModel(nn.Module):
    "An exact world model of `counter_clips`, which sees only observe/imagine inputs."
    def __init__(self, k):
        super().__init__(); self.k = k
    def loss(self, batch): return {"loss": torch.zeros(())}
    def observe(self, frames, actions):
        assert frames.dtype == torch.float32 and frames.shape[1] == self.k and actions.shape[1] == self.k - 1
        pos = torch.round(frames[:, :, 0, 0, 0] * 255 / 10).long()  # (B, k)
        assert torch.equal(pos[:, 1:] - pos[:, :-1], actions), "observe got actions that are not those between the context frames"
        return pos[:, -1]
    def imagine(self, state, actions):
        pos = state[:, None] + actions.cumsum(1)  # (B, H)
        return ((10 * pos).to(torch.uint8).float() / 255)[:, :, None, None, None].expand(*pos.shape, 3, 16, 16)  # (B, H, C, H, W)

def sk_ssim(x, y):
    "skimage's SSIM of two (C, H, W) tensors, with the paper's settings."
    return structural_similarity(x.permute(1, 2, 0).double().numpy(), y.permute(1, 2, 0).double().numpy(), channel_axis=-1,
                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)

# --- frame metrics -------------------------------------------------------------------------------------------------

def test_mse_psnr_by_hand():
    x = torch.zeros(2, 3, 4, 4); y = x.clone(); y[0, 0, 0, 0] = 1.0  # one pixel off by 1 in 48
    assert torch.allclose(mse(x, y), torch.tensor([1 / 48, 0.0]))
    p = psnr(y, x)
    assert math.isclose(p[0].item(), 10 * math.log10(48), rel_tol=1e-6) and math.isinf(p[1].item())
    assert torch.allclose(psnr(torch.full((5, 1, 8, 8), 0.6), torch.full((5, 1, 8, 8), 0.5)), torch.full((5,), 20.0))

def test_metrics_reduce_only_frame_dims():
    x, y = torch.rand(2, 3, 4, 3, 16, 16), torch.rand(2, 3, 4, 3, 16, 16)
    assert mse(x, y).shape == psnr(x, y).shape == ssim(x, y).shape == (2, 3, 4)
    assert torch.allclose(ssim(x, y)[1, 2, 3], ssim(x[1, 2, 3], y[1, 2, 3]))
    assert mse(torch.zeros(5, 7), torch.ones(5, 7), ndim=1).tolist() == [1.0] * 5  # low-dim states

@pytest.mark.parametrize("kind", ["random", "noisy", "structured", "shifted"])
def test_ssim_matches_skimage(kind):
    g = torch.Generator().manual_seed(1)
    if kind == "structured":  # smooth gradients, a bright square, stripes
        yy, xx = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 52), indexing="ij")
        x = torch.stack([xx, yy, 0.5 + 0.5 * torch.sin(12 * xx)]); x[:, 10:20, 15:30] = 0.9
    else: x = torch.rand(3, 40, 52, generator=g)
    y = {"random": lambda: torch.rand(3, 40, 52, generator=g),
         "noisy": lambda: (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1),
         "structured": lambda: (x * 0.8 + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1),
         "shifted": lambda: x.roll(2, -1)}[kind]()
    assert abs(ssim(y, x).item() - sk_ssim(y, x)) < 1e-4
    assert abs(ssim(x[:1], x[:1]).item() - 1.0) < 1e-5

def test_metric_shape_errors_are_one_line():
    for fn in (mse, psnr, ssim):
        with pytest.raises(ValueError, match=r"shapes differ: got \(2, 3, 16, 16\) vs \(2, 3, 16, 8\)") as e:
            fn(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 8))
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="at least 11x11 pixels, got 8x8"): ssim(torch.rand(3, 8, 8), torch.rand(3, 8, 8))

# --- the rollout protocol ------------------------------------------------------------------------------------------

def test_protocol_is_satisfied_by_models_and_baselines():
    for m in (CopyLastFrame(), MeanFrame(), CounterModel(4)): assert isinstance(m, WorldModel)
    assert not isinstance(object(), WorldModel)

def test_index_arithmetic_exact_model_scores_inf():
    "CounterModel is exact only if imagine gets actions[:, k-1:k-1+H] and is scored against frames[:, k:k+H]."
    for k, H in [(1, 11), (4, 8), (3, 5)]:
        r = evaluate_rollouts(CounterModel(k), [counter_clips(seed=k), counter_clips(B=3, seed=9)], context=k, horizon=H)
        assert r["num_clips"] == 9 and r["h"] == list(range(1, H + 1))
        assert all(math.isinf(p) for p in r["psnr"]) and r["mse"] == [0.0] * H and r["exact"] == [1.0] * H
        assert np.allclose(r["ssim"], 1.0)

def test_copy_baseline_exact_on_static_clip_and_not_on_moving_one():
    static = clip_batch(torch.full((4, 10, 3, 16, 16), 200, dtype=torch.uint8), torch.randint(0, 5, (4, 10)))
    r = evaluate_rollouts(CopyLastFrame(), [static], context=3, horizon=7)
    assert r["mse"] == [0.0] * 7 and all(math.isinf(p) for p in r["psnr"]) and r["kind"] == "pixel"
    r = evaluate_rollouts(CopyLastFrame(), [counter_clips(seed=3)], context=4, horizon=8)
    assert r["mse"][-1] > r["mse"][0] > 0 and r["psnr"][0] > r["psnr"][-1]  # error compounds

def test_mean_frame_baseline():
    frames = torch.randint(0, 256, (5, 6, 3, 16, 16), dtype=torch.uint8)
    mf = MeanFrame().fit([clip_batch(frames, torch.zeros(5, 6, dtype=torch.long))])
    assert torch.allclose(mf.mean, frames.float().div(255).mean((0, 1)), atol=1e-6)
    assert torch.allclose(MeanFrame().fit(frames.flatten(0, 1)).mean, mf.mean)
    r = evaluate_rollouts(mf, [clip_batch(mf.mean.mul(255).round().to(torch.uint8).expand(2, 6, 3, 16, 16), torch.zeros(2, 6, dtype=torch.long))], 2, 4)
    assert max(r["mse"]) < 1e-5
    with pytest.raises(RuntimeError, match="not fitted"): evaluate_rollouts(MeanFrame(), [counter_clips()], 2, 4)
    assert set(CopyLastFrame().loss(counter_clips())) >= {"loss"} and "loss" in mf.loss(counter_clips())

def test_low_dim_states_get_mse_only():
    states = torch.arange(12.0).view(1, 12, 1).expand(3, 12, 4).contiguous()  # (B, T, D)
    r = evaluate_rollouts(CopyLastFrame(), [clip_batch(states, torch.zeros(3, 12, dtype=torch.long))], context=2, horizon=5)
    assert r["kind"] == "state" and "psnr" not in r and "ssim" not in r
    assert np.allclose(r["mse"], [h ** 2 for h in range(1, 6)])
    mf = MeanFrame().fit(states)
    assert mf.mean.shape == (4,) and mf.imagine(mf.observe(states[:, :2], None), torch.zeros(3, 5)).shape == (3, 5, 4)

def test_mean_and_ci_over_clips():
    "Per-clip MSE at h=1 is 0 for half the clips and 0.01 for the rest: mean 0.005, CI 1.96 std / sqrt(n)."
    frames = torch.zeros(4, 3, 1, 12, 12); frames[2:, 2] = 0.1  # (B, T, C, H, W) float frames in [0, 1]
    r = evaluate_rollouts(CopyLastFrame(), [clip_batch(frames, torch.zeros(4, 3, dtype=torch.long))], context=2, horizon=1)
    assert math.isclose(r["mse"][0], 0.005, rel_tol=1e-5)
    assert math.isclose(r["mse_ci"][0], 1.96 * np.std([0, 0, 0.01, 0.01], ddof=1) / 2, rel_tol=1e-5)
    assert math.isclose(r["psnr"][0], 10 * math.log10(1 / 0.005), rel_tol=1e-5) and r["psnr_lo"][0] < r["psnr"][0] < r["psnr_hi"][0]
    assert r["exact"] == [0.5]

def test_max_clips_eval_mode_and_no_grad():
    class Probe(CopyLastFrame):
        def imagine(self, state, actions):
            assert not self.training and not torch.is_grad_enabled()
            return super().imagine(state, actions)
    m = Probe().train()
    r = evaluate_rollouts(m, [counter_clips(B=4), counter_clips(B=4)], 2, 4, max_clips=6)
    assert r["num_clips"] == 6 and m.training  # training flag restored

def test_shape_errors_are_one_line():
    clips = [counter_clips(T=12)]
    cases = [(lambda: evaluate_rollouts(CopyLastFrame(), clips, context=4, horizon=9), "clips have T=12 steps but context=4 + horizon=9 needs at least 13"),
             (lambda: evaluate_rollouts(CopyLastFrame(), [{"frames": clips[0]["frames"]}], 2, 2), "clip batch has no 'actions'"),
             (lambda: evaluate_rollouts(CopyLastFrame(), [], 2, 2), "clip iterable was empty"),
             (lambda: evaluate_rollouts(CopyLastFrame(), clips, context=0), "context and horizon must be >= 1")]
    for fn, msg in cases:
        with pytest.raises((ValueError, KeyError)) as e: fn()
        assert msg in str(e.value) and "\n" not in str(e.value)
    class Short(CopyLastFrame):
        def imagine(self, state, actions): return super().imagine(state, actions)[:, :-1]
    with pytest.raises(ValueError, match=r"model.imagine returned \(6, 3, 3, 16, 16\); expected \(B, H, \.\.\.\) = \(6, 4, 3, 16, 16\)"):
        evaluate_rollouts(Short(), clips, context=2, horizon=4)

def test_save_eval_roundtrip(tmp_path):
    r = evaluate_rollouts(CounterModel(2), [counter_clips()], 2, 3)
    p = save_eval(tmp_path/"run"/"eval.json", r)
    back = json.loads(p.read_text())
    assert back["h"] == [1, 2, 3] and all(math.isinf(x) for x in back["psnr"]) and [f.name for f in p.parent.iterdir()] == ["eval.json"]

# --- controllability -----------------------------------------------------------------------------------------------

def test_derangement():
    for n in (2, 3, 10):
        idx = derangement(n, seed=n)
        assert sorted(idx.tolist()) == list(range(n)) and (idx != torch.arange(n)).all()
    assert torch.equal(derangement(7, 1), derangement(7, 1))

def test_controllability_zero_for_copy_positive_for_action_model():
    clips = [counter_clips(B=8, T=12, seed=s) for s in range(3)]
    c = controllability(CopyLastFrame(), clips, context=4, horizon=8)
    assert c["delta_psnr"] == [0.0] * 8 and c["num_clips"] == 24
    c = controllability(CounterModel(4), clips, context=4, horizon=8)
    assert all(math.isinf(p) for p in c["psnr_true"]) and all(d > 0 for d in c["delta_psnr"])
    with pytest.raises(ValueError, match="at least 2 clips"): controllability(CopyLastFrame(), [counter_clips(B=1)], 2, 2)

# --- plots, strips and videos --------------------------------------------------------------------------------------

def test_outputs_are_written_and_readable(tmp_path):
    import imageio.v3 as iio
    import matplotlib; matplotlib.use("Agg")
    clips = [counter_clips(B=4, T=12)]
    results = {"copy-last-frame": evaluate_rollouts(CopyLastFrame(), clips, 4, 8), "exact": evaluate_rollouts(CounterModel(4), clips, 4, 8)}
    for metric in ("psnr", "ssim", "mse"):
        fig = plot_metric_vs_horizon(results, metric, path=tmp_path/f"{metric}.png")
        assert iio.imread(tmp_path/f"{metric}.png").ndim == 3
    styles = {l.get_label(): l.get_linestyle() for l in fig.axes[0].get_lines()}
    assert styles["copy-last-frame"] == "--" and styles["exact"] == "-"
    with pytest.raises(KeyError, match="has no 'lpips'"): plot_metric_vs_horizon(results, "lpips")
    gt = torch.rand(10, 3, 16, 16); pred = gt.flip(-1)
    mp4, gif = save_rollout_video(gt, pred, tmp_path/"videos"/"rollout", fps=5)
    g = iio.imread(gif)
    assert g.shape[0] == 10 and g.shape[1] >= 4 * 16  # small frames are upscaled
    assert iio.improps(mp4, plugin="pyav").shape[0] == 10
    image_strip(gt[:4], pred, gt, path=tmp_path/"strip.png")
    assert iio.imread(tmp_path/"strip.png").ndim == 3
    assert not list(tmp_path.rglob(".*.tmp"))  # atomic writes leave no temporaries
    with pytest.raises(ValueError, match="shapes differ"): save_rollout_video(gt, pred[:5], tmp_path/"bad")

# --- low-dimensional states: errors in units of std ----------------------------------------------------------------

def state_clips(B=8, T=10, D=3, seed=0):
    "States s_t = (1, 10, 100) * (running sum of the actions before it); one integer-valued walk per clip, so sums are exact."
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(-2, 3, (B, T, 1), generator=g).float().expand(B, T, D).contiguous()  # (B, T, D) continuous actions
    s = torch.cat([torch.zeros(B, 1, D), a.cumsum(1)[:, :-1]], 1) * torch.tensor([1.0, 10.0, 100.0])[:D]  # (B, T, D), dims of very different scale
    return dict(frames=s, actions=a, rewards=torch.zeros(B, T), dones=torch.zeros(B, T, dtype=torch.bool))

class StateIntegrator(nn.Module):
    "An exact model of `state_clips` (ignore_actions=True: the same model with the actions zeroed)."
    def __init__(self, D=3, ignore_actions=False):
        super().__init__(); self.scale, self.ignore = torch.tensor([1.0, 10.0, 100.0])[:D], ignore_actions
    def loss(self, batch): return {"loss": torch.zeros(())}
    def observe(self, frames, actions): return frames[:, -1]  # (B, D)
    def imagine(self, state, actions):
        a = torch.zeros_like(actions) if self.ignore else actions
        return state[:, None] + a.cumsum(1) * self.scale  # (B, H, D)

def test_std_normalised_mse_by_hand():
    "Copy of (0, 0) against targets (1, 2) and (0, 4) with std (1, 2): per-clip 1 and 2, mean 1.5; raw (2.5 + 8) / 2 = 5.25."
    s = torch.tensor([[[0., 0], [1, 2]], [[0, 0], [0, 4]]])  # (B=2, T=2, D=2)
    clip = clip_batch(s, torch.zeros(2, 2, dtype=torch.long))
    for std in ([1.0, 2.0], np.array([1.0, 2.0]), torch.tensor([1.0, 2.0])):
        r = evaluate_rollouts(CopyLastFrame(), [clip], context=1, horizon=1, std=std, per_dim=True)
        assert r["mse"] == [1.5] and r["mse_per_dim"] == [[0.5, 2.5]] and r["units"] == "std" and r["kind"] == "state"
        assert math.isclose(r["mse_ci"][0], 1.96 * np.std([1.0, 2.0], ddof=1) / math.sqrt(2), rel_tol=1e-9)
        assert "psnr" not in r and "ssim" not in r
    raw = evaluate_rollouts(CopyLastFrame(), [clip], context=1, horizon=1, per_dim=True)
    assert raw["mse"] == [5.25] and raw["mse_per_dim"] == [[0.5, 10.0]] and raw["units"] == "raw"
    assert "mse_per_dim" not in evaluate_rollouts(CopyLastFrame(), [clip], context=1, horizon=1, std=[1.0, 2.0])

def test_std_units_make_dimensions_comparable():
    "With std = the per-dimension scale, an error of the same relative size weighs the same in every dimension."
    clips = [state_clips(seed=s) for s in range(2)]
    r = evaluate_rollouts(CopyLastFrame(), clips, context=3, horizon=4, std=[1.0, 10.0, 100.0], per_dim=True)
    per = np.array(r["mse_per_dim"])  # (H, D)
    assert per.shape == (4, 3) and np.allclose(per, per[:, :1]) and (per > 0).all()  # the same walk weighs the same in every dim
    raw = np.array(evaluate_rollouts(CopyLastFrame(), clips, context=3, horizon=4, per_dim=True)["mse_per_dim"])
    assert (raw[:, 2] > 1000 * raw[:, 0]).all()  # raw: the 100x dimension dominates
    assert np.allclose(np.array(r["mse"]), per.mean(1)) and np.allclose(raw / [1, 100, 10_000], per)

def test_controllability_on_states():
    clips = [state_clips(B=8, seed=s) for s in range(3)]
    std = [1.0, 10.0, 100.0]
    c = controllability(StateIntegrator(ignore_actions=True), clips, context=3, horizon=5, std=std)
    assert c["mse_rise"] == [0.0] * 5 and c["units"] == "std" and c["num_clips"] == 24
    assert not any(k.startswith("psnr") or k == "delta_psnr" for k in c)
    c = controllability(StateIntegrator(), clips, context=3, horizon=5, std=std)
    assert c["mse_true"] == [0.0] * 5 and all(x > 0 for x in c["mse_rise"]) and c["mse_rise"] == c["mse_shuffled"]
    assert c["mse_rise"][-1] > c["mse_rise"][0]  # the wrong actions hurt more the longer they act
    raw = controllability(StateIntegrator(), clips, context=3, horizon=5)
    assert raw["units"] == "raw" and raw["mse_rise"][0] > c["mse_rise"][0]

def test_std_and_per_dim_errors_are_one_line():
    px, st = [counter_clips()], [state_clips()]
    cases = [(lambda: evaluate_rollouts(CopyLastFrame(), px, 2, 2, std=[1.0]), "std is only for low-dim states"),
             (lambda: controllability(CopyLastFrame(), px, 2, 2, std=[1.0]), "std is only for low-dim states"),
             (lambda: evaluate_rollouts(CopyLastFrame(), px, 2, 2, per_dim=True), "per_dim is only for low-dim states"),
             (lambda: evaluate_rollouts(CopyLastFrame(), st, 2, 2, std=[1.0, 2.0]), "std has 2 values but the states have D=3"),
             (lambda: evaluate_rollouts(CopyLastFrame(), st, 2, 2, std=[1.0, 0.0, 1.0]), "std must be positive")]
    for fn, msg in cases:
        with pytest.raises(ValueError) as e: fn()
        assert msg in str(e.value) and "\n" not in str(e.value)

def test_pixel_results_are_plain_mse_psnr_ssim():
    "std=None on pixels: per-h MSE is the mean over clips of metrics.mse, exactly as before states got std units."
    clips = [counter_clips(B=5, seed=s) for s in range(2)]
    r = evaluate_rollouts(CopyLastFrame(), clips, context=3, horizon=6)
    x = torch.cat([c["frames"] for c in clips]).float() / 255  # (B, T, C, H, W)
    ref = mse(x[:, 2:3].expand(-1, 6, -1, -1, -1), x[:, 3:9]).double().mean(0)  # (H,)
    assert r["mse"] == ref.tolist() and r["kind"] == "pixel" and "units" not in r and "mse_per_dim" not in r
    assert np.allclose(r["psnr"], 10 * np.log10(1 / ref.numpy()))

class ClipData:
    "A dataset stand-in: `clips` cuts the given batches' first T steps."
    def __init__(self, batches): self.batches = batches
    def clips(self, T, max_clips=None, batch_size=64): return iter([{k: v[:, :T] for k, v in b.items()} for b in self.batches])

def test_evaluate_with_baselines_passes_std():
    held, train = ClipData([state_clips(seed=1)]), ClipData([state_clips(seed=2)])
    std = torch.tensor([2.0, 20.0, 200.0])
    ev = evaluate_with_baselines(StateIntegrator(), held, train, context=3, horizon=4, std=std)
    raw = evaluate_with_baselines(StateIntegrator(), held, train, context=3, horizon=4)
    assert ev["model"]["mse"] == [0.0] * 4 and all(ev[n]["units"] == "std" for n in ("model", "copy-last-frame", "mean-frame"))
    per = np.array(evaluate_rollouts(CopyLastFrame(), held.clips(7), 3, 4, per_dim=True)["mse_per_dim"])  # raw (H, D)
    assert np.allclose(ev["copy-last-frame"]["mse"], (per / (std.numpy() ** 2)).mean(1))
    assert ev["mean-frame"]["mse"] != raw["mean-frame"]["mse"] and all(x > 0 for x in ev["controllability"]["mse_rise"])

# --- helpers shared with later stages ------------------------------------------------------------------------------

def test_roc_auc_matches_pairwise_count():
    rng = np.random.default_rng(3)
    s, y = rng.integers(0, 6, 300).astype(float), rng.random(300) < 0.2  # ties on purpose
    brute = np.mean([(p > q) + 0.5 * (p == q) for p in s[y] for q in s[~y]])
    assert math.isclose(roc_auc(s, y), brute, rel_tol=1e-12)
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75 and math.isnan(roc_auc([1, 2], [0, 0]))

def test_find_eval_picks_newest_with_same_protocol(tmp_path):
    def write(name, k=4, H=16, n=64, data="data/held", mtime=0):
        p = save_eval(tmp_path/name/"eval.json", {"model": dict(context=k, horizon=H, num_clips=n), "meta": {"data": data}})
        os.utime(p, (mtime, mtime)); return p
    old = write("20260101-000000_pixel_procgen-coinrun", mtime=1_000)
    new = write("20260102-000000_pixel_procgen-coinrun", mtime=2_000)
    write("20260103-000000_pixel_procgen-coinrun", k=2, mtime=3_000)  # other context
    write("20260104-000000_pixel_procgen-coinrun", n=32, mtime=4_000)  # other number of clips
    write("20260105-000000_vae_procgen-coinrun", mtime=5_000)  # other stage
    write("nested/20260106-000000_pixel_procgen-coinrun", data="data/other", mtime=6_000)  # other data
    assert find_eval("pixel", "procgen:coinrun", [tmp_path], 4, 8, 64, data="data/held")[0] == new
    assert find_eval("pixel", "procgen:coinrun", [tmp_path], 4, 8, 64)[0] == tmp_path/"nested"/"20260106-000000_pixel_procgen-coinrun"/"eval.json"
    assert find_eval("pixel", "procgen:coinrun", [tmp_path], 4, 32, 64) is None  # horizon 16 < 32
    (new).write_text("{not json"); assert find_eval("pixel", "procgen:coinrun", [tmp_path], 4, 8, 64, data="data/held")[0] == old

def test_to_hwc_uint8_and_save_figure(tmp_path):
    import imageio.v3 as iio, matplotlib; matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    gray = torch.linspace(0, 1, 2 * 8 * 8).view(2, 1, 8, 8)  # (T, C=1, H, W) floats
    x = to_hwc_uint8(gray)
    assert x.shape == (2, 8, 8, 3) and x.dtype == np.uint8 and (x[..., 0] == x[..., 2]).all() and x.max() == 255
    u8 = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    assert np.array_equal(to_hwc_uint8(u8), u8.permute(0, 2, 3, 1).numpy())
    with pytest.raises(ValueError, match=r"expected frames \(T, C, H, W\), got shape \(3, 8, 8\)"): to_hwc_uint8(u8[0])
    fig, ax = plt.subplots(); ax.plot([0, 1])
    p = save_figure(fig, tmp_path/"plots"/"f.png")
    assert p == tmp_path/"plots"/"f.png" and iio.imread(p).ndim == 3 and not list(tmp_path.rglob("*.tmp"))
