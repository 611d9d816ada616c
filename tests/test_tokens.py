"Tests of the token world models (09_tokens): tokenizer, KV cache, POP mask, retention, learning a synthetic token world, wm-train/wm-eval."
import subprocess, sys
import pytest, torch
import torch.nn.functional as F
from worldmodels_nb.core import seed_everything
from worldmodels_nb.tokens import (Attention, Retention, Tokenizer, TokenizerModelConfig, TokenWMModelConfig, TokenWorldModel,
                                   VectorQuantizer, imagination_speed, step_layout, visibility)

def tiny_wm(mixer="attention", V=16, A=3, pop=True, dim=32, layers=2, max_steps=6):
    "A world model with K=4 tokens per 16x16 frame."
    seed_everything(0)
    return TokenWorldModel(TokenWMModelConfig(TokenizerModelConfig(obs_shape=[3, 16, 16], grid=2, num_codes=V, width=8, code_dim=8),
                                              num_actions=A, mixer=mixer, layers=layers, dim=dim, heads=2, max_steps=max_steps, pop=pop))

def test_tokenizer_round_trip_after_training():
    "A tiny tokenizer learns 4 frames: decode(encode(x)) is close to x and re-encoding gives the same tokens."
    seed_everything(0)
    x = torch.zeros(4, 3, 16, 16)
    for i in range(4): x[i, i % 3, (i // 2) * 8:(i // 2) * 8 + 8, (i % 2) * 8:(i % 2) * 8 + 8] = 1.0  # a bright square per frame
    tok = Tokenizer(TokenizerModelConfig(obs_shape=[3, 16, 16], grid=2, num_codes=16, width=8, code_dim=8))
    opt = torch.optim.Adam(tok.parameters(), 3e-3)
    batch = {"frames": (x[:, None] * 255).to(torch.uint8)}
    for _ in range(200): loss = tok.loss(batch)["loss"]; opt.zero_grad(); loss.backward(); opt.step()
    tok.eval()
    z = tok.encode(x)
    assert z.shape == (4, 4) and z.dtype == torch.long
    assert F.mse_loss(tok.decode(z), x) < 0.01  # frames -> tokens -> frames
    assert len({tuple(r) for r in z.tolist()}) == 4  # four different frames, four different token grids
    assert torch.equal(tok.encode(x), z)  # encoding is deterministic and does not move the codebook

def test_straight_through_gradient_is_the_identity():
    vq = VectorQuantizer(8, 4).eval()
    h = torch.randn(5, 4, requires_grad=True)
    zq, idx, _ = vq(h)
    g = torch.randn(5, 4)
    (zq * g).sum().backward()
    hn = F.normalize(h.detach(), dim=-1)  # the gradient goes through the normalisation only, as if zq were the unit vector h/|h|
    ref = torch.autograd.grad((F.normalize(h, dim=-1) * g).sum(), h)[0]
    assert torch.allclose(h.grad, ref, atol=1e-6) and torch.allclose(zq, vq.codebook[idx])

def test_dead_codes_are_revived_and_codebook_stays_unit():
    vq = VectorQuantizer(16, 4, dead_after=0.5).train()
    z = torch.randn(64, 4)
    vq(z)  # codes the batch did not pick fall below 0.5 after one EMA step and restart at batch vectors
    assert (vq.ema_count >= 0.5).all()
    assert torch.allclose(vq.codebook.norm(dim=-1), torch.ones(16), atol=1e-5)

@pytest.mark.parametrize("mixer", ["attention", "retention"])
def test_kv_cache_gives_the_full_forward_logits(mixer):
    m = tiny_wm(mixer).eval()
    B, T, K = 2, 5, m.K
    z, a = torch.randint(0, 16, (B, T, K)), torch.randint(0, 3, (B, T))
    meta = step_layout(T, K, pop=False)
    full = m.obs_head(m(m.embed(z.reshape(B, -1), a, meta), meta))
    caches, outs, zi, no, na = [{} for _ in m.blocks], [], z.reshape(B, -1), 0, 0
    for i in range(len(meta["pos"])):  # one token per call, through the cache
        mi = {k: v[i:i + 1] for k, v in meta.items()}; obs = int(mi["pos"] % (K + 1) < K)
        outs.append(m.obs_head(m(m.embed(zi[:, no:no + obs], a[:, na:na + 1 - obs], mi), mi, caches)))
        no, na = no + obs, na + 1 - obs
    assert torch.allclose(torch.cat(outs, 1), full, atol=1e-5)

@pytest.mark.parametrize("mixer", ["attention", "retention"])
def test_pop_prediction_tokens_never_see_the_frame_they_predict(mixer):
    m = tiny_wm(mixer).eval()
    B, T, K = 2, 4, m.K
    meta = step_layout(T, K, pop=True)
    M = visibility(meta)
    for i in (~meta["real"]).nonzero()[:, 0].tolist():
        assert not M[i, meta["real"] & (meta["step"] > meta["step"][i])].any()
    assert not M[meta["real"]][:, ~meta["real"]].any()  # real tokens never see prediction tokens
    z, a = torch.randint(0, 16, (B, T, K)), torch.randint(0, 3, (B, T))
    h = m(m.embed(z.reshape(B, -1), a, meta), meta)
    z2 = z.clone(); z2[:, 2] = (z2[:, 2] + 1) % 16  # change frame 2: the prediction block of step 1 must not move
    h2 = m(m.embed(z2.reshape(B, -1), a, meta), meta)
    blk1 = (~meta["real"]) & (meta["step"] == 1)
    assert torch.allclose(h[:, blk1], h2[:, blk1], atol=1e-6)
    assert not torch.allclose(h[:, (~meta["real"]) & (meta["step"] == 2)], h2[:, (~meta["real"]) & (meta["step"] == 2)])

def test_retention_parallel_equals_recurrent():
    torch.manual_seed(0)
    ret = Retention(32, 4)
    meta = step_layout(6, 3, pop=False); L = len(meta["pos"])
    x = torch.randn(3, L, 32)
    par, cache = ret(x, meta, visibility(meta)), {}
    rec = torch.cat([ret(x[:, i:i + 1], {k: v[i:i + 1] for k, v in meta.items()}, torch.ones(1, 1, dtype=torch.bool), cache) for i in range(L)], 1)
    assert (par - rec).abs().max() < 1e-5
    assert cache["S"].shape == (3, 4, 8, 8)  # a fixed-size state, whatever the sequence length

def _synthetic_batch(B, T, K, V, A, g):
    "A deterministic token world: every token of frame t+1 is (token + action) mod V of frame t."
    z0, a = torch.randint(0, V, (B, K), generator=g), torch.randint(0, A, (B, T), generator=g)
    z = [z0]
    for t in range(T - 1): z.append((z[-1] + a[:, t:t + 1]) % V)
    return dict(tokens=torch.stack(z, 1), actions=a, rewards=a.float(), dones=torch.zeros(B, T))

@pytest.mark.parametrize("mixer", ["attention", "retention"])
def test_a_tiny_model_learns_a_synthetic_token_world(mixer):
    m = tiny_wm(mixer, V=8, A=3, dim=48)
    opt, g = torch.optim.AdamW(m.parameters(), 3e-3), torch.Generator().manual_seed(0)
    for _ in range(250):
        loss = m.loss(_synthetic_batch(32, 6, m.K, 8, 3, g))["loss"]; opt.zero_grad(); loss.backward(); opt.step()
    m.eval()
    b = _synthetic_batch(64, 12, m.K, 8, 3, g)
    state = dict(tokens=b["tokens"][:, :3], actions=b["actions"][:, :2])
    for mode in ("pop", "ar"):  # both imagination modes of the one model, past the window (the cache is primed again)
        z, r, _ = m.imagine_tokens(state, b["actions"][:, 2:11], mode)
        acc = (z == b["tokens"][:, 3:12]).float().mean()
        assert acc > 0.95, f"{mixer}/{mode}: token accuracy {acc:.2f}"
    assert (r - b["actions"][:, 2:11].float()).abs().mean() < 0.3  # the reward head learned r = a

def test_pop_needs_fewer_passes_than_token_by_token():
    "Why POP is faster, counted rather than timed (the speed itself is measured by `wm-bench tokens`): passes of the stack."
    m = tiny_wm(dim=32).eval()
    state = dict(tokens=torch.randint(0, 16, (8, 3, m.K)), actions=torch.randint(0, 3, (8, 2)))
    actions, calls = torch.randint(0, 3, (8, 8)), []
    hook = m.ln_f.register_forward_hook(lambda *_: calls.append(1))  # once per pass through the transformer
    passes = {}
    for mode in ("pop", "ar"):
        calls.clear()
        with torch.no_grad(): m.imagine_tokens(state, actions, mode)
        passes[mode] = len(calls)
    hook.remove()
    assert passes["ar"] >= m.K * actions.shape[1] > passes["pop"], passes  # K tokens per frame one by one, vs in parallel
    s = imagination_speed(m, state, actions, repeats=1)  # the measurement runs; its numbers are for the benchmark
    assert s["pop_frames_per_s"] > 0 and s["ar_frames_per_s"] > 0

def test_wm_train_tokens_then_resume_then_eval(tmp_path):
    from tests.test_cli import cli, write_dataset
    ds, runs = write_dataset(tmp_path/"d"), tmp_path/"runs"
    r = cli("train_main", "tokens", "--scale", "smoke", "--data", ds.path, "--out", runs, "data.val_fraction=0.4", "train.max_steps=2", "tokenizer_train.max_steps=2")
    assert r.returncode == 0, r.stderr
    run = next(runs.glob("*_tokens_*"))
    assert next(runs.glob("*_tokenizer_*"))
    r = cli("train_main", "tokens", "--scale", "smoke", "--data", ds.path, "--out", runs, "--resume", run, "data.val_fraction=0.4", "train.max_steps=3")
    assert r.returncode == 0, r.stderr
    r = cli("eval_main", "--checkpoint", run/"checkpoints"/"last.pt", "--data", ds.path, "--horizon", "4", "--out", runs)
    assert r.returncode == 0 and "controllability" in r.stdout, r.stderr
    r = cli("train_main", "tokens", "--scale", "smoke", "--data", ds.path, "--tokenizer", run/"checkpoints"/"last.pt")
    assert r.returncode != 0 and "not a tokenizer" in r.stderr and "Traceback" not in r.stderr
