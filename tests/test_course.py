"Tests of the course runner `wm-course`: the real notebooks at smoke scale, and a failing stage."
import json, os, subprocess, sys
from pathlib import Path
import nbformat
from nbformat.v4 import new_notebook, new_code_cell

ROOT = Path(__file__).resolve().parent.parent

def wm_course(*args, cwd=ROOT, env=None):
    return subprocess.run([sys.executable, "-c", "from worldmodels_nb.course import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd, env=env)

def png_outputs(nb_path) -> int:
    "How many figures (image/png outputs) an executed notebook holds."
    nb = nbformat.read(str(nb_path), as_version=4)
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)

def make_nb(path, body):
    nb = new_notebook(cells=[new_code_cell('scale = "smoke"\nout_dir = "."', metadata={"tags": ["parameters"]}),
                             new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    nbformat.write(nb, str(path))

def test_failing_stage_is_reported_and_the_runner_goes_on(tmp_path):
    nbs = tmp_path/"nbs"; nbs.mkdir()
    ok = 'from worldmodels_nb.core import save_summary\nsave_summary(out_dir, "{0}", {{"answer": 42, "scale": scale}})'
    make_nb(nbs/"00_first.ipynb", ok.format("first"))
    make_nb(nbs/"01_broken.ipynb", 'raise ValueError("boom: the data folder is missing")')
    make_nb(nbs/"02_after.ipynb", ok.format("after"))
    make_nb(nbs/"90_tooling.ipynb", 'raise SystemExit("tooling notebooks are not stages")')
    res = wm_course("--scale", "smoke", "--nbs", str(nbs), "--out", str(tmp_path/"out"))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "FAILED stages: 01_broken" in res.stdout
    report = next((tmp_path/"out").glob("course_*/REPORT.md")).read_text()
    assert "| 00_first | ok |" in report and "| 01_broken | **FAILED** |" in report and "| 02_after | ok |" in report
    assert "ValueError: boom: the data folder is missing" in report
    assert "| answer | 42 |" in report and "| scale | smoke |" in report and "90_tooling" not in report
    assert len(list((tmp_path/"out").glob("course_*/*.ipynb"))) == 3  # executed notebooks, failed one included

def test_bad_arguments_fail_with_one_line(tmp_path):
    res = wm_course("--scale", "smoke", "--only", "zz", "--out", str(tmp_path))
    assert res.returncode != 0 and "wm-course: no stage notebook matches ['zz']" in res.stderr
    res = wm_course("--scale", "huge")
    assert res.returncode != 0 and "invalid choice: 'huge'" in res.stderr

def test_course_smoke_on_the_real_notebooks(tmp_path):
    "Every stage runs at smoke; the executed notebooks keep their figures even when the caller's MPLBACKEND is Agg."
    committed = {p: p.read_bytes() for p in (ROOT/"nbs").glob("*.ipynb")}
    res = wm_course("--scale", "smoke", "--out", str(tmp_path), env={**os.environ, "MPLBACKEND": "Agg"})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    course = next(tmp_path.glob("course_*"))
    report = (course/"REPORT.md").read_text()
    stages = sorted(p.stem for p in (ROOT/"nbs").glob("[0-8][0-9]_*.ipynb"))
    for s in stages: assert f"| {s} | ok |" in report
    core = json.loads((course/"00_core"/"summary_core.json").read_text())
    assert core["figures"]["training steps"] > 0
    for s in stages:  # every plt.show() lands in the executed notebook as a PNG
        src = nbformat.read(str(ROOT/"nbs"/f"{s}.ipynb"), as_version=4)
        shows = sum(c.source.count("plt.show()") for c in src.cells if c.cell_type == "code")
        assert png_outputs(course/f"{s}.ipynb") >= min(shows, 1), f"{s}: {shows} plt.show() calls but no figure stored"
    assert all(p.read_bytes() == b for p, b in committed.items()), "a smoke run overwrote the committed notebooks' outputs"

def test_course_run_never_exports_into_the_library(tmp_path):
    "A stage's final export cell, executed by wm-course, leaves the library alone; the kernels get WM_NO_EXPORT and OMP_NUM_THREADS."
    proj = tmp_path/"proj"; (proj/"nbs").mkdir(parents=True); (proj/"worldmodels_nb").mkdir()
    (proj/"pyproject.toml").write_text((ROOT/"pyproject.toml").read_text())
    (proj/"worldmodels_nb"/"__init__.py").write_text("")
    lib = lambda: {p.name: p.read_bytes() for p in (proj/"worldmodels_nb").iterdir()}
    before = lib()
    nb = new_notebook(cells=[new_code_cell("#| default_exp tiny"),
                             new_code_cell('scale = "smoke"\nout_dir = "."', metadata={"tags": ["parameters"]}),
                             new_code_cell("#| export\ndef answer(): return 42"),
                             new_code_cell('import os, json\nfrom worldmodels_nb.core import save_summary\n'
                                           'save_summary(out_dir, "tiny", {k: os.environ.get(k, "unset") for k in ("WM_NO_EXPORT", "OMP_NUM_THREADS", "MPLBACKEND")})'),
                             new_code_cell(_final_cell())])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    nbformat.write(nb, str(proj/"nbs"/"00_tiny.ipynb"))
    res = wm_course("--scale", "smoke", "--nbs", str(proj/"nbs"), "--out", str(tmp_path/"out"), cwd=tmp_path,
                    env={**os.environ, "MPLBACKEND": "Agg"})
    assert res.returncode == 0, res.stdout + res.stderr
    assert lib() == before, "the course run wrote into the library"
    figs = json.loads(next((tmp_path/"out").glob("course_*/00_tiny/summary_tiny.json")).read_text())["figures"]
    assert figs["WM_NO_EXPORT"] == "1" and int(figs["OMP_NUM_THREADS"]) >= 1
    assert figs["MPLBACKEND"] in ("unset", "module://matplotlib_inline.backend_inline"), \
        f"the kernel's backend is {figs['MPLBACKEND']}: a kernel with MPLBACKEND=Agg drops every inline figure"
    env = {k: v for k, v in os.environ.items() if k not in ("WM_NO_EXPORT", "IN_TEST")}  # papermill by hand: no hint in the environment
    res = subprocess.run([sys.executable, "-m", "papermill", str(proj/"nbs"/"00_tiny.ipynb"), str(tmp_path/"by_hand.ipynb"),
                          "-p", "out_dir", str(tmp_path), "--cwd", str(proj/"nbs")], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert lib() == before, "papermill wrote into the library"

def _final_cell() -> str:
    "The last cell of a real stage notebook: the one that exports the library when a person runs it."
    src = nbformat.read(str(ROOT/"nbs"/"04_pixel.ipynb"), as_version=4).cells[-1].source
    assert "interactive_export" in src or "nbdev_export" in src
    return src
