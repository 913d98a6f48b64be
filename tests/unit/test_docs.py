"""The documentation builds without a single warning, reads in a 1280 px browser window, and its
API reference documents every public function: what it does, each of its arguments and what it
returns.

Which modules the API reference covers is read from docs/api/*.rst, so a module added there is
checked at once; the client, the service and every domain (Procedure) module must be among them.
Every built page is opened in headless Chromium: nothing may stick out of the page, the content
column or the sidebar, a box whose content is wider must scroll by design, and the sidebar and the
headings break lines between words only.
"""
import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from headless_chromium import HeadlessChromium

REPOSITORY = Path(__file__).resolve().parents[2]
DOCS = REPOSITORY / "docs"
PROCEDURE = REPOSITORY / "ILCDIRAC" / "CalibrationSystem" / "Procedure"
PACKAGE = "ILCDIRAC.CalibrationSystem"
REQUIRED_MODULES = {f"{PACKAGE}.Client.CalibrationClient", f"{PACKAGE}.Service.CalibrationHandler"} | {
    f"{PACKAGE}.Procedure.{path.stem}" for path in PROCEDURE.glob("*.py") if path.stem != "__init__"
}
HANDLER_CLASS = "CalibrationHandlerMixin"  # the export_ methods, shared by the DISET and a Tornado handler
_RETURN_FIELD = re.compile(r":(returns?|yields?):")


WINDOW = (1280, 800)  # a laptop's browser window


@pytest.fixture(scope="module")
def docs_build(tmp_path_factory):
    """The HTML documentation, built once for the tests of this module: (process, html directory)."""
    directory = tmp_path_factory.mktemp("docs")
    process = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d", str(directory / "doctrees"),
         str(DOCS), str(directory / "html")],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=300,
    )
    return process, directory / "html"


def test_docs_build_without_warnings(docs_build):
    process, html = docs_build
    assert process.returncode == 0 and not process.stderr.strip(), process.stdout + process.stderr
    assert (html / "user_guide.html").exists()


# ------------------------------------------------------------------------------ rendered pages

#: Marks every element that overflows and returns what is wrong, as [{"element", "problem"}].
#: An element fits when its box lies within its column (div.body or the sidebar) and its content
#: within its box, unless it scrolls on its own (overflow-x auto or scroll): then only its box
#: must fit. In the sidebar and in headings a word (between spaces, hyphens and slashes) must
#: stay on one line.
_LAYOUT_PROBLEMS = r"""(() => {
  const problems = [];
  const root = document.documentElement;
  const describe = element => {
    const text = (element.textContent || "").trim().replace(/\s+/g, " ").slice(0, 60);
    return `<${element.tagName.toLowerCase()}${element.className ? ` class="${element.className}"` : ""}> ${text}`;
  };
  const report = (element, problem) => {
    element.setAttribute("data-layout-problem", problems.length);
    problems.push({element: describe(element), problem});
  };
  if (root.scrollWidth > root.clientWidth + 1) {
    problems.push({element: "<html>", problem: `the page is ${root.scrollWidth} px wide in a ${root.clientWidth} px window`});
  }
  const scrolls = element => ["auto", "scroll"].includes(getComputedStyle(element).overflowX);
  for (const column of document.querySelectorAll("div.body, div.sphinxsidebarwrapper")) {
    const box = column.getBoundingClientRect(), style = getComputedStyle(column);
    const left = box.left + parseFloat(style.paddingLeft), right = box.right - parseFloat(style.paddingRight);
    const skipped = [], wider = [];  // outside: what scrolls or was reported; wider: the innermost count
    for (const element of column.querySelectorAll("*")) {
      if (skipped.some(outer => outer.contains(element))) continue;
      const rect = element.getBoundingClientRect();
      if (rect.width === 0 || getComputedStyle(element).visibility === "hidden") continue;
      if (rect.right > right + 1 || rect.left < left - 1) {
        report(element, `sticks out of its column (${Math.round(rect.left)}-${Math.round(rect.right)} px, ` +
                        `column ${Math.round(left)}-${Math.round(right)} px)`);
        skipped.push(element);
      } else if (scrolls(element)) {
        skipped.push(element);  // what is inside scrolls with it
      } else if (element.clientWidth > 0 && element.scrollWidth > element.clientWidth + 1) {
        wider.push(element);
      }
    }
    for (const element of wider) {
      if (!wider.some(inner => inner !== element && element.contains(inner)) &&
          !element.querySelector("[data-layout-problem]")) {
        report(element, `its content (${element.scrollWidth} px) is wider than its box (${element.clientWidth} px) ` +
                        `and does not scroll`);
      }
    }
  }
  const wordBreaks = document.querySelectorAll("div.sphinxsidebarwrapper, div.body :is(h1, h2, h3, h4)");
  for (const container of wordBreaks) {
    const walker = document.createTreeWalker(container, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const word of node.data.matchAll(/[^\s\/-]+/g)) {
        const range = document.createRange();
        range.setStart(node, word.index);
        range.setEnd(node, word.index + word[0].length);
        const lines = new Set([...range.getClientRects()].map(rect => Math.round(rect.bottom)));
        if (lines.size > 1) report(node.parentElement, `breaks the word "${word[0]}" across ${lines.size} lines`);
      }
    }
  }
  return problems;
})()"""
_SCREENSHOTS_PER_PAGE = 3


def layout_problems(browser, url, screenshot):
    """What overflows on a page, each with a screenshot of it; and a screenshot of the page's top.

    :param browser: a HeadlessChromium
    :param str url: the page
    :param Path screenshot: where the page's screenshot goes; those of its problems go beside it
    :return: ["problem (screenshot)"], empty if the page fits the window
    """
    browser.open(url)
    browser.screenshot(screenshot)
    problems = []
    for number, found in enumerate(browser.evaluate(_LAYOUT_PROBLEMS)):
        line = f"{found['element']}: {found['problem']}"
        if number < _SCREENSHOTS_PER_PAGE and found["element"] != "<html>":
            path = screenshot.with_name(f"{screenshot.stem}-{number}.png")
            browser.evaluate(f"document.querySelector('[data-layout-problem=\"{number}\"]')"
                             f".scrollIntoView({{block: 'center', inline: 'nearest'}})")
            browser.screenshot(path)
            line += f" ({path.name})"
        problems.append(line)
    return problems


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium window of WINDOW's size for every page of this module."""
    with HeadlessChromium(*WINDOW) as chromium:
        yield chromium


_BADLY_LAID_OUT_PAGE = """<!DOCTYPE html><html><head><style>
body { margin: 0; font: 16px monospace; }
div.sphinxsidebarwrapper { position: absolute; left: 0; width: 200px; overflow-wrap: break-word; }
div.sphinxsidebarwrapper h1 { font-size: 40px; }
div.body { margin-left: 220px; width: 600px; }
</style></head><body>
<div class="sphinxsidebarwrapper"><h1 class="logo"><a>ILCDIRAC CalibrationSystem</a></h1></div>
<div class="body">
  <h2>A fitting heading</h2>
  <pre style="overflow-x: auto">a code line that is far too long for its column, but its block scrolls by design: fine</pre>
  <div class="clipped" style="width: 300px; overflow: hidden"><p style="width: 500px">hidden</p></div>
  <table><tr><td>LONG_NAME</td></tr></table>
</div></body></html>""".replace("LONG_NAME", "fractionOfFinishedJobsNeededToStartNextStep" * 5)


def test_the_layout_check_finds_what_sticks_out_is_clipped_or_broken_mid_word(browser, tmp_path):
    page = tmp_path / "bad.html"
    page.write_text(_BADLY_LAID_OUT_PAGE)
    problems = layout_problems(browser, page.as_uri(), tmp_path / "bad.png")
    assert len(problems) == 4, problems
    page_width, table, clipped, title = problems
    assert re.fullmatch(r"<html>: the page is \d+ px wide in a 1280 px window", page_width)
    assert table.startswith("<table> fractionOfFinished") and "sticks out of its column (220-" in table
    assert clipped.startswith('<div class="clipped"> hidden: its content (500 px) is wider than its box (300 px)')
    assert re.match(r'<a> ILCDIRAC CalibrationSystem: breaks the word "CalibrationSystem" across \d lines', title)
    assert all((tmp_path / f"bad-{number}.png").stat().st_size > 0 for number in (1, 2))
    assert "bad-3.png" not in title  # screenshots of the first problems only


def test_every_page_fits_a_1280_px_window(docs_build, browser, tmp_path_factory):
    process, html = docs_build
    assert process.returncode == 0, "the documentation does not build: see test_docs_build_without_warnings"
    screenshots = tmp_path_factory.mktemp("docs-screenshots")
    pages = sorted(path for path in html.rglob("*.html") if not path.relative_to(html).parts[0].startswith("_"))
    assert len(pages) > 10
    failures = {}
    for page in pages:
        name = str(page.relative_to(html).with_suffix("")).replace("/", "-")
        problems = layout_problems(browser, page.as_uri(), screenshots / f"{name}.png")
        if problems:
            failures[str(page.relative_to(html))] = problems
    assert not failures, (f"pages that do not fit a {WINDOW[0]}x{WINDOW[1]} window (screenshots in {screenshots}):\n" +
                          "\n".join(f"{page}:\n  " + "\n  ".join(problems) for page, problems in failures.items()))


def test_long_code_names_in_tables_wrap_only_between_their_words():
    spec = importlib.util.spec_from_file_location("table_word_breaks", DOCS / "_ext" / "table_word_breaks.py")
    extension = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(extension)
    assert extension.pieces("fractionOfFinishedJobsNeededToStartNextStep") == [
        "fraction", "OfFinished", "Jobs", "Needed", "ToStart", "Next", "Step"]
    assert extension.pieces("ECALEndcapCorrectionFactor") == ["ECAL", "Endcap", "Correction", "Factor"]
    assert extension.pieces("HCalToHadGeVCalibration") == ["HCal", "ToHad", "GeV", "Calibration"]
    assert extension.pieces("Procedure.settings.PRESETS") == ["Procedure.", "settings.", "PRESETS"]
    assert extension.pieces("hcal_endcap") == ["hcal_", "endcap"]
    for unbroken in ("0.35", "[0.0, 0.4]", "float", "gamma/10"):
        assert extension.pieces(unbroken) == [unbroken]


def api_modules():
    """The modules the API reference documents (its automodule directives)."""
    text = "\n".join(path.read_text() for path in sorted((DOCS / "api").glob("*.rst")))
    return re.findall(r"^\.\. automodule:: (\S+)\s*$", text, re.MULTILINE)


def test_api_reference_covers_the_client_the_service_and_the_domain_code():
    missing = REQUIRED_MODULES - set(api_modules())
    assert not missing, f"add these modules to docs/api/*.rst: {sorted(missing)}"


def _parameters(function):
    arguments = function.args
    names = [a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)]
    names += [a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None]
    return [name for name in names if name not in ("self", "cls")]


def _own_nodes(function):
    """The nodes of a function's body, without those of the functions defined inside it."""
    stack = list(function.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _returns_a_value(function):
    for node in _own_nodes(function):
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return True
        if isinstance(node, ast.Return) and node.value is not None:
            if not (isinstance(node.value, ast.Constant) and node.value.value is None):
                return True
    return False


def _documents_parameter(docstring, name):
    return re.search(rf":param(\s+[^:\n]+?)?\s+\**{re.escape(name)}:", docstring) is not None


def _is_property(function):
    return any(isinstance(d, ast.Name) and d.id == "property" or isinstance(d, ast.Attribute) and
               d.attr in ("setter", "getter") for d in function.decorator_list)


def _function_gaps(function, where, extra_docstring=""):
    docstring = ast.get_docstring(function) or ""
    if not docstring.strip() and not extra_docstring.strip():
        return [f"{where}: no docstring"]
    if _is_property(function):
        return []
    gaps = []
    documented = docstring + "\n" + extra_docstring
    missing = [name for name in _parameters(function) if not _documents_parameter(documented, name)]
    if missing:
        gaps.append(f"{where}: no ':param {missing[0]}:'" + (f" (nor for {missing[1:]})" if missing[1:] else ""))
    if function.name != "__init__" and _returns_a_value(function) and not _RETURN_FIELD.search(docstring):
        gaps.append(f"{where}: returns a value but has no ':return:'")
    return gaps


def docstring_gaps(module):
    """What the public functions, classes and methods of ``module`` fail to document."""
    path = importlib.util.find_spec(module).origin
    tree = ast.parse(Path(path).read_text(), path)
    gaps = [] if ast.get_docstring(tree) else [f"{module}: no module docstring"]
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            gaps += _function_gaps(node, f"{module}.{node.name}")
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            class_docstring = ast.get_docstring(node) or ""
            if not class_docstring:
                gaps.append(f"{module}.{node.name}: no class docstring")
            for member in node.body:
                if not isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                if member.name == "__init__":
                    gaps += _function_gaps(member, f"{module}.{node.name}.__init__", class_docstring)
                elif not member.name.startswith("_"):
                    gaps += _function_gaps(member, f"{module}.{node.name}.{member.name}")
    return gaps


def test_every_public_function_of_the_api_reference_documents_its_arguments_and_result():
    gaps = [gap for module in api_modules() for gap in docstring_gaps(module)]
    assert not gaps, "Complete these docstrings (:param NAME: for every argument, :return:):\n" + "\n".join(gaps)


def test_every_export_method_of_the_service_is_documented():
    """Checked on its own: the export_ methods are what users and workers call."""
    module = f"{PACKAGE}.Service.CalibrationHandler"
    tree = ast.parse(Path(importlib.util.find_spec(module).origin).read_text())
    handler = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == HANDLER_CLASS)
    exports = [m for m in handler.body if isinstance(m, ast.FunctionDef) and m.name.startswith("export_")]
    assert len(exports) > 10
    gaps = [gap for method in exports for gap in _function_gaps(method, f"{HANDLER_CLASS}.{method.name}")]
    assert not gaps, "\n".join(gaps)


def test_the_docstring_check_finds_what_is_missing():
    source = '''
def documented(a, b=1):
    """Add.

    :param int a: first
    :param b: second
    :return: the sum
    """
    return a + b


def undocumented_argument(a, b):
    """Nothing about b or the result.

    :param a: first
    """
    return a


def nothing_returned(a):
    """Prints.

    :param a: what
    """
    print(a)
'''
    tree = ast.parse(source)
    functions = {node.name: node for node in tree.body}
    assert _function_gaps(functions["documented"], "documented") == []
    assert _function_gaps(functions["undocumented_argument"], "f") == [
        "f: no ':param b:'", "f: returns a value but has no ':return:'"
    ]
    assert _function_gaps(functions["nothing_returned"], "g") == []


def _docs_extension():
    spec = importlib.util.spec_from_file_location("calibration_docs", DOCS / "_ext" / "calibration_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_empty_or_failed_help_is_a_warning_of_the_docs_build():
    """A --help that prints nothing and exits 0 would leave its section of the user guide empty."""
    extension = _docs_extension()
    assert "printed no usage" in extension.help_problem("dirac-calibration-generate-samples", 0, "\n")
    assert "--help failed: boom" in extension.help_problem("x", 1, "boom")
    assert extension.help_problem("x", 0, "\nUsage:\n  x [options]\n") is None
    assert extension.help_problem("x", 0, "usage: x [-h]\n") is None   # argparse's

