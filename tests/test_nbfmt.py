"`tools/nbfmt.py`: long lines and `;` chains in notebook code fixed, the syntax tree (and so the stored outputs) kept."
import ast, subprocess, sys
from pathlib import Path
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/"tools"))
import nbfmt  # noqa: E402

LONG_CALL = ("result = some_function(first_argument_name=1, second_argument_name=2, third_argument_name=3, "
             "fourth_argument_name=4, fifth=5)")
CELL = "\n".join([
    "#| export",
    "%time x = 1",
    "def f(x): return x  # a one-liner that fits stays a one-liner",
    "a = 1; b = 2",
    "if a: c = 3; d = 4",
    LONG_CALL,
    "y = 0  # " + "a long trailing comment " * 6,
    "msg = " + repr("word " * 30),
    "!echo done"])


def run(*args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT/"tools"/"nbfmt.py"), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)


def write_nb(path: Path, src: str = CELL):
    code = new_code_cell(src)
    code.outputs = [new_output("stream", name="stdout", text="stored output\n")]
    nbformat.write(new_notebook(cells=[new_markdown_cell("# A stage"), code, new_code_cell("print(1)")]), str(path))
    return code.id


def test_long_lines_and_chains_are_fixed_keeping_tree_directives_magics_ids_and_outputs(tmp_path):
    nb_path = tmp_path/"x.ipynb"
    cid = write_nb(nb_path)
    assert run("--check", nb_path).returncode == 1
    res = run(nb_path)
    assert res.returncode == 0 and res.stdout == "", res.stdout + res.stderr
    cell = nbformat.read(str(nb_path), as_version=4).cells[1]
    new = cell.source
    assert all(len(l) <= nbfmt.MAX for l in new.splitlines()), new
    assert nbfmt.semicolon_lines(nbfmt.set_aside(new)[0]) == []
    assert nbfmt.tree(new) == nbfmt.tree(CELL) is not None, "same syntax tree: tools/reference.py keeps the outputs"
    lines = new.splitlines()
    assert lines[:2] == ["#| export", "%time x = 1"] and lines[-1] == "!echo done", "directive and magics kept in place"
    assert "def f(x): return x  # a one-liner that fits stays a one-liner" in lines, "lines that fit are not touched"
    assert "a = 1" in lines and "b = 2" in lines and "    c = 3" in lines and "    d = 4" in lines
    assert cell.id == cid and cell.outputs[0]["text"] == "stored output\n"
    assert run("--check", nb_path).returncode == 0
    src = nb_path.read_text()
    assert run(nb_path).returncode == 0 and nb_path.read_text() == src, "a second run changes nothing"


def test_a_long_string_is_split_by_implicit_concatenation():
    src = 'def g():\n    "' + "a docstring word " * 9 + '"\n    return f"{1 + 2} ' + "is three " * 14 + '"'
    new, why = nbfmt.fix_cell(src)
    assert why is None and all(len(l) <= nbfmt.MAX for l in new.splitlines()), new
    assert ast.dump(ast.parse(new)) == ast.dump(ast.parse(src))
    assert ast.get_docstring(ast.parse(new).body[0], clean=False) == "a docstring word " * 9


def test_a_cell_that_cannot_be_fixed_is_left_as_it_is_and_reported(tmp_path):
    nb_path = tmp_path/"x.ipynb"
    unfixable = "x = 1  # ok\n%config InlineBackend.figure_format = " + repr("z" * 130)  # magics are never rewritten
    write_nb(nb_path, unfixable)
    res = run(nb_path)
    assert "cell 1: still 1 offending line(s): line 2 " in res.stdout, res.stdout
    assert nbformat.read(str(nb_path), as_version=4).cells[1].source == unfixable
    chk = run("--check", nb_path)
    assert chk.returncode == 1 and f"{nb_path}: cell 1 line 2: " in chk.stdout


def test_a_missing_notebook_is_a_one_line_error(tmp_path):
    res = run("--check", tmp_path/"nope.ipynb")
    assert res.returncode != 0 and "no such notebook" in res.stderr and "Traceback" not in res.stderr
