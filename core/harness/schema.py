"""Static reading of what a registered component accepts: parameters and type hints from the
source text (:mod:`ast`), without importing the component's module.

:func:`gatelab.core.harness.validation.signature_params` describes a model factory, a data-module
factory, a task's ``Options`` or a Lightning class by importing it; for the models that means
torch (seconds), for tasks and callbacks Lightning, torchmetrics and torchvision (15-20 s on a
cold start). This module answers the same question from the source file:

* :func:`read_params` (``"package.module:attr"``): a function's keyword parameters (a function
  taking only ``**cfg`` is described by the class its return annotation names); a class's
  ``__init__`` parameters, or, for a class with ``config_class = XConfig``, the fields of that
  dataclass (bases followed through the same module and through imports) plus ``preset`` when
  ``XConfig.presets`` is a dict literal (its keys as a ``Literal``);
* :func:`read_options` (a task class): the fields of its ``Options`` dataclass;
* :func:`read_class_attr` / :func:`is_subclass`: a class attribute given as a literal, and
  whether a class derives from another (callbacks by class path).

Annotations are evaluated from their source text in a namespace of builtins and of the names
the module imports from a few light modules (:data:`LIGHT_MODULES`: ``typing``,
``collections.abc``, ``pathlib``, :mod:`gatelab.core.config` ...), plus module-level type
aliases built from those (followed through imports). Anything else (a torch class, a class of
the domain) cannot be evaluated without importing its module: the parameter is then listed in
:attr:`Params.unresolved` with annotation ``Any`` (its name is still checked; the caller checks
its value through the import path when a value is given).

Whatever cannot be read with certainty (a factory built at run time, a decorator that may change
the signature, a module without source, an attribute bound by ``__getattr__``, a definition
patched at module level) raises :class:`StaticReadError`; callers then import the target.
Source files are located by asking the :data:`sys.meta_path` finders package by package (as
the import system does, editable installs included) without executing any module.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import importlib
import importlib.util
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "LIGHT_MODULES",
    "Missing",
    "Params",
    "StaticReadError",
    "Sym",
    "clear_cache",
    "find_source",
    "is_subclass",
    "module_names",
    "read_class_attr",
    "read_options",
    "read_params",
    "resolve",
]

#: modules whose objects annotations may use as they are (imported for real: cheap, no torch)
LIGHT_MODULES = frozenset(
    {
        "builtins",
        "collections",
        "collections.abc",
        "dataclasses",
        "datetime",
        "decimal",
        "enum",
        "fractions",
        "numbers",
        "os",
        "pathlib",
        "re",
        "types",
        "typing",
        "typing_extensions",
        "gatelab.core.config",
    }
)


class StaticReadError(Exception):
    """The source does not say for certain what the target accepts (import it instead)."""


class Missing(StaticReadError):
    """The target certainly does not exist: the module has no source anywhere, or the name is
    bound nowhere in it (no ``__getattr__``, no unresolved star import)."""


class _Unresolved(Exception):
    """An annotation names something that cannot be evaluated without importing it."""


@dataclasses.dataclass(frozen=True)
class Params:
    """What a callable accepts, read from source.

    Attributes:
        params: ``{name: annotation}`` of the keyword-capable parameters (``Any``: unchecked).
        open_ended: a ``**kwargs`` still accepts any other name.
        unresolved: names whose annotation could not be evaluated statically (``Any`` here).
        texts: the annotation source text per name (``None``: not annotated).
        origin: ``"module:qualname"`` of what was read (the class, the config, the function).
    """

    params: dict[str, Any]
    open_ended: bool
    unresolved: frozenset[str]
    texts: dict[str, str | None]
    origin: str


# --------------------------------------------------------------------------- modules


@dataclasses.dataclass
class _Module:
    name: str
    path: Path
    tree: ast.Module
    is_package: bool
    bindings: dict[str, list[Any]]  # top-level name -> binding nodes (def, class, import, assign)
    stars: list[str]  # modules of ``from x import *``
    has_getattr: bool
    stamp: tuple[str, int, int]  # (path, mtime_ns, size) when parsed
    ns_cache: dict[str, Any] = dataclasses.field(default_factory=dict)


_MODULES: dict[str, _Module] = {}


def find_source(module: str) -> Path:
    """The ``.py`` file of ``module``, located without importing it (nor new parent packages).

    Asks the finders of :data:`sys.meta_path` for each package on the way, with the search path
    of the parent (its ``__path__`` when it is imported, else its spec's locations), as the
    import system does, but executes nothing.

    Raises:
        Missing: no finder knows the module.
        StaticReadError: the module exists but has no Python source (an extension, a frozen
            or namespace module).
    """
    mod = sys.modules.get(module)
    if mod is not None:
        file = getattr(mod, "__file__", None)
        if file and file.endswith(".py"):
            return Path(file)
        raise StaticReadError(f"module {module!r} has no Python source")
    parts = module.split(".")
    path: list[str] | None = None
    spec = None
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        last = i == len(parts) - 1
        loaded = sys.modules.get(name)
        if loaded is not None and not last:
            path = getattr(loaded, "__path__", None)
            if path is None:
                raise Missing(f"{name!r} is not a package")
            path = list(path)
            continue
        spec = _find_spec(name, path)
        if spec is None:
            raise Missing(f"no module named {name!r}")
        if not last:
            if spec.submodule_search_locations is None:
                raise Missing(f"{name!r} is not a package")
            path = list(spec.submodule_search_locations)
    origin = getattr(spec, "origin", None)
    if not origin or not str(origin).endswith(".py"):
        raise StaticReadError(f"module {module!r} has no Python source")
    return Path(origin)


def _find_spec(name: str, path: list[str] | None) -> Any:
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        try:
            spec = find(name, path)
        except Exception as e:  # a finder that fails: the answer is not certain
            raise StaticReadError(f"locating {name!r}: {type(e).__name__}: {e}") from None
        if spec is not None:
            return spec
    return None


def _module(name: str) -> _Module:
    path = find_source(name)
    try:
        st = path.stat()
    except OSError as e:
        raise StaticReadError(f"cannot read {path}: {e}") from None
    stamp = (str(path), st.st_mtime_ns, st.st_size)
    cached = _MODULES.get(name)
    if cached is not None and cached.stamp == stamp:  # parsed already, and unchanged since
        return cached
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError) as e:
        raise StaticReadError(f"cannot parse {path}: {e}") from None
    bindings: dict[str, list[Any]] = {}
    stars: list[str] = []
    is_package = path.name == "__init__.py"

    def absolute(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = name.split(".")
        if not is_package:
            base = base[:-1]
        if node.level > 1:
            base = base[: len(base) - (node.level - 1)]
        return ".".join([*base, *([node.module] if node.module else [])])

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bindings.setdefault(node.name, []).append(node)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    key = a.asname or a.name.split(".")[0]
                    bindings.setdefault(key, []).append(
                        _ImportRef(a.name if a.asname else a.name.split(".")[0], None)
                    )
            elif isinstance(node, ast.ImportFrom):
                src = absolute(node)
                for a in node.names:
                    if a.name == "*":
                        stars.append(src)
                    else:
                        bindings.setdefault(a.asname or a.name, []).append(_ImportRef(src, a.name))
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    for n in _target_names(t):
                        bindings.setdefault(n, []).append(node if isinstance(t, ast.Name) else _Opaque())
                    patched = _patched_name(t)
                    if patched is not None:  # ``f.__signature__ = ...``: no longer what the source says
                        bindings.setdefault(patched, []).append(_Opaque())
            elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                call = node.value  # ``setattr(Cls, "config_class", ...)``
                if _dotted(call.func) == "setattr" and call.args and isinstance(call.args[0], ast.Name):
                    bindings.setdefault(call.args[0].id, []).append(_Opaque())
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                if node.value is not None:
                    bindings.setdefault(node.target.id, []).append(node)
            elif isinstance(node, (ast.AugAssign, ast.For, ast.With, ast.AsyncFor, ast.AsyncWith)):
                target = getattr(node, "target", None)
                for n in _target_names(target) if target is not None else ():
                    bindings.setdefault(n, []).append(_Opaque())
                if isinstance(node, (ast.For, ast.With, ast.AsyncFor, ast.AsyncWith)):
                    visit(node.body)
            elif isinstance(node, ast.If):
                if _is_type_checking(node.test):
                    visit(node.orelse)  # names imported for type checkers only: absent at run time
                else:
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for h in node.handlers:
                    visit(h.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, (ast.Global, ast.Delete)):
                names = (
                    node.names
                    if isinstance(node, ast.Global)
                    else [n for t in node.targets for n in _target_names(t)]
                )
                for n in names:
                    bindings.setdefault(n, []).append(_Opaque())

    visit(tree.body)
    mod = _Module(name, path, tree, is_package, bindings, stars, "__getattr__" in bindings, stamp)
    _MODULES[name] = mod
    return mod


#: attributes whose assignment after a definition changes what static reading would answer
_PATCHED_ATTRS = frozenset(
    {
        "__signature__",
        "__wrapped__",
        "__init__",
        "__annotations__",
        "__dataclass_fields__",
        "config_class",
        "Options",
        "presets",
        "logged_metrics",
        "extra_logged",
    }
)


def _patched_name(t: ast.AST) -> str | None:
    """``X`` for a top-level ``X.<attr> = ...`` that changes a signature or a read attribute."""
    if isinstance(t, ast.Attribute) and t.attr in _PATCHED_ATTRS:
        base = t.value
        while isinstance(base, ast.Attribute):
            base = base.value
        if isinstance(base, ast.Name):
            return base.id
    return None


def _target_names(t: ast.AST) -> Iterator[str]:
    if isinstance(t, ast.Name):
        yield t.id
    elif isinstance(t, (ast.Tuple, ast.List)):
        for e in t.elts:
            yield from _target_names(e)
    elif isinstance(t, ast.Starred):
        yield from _target_names(t.value)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


@dataclasses.dataclass(frozen=True)
class _ImportRef:
    """``import module`` (``attr`` None) or ``from module import attr``."""

    module: str
    attr: str | None


class _Opaque:
    """A binding whose value static reading does not follow (a loop variable, a tuple target)."""


# --------------------------------------------------------------------------- symbols


@dataclasses.dataclass(frozen=True)
class Sym:
    """What a name is bound to: a class or function definition, an expression, a module, or a
    real object of a light module."""

    kind: str  # "class" | "function" | "expr" | "module" | "object"
    module: str
    node: Any = None
    qualname: str = ""
    obj: Any = None


def _light(module: str) -> Any:
    return importlib.import_module(module)


def _is_light(module: str) -> bool:
    return module in LIGHT_MODULES


def resolve(module: str, attr: str, _depth: int = 0) -> Sym:
    """The symbol ``module:attr`` (``attr`` may be dotted through modules and classes).

    Raises:
        Missing: the module or the name certainly does not exist.
        StaticReadError: the binding cannot be followed statically.
    """
    if _depth > 40:
        raise StaticReadError(f"import chain too deep at {module}:{attr}")
    head, _, rest = attr.partition(".")
    sym = _lookup(module, head, _depth)
    while rest:
        part, _, rest = rest.partition(".")
        sym = _member(sym, part, _depth)
    return sym


def _lookup(module: str, name: str, depth: int) -> Sym:
    if depth > 40:
        raise StaticReadError(f"import chain too deep at {module}.{name}")
    if _is_light(module):
        mod = _light(module)
        if not hasattr(mod, name):
            raise Missing(f"module {module!r} has no attribute {name!r}")
        obj = getattr(mod, name)
        return Sym("module" if isinstance(obj, type(sys)) else "object", module, obj=obj, qualname=name)
    m = _module(module)
    nodes = m.bindings.get(name)
    if not nodes:
        for star in m.stars:
            try:
                return _lookup_star(star, name, depth)
            except Missing:
                continue
        if m.is_package:  # a submodule, bound on import
            try:
                find_source(f"{module}.{name}")
                return Sym("module", f"{module}.{name}")
            except Missing:
                pass
        if m.has_getattr:
            raise StaticReadError(f"{module}.{name} may come from the module's __getattr__")
        raise Missing(f"module {module!r} has no attribute {name!r}")
    if len(nodes) > 1:
        syms = []
        for node in nodes:
            syms.append(_sym_of(m, name, node, depth))
        if all(s == syms[0] for s in syms) or _same_class_target(syms):
            return syms[0]
        raise StaticReadError(f"{module}.{name} is bound more than once")
    return _sym_of(m, name, nodes[0], depth)


def _same_class_target(syms: list[Sym]) -> bool:
    first = syms[0]
    return all(
        s.kind == first.kind and s.module == first.module and s.qualname == first.qualname for s in syms
    )


def _lookup_star(module: str, name: str, depth: int) -> Sym:
    if _is_light(module):
        return _lookup(module, name, depth + 1)
    m = _module(module)
    if name.startswith("_"):
        raise Missing(name)
    exported = _all_names(m)
    if exported is not None and name not in exported:
        raise Missing(name)
    return _lookup(module, name, depth + 1)


def _all_names(m: _Module) -> list[str] | None:
    nodes = m.bindings.get("__all__")
    if not nodes or len(nodes) != 1 or not isinstance(nodes[0], (ast.Assign, ast.AnnAssign)):
        return None
    try:
        value = ast.literal_eval(nodes[0].value)
    except ValueError:
        return None
    return list(value) if isinstance(value, (list, tuple)) else None


def _sym_of(m: _Module, name: str, node: ast.AST, depth: int) -> Sym:
    if isinstance(node, ast.ClassDef):
        return Sym("class", m.name, node, node.name)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return Sym("function", m.name, node, node.name)
    if isinstance(node, _ImportRef):
        if node.attr is None:
            if _is_light(node.module):
                return Sym("module", node.module, obj=_light(node.module))
            return Sym("module", node.module)
        # ``from package import submodule`` or a name of the module
        if node.module == m.name:  # a package importing its own submodule
            find_source(f"{node.module}.{node.attr}")
            return Sym("module", f"{node.module}.{node.attr}")
        try:
            return _lookup(node.module, node.attr, depth + 1)
        except Missing:
            if _is_light(node.module):
                raise
            find_source(f"{node.module}.{node.attr}")
            return Sym("module", f"{node.module}.{node.attr}")
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        if isinstance(node.value, (ast.Name, ast.Attribute)):  # an alias: follow it
            dotted = _dotted(node.value)
            if dotted is not None and dotted != name:
                return _follow_dotted(m, dotted, depth + 1)
        return Sym("expr", m.name, node.value, name)
    raise StaticReadError(f"{m.name}.{name} is bound by code static reading does not follow")


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _follow_dotted(m: _Module, dotted: str, depth: int) -> Sym:
    head, _, rest = dotted.partition(".")
    if head not in m.bindings and not m.stars and hasattr(builtins, head):
        sym = Sym("object", "builtins", obj=getattr(builtins, head), qualname=head)
    else:
        sym = _lookup(m.name, head, depth)
    while rest:
        part, _, rest = rest.partition(".")
        sym = _member(sym, part, depth)
    return sym


def _member(sym: Sym, part: str, depth: int) -> Sym:
    if sym.kind == "module":
        if sym.obj is not None:
            if not hasattr(sym.obj, part):
                raise Missing(f"module {sym.module!r} has no attribute {part!r}")
            obj = getattr(sym.obj, part)
            return Sym(
                "module" if isinstance(obj, type(sys)) else "object", sym.module, obj=obj, qualname=part
            )
        return _lookup(sym.module, part, depth + 1)
    if sym.kind == "object":
        if not hasattr(sym.obj, part):
            raise Missing(f"{sym.qualname} has no attribute {part!r}")
        return Sym("object", sym.module, obj=getattr(sym.obj, part), qualname=f"{sym.qualname}.{part}")
    if sym.kind == "class":
        for node in sym.node.body:
            if isinstance(node, ast.ClassDef) and node.name == part:
                return Sym("class", sym.module, node, f"{sym.qualname}.{part}")
        raise StaticReadError(f"{sym.module}.{sym.qualname}.{part}: not a nested class")
    raise StaticReadError(f"{sym.module}.{sym.qualname}.{part}: cannot follow an attribute of an expression")


# --------------------------------------------------------------------------- annotations


def _namespace_get(m: _Module, name: str, depth: int = 0) -> Any:
    """The real object a name denotes in module ``m``'s annotations (``_Unresolved`` if it cannot
    be had without importing a heavy module)."""
    if name in m.ns_cache:
        value = m.ns_cache[name]
        if value is _Unresolved:
            raise _Unresolved(name)
        return value
    m.ns_cache[name] = _Unresolved  # cycles are unresolved
    try:
        value = _object_of(m, name, depth)
    except (StaticReadError, _Unresolved):
        raise _Unresolved(name) from None
    m.ns_cache[name] = value
    return value


def _object_of(m: _Module, name: str, depth: int) -> Any:
    if depth > 20:
        raise _Unresolved(name)
    if name not in m.bindings and not m.stars:
        if hasattr(builtins, name):
            return getattr(builtins, name)
        raise _Unresolved(name)
    try:
        sym = _lookup(m.name, name, depth)
    except Missing:
        if hasattr(builtins, name):
            return getattr(builtins, name)
        raise _Unresolved(name) from None
    return _sym_object(sym, depth)


def _sym_object(sym: Sym, depth: int) -> Any:
    if sym.kind in ("object", "module") and sym.obj is not None:
        return sym.obj
    if sym.kind == "module" and _is_light(sym.module):
        return _light(sym.module)
    if sym.kind == "expr":  # a module-level type alias: evaluate it where it is defined
        return _eval(sym.node, _module(sym.module), depth + 1)
    raise _Unresolved(sym.qualname or sym.module)


def _eval(node: ast.expr, m: _Module, depth: int = 0) -> Any:
    """Evaluate a type expression of module ``m`` without running any code of ``m``."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, str):
            try:
                inner = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                raise _Unresolved(node.value) from None
            return _eval(inner, m, depth + 1)
        return node.value
    if isinstance(node, ast.Name):
        return _namespace_get(m, node.id, depth)
    if isinstance(node, ast.Attribute):
        base = _eval(node.value, m, depth)
        if isinstance(base, type(sys)):
            if base.__name__ not in LIGHT_MODULES:
                raise _Unresolved(node.attr)
            if not hasattr(base, node.attr):
                raise _Unresolved(node.attr)
            value = getattr(base, node.attr)
            if isinstance(value, type(sys)) and value.__name__ not in LIGHT_MODULES:
                raise _Unresolved(node.attr)
            return value
        try:
            return getattr(base, node.attr)
        except AttributeError:
            raise _Unresolved(node.attr) from None
    if isinstance(node, ast.Subscript):
        base = _eval(node.value, m, depth)
        if base is typing.Literal or base is getattr(sys.modules.get("typing_extensions"), "Literal", None):
            args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            try:
                values = tuple(ast.literal_eval(a) for a in args)
            except ValueError:
                raise _Unresolved("Literal") from None
            return base[values if len(values) != 1 else values[0]]
        index = _eval(node.slice, m, depth)
        try:
            return base[index]
        except Exception:  # a subscript the type does not take: left to the import path
            raise _Unresolved(ast.unparse(node)) from None
    if isinstance(node, ast.Tuple):
        return tuple(_eval(e, m, depth) for e in node.elts)
    if isinstance(node, ast.List):
        return [_eval(e, m, depth) for e in node.elts]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _eval(node.left, m, depth), _eval(node.right, m, depth)
        try:
            return left | right
        except TypeError:
            raise _Unresolved(ast.unparse(node)) from None
    if isinstance(node, ast.Call):
        func = _eval(node.func, m, depth)
        if getattr(func, "__module__", "").split(".")[0] not in {"pydantic", "annotated_types", "gatelab"}:
            raise _Unresolved(ast.unparse(node))
        if getattr(func, "__module__", "").startswith("gatelab") and func.__module__ not in LIGHT_MODULES:
            raise _Unresolved(ast.unparse(node))
        args = [_eval(a, m, depth) for a in node.args]
        kwargs = {k.arg: _eval(k.value, m, depth) for k in node.keywords if k.arg is not None}
        if len(kwargs) != len(node.keywords):
            raise _Unresolved(ast.unparse(node))
        try:
            return func(*args, **kwargs)
        except Exception:
            raise _Unresolved(ast.unparse(node)) from None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _eval(node.operand, m, depth)
        if isinstance(value, (int, float)):
            return -value
    raise _Unresolved(ast.unparse(node))


def _annotation(node: ast.expr | None, m: _Module) -> tuple[Any, bool, str | None]:
    """``(annotation, resolved, text)`` of an annotation node (``Any`` when not resolved)."""
    if node is None:
        return Any, True, None
    text = ast.unparse(node)
    try:
        value = _eval(node, m)
    except (_Unresolved, StaticReadError, RecursionError):
        return Any, False, text
    if value is None:
        value = type(None)
    return value, True, text


# --------------------------------------------------------------------------- classes and functions


def _class_bases(sym: Sym) -> list[Sym]:
    m = _module(sym.module)
    out = []
    for b in sym.node.bases:
        dotted = _dotted(b)
        if dotted is None:
            if isinstance(b, ast.Subscript):  # Generic[T], Base[T]
                dotted = _dotted(b.value)
            if dotted is None:
                raise StaticReadError(f"{sym.module}.{sym.qualname}: base {ast.unparse(b)} is not a name")
        base = _follow_dotted(m, dotted, 0)
        out.append(base)
    if sym.node.keywords:  # a metaclass or class keywords may change the class
        raise StaticReadError(f"{sym.module}.{sym.qualname}: class keywords")
    return out


def _is_object(sym: Sym) -> bool:
    return sym.kind == "object" and sym.obj is object


def _mro(sym: Sym, depth: int = 0) -> list[Sym]:
    """The class and its bases in method-resolution order (single-inheritance chains, and
    multiple bases whose own chains only meet at light-module classes)."""
    if depth > 30:
        raise StaticReadError("class hierarchy too deep")
    if sym.kind == "object":
        if isinstance(sym.obj, type):
            return [sym]  # a light-module class: its own MRO is real
        raise StaticReadError(f"{sym.qualname} is not a class")
    if sym.kind != "class":
        raise StaticReadError(f"{sym.module}.{sym.qualname} is not a class definition")
    bases = _class_bases(sym)
    if not bases:
        return [sym]
    chains = [_mro(b, depth + 1) for b in bases]
    if len(chains) == 1:
        return [sym, *chains[0]]
    # several bases: C3 merge on (module, qualname) keys
    seqs = [list(c) for c in chains] + [list(bases)]
    out = [sym]
    key = lambda s: (s.module, s.qualname, id(s.obj) if s.kind == "object" else 0)  # noqa: E731
    while any(seqs):
        for seq in seqs:
            if not seq:
                continue
            head = seq[0]
            if not any(key(head) in [key(s) for s in other[1:]] for other in seqs):
                break
        else:
            raise StaticReadError(f"{sym.module}.{sym.qualname}: inconsistent bases")
        out.append(head)
        seqs = [[s for s in seq if key(s) != key(head)] for seq in seqs]
    return out


def _class_body_binding(sym: Sym, name: str) -> ast.AST | None:
    found = None
    for node in sym.node.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            found = node
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            found = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            if node.value is not None:
                found = node
        elif isinstance(node, (ast.If, ast.Try, ast.For, ast.With)):
            for sub in ast.walk(node):
                if isinstance(sub, (ast.FunctionDef, ast.ClassDef)) and sub.name == name:
                    raise StaticReadError(f"{sym.qualname}.{name} is defined conditionally")
                if isinstance(sub, ast.Name) and sub.id == name and isinstance(sub.ctx, ast.Store):
                    raise StaticReadError(f"{sym.qualname}.{name} is assigned conditionally")
    return found


def _class_attr(sym: Sym, name: str) -> tuple[Sym, ast.AST | Any] | None:
    """``(defining class, binding)`` of class attribute ``name`` along the MRO (a light-module
    class gives its real value)."""
    for cls in _mro(sym):
        if cls.kind == "object":
            if cls.obj is object:
                continue
            if name in vars(cls.obj):
                return cls, vars(cls.obj)[name]
            continue
        node = _class_body_binding(cls, name)
        if node is not None:
            return cls, node
    return None


def _decorators(node: ast.ClassDef | ast.FunctionDef, m: _Module) -> list[Any]:
    """The decorators' real objects (``dataclasses.dataclass``) or their symbols."""
    out = []
    for d in node.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        dotted = _dotted(target)
        if dotted is None:
            raise StaticReadError(f"decorator {ast.unparse(d)} of {node.name}")
        out.append((_follow_dotted(m, dotted, 0), d))
    return out


def _dataclass_options(sym: Sym) -> dict[str, Any] | None:
    """The ``@dataclass(...)`` keywords of a class definition, ``None`` if it is not a dataclass
    itself (other decorators make the class unreadable)."""
    m = _module(sym.module)
    opts = None
    for dsym, d in _decorators(sym.node, m):
        if dsym.kind == "object" and dsym.obj is dataclasses.dataclass:
            opts = {}
            if isinstance(d, ast.Call):
                for k in d.keywords:
                    try:
                        opts[k.arg] = ast.literal_eval(k.value)
                    except ValueError:
                        raise StaticReadError(f"@dataclass({ast.unparse(k)}) of {sym.qualname}") from None
        else:
            raise StaticReadError(f"{sym.module}.{sym.qualname}: decorator {ast.unparse(d)}")
    return opts


def _is_classvar(node: ast.expr, m: _Module) -> bool:
    head = node.value if isinstance(node, ast.Subscript) else node
    if isinstance(head, ast.Constant) and isinstance(head.value, str):  # a quoted annotation
        try:
            parsed = ast.parse(head.value, mode="eval").body
        except SyntaxError:
            return False
        return _is_classvar(parsed, m)
    try:
        obj = _eval(head, m)
    except (_Unresolved, StaticReadError):
        return ast.unparse(head).split(".")[-1] == "ClassVar"
    return obj is typing.ClassVar


def _is_initvar_or_kwonly(node: ast.expr, m: _Module) -> bool:
    head = node.value if isinstance(node, ast.Subscript) else node
    try:
        obj = _eval(head, m)
    except (_Unresolved, StaticReadError):
        return False
    return obj is dataclasses.InitVar or obj is dataclasses.KW_ONLY or isinstance(obj, dataclasses.InitVar)


def _field_init(value: ast.expr | None, m: _Module) -> bool:
    """Whether a field's default (``field(init=False)``) keeps it an ``__init__`` argument."""
    if not isinstance(value, ast.Call):
        return True
    dotted = _dotted(value.func)
    if dotted is None:
        return True
    try:
        fsym = _follow_dotted(m, dotted, 0)
    except StaticReadError:
        return True
    if not (fsym.kind == "object" and fsym.obj is dataclasses.field):
        return True
    for k in value.keywords:
        if k.arg == "init":
            try:
                return bool(ast.literal_eval(k.value))
            except ValueError:
                raise StaticReadError(f"field(init={ast.unparse(k.value)})") from None
    return True


def _dataclass_fields(sym: Sym) -> dict[str, tuple[Any, _Module | None, bool]]:
    """``{name: (annotation node, module, init)}`` of a dataclass, in ``dataclasses.fields`` order."""
    if sym.kind == "object":
        raise StaticReadError(f"{sym.qualname}: a light-module class")
    fields: dict[str, tuple[Any, _Module | None, bool]] = {}
    for base in reversed(_mro(sym)[1:]):
        if base.kind == "class" and _dataclass_options(base) is not None:
            for name, f in _own_fields(base).items():
                fields[name] = f
        elif base.kind == "object" and dataclasses.is_dataclass(base.obj):
            hints = typing.get_type_hints(base.obj, include_extras=True)
            for f in dataclasses.fields(base.obj):
                fields[f.name] = (_Real(hints.get(f.name, Any), f.type), None, f.init)
    if _dataclass_options(sym) is not None:
        for name, f in _own_fields(sym).items():
            fields[name] = f
    return fields


@dataclasses.dataclass(frozen=True)
class _Real:
    """The evaluated annotation of a field of a light-module dataclass (and its text)."""

    value: Any
    text: Any


def _field_annotation(ann: Any, m: _Module | None) -> tuple[Any, bool, str | None]:
    if isinstance(ann, _Real):
        return ann.value, True, ann.text if isinstance(ann.text, str) else None
    return _annotation(ann, m)


def _own_fields(sym: Sym) -> dict[str, tuple[Any, _Module | None, bool]]:
    m = _module(sym.module)
    out: dict[str, tuple[Any, _Module | None, bool]] = {}
    for node in sym.node.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if _is_classvar(node.annotation, m) or _is_initvar_or_kwonly(node.annotation, m):
                continue
            out[node.target.id] = (node.annotation, m, _field_init(node.value, m))
        elif isinstance(node, (ast.If, ast.Try, ast.For, ast.With)):
            if any(isinstance(s, ast.AnnAssign) for s in ast.walk(node)):
                raise StaticReadError(f"{sym.qualname}: fields declared conditionally")
    return out


def _is_wrapping_decorator(dsym: Sym) -> bool:
    """A decorator function whose wrapper is made with ``functools.wraps`` (the signature seen
    by :func:`inspect.signature` is the decorated function's)."""
    if dsym.kind != "function":
        return False
    for sub in ast.walk(dsym.node):
        if isinstance(sub, ast.Call):
            d = _dotted(sub.func)
            if d in ("wraps", "functools.wraps"):
                return True
    return False


_KW_ARGS = ("args", "kwonlyargs")


def _function_params(
    sym: Sym, *, drop_self: bool, skip: tuple[str, ...]
) -> tuple[dict[str, tuple[Any, bool, str | None]], bool, ast.expr | None]:
    """``({name: (annotation, resolved, text)}, has **kwargs, return annotation node)``."""
    node = sym.node
    m = _module(sym.module)
    for dsym, d in _decorators(node, m):
        if dsym.kind == "object" and dsym.obj in (staticmethod, classmethod):
            continue
        if not _is_wrapping_decorator(dsym):
            raise StaticReadError(f"{sym.module}.{sym.qualname}: decorator {ast.unparse(d)}")
    a = node.args
    positional = [*a.posonlyargs, *a.args]
    params: dict[str, tuple[Any, bool, str | None]] = {}
    for i, arg in enumerate(positional):
        if drop_self and i == 0:
            continue
        if i < len(a.posonlyargs):
            continue
        if arg.arg in skip:
            continue
        params[arg.arg] = _annotation(arg.annotation, m)
    for arg in a.kwonlyargs:
        if arg.arg not in skip:
            params[arg.arg] = _annotation(arg.annotation, m)
    return params, a.kwarg is not None, node.returns


def _init_of(sym: Sym) -> tuple[Sym, ast.AST] | None:
    """The class along the MRO that defines ``__init__`` (a dataclass without one: its fields)."""
    for cls in _mro(sym):
        if cls.kind == "object":
            if cls.obj is object:
                return None
            raise StaticReadError(f"__init__ of light-module class {cls.qualname}")
        node = _class_body_binding(cls, "__init__")
        if node is not None:
            if not isinstance(node, ast.FunctionDef):
                raise StaticReadError(f"{cls.qualname}.__init__ is not a plain function")
            return cls, node
        opts = _dataclass_options(cls)
        if opts is not None and opts.get("init", True):
            return cls, None  # generated by @dataclass
    return None


def _params_of(sym: Sym, skip: tuple[str, ...], depth: int = 0) -> Params:
    origin = f"{sym.module}:{sym.qualname}"
    if sym.kind == "function":
        params, var_kw, ret = _function_params(sym, drop_self=False, skip=skip)
        if var_kw and ret is not None:
            rsym = _return_class(sym, ret)
            if rsym is not None:
                inner = _params_of(rsym, skip, depth + 1)
                merged = {**_triples(inner), **params}
                return _build(merged, inner.open_ended, origin)
        return _build(params, var_kw, origin)
    if sym.kind != "class":
        raise StaticReadError(f"{origin} is not a function or class definition")
    _dataclass_options(sym)  # any other class decorator may change the class: not readable
    found = _class_attr(sym, "config_class")
    if found is not None:
        owner, node = found
        csym = _value_sym(owner, node)
        if csym is not None and csym.kind == "class" and _is_dataclass_def(csym):
            return _config_params(csym, skip)
        if csym is not None and csym.kind == "object" and csym.obj is None:
            pass  # config_class = None: described by __init__
        else:
            raise StaticReadError(f"{origin}: config_class is not a dataclass read statically")
    init = _init_of(sym)
    if init is None:  # object.__init__: (self, /, *args, **kwargs)
        return _build({}, True, origin)
    cls, node = init
    if node is None:
        fields = _dataclass_fields(cls)
        return _build(
            {n: _field_annotation(ann, fm) for n, (ann, fm, init_) in fields.items() if init_ and n not in skip},
            False,
            origin,
        )
    params, var_kw, _ = _function_params(
        Sym("function", cls.module, node, f"{cls.qualname}.__init__"), drop_self=True, skip=skip
    )
    return _build(params, var_kw, origin)


def _is_dataclass_def(sym: Sym) -> bool:
    if _dataclass_options(sym) is not None:
        return True
    return any(b.kind == "class" and _dataclass_options(b) is not None for b in _mro(sym)[1:])


def _value_sym(owner: Sym, node: Any) -> Sym | None:
    """The symbol a class attribute's value names (``config_class = MaximConfig``)."""
    if owner.kind == "object":  # a real value from a light-module class
        return Sym("object", owner.module, obj=node)
    if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
        raise StaticReadError(f"{owner.qualname}: attribute is not an assignment")
    if isinstance(node.value, ast.Constant) and node.value.value is None:
        return Sym("object", "builtins", obj=None)
    dotted = _dotted(node.value)
    if dotted is None:
        raise StaticReadError(f"{owner.qualname}: {ast.unparse(node.value)} is not a name")
    m = _module(owner.module)
    # a name bound in the class body itself is looked up in the module (class scope is not
    # visible there, except for the assignment's own expression, which sees the class body)
    return _follow_dotted(m, dotted, 0)


def _config_params(csym: Sym, skip: tuple[str, ...]) -> Params:
    fields = _dataclass_fields(csym)
    params = {n: _field_annotation(ann, fm) for n, (ann, fm, init) in fields.items() if init and n not in skip}
    found = _class_attr(csym, "presets")
    if found is not None:
        owner, node = found
        keys = _literal_keys(owner, node)
        if keys:
            params["preset"] = (typing.Literal[keys], True, None)
    return _build(params, False, f"{csym.module}:{csym.qualname}")


def _literal_keys(owner: Sym, node: Any) -> tuple[str, ...]:
    if owner.kind == "object":
        return tuple(node)
    value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
    m = _module(owner.module)
    for _ in range(10):
        if isinstance(value, ast.Dict):
            keys = []
            for k in value.keys:
                if k is None:  # ``**other``: keys known only at run time
                    raise StaticReadError(f"{owner.qualname}.presets unpacks a mapping")
                try:
                    keys.append(ast.literal_eval(k))
                except ValueError:
                    raise StaticReadError(f"{owner.qualname}.presets has a computed key") from None
            return tuple(keys)
        if isinstance(value, ast.Name):  # a module-level dict literal
            sym = _lookup(m.name, value.id, 0)
            if sym.kind != "expr":
                raise StaticReadError(f"{owner.qualname}.presets = {value.id} is not a literal")
            m, value = _module(sym.module), sym.node
            continue
        break
    raise StaticReadError(f"{owner.qualname}.presets is not a dict literal")


def _return_class(fsym: Sym, ret: ast.expr) -> Sym | None:
    m = _module(fsym.module)
    node = ret
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        node = ast.parse(node.value, mode="eval").body
    dotted = _dotted(node)
    if dotted is None:
        raise StaticReadError(f"{fsym.qualname}: return annotation {ast.unparse(ret)} is not a class name")
    rsym = _follow_dotted(m, dotted, 0)
    if rsym.kind == "object" and rsym.obj is not None and not isinstance(rsym.obj, type):
        return None  # ``-> Any``: nothing to add (the import path sees no class either)
    if rsym.kind == "object" and (rsym.obj is None or rsym.obj.__init__ is object.__init__):
        return None
    if rsym.kind != "class":
        raise StaticReadError(f"{fsym.qualname}: return annotation {dotted} is not a class definition")
    return rsym


def _triples(p: Params) -> dict[str, tuple[Any, bool, str | None]]:
    return {n: (p.params[n], n not in p.unresolved, p.texts.get(n)) for n in p.params}


def _build(params: dict[str, tuple[Any, bool, str | None]], open_ended: bool, origin: str) -> Params:
    return Params(
        params={n: v[0] for n, v in params.items()},
        open_ended=open_ended,
        unresolved=frozenset(n for n, v in params.items() if not v[1]),
        texts={n: v[2] for n, v in params.items()},
        origin=origin,
    )


# --------------------------------------------------------------------------- public API


def _split(target: str) -> tuple[str, str]:
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise StaticReadError(f"{target!r} is not 'package.module:attr'")
    return module, attr


def read_params(target: str, skip: tuple[str, ...] = ()) -> Params:
    """What ``target`` (``"package.module:attr"``) accepts as keywords, read from source.

    Mirrors :func:`gatelab.core.harness.validation.signature_params`.

    Raises:
        StaticReadError: not readable with certainty (import the target instead).
    """
    try:
        return _params_of(resolve(*_split(target)), skip)
    except RecursionError:
        raise StaticReadError(f"{target}: too deep") from None


def read_options(target: str) -> Params:
    """The fields of task class ``target``'s ``Options`` dataclass (``task.kwargs``), from source.

    Raises:
        StaticReadError: not readable with certainty (import the task instead).
    """
    sym = resolve(*_split(target))
    found = _class_attr(sym, "Options")
    if found is None:
        raise StaticReadError(f"{target}: no Options attribute")
    owner, node = found
    osym = _value_sym(owner, node)
    if osym is None or osym.kind != "class" or not _is_dataclass_def(osym):
        raise StaticReadError(f"{target}: Options is not a dataclass read statically")
    fields = _dataclass_fields(osym)
    return _build(
        {n: _field_annotation(ann, fm) for n, (ann, fm, init) in fields.items() if init},
        False,
        f"{osym.module}:{osym.qualname}",
    )


def read_class_attr(target: str, name: str) -> Any:
    """The literal value (``ast.literal_eval``) of class attribute ``name`` of class ``target``
    along its bases; ``KeyError`` if no class defines it.

    Raises:
        StaticReadError: the value is not a literal, or the class is not readable.
    """
    sym = resolve(*_split(target))
    found = _class_attr(sym, name)
    if found is None:
        raise KeyError(name)
    owner, node = found
    if owner.kind == "object":
        return node
    if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
        raise StaticReadError(f"{target}.{name} is not an assignment")
    try:
        return ast.literal_eval(node.value)
    except ValueError:
        raise StaticReadError(f"{target}.{name} is not a literal") from None


def is_subclass(target: str, base: str) -> bool:
    """Whether class ``target`` derives from class ``base`` (both ``"module:attr"``).

    Raises:
        Missing: ``target``'s module or name does not exist.
        StaticReadError: ``target`` is not a class definition, or a base on the way cannot be
            followed (then the answer is not certain).
    """
    want = resolve(*_split(base))
    sym = resolve(*_split(target))
    if sym.kind == "object":
        if isinstance(sym.obj, type):
            return False if want.kind == "class" else issubclass(sym.obj, want.obj)
        return False
    if sym.kind == "expr":  # made at run time: only importing tells
        raise StaticReadError(f"{target} is bound to an expression")
    if sym.kind != "class":
        return False
    for cls in _mro(sym):
        if cls.kind == want.kind and cls.module == want.module and cls.qualname == want.qualname:
            return True
    return False


def clear_cache() -> None:
    """Forget every parsed module (tests editing source files)."""
    _MODULES.clear()




def module_names(module: str) -> list[str]:
    """The public top-level names ``module`` binds (for did-you-mean messages)."""
    if _is_light(module):
        return [n for n in dir(_light(module)) if not n.startswith("_")]
    m = _module(module)
    names = set(m.bindings)
    for star in m.stars:
        try:
            names |= set(module_names(star))
        except StaticReadError:
            continue
    return sorted(n for n in names if not n.startswith("_"))
