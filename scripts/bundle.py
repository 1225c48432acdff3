"""Build a self-contained deploy bundle per Cloud Function into ``build/<function>/``.

A bundle holds everything ``gcloud functions deploy --source build/<function>`` uploads and
nothing else::

    main.py              copied from functions/<function>/ (with any sibling modules)
    shared/<pkg>/        every shared package the function imports, directly or transitively
    config/...           the function's data files (scripts/catalog.py)
    requirements.txt     exact pins from the top-level requirements.txt, only the distributions
                         the bundled code imports (plus functions-framework)
    .gcloudignore        keeps caches and tests out of the upload

The imports are found statically (``ast``) in every bundled module, including imports inside
functions; imports guarded by ``if TYPE_CHECKING:`` or by ``try/except ImportError`` are not
requirements. Usage: ``python -m scripts.bundle [function ...]`` (default: all).
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata as md
import re
import shutil
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from scripts.catalog import FUNCTIONS, REPO, FunctionSpec, function

#: Distributions every bundle pins whatever it imports: the runtime that serves it.
ALWAYS = ("functions-framework",)
#: What a bundle carries from a package directory.
SHIPPED_SUFFIXES = frozenset({".py", ".pyi", ".typed", ".yaml", ".yml", ".json", ".txt"})
SKIPPED_DIRS = frozenset({"__pycache__", "tests", "test", ".mypy_cache", ".pytest_cache"})
#: Subpackages the operator's tools run (the Chaos Toolkit extension under ``chaos run``), never a
#: deployed function: not shipped, so their dependencies need no runtime pin.
#: A shipped module that imports one is an error rather than a function failing at run time.
TOOLING = ("shared.chaos.ctk",)
_REQ_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)\s*(?:#.*)?$")
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class BundleError(RuntimeError):
    """A bundle cannot be built: an unpinned or missing import, a missing file."""


@dataclass(frozen=True, slots=True)
class Bundle:
    """What was built for one function."""

    function: str
    path: Path
    files: tuple[str, ...]
    requirements: tuple[str, ...]
    shared_packages: tuple[str, ...]


def normalize(name: str) -> str:
    """PEP 503 normalized distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """``{normalized name: 'Name==version'}`` from a requirements file of exact pins, in order."""
    pins: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", "-")):
            continue
        match = _REQ_LINE.match(line)
        if match is None:
            raise BundleError(f"{path.name}:{number}: not an exact pin (name==version): {raw!r}")
        pins[normalize(match.group(1))] = f"{match.group(1)}=={match.group(2)}"
    return pins


# --- static import discovery ------------------------------------------------------------------


def _guarded_by_import_error(handlers: Iterable[ast.ExceptHandler]) -> bool:
    names = {"ImportError", "ModuleNotFoundError", "Exception"}
    for handler in handlers:
        kinds = handler.type
        elts = kinds.elts if isinstance(kinds, ast.Tuple) else [kinds]
        if any(isinstance(e, ast.Name) and e.id in names for e in elts):
            return True
    return False


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk_required(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements under ``node`` that must succeed at run time."""
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        for stmt in node.orelse:
            yield from _walk_required(stmt)
        return
    if isinstance(node, ast.Try) and _guarded_by_import_error(node.handlers):
        # The guarded body is optional; a fallback import in a handler is not.
        for part in [*node.handlers, *node.orelse, *node.finalbody]:
            yield from _walk_required(part)
        return
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
        return
    for child in ast.iter_child_nodes(node):
        yield from _walk_required(child)


def imported_modules(path: Path, package: str | None) -> set[str]:
    """Absolute dotted names ``path`` imports (``from a import b`` yields ``a.b``).

    ``package`` is the dotted package of the file (for relative imports), None for top level.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in _walk_required(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            if package is None:
                raise BundleError(f"{path}: relative import outside a package")
            parts = package.split(".")
            if node.level > 1:
                parts = parts[: -(node.level - 1)]
            base = ".".join([*parts, base] if base else parts)
        # ``from a import b``: b may be a module or a name in a; resolution walks up to a.
        found.update(f"{base}.{alias.name}" if alias.name != "*" else base for alias in node.names)
    return found


# --- distributions ----------------------------------------------------------------------------


class _DistIndex:
    """Which installed distribution ships which module, and what each one requires."""

    def __init__(self) -> None:
        self._module_to_dist: dict[str, str] = {}
        self._requires: dict[str, set[str]] = {}
        for dist in md.distributions():
            name = normalize(dist.metadata["Name"] or "")
            if not name or name in self._requires:
                continue
            self._requires[name] = {
                normalize(m.group(1))
                for req in dist.requires or []
                if "extra ==" not in req and (m := _REQ_NAME.match(req))
            }
            for file in dist.files or []:
                module = _module_of(file.parts)
                if module:
                    self._module_to_dist.setdefault(module, name)

    def dist_of(self, module: str) -> str | None:
        """The distribution shipping ``module`` (or its closest parent package), if installed."""
        parts = module.split(".")
        for end in range(len(parts), 0, -1):
            dist = self._module_to_dist.get(".".join(parts[:end]))
            if dist is not None:
                return dist
        return None

    def closure(self, names: Iterable[str]) -> set[str]:
        """``names`` and everything they require, transitively."""
        seen: set[str] = set()
        stack = [normalize(n) for n in names]
        while stack:
            name = stack.pop()
            if name not in seen:
                seen.add(name)
                stack.extend(self._requires.get(name, ()))
        return seen


def _module_of(parts: tuple[str, ...]) -> str | None:
    if not parts or parts[0].endswith((".dist-info", ".egg-info", ".data")) or parts[0] == "..":
        return None
    leaf = parts[-1]
    if leaf == "__init__.py":
        mod_parts = parts[:-1]
    elif leaf.endswith(".py"):
        mod_parts = (*parts[:-1], leaf[:-3])
    elif leaf.endswith((".so", ".pyd")):
        mod_parts = (*parts[:-1], leaf.split(".", 1)[0])
    else:
        return None
    if not mod_parts or not all(p.isidentifier() for p in mod_parts):
        return None
    return ".".join(mod_parts)


_INDEX: _DistIndex | None = None


def _index() -> _DistIndex:
    global _INDEX
    if _INDEX is None:
        _INDEX = _DistIndex()
    return _INDEX


# --- bundle contents --------------------------------------------------------------------------


def _shipped(directory: Path) -> Iterator[Path]:
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if any(part in SKIPPED_DIRS or part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix in SHIPPED_SUFFIXES and path.name != "requirements.txt":
            yield path


def _package_of(path: Path, root: Path) -> str | None:
    rel = path.relative_to(root).with_suffix("")
    parts = rel.parts[:-1]
    return ".".join(parts) if parts else None


def _shared_package(module: str, repo: Path) -> str | None:
    parts = module.split(".")
    if parts[0] != "shared":
        return None
    if len(parts) == 1:
        return ""
    candidate = repo / "shared" / parts[1]
    if candidate.is_dir():
        return parts[1]
    if candidate.with_suffix(".py").is_file():
        return parts[1]
    # ``from shared import something`` where something is a name, not a module.
    return ""


def _tooling(module: str) -> str | None:
    """The :data:`TOOLING` package ``module`` belongs to, if any."""
    for tool in TOOLING:
        if module == tool or module.startswith(tool + "."):
            return tool
    return None


def plan(spec: FunctionSpec, repo: Path = REPO) -> tuple[dict[str, Path], list[str], list[str]]:
    """``({bundle path: source file}, shared packages, requirement pins)`` for ``spec``."""
    source = repo / "functions" / spec.name
    main = source / "main.py"
    if not main.is_file():
        raise BundleError(f"{main.relative_to(repo)} does not exist")
    files: dict[str, Path] = {}
    for path in _shipped(source):
        files[str(path.relative_to(source))] = path

    # Follow shared.* imports until no new package turns up.
    packages: set[str] = set()
    third_party: dict[str, str] = {}  # module -> first file importing it
    pending = list(files.items())
    local_top = {Path(name).parts[0].removesuffix(".py") for name in files}
    while pending:
        rel, path = pending.pop()
        if path.suffix != ".py":
            continue
        in_shared = path.is_relative_to(repo / "shared")
        package = _package_of(path, repo) if in_shared else _package_of(Path(rel), Path())
        for module in sorted(imported_modules(path, package)):
            top = module.split(".")[0]
            if top == "functions":
                raise BundleError(
                    f"{path.relative_to(repo)} imports {module}: a deployed function cannot "
                    "import from functions/; move shared code to shared/"
                )
            if top == "shared":
                tool = _tooling(module)
                if tool is not None:
                    raise BundleError(
                        f"{path.relative_to(repo)} imports {module}, but {tool} is tooling that "
                        "functions do not ship (scripts/bundle.py TOOLING)"
                    )
                pkg = _shared_package(module, repo)
                if pkg is None or pkg in packages:
                    continue
                packages.add(pkg)
                if not pkg:
                    continue
                pkg_path = repo / "shared" / pkg
                new = (
                    _shipped(pkg_path) if pkg_path.is_dir() else iter([pkg_path.with_suffix(".py")])
                )
                for file in new:
                    bundle_rel = str(file.relative_to(repo))
                    if _tooling(".".join(Path(bundle_rel).with_suffix("").parts)):
                        continue
                    files[bundle_rel] = file
                    pending.append((bundle_rel, file))
                continue
            if top in sys.stdlib_module_names or top in local_top or top == "__future__":
                continue
            third_party.setdefault(module, str(path.relative_to(repo)))

    shared_init = repo / "shared" / "__init__.py"
    if packages and shared_init.is_file():
        files["shared/__init__.py"] = shared_init

    for data in spec.data_files:
        data_path = repo / data
        if not data_path.is_file():
            raise BundleError(f"{spec.name} needs {data}, which does not exist")
        files[data] = data_path

    requirements = _requirements(spec, third_party, read_pins(repo / "requirements.txt"))
    return files, sorted(p for p in packages if p), requirements


def _requirements(
    spec: FunctionSpec, third_party: dict[str, str], pins: dict[str, str]
) -> list[str]:
    index = _index()
    direct: set[str] = {normalize(n) for n in ALWAYS}
    indirect: dict[str, tuple[str, str]] = {}
    for module, importer in sorted(third_party.items()):
        dist = index.dist_of(module)
        if dist is None:
            raise BundleError(
                f"{importer} imports {module}, which no installed distribution provides: "
                "pin it in requirements.txt and `make setup`"
            )
        if dist in pins:
            direct.add(dist)
        else:
            indirect[dist] = (module, importer)
    missing = [n for n in sorted(ALWAYS) if normalize(n) not in pins]
    if missing:
        raise BundleError(f"requirements.txt must pin {', '.join(missing)}")
    closure = index.closure(direct)
    for dist, (module, importer) in sorted(indirect.items()):
        if dist not in closure:
            raise BundleError(
                f"{importer} imports {module} from {dist}, which requirements.txt does not pin "
                f"and no pinned distribution of {spec.name} requires: add an exact pin"
            )
    return [pin for name, pin in pins.items() if name in direct]


def build(spec: FunctionSpec, dest: Path | None = None, repo: Path = REPO) -> Bundle:
    """Build ``spec``'s bundle into ``dest`` (default ``<repo>/build/<name>/``), replacing it."""
    files, packages, requirements = plan(spec, repo)
    target = dest or repo / "build" / spec.name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for rel, source in sorted(files.items()):
        out = target / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, out)
    header = (
        f"# {spec.name}: exact pins from the top-level requirements.txt, only what the bundled\n"
        "# code imports. Generated by `python -m scripts.bundle`; do not edit.\n"
    )
    (target / "requirements.txt").write_text(header + "".join(f"{r}\n" for r in requirements))
    ignore = repo / ".gcloudignore"
    if not ignore.is_file():
        raise BundleError(f"{ignore} is missing: bundles ship a copy of it")
    shutil.copy2(ignore, target / ".gcloudignore")
    written = sorted([*files, "requirements.txt", ".gcloudignore"])
    return Bundle(spec.name, target, tuple(written), tuple(requirements), tuple(packages))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("functions", nargs="*", help="function names (default: all)")
    args = parser.parse_args(argv)
    try:
        specs = [function(n) for n in args.functions] if args.functions else list(FUNCTIONS)
        for spec in specs:
            bundle = build(spec)
            print(
                f"{bundle.path.relative_to(REPO)}: {len(bundle.files)} files, "
                f"shared: {', '.join(bundle.shared_packages) or '-'}, "
                f"requires: {', '.join(bundle.requirements)}"
            )
    except (BundleError, KeyError) as exc:
        print(f"bundle: {exc.args[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
