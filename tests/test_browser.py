"""The book as a reader sees it: the built pages opened in headless Chromium, driven by Playwright.

The HTML checks of ``test_book.py`` read the files; these tests look at the page after the browser has run its
scripts: formulas typeset by MathJax (no raw TeX left in the text, no MathJax error node, MathJax's own fonts
loaded), every plotly figure drawn, the pipeline figure and its caption, the equation numbers and their
references, the navigation numbered once, no request leaving the machine, and no page wider than a phone screen.

The pages are served over http from 127.0.0.1 (as a published book is read) and the method page is also opened
over ``file://`` (as ``make book`` tells a reader to open it). The book is the ``ci`` book that ``test_book.py``
builds (built once per test session); set ``ECHO_BOOK_HTML=_build/html`` to check an existing build instead, and
``ECHO_BOOK_SCREENSHOTS=DIR`` to keep full-page screenshots of the notebook pages at phone and desktop width.

Needs Debian's ``chromium`` (``apt-get install -y chromium``; ``.ci/run`` installs it) and the ``playwright``
Python package (a dev dependency; no browser download: the system Chromium is used). Skipped with a message when
either is missing.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

from test_book import build_ci_book, toc_pages

CHROMIUM = os.environ.get("ECHO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE, DESKTOP = {"width": 400, "height": 850}, {"width": 1280, "height": 900}
NOTEBOOK_PAGES = [p for p in toc_pages() if p.startswith("book/notebooks/")]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        sync_playwright is None, reason="browser test skipped: the playwright package is missing (make install)"
    ),
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="browser test skipped: no Chromium found; install it with `apt-get install -y chromium` "
        "(.ci/run does) or point ECHO_CHROMIUM at a Chromium binary",
    ),
]

# Typesetting is finished when MathJax's startup promise resolves (MathJax 3) and the web fonts are loaded.
# A page whose MathJax never started (a configuration object but no MathJax) keeps its raw TeX, which
# the checks below report.
WAIT_FOR_RENDER = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  await document.fonts.ready;
  return true;
}"""

# What the page shows, read from the live DOM. Code blocks and MathJax's hidden MathML copy are left out: TeX in
# code is meant to be read as code. Hidden solutions (dropdowns) are included: they must render when opened.
READ_PAGE = """() => {
  const main = document.querySelector('main') || document.body;
  const copy = main.cloneNode(true);
  copy.querySelectorAll('pre, code, script, style, mjx-assistive-mml').forEach(e => e.remove());
  const math = [...document.querySelectorAll('.math')];
  const plots = [...document.querySelectorAll('.plotly-graph-div')];
  return {
    text: copy.textContent,
    all_text: main.textContent,
    n_math: math.length,
    n_math_rendered: math.filter(e => e.querySelector('mjx-container')).length,
    n_errors: document.querySelectorAll('mjx-merror, [data-mjx-error]').length,
    mathjax_fonts: [...document.fonts].filter(f => f.family.includes('MJX') && f.status === 'loaded').length,
    n_plots: plots.length,
    n_plots_drawn: plots.filter(d => d.querySelector('svg.main-svg')).length,
    nav: [...document.querySelectorAll('.bd-sidebar-primary nav a')].map(a => a.textContent.trim()),
    scroll_width: document.documentElement.scrollWidth,
  };
}"""

RAW_TEX = re.compile(r"\\\(|\\\[|\$\$|\$[^$\n]*\\[A-Za-z]+[^$\n]*\$")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def html_dir(tmp_path_factory) -> Path:
    given = os.environ.get("ECHO_BOOK_HTML")
    if given:
        return Path(given).resolve()
    root, _, rc = build_ci_book(tmp_path_factory)
    assert rc == 0, "the ci book did not build (see test_book.py)"
    return root / "_build" / "html"


@pytest.fixture(scope="module")
def server(html_dir):
    """A static http server for the built book on 127.0.0.1 (an ephemeral port), quiet, stopped after the module."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(html_dir)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _is_local(url: str) -> bool:
    u = urlparse(url)
    return u.scheme in ("file", "data", "blob", "about") or (u.scheme in ("http", "https") and u.hostname in LOCAL_HOSTS)


def open_page(browser, url: str, viewport=DESKTOP, screenshot: Path | None = None) -> dict:
    """Open ``url``, let MathJax and plotly finish, and return what the page shows (see ``READ_PAGE``).

    Every request goes through a route: local ones (file, 127.0.0.1) continue, any other is aborted and listed
    in ``outside``. Local requests that fail (a missing font or script) are listed in ``failed``.
    """
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(120_000)  # generous: CI shares 2 cores with the rest of the suite
    outside, failed = [], []

    def route(r):
        if _is_local(r.request.url):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("requestfailed", lambda req: failed.append(req.url) if _is_local(req.url) else None)
    page.on("response", lambda resp: failed.append(f"{resp.status} {resp.url}") if resp.status >= 400 else None)
    try:
        page.goto(url, wait_until="load")
        page.evaluate(WAIT_FOR_RENDER)
        page.wait_for_function(
            "() => [...document.querySelectorAll('.plotly-graph-div')].every(d => d.querySelector('svg.main-svg'))",
            timeout=60_000,
        ) if page.query_selector(".plotly-graph-div") else None
        seen = page.evaluate(READ_PAGE)
        seen.update(outside=outside, failed=failed)
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        seen["figure"] = page.evaluate(
            """() => { const f = document.querySelector('figure#fig-pipeline, #fig-pipeline');
                       if (!f) return null; const img = f.querySelector('img');
                       const cap = f.querySelector('figcaption');
                       return {src: img && img.getAttribute('src'), loaded: !!img && img.complete && img.naturalWidth > 0,
                               width: img ? img.getBoundingClientRect().width : 0, alt: img && img.alt,
                               caption: cap ? cap.textContent.trim() : null}; }"""
        )
        seen["eqno"] = page.evaluate(
            """() => Object.fromEntries([...document.querySelectorAll('[id^="equation-"]')].map(
                       e => [e.id, ((e.querySelector('.eqno') || {textContent: ''}).textContent.match(/\\(\\d+\\)/) || [''])[0]]))"""
        )
        seen["eqrefs"] = page.evaluate(
            """() => [...document.querySelectorAll('a[href*="#equation-"]')].map(
                       a => [a.getAttribute('href').split('#')[1], a.textContent.trim()])"""
        )
        return seen
    finally:
        context.close()


def _shown_problems(page: str, seen: dict, builder_paths: tuple[str, ...] = ()) -> list[str]:
    problems = []
    raw = RAW_TEX.findall(seen["text"])
    if raw:
        problems.append(f"{page}: raw TeX in the visible text {raw[:3]}")
    if seen["n_math_rendered"] != seen["n_math"]:
        problems.append(f"{page}: {seen['n_math'] - seen['n_math_rendered']} of {seen['n_math']} formulas not typeset")
    if seen["n_math"] and not seen["mathjax_fonts"]:
        problems.append(f"{page}: formulas drawn without MathJax's web fonts")
    if seen["n_errors"]:
        problems.append(f"{page}: {seen['n_errors']} MathJax error nodes")
    if seen["n_plots_drawn"] != seen["n_plots"]:
        problems.append(f"{page}: {seen['n_plots'] - seen['n_plots_drawn']} of {seen['n_plots']} plotly figures not drawn")
    if seen["outside"]:
        problems.append(f"{page}: requests leaving the machine {seen['outside'][:3]}")
    if seen["failed"]:
        problems.append(f"{page}: local requests failed {seen['failed'][:3]}")
    paths = [p for p in builder_paths if p in seen["all_text"]]  # code cells and their printed output included
    if paths:
        problems.append(f"{page}: the builder's machine paths shown to the reader {paths}")
    return problems


@pytest.fixture(scope="module")
def builder_paths(html_dir) -> tuple[str, ...]:
    """The absolute folders of the build: the project that was built (``<project>/_build/html``) and this one."""
    return tuple({str(html_dir.parent.parent) + "/", str(ROOT) + "/"})


@pytest.fixture(scope="module")
def desktop_pages(browser, server) -> dict[str, dict]:
    shots = os.environ.get("ECHO_BOOK_SCREENSHOTS")
    seen = {}
    for page in toc_pages():
        shot = Path(shots) / f"desktop_{Path(page).name}.png" if shots and page in NOTEBOOK_PAGES else None
        seen[page] = open_page(browser, f"{server}/{page}.html", DESKTOP, shot)
    return seen


def test_every_page_shows_rendered_math_drawn_figures_and_stays_offline(desktop_pages, builder_paths):
    problems = [p for page, seen in desktop_pages.items() for p in _shown_problems(page, seen, builder_paths)]
    assert not problems, "\n".join(problems)


def test_pages_with_formulas_have_them(desktop_pages):
    """The checks above are not vacuous: the pages known to carry math and figures do."""
    for page in ("book/intro", "book/method", "book/metrics", "book/exercises"):
        assert desktop_pages[page]["n_math"] >= 1, f"{page}: no formula found (the page has math in its source)"
    for page in NOTEBOOK_PAGES:
        assert desktop_pages[page]["n_plots"] >= 1, f"{page}: no plotly figure"


def test_equations_are_numbered_and_referenced(desktop_pages):
    method = desktop_pages["book/method"]
    assert method["eqno"].get("equation-eq-fusion") == "(1)", f"Eq. 1 is not numbered (1): {method['eqno']}"
    assert method["eqno"].get("equation-eq-smoothness") == "(2)", f"Eq. 2 is not numbered (2): {method['eqno']}"
    for page in ("book/method", "book/intro", "book/exercises"):
        refs = dict(desktop_pages[page]["eqrefs"])
        assert refs.get("equation-eq-fusion") == "(1)", f"{page}: no reference to Eq. 1 ({refs})"
    assert dict(desktop_pages["book/method"]["eqrefs"]).get("equation-eq-smoothness") == "(2)"


def test_pipeline_figure_and_caption(desktop_pages):
    fig = desktop_pages["book/intro"]["figure"]
    assert fig is not None, "intro: the pipeline figure (fig-pipeline) is missing"
    assert fig["src"].endswith("pipeline.svg") and fig["loaded"] and fig["width"] > 300, f"intro: figure not shown {fig}"
    assert fig["caption"] and re.match(r"^(Fig\. \d+\.?\s*)?The study.s pipeline \(our drawing", fig["caption"]), (
        f"intro: the caption does not start with its text: {fig['caption'][:120]!r}"
    )
    assert ":width:" not in fig["caption"] and ":alt:" not in fig["caption"], "intro: directive options in the caption"
    assert fig["alt"].startswith("Pipeline diagram.") and "evaluation" in fig["alt"], f"intro: alt text cut {fig['alt']!r}"


def test_navigation_is_numbered_once(desktop_pages):
    nav = desktop_pages["book/intro"]["nav"]
    doubled = [t for t in nav if re.match(r"^\d+(\.\d+)*\.?\s+\d+\.\s", t)]
    assert not doubled, f"navigation entries numbered twice: {doubled}"
    study = [t for t in nav if re.match(r"^\d+\.\s", t)]
    assert len(study) == len(NOTEBOOK_PAGES), f"the study's chapters are numbered 1-{len(NOTEBOOK_PAGES)}: {nav}"


@pytest.mark.parametrize("page", toc_pages())
def test_page_fits_a_phone_screen(browser, server, page, builder_paths):
    """At 400 px, wide tables, code, figures and long URLs scroll or wrap inside their box; the page itself does not
    scroll sideways (notebook pages: their outputs; text pages: tables, code, the bibliography)."""
    shots = os.environ.get("ECHO_BOOK_SCREENSHOTS")
    shot = Path(shots) / f"phone_{Path(page).name}.png" if shots and page in NOTEBOOK_PAGES else None
    seen = open_page(browser, f"{server}/{page}.html", PHONE, shot)
    assert not _shown_problems(page, seen, builder_paths), _shown_problems(page, seen, builder_paths)
    assert seen["scroll_width"] <= PHONE["width"] + 2, (
        f"{page}: the page is {seen['scroll_width']} px wide on a {PHONE['width']} px screen"
    )


def test_method_page_over_file_url(browser, html_dir):
    """Opened straight from disk (the link `make book` prints), the formulas render with MathJax's fonts too."""
    seen = open_page(browser, (html_dir / "book" / "method.html").as_uri())
    assert not _shown_problems("book/method (file://)", seen), _shown_problems("book/method (file://)", seen)
    assert seen["n_math"] >= 2
