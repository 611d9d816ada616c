"""The explorer as a person uses it: JupyterLab on localhost, Debian's chromium driven by Playwright, a click on an action button,
the frame on the page changes. The screenshot is kept in tests/artifacts/ (gitignored). Under CI=true this test never skips."""
import json, os, secrets, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from test_explorer import pixel_checkpoint
from worldmodels_nb.data import EpisodeDataset, collect

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT/"tests"/"artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
STEP = "() => [...document.querySelectorAll('.jp-OutputArea .widget-html-content')].some(e => e.innerText.includes('step {}'))"
# What the run of the explorer's cell has come to: its frame is on the page, or the cell printed a traceback, or neither yet.
OUTCOME = """() => {
  const img = document.querySelector('.jp-OutputArea .widget-image');
  if (img && img.getBoundingClientRect().width > 0) return 'frame';
  const out = [...document.querySelectorAll('.jp-OutputArea-output')].map(e => e.innerText).join('\\n');
  return /Traceback/.test(out) ? 'error' : false;
}"""
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]

def need(ok: bool, why: str):
    "Skip outside CI when something the browser test needs is missing; under CI=true that is a failure."
    if ok: return
    if os.environ.get("CI") == "true": pytest.fail(f"CI=true and {why}: .ci/run installs it (apt chromium, pip playwright)")
    pytest.skip(why)

def free_port() -> int:
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def wait_for_server(url: str, proc, timeout: float = 120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None: raise RuntimeError(f"jupyter lab exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200: return
        except OSError: time.sleep(0.5)
    raise TimeoutError(f"jupyter lab did not answer at {url} within {timeout}s")

@pytest.fixture
def lab(tmp_path):
    "A JupyterLab server on a free localhost port with a token, rooted at a folder holding a tiny explorer notebook."
    ds = EpisodeDataset(collect("procgen:coinrun", 300, tmp_path/"coin", policy="sticky", levels="100000:100002", seed=0, progress=False))
    ck = pixel_checkpoint(tmp_path/"pixel.pt", ds)  # a tiny pixel model of CoinRun whose frames move
    nb = new_notebook(cells=[new_code_cell(f"from worldmodels_nb.explorer import Explorer\nex = Explorer({str(ck)!r}, {str(ds.path)!r})\nex.play()")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(tmp_path/"explore.ipynb"))
    port, token = free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "VIRTUAL_ENV")}
    env.update(PYTHONPATH=str(ROOT), JUPYTER_RUNTIME_DIR=str(tmp_path/"rt"), JUPYTERLAB_SETTINGS_DIR=str(tmp_path/"settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path/"ws"), PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    log = open(tmp_path/"lab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}", "--LabApp.news_url=None",
                             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", *(["--allow-root"] if os.geteuid() == 0 else [])],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_server(f"{base}/api/status?token={token}", proc)
        yield base, token, tmp_path
    finally:
        proc.terminate()
        try: proc.wait(20)
        except subprocess.TimeoutExpired: proc.kill()
        log.close()

def run_first_cell(page, tries: int = 3) -> int:
    """Click into the first cell and press Shift+Enter, as a person would; when its prompt shows no run after 30 s (the keys went
    elsewhere while JupyterLab was still settling), click and press again. Returns how many presses it took."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    cell = page.locator(".jp-Notebook .jp-Cell").first
    prompt = cell.locator(".jp-InputPrompt").first
    for i in range(1, tries + 1):
        cell.locator(".cm-content").first.click(timeout=90_000)
        page.keyboard.press("Shift+Enter")
        try:  # "[*]:" queued or running, "[1]:" done
            page.wait_for_function("el => /\\[(\\*|\\d+)\\]/.test(el.innerText)", arg=prompt.element_handle(), timeout=30_000)
            return i
        except PlaywrightTimeout: print(f"Shift+Enter {i}: the cell's prompt still reads {prompt.inner_text()!r}")
    raise AssertionError(f"the explorer's cell did not run after {tries} presses of Shift+Enter")

def report_page(page, console: list, tmp: Path):
    "What the page showed and what the server said, when a wait gave up: screenshot, cell texts, kernel status, console, lab log."
    page.screenshot(path=str(ARTIFACTS/"explorer_jupyterlab_failed.png"), full_page=True)
    print("cells:", page.evaluate("() => [...document.querySelectorAll('.jp-Cell')].map(c => c.innerText.slice(0, 1500))"))
    print("kernel:", page.evaluate("() => [...document.querySelectorAll('.jp-Notebook-ExecutionIndicator')].map(e => e.dataset.status)"))
    print("browser console:", *console[-40:], sep="\n  ")
    print((tmp/"lab.log").read_text()[-3000:])

def test_clicking_an_action_in_jupyterlab_changes_the_frame(lab):
    need(Path(CHROMIUM).is_file(), f"no chromium at {CHROMIUM} (apt-get install -y chromium)")
    try: from playwright.sync_api import sync_playwright
    except ImportError: need(False, "playwright is not installed (pip install playwright==1.65.2)")
    base, token, tmp = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS/"explorer_jupyterlab.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            console = []
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            try:
                page.goto(f"{base}/lab/tree/explore.ipynb?token={token}")
                page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)  # the kernel is up
                presses = run_first_cell(page)
                outcome = page.wait_for_function(OUTCOME, timeout=240_000).json_value()  # importing the library on a busy CPU
                assert outcome == "frame", "the explorer's cell failed (its traceback is printed below)"
                img = page.locator(".jp-OutputArea .widget-image").first
                status = page.locator(".jp-OutputArea .widget-html-content", has_text="step").first
                status.wait_for(timeout=30_000)
                assert "step 0" in status.inner_text()
                before_src, before_px = img.get_attribute("src"), img.screenshot()
                page.locator(".jp-OutputArea button.jupyter-button", has_text="→").first.click()
                page.wait_for_function("([sel, old]) => document.querySelector(sel).getAttribute('src') !== old",
                                       arg=[".jp-OutputArea .widget-image", before_src], timeout=30_000)
                page.wait_for_function(STEP.format(1), timeout=30_000)
                after_px = img.screenshot()
                img.hover(); page.keyboard.press("ArrowRight")  # the arrow key, with the mouse over the frame
                page.wait_for_function(STEP.format(2), timeout=30_000)
                page.screenshot(path=str(shot), full_page=True)
                print(f"screenshot: {shot} (Shift+Enter pressed {presses} time(s))")
            except Exception:
                report_page(page, console, tmp)
                raise
        finally: browser.close()
    assert after_px != before_px, "the frame on the page did not change after the click"
    assert shot.stat().st_size > 10_000
