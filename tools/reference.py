"""Store the outputs of one course run in the committed notebooks, so a reader sees figures, tables and numbers.

    python tools/reference.py runs/course_<ts> [--nbs nbs]       # what `make reference` runs after `wm-course`

For each stage notebook the run executed successfully, every code cell of `nbs/NN_x.ipynb` whose source is
unchanged since the run receives that run's outputs (a cell edited since then keeps none: a stale output would lie;
a cell only reformatted since keeps them; one split into several gives them to its last piece).
Outputs are kept light: stderr (progress bars, warnings) and widget views are dropped, large PNGs are re-encoded with
a palette, GIFs over 1.5 MB are replaced by a note. A markdown cell under the title names the run (date, commit,
scale, minutes); a second run replaces it. Notebooks are written atomically; nothing else is touched."""
import argparse, ast, base64, io, json, os, re, shutil, subprocess, sys, tempfile
from pathlib import Path

TAG = "reference-run"
MAX_PNG, MAX_GIF = 120_000, 1_500_000  # bytes of a decoded image


def _src(cell) -> str: return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _norm(src: str) -> str:
    """What a cell's code means, not how it is laid out: its syntax tree without cell directives (`#| export`), so a cell
    reformatted (lines wrapped, `a; b` put on two lines) or split into several since the run is still recognised."""
    lines = [l for l in src.splitlines() if not l.lstrip().startswith(("#|", "%", "!"))]
    try: return ast.dump(ast.parse("\n".join(lines)))
    except SyntaxError: return "".join("".join(lines).split())


def _small_png(b64: str) -> str:
    "A PNG over MAX_PNG bytes re-encoded with a 256-colour palette (figures have few colours); else unchanged."
    raw = base64.b64decode(b64)
    if len(raw) <= MAX_PNG: return b64
    from PIL import Image
    im = Image.open(io.BytesIO(raw)).convert("RGB").quantize(256)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode() if buf.tell() < len(raw) else b64


def light_outputs(outputs: list) -> list:
    "The outputs worth committing: no stderr, no widget views, compact images."
    keep = []
    for o in outputs:
        if o.get("output_type") == "stream" and o.get("name") == "stderr": continue
        data = o.get("data")
        if data is not None:
            data = {k: "".join(v) if isinstance(v, list) and all(isinstance(x, str) for x in v) else v
                    for k, v in data.items() if k != "application/vnd.jupyter.widget-view+json"}  # one string each
            if "image/png" in data: data["image/png"] = _small_png("".join(data["image/png"]))
            gif = "".join(data.get("image/gif", ""))
            if gif and len(base64.b64decode(gif)) > MAX_GIF:
                data = {"text/plain": "(animation left out of the stored notebook: run the cell to see it)"}
            if not data: continue
            o = {**o, "data": data}
            o.pop("transient", None)
        keep.append(o)
    return keep


# The README's results table: per stage, (what, model figure, baseline name, baseline figure) from its summary JSON.
HEADLINES = {
    "00_core": [("Pendulum one-step MSE", "pendulum one-step held-out MSE", "no change", "no-change baseline MSE")],
    "04_pixel": [("CoinRun open-loop PSNR h=4 (dB)", "PSNR h=4", "copy last frame", "copy PSNR h=4"),
                 ("CoinRun open-loop PSNR h=32 (dB)", "PSNR h=32", "copy last frame", "copy PSNR h=32")],
    "05_vae": [("CoinRun held-out reconstruction PSNR (dB)", "held-out PSNR VAE (dB)", "mean frame",
                "held-out PSNR mean frame (dB)")],
    "06_mdnrnn": [("CoinRun held-out NLL (nats/dim, lower is better)", "held-out NLL K=5 (nats/dim)", "z stays the same",
                   "held-out NLL z-stays-same (nats/dim)"),
                  ("V+M open-loop PSNR h=4 (dB)", "V+M PSNR h=4", "copy last frame", "copy PSNR h=4"),
                  ("Take Cover done-head ROC AUC", "VizdoomTakeCover-v1 done AUC", "chance", None)],
    "07_dream": [("V+M dream steps/s, 64 batched", "dream steps/s, 64 batched", "one at a time",
                  "dream steps/s, one at a time")],
    "07_dream_controller": [("Take Cover real score, C trained only in the dream (100 episodes)",
                             "real score (100 episodes)", "random policy", "random policy real score"),
                            ("CarRacing real score, C evolved in the real game on V's codes (8 unseen tracks, 250 steps)",
                             "CarRacing real score of the kept C (unseen tracks)", "random policy",
                             "CarRacing random policy (same tracks)")],
    "08_rssm": [("HalfCheetah open-loop MSE h=15 (std units, lower is better)", "RSSM prior MSE h=15", "linear model",
                 "linear MSE h=15"),
                ("CoinRun pixel RSSM open-loop PSNR h=4 (dB)", "pixel RSSM PSNR h=4", "copy last frame", "copy PSNR h=4")],
    "09_tokens": [("VQ tokenizer held-out reconstruction PSNR (dB)", "tokenizer held-out PSNR (dB)", "V (05_vae)",
                   "05_vae:held-out PSNR VAE (dB)"),
                  ("token model open-loop PSNR h=4 (dB)", "PSNR h=4", None, "gain over copy h=4 (dB)"),
                  ("POP imagination speed-up over token by token, batch 1 (x)", "POP speed-up batch 1 (x)", "REM reports",
                   None)],
    "10_evaluation": [("pixel model PSNR h=8 (dB)", "pixel PSNR h=8", "copy last frame", "copy-last-frame PSNR h=8"),
                      ("V+M PSNR h=8 (dB)", "V+M PSNR h=8", "copy last frame", "copy-last-frame PSNR h=8"),
                      ("token model PSNR h=8 (dB)", "tokens PSNR h=8", "copy last frame", "copy-last-frame PSNR h=8")],
}
BASELINE_CONST = {"chance": 0.5, "REM reports": 15.4}


def results_table(course: Path) -> str:
    "Markdown: each stage's headline numbers against its baseline, from the run's summaries."
    rows = ["| stage | measure | model | baseline | baseline value |", "|---|---|---|---|---|"]
    figs_of = {}
    for stage in HEADLINES:
        figs_of[stage] = {}
        for f in sorted((course/stage).glob("summary_*.json")): figs_of[stage].update(json.loads(f.read_text())["figures"])
    for stage, items in HEADLINES.items():
        figs = figs_of[stage]
        for what, key, base, bkey in items:
            if key not in figs: continue
            other, _, okey = (bkey or "").partition(":")
            bval = figs_of.get(other, {}).get(okey) if okey else figs.get(bkey) if bkey else BASELINE_CONST.get(base)
            if base is None:  # the figure is a gain over copy: show the baseline as the model minus the gain
                base, bval = "copy last frame", figs[key] - bval if bval is not None else None
            rows.append(f"| `{stage}` | {what} | {_fmt(figs[key])} | {base} | {_fmt(bval) if bval is not None else '—'} |")
    return "\n".join(rows)


def _fmt(v) -> str: return f"{v:.4g}" if isinstance(v, float) else str(v)


def run_note(course: Path, stage_minutes: float | None, stage: str | None = None) -> str:
    """The markdown that names the run the outputs come from. A stage run again into the same course folder (a line
    "re-run at commit `abc1234`: 04_pixel, 09_tokens" in REPORT.md) is named with the commit it ran at."""
    report = (course/"REPORT.md").read_text() if (course/"REPORT.md").exists() else ""
    m = re.search(r"scale \*\*(\w+)\*\* · started ([\d-]+ [\d:]+) · commit `([^`]+)`", report)
    scale, started, commit = m.groups() if m else ("?", course.name, "unknown")
    for c, names in re.findall(r"re-run at commit `([^`]+)`: ([\w, ]+)", report):
        if stage in [n.strip() for n in names.split(",")]: commit = f"{c}`, re-run on the same data; the run began at `{commit}"
    mins = f", {stage_minutes:.1f} min for this notebook" if stage_minutes is not None else ""
    return (f"> **Stored outputs** come from the reference run of the course at `{scale}` scale, started {started} "
            f"(commit `{commit}`{mins}, on a 2-core CPU), made with `make reference`. Run the notebook to make your own.")


def stage_minutes(course: Path) -> dict:
    "Minutes per stage from the run's REPORT.md status table."
    rows = re.findall(r"^\| (\d\d_\w+) \| ok \| ([\d.]+) \|", (course/"REPORT.md").read_text(), re.M) \
        if (course/"REPORT.md").exists() else []
    return {name: float(m) for name, m in rows}


def store(nb_path: Path, executed: Path, note: str) -> tuple[int, int]:
    "Copy outputs of unchanged code cells from `executed` into `nb_path`; returns (cells given outputs, code cells)."
    nb, ex = json.loads(nb_path.read_text()), json.loads(executed.read_text())
    by_id = {c.get("id"): c for c in ex["cells"] if c["cell_type"] == "code"}
    by_src = {_src(c): c for c in ex["cells"] if c["cell_type"] == "code"}
    by_norm = {_norm(_src(c)): c for c in ex["cells"] if c["cell_type"] == "code"}
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    found = []
    for c in code:
        e = by_id.get(c.get("id"))
        e = e if e is not None and _src(e) == _src(c) else by_src.get(_src(c))
        found.append(e if e is not None else by_norm.get(_norm(_src(c))))
    i = 0
    while i < len(code):  # a cell split since the run: its pieces together equal one executed cell; the last piece shows
        if found[i] is None:  # that cell's outputs, where the reader saw them
            for j in range(i + 1, min(i + 12, len(code))):
                if found[j] is not None: break
                e = by_norm.get(_norm("\n".join(_src(c) for c in code[i:j + 1])))
                if e is not None:
                    found[j], i = e, j
                    break
        i += 1
    n, total = 0, len(code)
    for c, e in zip(code, found):
        c["outputs"] = light_outputs(e.get("outputs", [])) if e is not None else []
        c["execution_count"] = None
        n += bool(c["outputs"])
    cells = [c for c in nb["cells"] if TAG not in c.get("metadata", {}).get("tags", [])]
    title = next((i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and _src(c).lstrip().startswith("# ")), 0)
    cells.insert(title + 1, {"cell_type": "markdown", "id": "refrun00", "metadata": {"tags": [TAG]},
                             "source": note.splitlines(keepends=True)})
    nb["cells"] = cells
    nb.get("metadata", {}).pop("widgets", None)
    _atomic_json(nb_path, nb)
    return n, total


def write_results(index: Path, course: Path):
    "Refresh the README notebook's results cell (tagged `reference-results`) from the run's summaries."
    nb = json.loads(index.read_text())
    cell = next((c for c in nb["cells"] if "reference-results" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None: return print(f"reference: {index} has no cell tagged reference-results; README table not updated")
    text = ("## Results of the reference run\n\n" + run_note(course, None).replace("> **Stored outputs** come from", "From")
            + "\n\n" + results_table(course) + "\n")
    plots = sorted((course/"10_evaluation").glob("**/leaderboard_psnr.png"), key=lambda f: f.stat().st_mtime)
    if plots:  # the leaderboard's plot, every family on the same held-out clips, beside the README's notebook
        (index.parent/"images").mkdir(exist_ok=True)
        shutil.copyfile(plots[-1], index.parent/"images"/"leaderboard_psnr.png")
        text += ("\n![Open-loop PSNR against horizon, every family and the baselines on the same held-out CoinRun "
                 "clips (10_evaluation)](images/leaderboard_psnr.png)\n")
    cell["source"] = text.splitlines(keepends=True)
    _atomic_json(index, nb)


def _atomic_json(path: Path, nb: dict):
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f: f.write(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("course", type=Path, help="a course run folder runs/course_<ts> (with REPORT.md)")
    p.add_argument("--nbs", type=Path, default=Path("nbs"))
    a = p.parse_args(argv)
    if not (a.course/"REPORT.md").exists(): sys.exit(f"reference: {a.course} is not a course run folder (no REPORT.md)")
    mins = stage_minutes(a.course)
    if not mins: sys.exit(f"reference: no stage of {a.course} finished ok; nothing to store")
    before = sum(f.stat().st_size for f in a.nbs.glob("[0-8][0-9]_*.ipynb"))
    for name, m in sorted(mins.items()):
        nb, ex = a.nbs/f"{name}.ipynb", a.course/f"{name}.ipynb"
        if not nb.exists() or not ex.exists():
            print(f"reference: skip {name} (notebook or executed copy missing)")
            continue
        n, total = store(nb, ex, run_note(a.course, m, name))
        print(f"reference: {name}: outputs stored in {n} of {total} code cells")
    if (a.nbs/"index.ipynb").exists(): write_results(a.nbs/"index.ipynb", a.course)
    after = sum(f.stat().st_size for f in a.nbs.glob("[0-8][0-9]_*.ipynb"))
    print(f"reference: stage notebooks {before / 1e6:.2f} MB -> {after / 1e6:.2f} MB")


if __name__ == "__main__": main()
