"""Convert notebooks to and from a plain-text "percent" form, for editing notebooks as text.

    python tools/nbtext.py to-nb  nbs/_drafts/00_core.py  nbs/00_core.ipynb
    python tools/nbtext.py to-py  nbs/00_core.ipynb       /tmp/00_core.py

Cells start with `# %%` (code) or `# %% [markdown]` (markdown, each line prefixed by `# `).
Cell tags: `# %% tags=["parameters"]`. Outputs are dropped (run `nbdev-clean` afterwards anyway).
"""
import json, re, sys, uuid
from pathlib import Path

HDR = re.compile(r'^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$')

def py2nb(src: str) -> dict:
    cells, cur = [], None
    for line in src.splitlines():
        m = HDR.match(line)
        if m:
            cur = dict(md=bool(m['md']), tags=json.loads(m['tags']) if m['tags'] else [], lines=[])
            cells.append(cur)
        elif cur is not None: cur['lines'].append(line)
    out = []
    for c in cells:
        lines = c['lines']
        while lines and not lines[-1].strip(): lines.pop()
        while lines and not lines[0].strip(): lines.pop(0)
        if c['md']: lines = [l[2:] if l.startswith('# ') else l.lstrip('#') for l in lines]
        text = '\n'.join(lines)
        meta = {'tags': c['tags']} if c['tags'] else {}
        cid = uuid.uuid4().hex[:8]
        if c['md']: out.append(dict(cell_type='markdown', id=cid, metadata=meta, source=text))
        else: out.append(dict(cell_type='code', id=cid, metadata=meta, source=text, outputs=[], execution_count=None))
    return dict(cells=out, metadata=dict(kernelspec=dict(display_name='python3', language='python', name='python3')),
                nbformat=4, nbformat_minor=5)

def nb2py(nb: dict) -> str:
    parts = []
    for c in nb['cells']:
        src = ''.join(c['source']) if isinstance(c['source'], list) else c['source']
        tags = c.get('metadata', {}).get('tags')
        t = f' tags={json.dumps(tags)}' if tags else ''
        if c['cell_type'] == 'markdown':
            parts.append(f'# %% [markdown]{t}\n' + '\n'.join(('# ' + l) if l else '#' for l in src.splitlines()))
        else: parts.append(f'# %%{t}\n{src}')
    return '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    cmd, src, dst = sys.argv[1:4]
    if cmd == 'to-nb': Path(dst).write_text(json.dumps(py2nb(Path(src).read_text()), indent=1) + '\n')
    elif cmd == 'to-py': Path(dst).write_text(nb2py(json.loads(Path(src).read_text())))
    else: sys.exit(f'unknown command {cmd!r}; use to-nb or to-py')
