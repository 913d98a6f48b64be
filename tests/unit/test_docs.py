"""The documentation builds without a single warning, and its API reference documents every
public function: what it does, each of its arguments and what it returns.

Which modules the API reference covers is read from docs/api/*.rst, so a module added there is
checked at once; the client, the service and every domain (Procedure) module must be among them.
"""
import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
DOCS = REPOSITORY / "docs"
PROCEDURE = REPOSITORY / "ILCDIRAC" / "CalibrationSystem" / "Procedure"
PACKAGE = "ILCDIRAC.CalibrationSystem"
REQUIRED_MODULES = {f"{PACKAGE}.Client.CalibrationClient", f"{PACKAGE}.Service.CalibrationHandler"} | {
    f"{PACKAGE}.Procedure.{path.stem}" for path in PROCEDURE.glob("*.py") if path.stem != "__init__"
}
HANDLER_CLASS = "CalibrationHandlerMixin"  # the export_ methods, shared by the DISET and a Tornado handler
_RETURN_FIELD = re.compile(r":(returns?|yields?):")


def test_docs_build_without_warnings(tmp_path):
    process = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d", str(tmp_path / "doctrees"),
         str(DOCS), str(tmp_path / "html")],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=300,
    )
    assert process.returncode == 0 and not process.stderr.strip(), process.stdout + process.stderr
    assert (tmp_path / "html" / "user_guide.html").exists()


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

