"`make reference` (tools/reference.py): a course run's outputs stored in the committed notebooks, and only true ones."
import base64, io, json, subprocess, sys
from pathlib import Path
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parent.parent


def png(size=64) -> str:
    from PIL import Image
    buf = io.BytesIO()
    Image.effect_noise((size, size), 60).convert("RGB").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_outputs_of_unchanged_cells_are_stored_and_named(tmp_path):
    nbs, course = tmp_path/"nbs", tmp_path/"runs"/"course_x"
    nbs.mkdir(), course.mkdir(parents=True)
    cells = [new_markdown_cell("# A stage\n\n> what it does"), new_code_cell("print(1)"), new_code_cell("plot()"),
             new_code_cell("edited_after_the_run()")]
    nbformat.write(new_notebook(cells=cells), str(nbs/"04_x.ipynb"))
    ex = new_notebook(cells=[c.copy() for c in cells])
    ex.cells[1].outputs = [new_output("stream", name="stdout", text="1\n"), new_output("stream", name="stderr", text="10%|#")]
    ex.cells[2].outputs = [new_output("display_data", data={"image/png": png(400), "text/plain": "<Figure>"})]
    ex.cells[3].source, ex.cells[3].outputs = "old_code()", [new_output("stream", name="stdout", text="stale\n")]
    nbformat.write(ex, str(course/"04_x.ipynb"))
    (course/"REPORT.md").write_text("scale **quick** · started 2026-12-02 10:00:00 · commit `abc1234` · 1/1 stages ok\n\n"
                                     "| stage | status | minutes | executed notebook |\n|---|---|---|---|\n| 04_x | ok | 3.2 | x |\n")
    for _ in range(2):  # a second run replaces the note instead of adding one
        res = subprocess.run([sys.executable, str(ROOT/"tools"/"reference.py"), str(course), "--nbs", str(nbs)],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
    nb = nbformat.read(str(nbs/"04_x.ipynb"), as_version=4)
    notes = [c for c in nb.cells if "reference-run" in c.metadata.get("tags", [])]
    assert len(notes) == 1 and nb.cells[1] is notes[0], "one note, right under the title"
    assert "`quick`" in notes[0].source and "abc1234" in notes[0].source and "3.2 min" in notes[0].source
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [o.get("name") for o in code[0].outputs] == ["stdout"], "stderr (progress bars) is dropped"
    assert "image/png" in code[1].outputs[0]["data"]
    assert code[2].outputs == [], "a cell edited since the run gets no (stale) output"


def test_a_folder_that_is_not_a_course_run_is_refused(tmp_path):
    res = subprocess.run([sys.executable, str(ROOT/"tools"/"reference.py"), str(tmp_path)], capture_output=True, text=True)
    assert res.returncode != 0 and "is not a course run folder" in res.stderr and "Traceback" not in res.stderr


def store_one(tmp_path, executed: list, now: list) -> list:
    "Run reference.py on a one-stage course whose executed notebook has `executed` cells; the code cells of `now` after."
    nbs, course = tmp_path/"nbs", tmp_path/"runs"/"course_x"
    nbs.mkdir(), course.mkdir(parents=True)
    nbformat.write(new_notebook(cells=executed), str(course/"04_x.ipynb"))
    nbformat.write(new_notebook(cells=now), str(nbs/"04_x.ipynb"))
    (course/"REPORT.md").write_text("scale **quick** · commit `abc1234`\n\n| stage | status | minutes | executed notebook |\n"
                                     "|---|---|---|---|\n| 04_x | ok | 1.0 | x |\n")
    res = subprocess.run([sys.executable, str(ROOT/"tools"/"reference.py"), str(course), "--nbs", str(nbs)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return [c for c in nbformat.read(str(nbs/"04_x.ipynb"), as_version=4).cells if c.cell_type == "code"]


def test_a_cell_split_since_the_run_shows_its_outputs_under_the_last_piece(tmp_path):
    run_cell = new_code_cell("#| export\ndef f(): return 1\n\nclass A: pass\nprint(f())")
    run_cell.outputs = [new_output("stream", name="stdout", text="1\n")]
    split = [new_markdown_cell("# A stage"), new_code_cell("#| export\ndef f(): return 1"),
             new_code_cell("#| export\nclass A: pass"), new_code_cell("print(f())"), new_code_cell("print(2)")]
    code = store_one(tmp_path, [new_markdown_cell("# A stage"), run_cell], split)
    assert [len(c.outputs) for c in code] == [0, 0, 1, 0], "the last piece gets the outputs; a new cell gets none"
    assert code[2].outputs[0]["text"] == "1\n"


def test_a_reformatted_cell_keeps_its_outputs_and_a_changed_one_does_not(tmp_path):
    a, b = new_code_cell("x = 1; print(x)"), new_code_cell("print(2)")
    for c, t in ((a, "1\n"), (b, "2\n")): c.outputs = [new_output("stream", name="stdout", text=t)]
    now = [new_markdown_cell("# A stage"), new_code_cell("x = 1\nprint(\n    x,\n)"), new_code_cell("print(3)")]
    code = store_one(tmp_path, [new_markdown_cell("# A stage"), a, b], now)
    assert [len(c.outputs) for c in code] == [1, 0]

def test_a_stage_run_again_into_the_folder_is_named_with_its_own_commit(tmp_path):
    sys.path.insert(0, str(ROOT/"tools"))
    import reference
    course = tmp_path/"course_x"
    course.mkdir()
    (course/"REPORT.md").write_text("scale **quick** · started 2026-12-02 08:00:00 · commit `aaa1111` · 2/2 stages ok\n\n"
                                     "re-run at commit `bbb2222`: 04_x, 09_y\n")
    assert "`bbb2222`" in reference.run_note(course, 1.0, "09_y") and "`aaa1111`" in reference.run_note(course, 1.0, "09_y")
    assert "bbb2222" not in reference.run_note(course, 1.0, "05_z")
