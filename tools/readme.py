"""Write README.md from nbs/index.ipynb (its markdown cells), without Quarto.

`nbdev-readme` renders through Quarto, which cannot be installed on every machine; the README of this project is
plain Markdown, so we concatenate the index notebook's markdown cells (image links `images/x` become `nbs/images/x`). `--check` fails if README.md is stale."""
import json, re, sys
from pathlib import Path

def render(nb_path='nbs/index.ipynb') -> str:
    nb = json.loads(Path(nb_path).read_text())
    cells = [''.join(c['source']) if isinstance(c['source'], list) else c['source'] for c in nb['cells'] if c['cell_type'] == 'markdown']
    head = '<!-- generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file -->\n\n'
    text = head + '\n\n'.join(c.strip() for c in cells) + '\n'
    return re.sub(r'\]\(images/', '](nbs/images/', text)  # the notebook links images beside it; README sits one level up

if __name__ == '__main__':
    text, readme = render(), Path('README.md')
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text() != text: sys.exit('README.md is stale: run `python tools/readme.py`')
    else: readme.write_text(text)
