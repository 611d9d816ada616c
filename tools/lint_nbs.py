"""List notebook cells that nbdev's docs processing would execute out of context.

nbdev (`nbdev-proc-nbs`, `nbdev-docs`) runs every cell that contains an import *anywhere* (even inside a function),
to make `show_doc` work. A cell that imports and also computes something then runs without the cells before it and
fails. Rule: a non-exported code cell either only imports, or contains no import at all.

Also: no notebook carries ipywidgets state (`metadata.widgets`, written by an executed notebook that made widgets, e.g.
11_explorer; it holds every widget's value, images included, and nbdev-clean keeps it). `--strip-widgets` removes it."""
import ast, json, sys
from pathlib import Path

def offenders(nb_path):
    nb = json.loads(Path(nb_path).read_text())
    for i, c in enumerate(nb['cells']):
        src = ''.join(c['source']) if isinstance(c['source'], list) else c['source']
        if c['cell_type'] != 'code' or 'nbdev_export()' in src or any(l.strip().startswith(('#| export', '#|export', '#| exporti', '#| exports')) for l in src.splitlines()):
            continue
        try: tree = ast.parse('\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('%', '!'))))
        except SyntaxError: continue
        has_imp = any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(tree))
        only_imp = all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in tree.body)
        if has_imp and not only_imp: yield i, src.splitlines()[0][:80]

def widget_state(nb_path) -> int:
    "Size in bytes of the notebook's ipywidgets state (0 if none)."
    return len(json.dumps(json.loads(Path(nb_path).read_text()).get('metadata', {}).get('widgets', ''))) - 2

def strip_widget_state(nb_path):
    nb = json.loads(Path(nb_path).read_text())
    if nb.get('metadata', {}).pop('widgets', None) is not None: Path(nb_path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')

if __name__ == '__main__':
    nbs = sorted(Path('nbs').glob('*.ipynb'))
    if '--strip-widgets' in sys.argv:
        for nb in nbs: strip_widget_state(nb)
    bad = [(nb, i, first) for nb in nbs for i, first in offenders(nb)]
    for nb, i, first in bad: print(f'{nb}: cell {i} mixes imports with code (nbdev docs would run it out of context): {first!r}')
    heavy = [(nb, n) for nb in nbs if (n := widget_state(nb)) > 0]
    for nb, n in heavy: print(f'{nb}: carries {n / 1e3:.0f} kB of ipywidgets state (metadata.widgets); drop it: python tools/lint_nbs.py --strip-widgets')
    sys.exit(1 if bad or heavy else 0)
