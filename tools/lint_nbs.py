"""List notebook cells that nbdev's docs processing would execute out of context.

nbdev (`nbdev-proc-nbs`, `nbdev-docs`) runs every cell that contains an import *anywhere* (even inside a function),
to make `show_doc` work. A cell that imports and also computes something then runs without the cells before it and
fails. Rule: a non-exported code cell either only imports, or contains no import at all."""
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

if __name__ == '__main__':
    bad = [(nb, i, first) for nb in sorted(Path('nbs').glob('*.ipynb')) for i, first in offenders(nb)]
    for nb, i, first in bad: print(f'{nb}: cell {i} mixes imports with code (nbdev docs would run it out of context): {first!r}')
    sys.exit(1 if bad else 0)
