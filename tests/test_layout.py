"""The package's layout as the README lists it: every module there, each importing only from
modules listed before it, so that data flows one way (library, audio, features, store, ...,
recommend, CLI) and a reader can follow it from the top."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "reform"


def listed_order() -> list[str]:
    """The module names of the README's development section, in its order."""
    section = (ROOT / "README.md").read_text().split("## Development", 1)[1]
    block = section.split("src/reform/", 1)[1].split("tests/", 1)[0]
    return re.findall(r"[a-z_]+(?=[ \n/])", block)


def imported(module: Path) -> set[str]:
    """The package's own modules that ``module`` imports, at its top or inside a function
    (``web/`` counts as one module: its files import each other freely)."""
    level = 2 if module.parent.name == "web" else 1
    names = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == level:
            names.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
    return names - {module.stem, "__version__"}


def test_the_readme_lists_every_module():
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    listed = listed_order()
    assert modules <= set(listed), sorted(modules - set(listed))
    assert len(listed) == len(set(listed))


def test_each_module_imports_only_from_those_listed_before_it():
    order = listed_order()
    place = {name: i for i, name in enumerate(order)}
    modules = {path: path.stem for path in PACKAGE.glob("*.py") if path.stem in place}
    modules |= {path: "web" for path in (PACKAGE / "web").glob("*.py")}
    backwards = [f"{path.relative_to(PACKAGE)} imports {name}"
                 for path, module in modules.items()
                 for name in sorted(imported(path)) if place[name] >= place[module] and name != module]
    assert backwards == []
