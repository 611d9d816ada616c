"""The docs site without Quarto: every notebook, with its stored outputs, as a static HTML page in `_docs/`.

    python tools/site.py [--nbs nbs] [--out _docs]      # what `make docs` runs where Quarto is not installed

nbdev's own site (`nbdev-docs`) needs Quarto. This fallback gives a reader the same content to browse locally:
`index.html` is the README's notebook (nbs/index.ipynb), then one page per notebook in course order with a sidebar.
Like nbdev's processing it leaves out `#| hide` cells and the `#| ...` directive lines, and executes nothing: what a
page shows is what the notebook stores (`make reference` stores a quick run's outputs)."""
import argparse, html, json, os, re, shutil, sys, tempfile
from pathlib import Path

CSS = """
body { margin: 0; }
nav.wm-sidebar { position: fixed; top: 0; left: 0; bottom: 0; width: 250px; overflow-y: auto; padding: 1em;
  background: #f6f7f9; border-right: 1px solid #ddd; font: 14px/1.4 system-ui, sans-serif; box-sizing: border-box; }
nav.wm-sidebar a { display: block; padding: .25em .4em; color: #234; text-decoration: none; border-radius: 4px; }
nav.wm-sidebar a.current { background: #dde6f3; font-weight: 600; }
nav.wm-sidebar h2 { font-size: 15px; margin: 0 0 .6em; }
main.wm-main { margin-left: 260px; max-width: 1100px; padding: 0 1em; }
"""


def _src(cell) -> str: return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def course_order(nbs: Path) -> list[Path]:
    "index first, then the numbered notebooks in order."
    return [p for p in [nbs/"index.ipynb", *sorted(nbs.glob("[0-9][0-9]_*.ipynb"))] if p.exists()]


def title_of(nb: dict, fallback: str) -> str:
    "The notebook's first markdown heading."
    for c in nb["cells"]:
        m = re.search(r"^#\s+(.+)$", _src(c), re.M) if c["cell_type"] == "markdown" else None
        if m: return m.group(1).strip().replace("`", "")
    return fallback


def for_readers(nb: dict) -> dict:
    "The notebook as a reader sees it: no hidden cells, no directive lines, no export bookkeeping."
    cells = []
    for c in nb["cells"]:
        s = _src(c)
        if c["cell_type"] == "code":
            lines = s.splitlines()
            if any(l.strip() in ("#| hide", "#|hide") for l in lines) or "interactive_export" in s: continue
            if any(l.strip().startswith("#| default_exp") for l in lines): continue
            s = "\n".join(l for l in lines if not l.lstrip().startswith("#|"))
            if not s.strip() and not c.get("outputs"): continue
        cells.append({**c, "source": s})
    return {**nb, "cells": cells}


def page_name(p: Path) -> str: return "index.html" if p.stem == "index" else f"{p.stem}.html"


def sidebar(pages: list[tuple[str, str]], current: str) -> str:
    links = "".join(f'<a href="{n}"{" class=current" if n == current else ""}>{html.escape(t)}</a>' for n, t in pages)
    return f'<nav class="wm-sidebar"><h2>worldmodels_nb</h2>{links}</nav>'


def build(nbs: Path, out: Path) -> list[Path]:
    "Write one HTML page per notebook into `out` (replaced atomically); returns the pages."
    import nbformat
    from nbconvert import HTMLExporter
    srcs = course_order(nbs)
    if not srcs: sys.exit(f"site: no notebooks in {nbs}")
    books = {p: nbformat.reads(p.read_text(), as_version=4) for p in srcs}  # rejoins multi-line outputs
    pages = [(page_name(p), title_of(nb, p.stem)) for p, nb in books.items()]
    exporter = HTMLExporter(template_name="lab")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=".site-"))
    tmp.chmod(0o755)
    for p, nb in books.items():
        body, _ = exporter.from_notebook_node(nbformat.from_dict(for_readers(nb)))
        name = page_name(p)
        body = body.replace("</head>", f"<style>{CSS}</style></head>", 1)
        body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + sidebar(pages, name) + '<main class="wm-main">', body, 1)
        body = body.replace("</body>", "</main></body>", 1)
        (tmp/name).write_text(body)
    if (nbs/"images").is_dir(): shutil.copytree(nbs/"images", tmp/"images")  # figures the markdown cells link to
    if out.exists(): shutil.rmtree(out)
    os.replace(tmp, out)
    return [out/n for n, _ in pages]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nbs", type=Path, default=Path("nbs"))
    ap.add_argument("--out", type=Path, default=Path("_docs"))
    a = ap.parse_args(argv)
    pages = build(a.nbs, a.out)
    print(f"site: {len(pages)} pages in {a.out}/ (open {a.out/'index.html'})")


if __name__ == "__main__": main()
