"""Fail if `nbdev-export` or `nbdev-clean` would change any file: the library must be in sync with the
notebooks and the notebooks must be clean. Works with or without uncommitted changes (compares file hashes)."""
import hashlib, subprocess, sys
from pathlib import Path

def snapshot():
    files = [*Path('worldmodels_nb').rglob('*.py'), *Path('nbs').rglob('*.ipynb')]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files
            if '.ipynb_checkpoints' not in f.parts and '_proc' not in f.parts}

def changed_by(cmd):
    before = snapshot()
    subprocess.run(cmd, check=True)
    after = snapshot()
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))

bad = False
for cmd, what, fix in [(['nbdev-export'], 'library out of sync with notebooks', 'nbdev-export'),
                       (['nbdev-clean'], 'notebooks not clean', 'nbdev-clean')]:
    ch = changed_by(cmd)
    if ch:
        bad = True
        print(f'check-sync: {what}: {", ".join(ch)} (they were rewritten now: run `{fix}` before committing)')
if subprocess.run([sys.executable, 'tools/readme.py', '--check']).returncode:
    bad = True
if subprocess.run([sys.executable, 'tools/lint_nbs.py']).returncode:
    bad = True
if subprocess.run([sys.executable, 'tools/nbfmt.py', '--check']).returncode:  # lines <= 120, no `;` chains
    bad = True
if bad: sys.exit(1)
print('check-sync: library in sync with notebooks; notebooks clean')
