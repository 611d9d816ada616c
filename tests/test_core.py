"Tests of worldmodels_nb.core: configs, checkpoints, fit (resume after SIGKILL, NaN, schedules), torchrun."
import csv, os, signal, subprocess, sys, time
from dataclasses import dataclass, field
from pathlib import Path
import pytest, torch
from torch import nn
from worldmodels_nb.core import (TrainConfig, ConfigError, CheckpointError, NonFiniteLossError, apply_overrides, preset,
                                 save_checkpoint, load_checkpoint, fit, lr_factor, config_from_dict, config_to_dict)

HERE = Path(__file__).parent
SCRIPT = HERE/"fit_script.py"

@dataclass
class ModelCfg:
    z_dim: int = 32
    kind: str = "gauss"

@dataclass
class StageCfg:
    model: ModelCfg = field(default_factory=ModelCfg)
    train: TrainConfig = field(default_factory=TrainConfig)

def test_overrides_nested_and_typed():
    cfg = apply_overrides(StageCfg(), ["train.lr=3e-4", "model.z_dim=64", "train.tensorboard=true"])
    assert (cfg.train.lr, cfg.model.z_dim, cfg.train.tensorboard) == (3e-4, 64, True)
    assert isinstance(cfg, StageCfg) and isinstance(cfg.train, TrainConfig)
    assert apply_overrides(StageCfg(), "model.kind=cat train.max_steps=5").train.max_steps == 5

@pytest.mark.parametrize("ov,msg", [
    (["train.lrr=1"], "unknown config key 'train.lrr'; valid keys: model.z_dim, model.kind, train.max_steps"),
    (["model.z_dim=big"], "bad value for model.z_dim: 'big' is not a valid int"),
    (["train.lr=fast"], "bad value for train.lr: 'fast' is not a valid float"),
    (["train"], "expected key=value"),
    (["model=3"], "unknown config key 'model'"),
])
def test_override_errors_are_one_line(ov, msg):
    with pytest.raises(ConfigError) as e: apply_overrides(StageCfg(), ov)
    assert msg in str(e.value) and "\n" not in str(e.value)

def test_presets_and_dict_roundtrip():
    assert preset(TrainConfig, "smoke").max_steps < preset(TrainConfig, "quick").max_steps < preset(TrainConfig, "full").max_steps
    a = preset(TrainConfig, "quick"); a.max_steps = 1
    assert preset(TrainConfig, "quick").max_steps > 1  # each call builds a fresh config: an override never leaks into the next run
    with pytest.raises(ConfigError, match="choose one of: smoke, quick, full"): preset(TrainConfig, "medium")
    cfg = apply_overrides(StageCfg(), ["model.z_dim=7"])
    assert config_from_dict(StageCfg, config_to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="does not fit StageCfg"): config_from_dict(StageCfg, {"nope": 1})

def test_checkpoint_roundtrip_and_errors(tmp_path):
    m, cfg = nn.Linear(4, 3), StageCfg()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, 10, 2))
    m(torch.randn(2, 4)).sum().backward(); opt.step(); sched.step()
    p = save_checkpoint(tmp_path/"c"/"last.pt", m, opt, sched, step=3, config=cfg, best=0.5)
    m2 = nn.Linear(4, 3); opt2 = torch.optim.AdamW(m2.parameters(), lr=1e-3)
    sched2 = torch.optim.lr_scheduler.LambdaLR(opt2, lambda s: lr_factor(s, 10, 2))
    st = load_checkpoint(p, m2, opt2, sched2)
    assert st["step"] == 3 and st["extra"]["best"] == 0.5 and config_from_dict(StageCfg, st["config"]) == cfg
    assert torch.equal(m.weight, m2.weight) and sched2.last_epoch == sched.last_epoch
    assert [x.name for x in p.parent.iterdir()] == ["last.pt"]  # no temp file left behind
    bad = tmp_path/"bad.pt"; bad.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    for path, msg in [(bad, "corrupt, truncated or not a torch file"), (tmp_path/"none.pt", "checkpoint not found")]:
        with pytest.raises(CheckpointError, match=msg): load_checkpoint(path, m2)
    junk = tmp_path/"junk.pt"; torch.save({"a": 1}, junk)
    with pytest.raises(CheckpointError, match="not a worldmodels_nb checkpoint"): load_checkpoint(junk)
    with pytest.raises(CheckpointError, match="does not fit this model"): load_checkpoint(p, nn.Linear(5, 3))

def test_checkpoint_refuses_code(tmp_path):
    "weights_only=True: a checkpoint that smuggles an object is refused, not executed."
    p = tmp_path/"evil.pt"
    torch.save({"format": "worldmodels_nb/1", "obj": Path("/")}, p)
    with pytest.raises(CheckpointError, match="corrupt, truncated or not a torch file"): load_checkpoint(p)

def run_script(run_dir, *args, **kw):
    return subprocess.run([sys.executable, str(SCRIPT), str(run_dir), *map(str, args)], capture_output=True, text=True, **kw)

def read_steps(path):
    with open(path) as f: return [int(r["step"]) for r in csv.DictReader(f)]

def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    steps = 80
    ref = run_script(tmp_path/"ref", "--steps", steps)
    assert ref.returncode == 0, ref.stderr
    run = tmp_path/"run"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(run), "--steps", str(steps), "--sleep", "0.03"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait for a checkpoint or two, then kill -9 mid-run
        last = run/"checkpoints"/"last.pt"
        if last.exists() and load_checkpoint(last)["step"] >= 20: break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL); proc.wait()
    killed_at = load_checkpoint(run/"checkpoints"/"last.pt")["step"]  # still a readable checkpoint
    assert 20 <= killed_at < steps
    res = run_script(run, "--steps", steps)
    assert res.returncode == 0, res.stderr
    assert load_checkpoint(run/"checkpoints"/"last.pt")["step"] == steps
    assert (run/"checkpoints"/"best.pt").exists()
    logged = read_steps(run/"metrics.csv")
    assert logged == list(range(5, steps + 1, 5)), "every log step exactly once after resume"
    assert read_steps(run/"val_metrics.csv") == list(range(10, steps + 1, 10))
    # same sampler by step + restored optimizer/scheduler/RNG => bit-identical final weights
    assert (run/"params_rank0.sha").read_text() == (tmp_path/"ref"/"params_rank0.sha").read_text()

def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    res = run_script(tmp_path/"r", "--steps", 40, "--nan-at", 13, "--ckpt-every", 5)
    assert res.returncode != 0
    err = res.stderr.strip().splitlines()[-1]
    assert "NonFiniteLossError: loss became nan at step 13" in err and "last good checkpoint kept" in err
    assert load_checkpoint(tmp_path/"r"/"checkpoints"/"last.pt")["step"] == 10

def test_fit_one_step_and_no_validation(tmp_path):
    class M(nn.Module):
        def __init__(self): super().__init__(); self.w = nn.Parameter(torch.ones(1))
        def loss(self, b): return {"loss": ((self.w * b - 2) ** 2).mean()}
    for kind in ("constant", "cosine", "linear"):
        cfg = TrainConfig(max_steps=1, schedule=kind, warmup_steps=5, device="cpu", log_every=100, ckpt_every=100)
        res = fit(M(), [torch.ones(4)], cfg, tmp_path/kind, progress=False)
        assert res.step == 1 and res.train["step"] == 1
        assert (tmp_path/kind/"checkpoints"/"last.pt").exists() and (tmp_path/kind/"checkpoints"/"best.pt").exists()

def test_fit_under_torchrun_two_processes(tmp_path):
    run = tmp_path/"ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT), str(run), "--steps", "20"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "rank=0/2" in res.stdout and "rank=1/2" in res.stdout
    # DDP kept the replicas identical; only rank 0 wrote logs and checkpoints
    assert (run/"params_rank0.sha").read_text() == (run/"params_rank1.sha").read_text()
    assert read_steps(run/"metrics.csv") == [5, 10, 15, 20]
    assert load_checkpoint(run/"checkpoints"/"last.pt")["step"] == 20
    with open(run/"metrics.csv") as f: row = next(csv.DictReader(f))
    assert float(row["samples_per_s"]) > 0

def test_checkpoint_written_from_a_notebook_loads_from_the_library(tmp_path):
    "A config class defined in a running notebook lives in __main__; its checkpoint must still load with load_model."
    from worldmodels_nb.core import load_model, save_checkpoint
    from worldmodels_nb.vae import VAEConfig, VAEModelConfig, ConvVAE
    NB = type("VAEConfig", (VAEConfig,), {}); NB.__module__ = "__main__"  # what papermill / nbdev-test see
    cfg = NB(model=VAEModelConfig(width=8, z_dim=4))
    ck = save_checkpoint(tmp_path/"a.pt", cfg.build_model(), step=1, config=cfg)
    st = torch.load(ck, weights_only=True)
    assert st["config_class"] == "worldmodels_nb.vae.VAEConfig"
    assert isinstance(load_model(ck)[0], ConvVAE)
    st["config_class"] = "__main__.VAEConfig"  # a checkpoint saved before the fix
    torch.save(st, tmp_path/"legacy.pt")
    assert isinstance(load_model(tmp_path/"legacy.pt")[0], ConvVAE)
    st["config_class"] = "__main__.NoSuchConfig"
    torch.save(st, tmp_path/"foreign.pt")
    with pytest.raises(CheckpointError, match="not written by a worldmodels_nb stage"): load_model(tmp_path/"foreign.pt")

# --- bad values, one writer per run folder, the resume guard, monitor, threads ---

@pytest.mark.parametrize("ov,msg", [
    (["train.max_steps=-3"], "bad value train.max_steps=-3: it must be an integer >= 1"),
    (["train.batch_size=0"], "bad value train.batch_size=0: it must be an integer >= 1"),
    (["train.lr=0"], "bad value train.lr=0.0: it must be a number > 0"),
    (["train.val_every=0"], "bad value train.val_every=0"),
    (["train.grad_clip=-1"], "bad value train.grad_clip=-1.0: it must be a number >= 0"),
    (["train.threads=-2"], "bad value train.threads=-2"),
])
def test_nonsense_values_are_refused_in_one_line(ov, msg):
    with pytest.raises(ConfigError) as e: apply_overrides(StageCfg(), ov)
    assert msg in str(e.value) and "\n" not in str(e.value)

def test_nonsense_data_values_and_fit_refuse_before_writing(tmp_path):
    from worldmodels_nb.core import check_config
    from worldmodels_nb.data import DataConfig
    @dataclass
    class WithData:
        data: DataConfig = field(default_factory=DataConfig)
        train: TrainConfig = field(default_factory=TrainConfig)
    for ov, msg in [("data.val_fraction=1.0", "bad value data.val_fraction=1.0"), ("data.val_fraction=-0.1", "data.val_fraction=-0.1"),
                    ("data.train_steps=0", "bad value data.train_steps=0"), ("data.heldout_steps=-5", "data.heldout_steps=-5")]:
        with pytest.raises(ConfigError, match=msg.replace(".", r"\.")): apply_overrides(WithData(), [ov])
    assert check_config(WithData()) == WithData()
    with pytest.raises(ConfigError, match="bad value max_steps=-3"):
        fit(nn.Linear(1, 1), [torch.ones(1)], TrainConfig(max_steps=-3), tmp_path/"run", progress=False)
    assert not (tmp_path/"run").exists()  # refused before the run folder was made

def test_second_trainer_in_one_run_folder_is_refused(tmp_path):
    run = tmp_path/"run"
    first = subprocess.Popen([sys.executable, str(SCRIPT), str(run), "--steps", "400", "--sleep", "0.05"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (run/"metrics.csv").exists(): time.sleep(0.05)
        assert (run/"metrics.csv").exists(), "the first trainer never logged"
        assert (run/".lock").read_text() == str(first.pid)  # the holder's PID
        before = (run/"resolved_config.yaml").read_bytes()
        second = run_script(run, "--steps", 400)
        assert second.returncode != 0
        assert f"FolderBusyError: run folder {run} is being written by process {first.pid}" in second.stderr.strip().splitlines()[-1]
        assert (run/"resolved_config.yaml").read_bytes() == before
    finally:
        first.kill(); first.wait()
    steps = read_steps(run/"metrics.csv")
    assert steps == sorted(set(steps)), "only one writer's rows, in order"
    res = run_script(run, "--steps", 40)  # the lock died with its holder: resuming works
    assert res.returncode == 0, res.stderr

class _Toy(nn.Module):
    def __init__(self): super().__init__(); self.w = nn.Parameter(torch.ones(1))
    def loss(self, b): return {"loss": ((self.w * b - 2) ** 2).mean()}

def test_resume_of_another_stages_run_is_refused_before_writing(tmp_path):
    from worldmodels_nb.pixel import PixelConfig
    from worldmodels_nb.rssm import RSSMConfig
    pcfg, run = PixelConfig.smoke(), tmp_path/"pixel_run"
    fit(_Toy(), [torch.ones(4)], pcfg.train, run, config=pcfg, progress=False)
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    rcfg = RSSMConfig.smoke()
    with pytest.raises(CheckpointError) as e: fit(_Toy(), [torch.ones(4)], rcfg.train, run, config=rcfg, progress=False)
    assert str(e.value) == f"{run} holds a PixelConfig run; resume it with wm-train pixel, or choose another folder"
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"} == files  # resolved_config.yaml included
    res = fit(_Toy(), [torch.ones(4)], pcfg.train, run, config=pcfg, progress=False)  # the right stage still resumes it
    assert res.step == pcfg.train.max_steps

def test_best_pt_follows_the_monitor_and_a_missing_monitor_is_refused(tmp_path):
    vals = iter([3.0, 1.0, 2.0, 5.0])
    cfg = TrainConfig(max_steps=8, val_every=2, log_every=2, ckpt_every=2, val_batches=1, device="cpu", monitor="val_pred")
    res = fit(_Toy(), [torch.ones(4)], cfg, tmp_path/"a", val_data=[torch.ones(4)], val_fn=lambda m, s, r: {"val_pred": next(vals)}, progress=False)
    assert res.best == 1.0 and load_checkpoint(tmp_path/"a"/"checkpoints"/"best.pt")["step"] == 4
    cfg.monitor = "val_typo"
    with pytest.raises(ConfigError, match="train.monitor='val_typo' is not among the validation metrics; choose one of: val_loss"):
        fit(_Toy(), [torch.ones(4)], cfg, tmp_path/"b", val_data=[torch.ones(4)], progress=False)

def test_choose_threads():
    from worldmodels_nb.core import choose_threads
    assert choose_threads(0, None, cpus=8, load=1.0) == 8  # idle: only we run
    assert choose_threads(0, None, cpus=2, load=2.2) == 1  # 2 cores, another busy process
    assert choose_threads(0, None, cpus=16, load=4.9) == 12
    assert choose_threads(0, None, cpus=4, load=40.0) == 1 and choose_threads(0, None, cpus=4, load=0.0) == 4
    assert choose_threads(0, "3", cpus=8, load=1.0) == 3 and choose_threads(0, "junk", cpus=8, load=1.0) == 8
    assert choose_threads(2, "3", cpus=8, load=1.0) == 2  # train.threads > OMP_NUM_THREADS > the guess
    assert choose_threads(0, None, cpus=8, load=6.0, resumed=5) == 5  # a resumed run keeps its count

def test_fit_sets_and_logs_threads(tmp_path):
    before = torch.get_num_threads()
    try:
        cfg = TrainConfig(max_steps=4, log_every=2, ckpt_every=2, device="cpu", threads=1)
        fit(_Toy(), [torch.ones(4)], cfg, tmp_path/"r", progress=False)
        assert torch.get_num_threads() == 1
        with open(tmp_path/"r"/"metrics.csv") as f: assert [r["threads"] for r in csv.DictReader(f)] == ["1", "1"]
        assert load_checkpoint(tmp_path/"r"/"checkpoints"/"last.pt")["extra"]["threads"] == 1
    finally: torch.set_num_threads(before)
