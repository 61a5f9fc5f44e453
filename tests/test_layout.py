"""The package's layout: one module per paper step, imports that run only downward, remote code that stands alone."""

import ast
from pathlib import Path

import hf_minimodel

PACKAGE = Path(hf_minimodel.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def internal_imports(path: Path) -> set[str]:
    """The hf_minimodel modules a file imports, at the top or inside functions (a lazy import is still a dependency)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            target = f"{base}.{node.module}" if node.module else base
            for alias in node.names:  # `from . import freezing` imports a module
                candidate = f"{target}.{alias.name}"
                found.add(candidate if (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).exists() else target)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hf_minimodel"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("hf_minimodel"))
    return {module for module in found if module != name and module != "hf_minimodel"}


def graph() -> dict[str, set[str]]:
    return {module_name(path): internal_imports(path) for path in PACKAGE.rglob("*.py") if "artifacts" not in path.parts}


def test_modules_import_each_other_only_downward():
    """No circles: the modules can be read bottom-up, each using only what is below it. (The package `__init__`
    imports its modules on demand, by name, so it sits above them all and is left out.)"""
    edges = graph()
    edges.pop("hf_minimodel", None)
    state = {}

    def visit(module, trail):
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", "import cycle: " + " -> ".join([*trail, module])
        state[module] = "open"
        for target in sorted(edges.get(module, ())):
            visit(target, [*trail, module])
        state[module] = "done"

    for module in sorted(edges):
        visit(module, [])


def test_each_paper_step_has_one_module_named_for_it():
    modules = set(graph())
    for module in ("pretraining", "mini_model", "target_embeddings", "merge", "language_pack", "transfer", "tasks",
                   "freezing", "training", "flops", "corpus"):
        assert f"hf_minimodel.{module}" in modules, module
    for old in ("bible_tasks", "benchmarks_data", "qa", "bible"):  # task modules live in hf_minimodel/tasks/
        assert f"hf_minimodel.{old}" not in modules, old


def test_the_remote_code_files_import_only_each_other():
    for name in ("configuration_minimodel", "modeling_minimodel"):
        assert internal_imports(PACKAGE / f"{name}.py") <= {"hf_minimodel.configuration_minimodel"}, name


def test_the_benchmark_recipes_use_only_the_public_api():
    """What benchmarks/ imports from hf_minimodel is a public name (hf_minimodel.__all__) or lives in a public
    subpackage (`tasks`, `freezing`): a recipe shows what a user can do, not what the library's insides allow."""
    public_modules = {f"hf_minimodel.{name}" for name in hf_minimodel._SUBMODULES}
    for path in sorted((PACKAGE.parent / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hf_minimodel"):
                if node.module == "hf_minimodel":
                    private = [alias.name for alias in node.names if alias.name not in hf_minimodel.__all__]
                    assert not private, f"{path.name} imports {private} from hf_minimodel, which does not export them"
                else:
                    assert any(node.module == m or node.module.startswith(m + ".") for m in public_modules), \
                        f"{path.name}:{node.lineno} imports from {node.module}, not the public API"


# The command line's argument parser: one flat list of options, which reads best whole.
LONG_ON_PURPOSE = {("hf_minimodel/cli.py", "build_parser")}


def test_no_function_is_over_60_lines_of_code():
    """A function fits on a screen: at most 60 lines besides its docstring, in the package and the benchmarks."""
    root = PACKAGE.parent
    long = []
    for path in [*PACKAGE.rglob("*.py"), *(root / "benchmarks").glob("*.py")]:
        if "artifacts" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if ast.get_docstring(node) is not None:
                    lines -= node.body[0].end_lineno - node.body[0].lineno + 1
                where = (path.relative_to(root).as_posix(), node.name)
                if lines > 60 and where not in LONG_ON_PURPOSE:
                    long.append(f"{where[0]}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def test_no_script_edits_the_import_path_and_no_test_loads_one_by_its_path():
    """Benchmarks import the package as a user does; tests run scripts as a user does (a subprocess), never by
    loading their files as modules."""
    root = PACKAGE.parent
    for path in [*(root / "benchmarks").glob("*.py"), *(root / "tests").glob("*.py")]:
        text = path.read_text(encoding="utf-8")
        for needle in ("sys.path.insert", "sys.path.append", "spec_from_file_location", "SourceFileLoader", "runpy."):
            assert needle not in text or path.name == "test_layout.py", f"{path.name} uses {needle}"


def test_our_config_fields_are_the_dataclass_fields_written_once():
    """Which config fields are ours is read off MiniModelConfig itself, so that a new field needs no second list."""
    import dataclasses

    from transformers import XLMRobertaConfig

    from hf_minimodel.configuration_minimodel import MINI_FIELDS, MiniModelConfig

    ours = {field.name for field in dataclasses.fields(MiniModelConfig)} - {f.name for f in dataclasses.fields(XLMRobertaConfig)}
    assert set(MINI_FIELDS) == ours and {"mini_method", "base_fingerprint"} <= ours
    for path in PACKAGE.rglob("*.py"):
        if path.name == "configuration_minimodel.py" or "artifacts" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                named = {e.value for e in node.elts if isinstance(e, ast.Constant)} & ours
                # A few may be named where they mean something else (a pack's metadata, config.json's whole numbers).
                assert len(named) < 4, f"{path.name}:{node.lineno} lists our fields again: {sorted(named)}"
