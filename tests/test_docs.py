"The docs site as a reader sees it: built without Quarto by `make docs` (tools/site.py), opened in headless Chromium."
import functools, http.server, json, os, shutil, subprocess, sys, threading
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT/"tests"/"artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def has_figure(nb_path: Path) -> bool:
    "A stored figure output, or a markdown image of nbs/images/ (e.g. the explorer's recorded GIF)."
    nb = json.loads(nb_path.read_text())
    src = lambda c: "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
    return any("image/png" in o.get("data", {}) for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]) \
        or any("](images/" in src(c) for c in nb["cells"] if c["cell_type"] == "markdown")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")/"_docs"
    res = subprocess.run([sys.executable, "tools/site.py", "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield out, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_site_has_a_page_per_notebook_in_course_order(site):
    out, _ = site
    nbs = sorted(p.stem for p in (ROOT/"nbs").glob("[0-9][0-9]_*.ipynb"))
    assert (out/"index.html").exists() and all((out/f"{s}.html").exists() for s in nbs)
    page = (out/"index.html").read_text()
    links = [page.index(f'href="{s}.html"') for s in nbs]
    assert links == sorted(links), "the sidebar lists the notebooks in course order"
    assert "#| export" not in (out/"03_metrics.html").read_text(), "directives are hidden from readers"


def test_two_pages_render_with_a_loaded_figure_in_chromium(site):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true": pytest.fail("CI must install Debian's chromium (.ci/run does)")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright
    _, url = site
    figure_pages = [p.stem for p in sorted((ROOT/"nbs").glob("[0-9][0-9]_*.ipynb")) if has_figure(p)]
    assert figure_pages, "no notebook page has a figure: run `make reference`"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for name in ("index", figure_pages[0]):
            page.goto(f"{url}/{name}.html")
            page.wait_for_load_state("load")
            assert page.locator("nav.wm-sidebar a").count() >= 10
            if name != "index":
                loaded = page.evaluate("() => [...document.images].filter(i => i.complete && i.naturalWidth > 0).length")
                assert loaded >= 1, f"{name}: no figure image loaded"
                page.locator("img").first.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS/f"docs_{name}.png"))
            assert (ARTIFACTS/f"docs_{name}.png").stat().st_size > 10_000
        browser.close()
