"""The package's layout: no import circle among the modules of prophet_model/ and validation/, and the
validation package reads nothing downstream of it (data flow: config -> physics -> study -> validation ->
outputs -> commands)."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

PACKAGES = ("prophet_model", "validation")


def module_name(path: Path, root: Path) -> str:
    """prophet_model/measured/predict.py -> prophet_model.measured.predict (a package: its __init__)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, name: str, files: dict[str, Path], packages: tuple[str, ...]) -> set[str]:
    """The modules among `files` that the file `path` (module `name`) imports, anywhere in it."""
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]
    siblings = {p.stem for p in path.parent.glob("*.py")}

    def absolute(target: str) -> str:
        top = target.split(".")[0]
        if top not in packages and top in siblings:  # `from bench import ...` in a script
            return f"{here}.{target}"
        return target

    def known(target: str) -> str | None:
        while target and target not in files:
            target = target.rpartition(".")[0]
        return target or None

    edges: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [absolute(a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                parent = ".".join(base + ([node.module] if node.module else []))
            else:
                parent = absolute(node.module or "")
            subs = [f"{parent}.{a.name}" for a in node.names if f"{parent}.{a.name}" in files]
            targets = subs or [parent]
        else:
            continue
        edges |= {t for t in map(known, targets) if t and t != name}
    return edges


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """{module: the modules of `packages` it imports}, from every import statement in its file, at
    module level and inside functions, relative or absolute. `from P import x` counts as importing
    P.x where that is a module, else P. A script's bare `import x` of a sibling file (validation/
    runs as scripts with their folder on sys.path) counts as that sibling. The implicit import of a
    module's parent packages is not counted."""
    files = {module_name(p, root): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}
    return {name: imported(path, name, files, packages) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_cycle_finder_finds_one(tmp_path: Path) -> None:
    """A relative import inside a function and a script's bare sibling import close a circle."""
    pkg = tmp_path / "validation"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n")
    (pkg / "b.py").write_text("import c\n")
    (pkg / "c.py").write_text("from validation import a\n")
    graph = import_graph(tmp_path, ("validation",))
    assert graph["validation.a"] == {"validation.b"} and graph["validation.b"] == {"validation.c"}
    assert find_cycle(graph) == ["validation.a", "validation.b", "validation.c", "validation.a"]
    (pkg / "c.py").write_text("")
    assert find_cycle(import_graph(tmp_path, ("validation",))) is None


def test_no_import_cycles() -> None:
    graph = import_graph(ROOT)
    assert "validation.timing" in graph["validation.measure"]
    assert "prophet_model.measured.predict" in graph["prophet_model.measured.evidence"]
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_validation_reads_nothing_downstream() -> None:
    """prophet_model.measured.* and validation/* import no output or command module, and no file of
    validation/ imports the bench's CLI."""
    graph = import_graph(ROOT)
    downstream = {f"prophet_model.{m}" for m in ("views", "book", "paper", "figures", "report", "cli")}
    for name, edges in graph.items():
        if name.startswith(("prophet_model.measured", "validation")):
            assert not edges & downstream, f"{name} imports {sorted(edges & downstream)}"
        if name.startswith("validation"):
            assert "validation.measure" not in edges, f"{name} imports validation.measure"


def _lint_imports(root: Path):
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(exe)], cwd=root, capture_output=True, text=True, env={"PYTHONPATH": str(root),
                          "PATH": "/usr/bin:/bin"}, check=False)  # fmt: skip


def test_the_layers_contract_holds() -> None:
    """pyproject.toml's import-linter contracts: commands > workflow > outputs > validation > study >
    physics, and no writer imports the physics."""
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _with_import(tmp_path: Path, module: str, line: str) -> Path:
    """A copy of the package and its contracts in which `module` (a path under prophet_model/) gains `line`."""
    import shutil

    shutil.copytree(ROOT / "prophet_model", tmp_path / "prophet_model", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "prophet_model" / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}  # noqa\n")
    return tmp_path


def test_a_writer_that_imports_the_physics_breaks_the_contract(tmp_path: Path) -> None:
    done = _lint_imports(_with_import(tmp_path, "outputs/figures.py", "from prophet_model.physics import memory"))
    assert done.returncode != 0
    assert "prophet_model.outputs.figures -> prophet_model.physics.memory" in done.stdout


def test_a_lower_layer_that_imports_a_higher_one_breaks_the_contract(tmp_path: Path) -> None:
    done = _lint_imports(_with_import(tmp_path, "physics/memory.py", "from prophet_model.study import config"))
    assert done.returncode != 0 and "prophet_model.physics.memory -> prophet_model.study.config" in done.stdout


def test_notebooks_call_the_study_not_the_physics() -> None:
    """Notebooks drive the package through the study API and the writers, never the physics directly."""
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        text = nb.read_text(encoding="utf-8")
        assert "prophet_model.physics" not in text and "import physics" not in text, nb.name


def test_no_module_is_over_450_lines() -> None:
    long = {p.relative_to(ROOT).as_posix(): n for p in (ROOT / "prophet_model").rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450}  # fmt: skip
    assert not long, long


def test_no_line_of_the_package_is_over_120_characters_and_few_escape_the_formatter() -> None:
    """ruff format owns the layout (its line length, 120): no line past it, fewer than 20 `# fmt: skip`."""
    sources = {
        p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8") for p in (ROOT / "prophet_model").rglob("*.py")
    }
    long = [
        f"{name}:{i}"
        for name, text in sources.items()
        for i, line in enumerate(text.splitlines(), 1)
        if len(line) > 120
    ]
    assert not long, long
    assert sum(text.count("fmt: skip") for text in sources.values()) < 20


def private_names(source: str, package: str = "prophet_model") -> list[str]:
    """The private names (`_x`) of `package` that a module's source imports or reaches through an imported
    module (`from package.a import _x`, `from package.a import b` then `b._x`, `package.a._b`)."""
    tree = ast.parse(source)
    found: list[str] = []
    modules: set[str] = set()  # local names bound to a module of the package
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == package:
            if any(part.startswith("_") for part in node.module.split(".")):
                found.append(node.module)
            for a in node.names:
                if a.name.startswith("_") and not a.name.startswith("__"):
                    found.append(f"{node.module}.{a.name}")
                modules.add(a.asname or a.name)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == package:
                    found += [a.name] if any(p.startswith("_") for p in a.name.split(".")) else []
                    modules.add(a.asname or a.name.split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in modules:
                found.append(f"{ast.unparse(node)}")
    return found


def test_the_private_name_finder_finds_them() -> None:
    source = (
        "from prophet_model.study.sensitivity import _scenario, setups\n"
        "from prophet_model.study import sensitivity as se\n"
        "import prophet_model.study.runner\n"
        "def f(x):\n"
        "    from prophet_model.study.questions import grid as g\n"
        "    return se._absolute, g._number(x), prophet_model.study.runner._pick, x._own, g.BOUNDS\n"
    )
    assert sorted(private_names(source)) == [
        "g._number",
        "prophet_model.study.runner._pick",
        "prophet_model.study.sensitivity._scenario",
        "se._absolute",
    ]
    assert (
        private_names("from prophet_model.commands.shared import jobs\nimport argparse\nargparse._SubParsersAction\n")
        == []
    )


def test_commands_use_no_private_name_of_another_module() -> None:
    """cli.py and each command reach the layers below through their public names only (a private name is a
    module's own business), and no command imports the physics (pyproject.toml's contract says so too)."""
    for path in [ROOT / "prophet_model" / "cli.py", *sorted((ROOT / "prophet_model" / "commands").glob("*.py"))]:
        source = path.read_text(encoding="utf-8")
        assert private_names(source) == [], path.name
        assert "prophet_model.physics" not in source and "from prophet_model import physics" not in source, path.name


def test_each_command_is_one_module_named_after_it() -> None:
    """commands.COMMANDS lists the command line's commands; each is commands/<name>.py, defining NAME (its
    own name), register and main; every other module of commands/ is shared, not a command."""
    import importlib

    from prophet_model.cli import _parser
    from prophet_model.commands import COMMANDS

    sub = next(a for a in _parser()._actions if a.dest == "command")
    assert list(sub.choices) == list(COMMANDS)
    for name in COMMANDS:
        module = importlib.import_module(f"prophet_model.commands.{name}")
        assert module.NAME == name and callable(module.register) and callable(module.main), name
    others = {p.stem for p in (ROOT / "prophet_model" / "commands").glob("*.py")} - set(COMMANDS)
    assert others == {"__init__", "shared"}, others
