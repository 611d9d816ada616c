"""Edit notebook cells in place, keeping every other cell (and its id) untouched.

From Python (`sys.path.insert(0, "tools"); import nbedit`) or the shell:

    python tools/nbedit.py show    nbs/06_mdnrnn.ipynb [SUBSTRING]       # list cells (index, id, type, first line)
    python tools/nbedit.py cat     nbs/06_mdnrnn.ipynb ID_OR_INDEX       # print one cell's source
    python tools/nbedit.py replace nbs/06_mdnrnn.ipynb OLD_FILE NEW_FILE  # replace text that occurs exactly once
    python tools/nbedit.py set     nbs/06_mdnrnn.ipynb ID_OR_INDEX SRC_FILE
    python tools/nbedit.py insert  nbs/06_mdnrnn.ipynb AFTER_ID_OR_INDEX code|markdown SRC_FILE
    python tools/nbedit.py delete  nbs/06_mdnrnn.ipynb ID_OR_INDEX [...]

Every write re-reads the file first, so edits by several people to different cells of one notebook do not clobber
each other. Run `nbdev-clean` and `nbdev-export` afterwards."""
import json, sys, uuid
from pathlib import Path

def load(path): return json.loads(Path(path).read_text())

def save(path, nb): Path(path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")

def src(cell) -> str: return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]

def _lines(text: str) -> list: return text.splitlines(keepends=True)

def find(nb, key) -> int:
    "Index of the cell with id `key`, or `key` itself if it is an int (or digits)."
    if isinstance(key, int) or str(key).lstrip("-").isdigit(): return int(key)
    hits = [i for i, c in enumerate(nb["cells"]) if c.get("id") == key]
    if len(hits) != 1: raise KeyError(f"no single cell with id {key!r}")
    return hits[0]

def show(path, sub=None):
    for i, c in enumerate(load(path)["cells"]):
        s = src(c)
        if sub and sub not in s: continue
        print(f"{i:3d} {c.get('id', '-'):>10} {c['cell_type'][:4]} {(s.splitlines() or [''])[0][:110]}")

def replace(path, old: str, new: str, count: int = 1):
    "Replace `old` by `new`; `old` must occur exactly `count` times in the whole notebook."
    nb = load(path)
    n = sum(src(c).count(old) for c in nb["cells"])
    if n != count: raise ValueError(f"{path}: {old[:60]!r} occurs {n} times, expected {count}")
    for c in nb["cells"]:
        if old in src(c): c["source"] = _lines(src(c).replace(old, new))
    save(path, nb)

def set_source(path, key, text: str):
    nb = load(path); nb["cells"][find(nb, key)]["source"] = _lines(text.strip("\n")); save(path, nb)

def new_cell(kind: str, text: str) -> dict:
    c = dict(cell_type=kind, id=uuid.uuid4().hex[:8], metadata={}, source=_lines(text.strip("\n")))
    if kind == "code": c.update(execution_count=None, outputs=[])
    return c

def insert(path, after, kind: str, text: str) -> str:
    "Insert a new cell after cell `after` (id or index; -1 = at the top); returns its id."
    nb = load(path); i = -1 if str(after) == "-1" else find(nb, after)
    c = new_cell(kind, text); nb["cells"].insert(i + 1, c); save(path, nb)
    return c["id"]

def delete(path, *keys):
    nb = load(path); idx = sorted((find(nb, k) for k in keys), reverse=True)
    for i in idx: del nb["cells"][i]
    save(path, nb)

if __name__ == "__main__":
    cmd, path, *rest = sys.argv[1:]
    if cmd == "show": show(path, *rest)
    elif cmd == "cat": print(src(load(path)["cells"][find(load(path), rest[0])]))
    elif cmd == "replace": replace(path, Path(rest[0]).read_text(), Path(rest[1]).read_text())
    elif cmd == "set": set_source(path, rest[0], Path(rest[1]).read_text())
    elif cmd == "insert": print(insert(path, rest[0], rest[1], Path(rest[2]).read_text()))
    elif cmd == "delete": delete(path, *rest)
    else: sys.exit(f"unknown command {cmd!r}; use show, cat, replace, set, insert or delete")
