"""The rewrite of one Python file, on libcst's concrete syntax tree (formatting and comments survive).

What changes: ``from fastapi... import`` / ``from starlette... import`` statements (split by covet module where
the names live in several), ``import fastapi[.x] [as y]`` and the attribute uses through them, the references to
renamed names (``FastAPI`` -> ``CovetPy``), and ``uvicorn.run(app, ...)`` -> ``app.run(...)``. What cannot be
mapped is left as it is and reported with its line: names covet lacks, keyword arguments covet's callable does not
take, ``uvicorn.run("module:app")``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Optional, Union

import libcst as cst
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import RemoveImportsVisitor
from libcst.metadata import PositionProvider, QualifiedNameProvider

from .names import (
    Target,
    instance_lacks,
    is_source,
    renamed,
    resolve,
    resolve_dotted,
    run_keywords,
    unsupported_keywords,
)

__all__ = ["FileResult", "Note", "rewrite_source"]


@dataclass(frozen=True)
class Note:
    line: int
    text: str


@dataclass
class FileResult:
    """The rewritten source (bytes, in the file's own encoding), what changed and what could not be mapped."""

    source: bytes
    changes: list[Note] = field(default_factory=list)
    problems: list[Note] = field(default_factory=list)


def _dotted(node: cst.BaseExpression) -> str:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return f"{_dotted(node.value)}.{node.attr.value}"
    return ""


def _expr(dotted: str) -> Union[cst.Name, cst.Attribute]:
    parts = dotted.split(".")
    node: Union[cst.Name, cst.Attribute] = cst.Name(parts[0])
    for part in parts[1:]:
        node = cst.Attribute(value=node, attr=cst.Name(part))
    return node


def _root(node: cst.BaseExpression) -> Optional[cst.Name]:
    """The name a chain of attributes starts from (``fastapi`` in ``fastapi.responses.JSONResponse``)."""
    while isinstance(node, cst.Attribute):
        node = node.value
    return node if isinstance(node, cst.Name) else None


def _is_all(targets: Iterable[cst.BaseExpression]) -> int:
    return int(any(isinstance(t, cst.Name) and t.value == "__all__" for t in targets))


def _names(aliases: Sequence[cst.ImportAlias]) -> str:
    return ", ".join(_dotted(a.name) + (f" as {_dotted(a.asname.name)}" if a.asname is not None and
                                        isinstance(a.asname.name, cst.Name) else "") for a in aliases)


def _one_line(code: str) -> str:
    return " ".join(code.replace("(", "( ").replace(")", " )").split()).replace("( ", "(").replace(" )", ")") \
        .replace(",)", ")")


class _Rewriter(cst.CSTTransformer):
    METADATA_DEPENDENCIES = (PositionProvider, QualifiedNameProvider)

    def __init__(self, module: cst.Module) -> None:
        super().__init__()
        self.module = module
        self.changes: list[Note] = []
        self.problems: list[Note] = []
        # qualified source name -> new local name, for references to renamed from-imports and module imports
        self.renamed: dict[str, tuple[str, str]] = {}
        # local names bound by `import fastapi...` statements -> (source module, covet module)
        self.module_aliases: dict[str, tuple[str, str]] = {}
        self.pending_extra: list[cst.SimpleStatementLine] = []
        self.uvicorn_rewritten = False
        self.string_names = 0  # inside annotations and `__all__` assignments, where a string can name FastAPI
        self.instances: dict[str, tuple[str, Target]] = {}  # `app = FastAPI()`: "app" -> ("FastAPI", covet.CovetPy)

    # ---- helpers ----------------------------------------------------------------------------------------

    def _line(self, node: cst.CSTNode) -> int:
        return self.get_metadata(PositionProvider, node).start.line

    def _qualified(self, node: cst.CSTNode) -> set[str]:
        try:
            return {q.name for q in self.get_metadata(QualifiedNameProvider, node, set())}
        except KeyError:
            return set()

    def _change(self, node: cst.CSTNode, text: str) -> None:
        self.changes.append(Note(self._line(node), text))

    def _problem(self, node: cst.CSTNode, text: str) -> None:
        self.problems.append(Note(self._line(node), text))

    # ---- import statements ------------------------------------------------------------------------------

    def leave_ImportFrom(self, original_node: cst.ImportFrom, updated_node: cst.ImportFrom) -> cst.ImportFrom:
        source = "." * len(original_node.relative) + (_dotted(original_node.module) if original_node.module else "")
        if original_node.relative or not is_source(source):
            if not isinstance(original_node.names, cst.ImportStar):
                for alias in original_node.names:
                    new_name = renamed(_dotted(alias.name))
                    if new_name is not None:  # a re-export of FastAPI from a module `covet migrate` rewrites
                        self._problem(alias, f"`from {source} import {_dotted(alias.name)}`: if {source} is "
                                             f"migrated too, it names it {new_name} now: import {new_name} from "
                                             "covet here")
            return updated_node
        if isinstance(original_node.names, cst.ImportStar):
            target, _, why = resolve_dotted(source)
            if target is None:
                self._problem(original_node, f"cannot map `from {source} import *`: {why}")
                return updated_node
            self._problem(original_node, f"`from {source} import *` -> `from {target.module} import *`: list the "
                                         "names instead, so that `covet migrate` can check each one")
            return updated_node.with_changes(module=_expr(target.module))
        groups: dict[str, list[cst.ImportAlias]] = {}
        original_names = original_node.names
        for alias in original_names:
            name = _dotted(alias.name)
            target, why = resolve(source, name)
            if target is None:
                self._problem(alias, f"cannot map `from {source} import {name}`: {why}")
                groups.setdefault(source, []).append(alias)
                continue
            new_alias = alias
            if target.name != name:
                new_alias = alias.with_changes(name=cst.Name(target.name))
                if alias.asname is None:  # the references are renamed too (leave_Name)
                    self.renamed[f"{source}.{name}"] = (name, target.name)
            groups.setdefault(target.module, []).append(new_alias)
        if list(groups) == [source]:
            return updated_node
        parenthesized = original_node.lpar is not None
        last_comma = original_names[-1].comma
        statements: list[cst.ImportFrom] = []
        for module, aliases in groups.items():
            fixed = list(aliases)
            fixed[-1] = fixed[-1].with_changes(comma=last_comma if parenthesized and not statements else
                                               cst.MaybeSentinel.DEFAULT)
            if statements:  # a new statement: plain formatting
                fixed = [a.with_changes(comma=cst.MaybeSentinel.DEFAULT) for a in fixed]
                statements.append(cst.ImportFrom(module=_expr(module), names=fixed))
            else:
                statements.append(updated_node.with_changes(module=_expr(module), names=fixed))
        old = f"from {source} import {_names(original_names)}"
        new = "; ".join(f"from {_dotted(s.module)} import {_names(s.names)}" for s in statements
                       if s.module is not None and not isinstance(s.names, cst.ImportStar))
        self._change(original_node, f"{old} -> {new}")
        self.pending_extra.extend(cst.SimpleStatementLine(body=[s]) for s in statements[1:])
        return statements[0]

    def leave_Import(self, original_node: cst.Import, updated_node: cst.Import) -> cst.Import:
        aliases: list[cst.ImportAlias] = []
        changed = False
        for alias in updated_node.names:
            source = _dotted(alias.name)
            if not is_source(source):
                aliases.append(alias)
                continue
            target, _, why = resolve_dotted(source)
            if target is None or target.name:
                self._problem(alias, f"cannot map `import {source}`: {why or 'covet has no such module'}")
                aliases.append(alias)
                continue
            changed = True
            aliases.append(alias.with_changes(name=_expr(target.module)))
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self.module_aliases[alias.asname.name.value] = (source, target.module)
            else:
                root = source.split(".", 1)[0]
                self.module_aliases[root] = (root, "covet")
        if not changed:
            return updated_node
        new = updated_node.with_changes(names=aliases)
        self._change(original_node, f"{_one_line(self.module.code_for_node(original_node))} -> "
                                    f"{_one_line(self.module.code_for_node(new))}")
        return new

    def leave_SimpleStatementLine(
        self, original_node: cst.SimpleStatementLine, updated_node: cst.SimpleStatementLine
    ) -> Union[cst.SimpleStatementLine, cst.FlattenSentinel[cst.SimpleStatementLine]]:
        if not self.pending_extra:
            return updated_node
        extra, self.pending_extra = self.pending_extra, []
        return cst.FlattenSentinel([updated_node, *extra])

    # ---- references -------------------------------------------------------------------------------------

    def visit_Attribute(self, node: cst.Attribute) -> Optional[bool]:
        if isinstance(node.value, cst.Name) and node.value.value in self.instances:
            source_name, target = self.instances[node.value.value]
            if instance_lacks(target, node.attr.value):
                local = node.value.value
                self._problem(node, f"{target.dotted} has no attribute {node.attr.value!r} "
                                    f"(`{local}.{node.attr.value}`, {local} = {source_name}(...))")
        root = _root(node)
        if root is None or root.value not in self.module_aliases:
            return True
        names = [q for q in self._qualified(node) if is_source(q)]
        return not names  # the outermost chain through a module import is rewritten whole in leave_Attribute

    def leave_Attribute(
        self, original_node: cst.Attribute, updated_node: cst.Attribute
    ) -> Union[cst.Attribute, cst.Name]:
        root = _root(original_node)
        if root is None or root.value not in self.module_aliases:
            return updated_node
        names = sorted(q for q in self._qualified(original_node) if is_source(q))
        if not names:
            return updated_node
        source = names[0]
        local = root.value
        source_module, covet_module = self.module_aliases[local]
        target, rest, why = resolve_dotted(source)
        if target is None:
            self._problem(original_node, f"cannot map `{_dotted(original_node)}`: {why}")
            return updated_node
        dotted = target.dotted + rest
        if local == source_module.split(".", 1)[0] and source_module == local:  # `import fastapi[.x]`: full path
            new_dotted = dotted
        elif dotted == covet_module or dotted.startswith(covet_module + "."):  # `import fastapi.x as y`
            new_dotted = local + dotted[len(covet_module):]
        else:
            self._problem(original_node, f"cannot map `{_dotted(original_node)}` through `{local}` (now "
                                         f"{covet_module}): it is {dotted}; import that instead")
            return updated_node
        if new_dotted != _dotted(original_node):
            self._change(original_node, f"{_dotted(original_node)} -> {new_dotted}")
        return _expr(new_dotted)

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.Name:
        for qualified in self._qualified(original_node):
            renamed = self.renamed.get(qualified)
            if renamed is not None and original_node.value == renamed[0]:
                return updated_node.with_changes(value=renamed[1])
            if qualified == original_node.value and self.module_aliases.get(qualified) == (qualified, "covet"):
                return updated_node.with_changes(value="covet")  # a bare `fastapi` module reference
        return updated_node

    # ---- names in strings: `app: "FastAPI"`, `__all__ = ["FastAPI"]` --------------------------------------

    def visit_Annotation(self, node: cst.Annotation) -> None:
        self.string_names += 1

    def leave_Annotation(self, original_node: cst.Annotation, updated_node: cst.Annotation) -> cst.Annotation:
        self.string_names -= 1
        return updated_node

    def visit_Assign(self, node: cst.Assign) -> None:
        self.string_names += _is_all(t.target for t in node.targets)
        if len(node.targets) == 1:
            self._note_instance(node.targets[0].target, node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._note_instance(node.target, node.value)

    def _note_instance(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        """`app = FastAPI(...)`: later `app.x` uses are checked against covet's class."""
        if not isinstance(target, cst.Name):
            return
        self.instances.pop(target.value, None)
        if not isinstance(value, cst.Call):
            return
        for name in sorted(q for q in self._qualified(value.func) if is_source(q)):
            found, rest, _ = resolve_dotted(name)
            if found is not None and found.name and not rest:
                self.instances[target.value] = (name.rsplit(".", 1)[-1], found)

    def leave_Assign(self, original_node: cst.Assign, updated_node: cst.Assign) -> cst.Assign:
        self.string_names -= _is_all(t.target for t in original_node.targets)
        return updated_node

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self.string_names += _is_all([node.target])

    def leave_AugAssign(self, original_node: cst.AugAssign, updated_node: cst.AugAssign) -> cst.AugAssign:
        self.string_names -= _is_all([original_node.target])
        return updated_node

    def leave_SimpleString(self, original_node: cst.SimpleString, updated_node: cst.SimpleString) -> cst.SimpleString:
        if not self.string_names:
            return updated_node
        value = original_node.evaluated_value
        new = next((n for old, n in self.renamed.values() if old == value), None)
        if new is None:
            return updated_node
        self._change(original_node, f"{original_node.value} -> {original_node.quote}{new}{original_node.quote}")
        return updated_node.with_changes(value=f"{original_node.prefix}{original_node.quote}{new}{original_node.quote}")

    # ---- calls ------------------------------------------------------------------------------------------

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.BaseExpression:
        qualified = self._qualified(original_node.func)
        if "uvicorn.run" in qualified:
            return self._uvicorn_run(original_node, updated_node)
        for name in sorted(q for q in qualified if is_source(q)):
            target, rest, _ = resolve_dotted(name)
            if target is None or rest or not target.name:
                continue
            keywords = [a.keyword.value for a in original_node.args if a.keyword is not None]
            for keyword in unsupported_keywords(target, keywords):
                self._problem(original_node, f"{target.dotted}() has no parameter {keyword!r} "
                                             f"(`{name.rsplit('.', 1)[-1]}(..., {keyword}=...)`)")
        return updated_node

    def _uvicorn_run(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        args: Sequence[cst.Arg] = updated.args
        if not args or args[0].keyword is not None or args[0].star:
            self._problem(original, "uvicorn.run() without the app as first argument: call app.run(...) instead")
            return updated
        app = args[0].value
        if isinstance(app, (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)):
            self._problem(original, f"uvicorn.run({self.module.code_for_node(app)}, ...): serve it with "
                                    "`covet run module:app` (uvicorn's flags are accepted) or call app.run(...)")
            return updated
        rest = list(args[1:])
        if any(a.keyword is None or a.star for a in rest):
            self._problem(original, "uvicorn.run(app, ...) with positional or ** arguments: call "
                                    "app.run(host=..., port=...) instead")
            return updated
        unknown = [a.keyword.value for a in rest if a.keyword is not None and a.keyword.value not in run_keywords()]
        if unknown:
            self._problem(original, f"uvicorn.run(app, ...): CovetPy.run() has no {', '.join(unknown)} "
                                    "(`covet run` has the command-line equivalents, e.g. --reload)")
            return updated
        if rest:
            rest[-1] = rest[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        new = cst.Call(func=cst.Attribute(value=app, attr=cst.Name("run")), args=rest)
        self._change(original, f"{_one_line(self.module.code_for_node(original))} -> "
                               f"{_one_line(self.module.code_for_node(new))}")
        self.uvicorn_rewritten = True
        return new


def rewrite_source(source: bytes) -> FileResult:
    """Rewrites one module's source; raises libcst.ParserSyntaxError when it is not valid Python."""
    lowered = source.lower()
    if not any(word in lowered for word in (b"fastapi", b"starlette", b"uvicorn")):
        return FileResult(source)  # nothing to map: not even parsed
    module = cst.parse_module(source)
    wrapper = cst.MetadataWrapper(module)
    rewriter = _Rewriter(wrapper.module)
    new = wrapper.visit(rewriter)
    if rewriter.uvicorn_rewritten:
        context = CodemodContext()
        RemoveImportsVisitor.remove_unused_import(context, "uvicorn")
        RemoveImportsVisitor.remove_unused_import(context, "uvicorn", "run")
        new = RemoveImportsVisitor(context).transform_module(new)
    changes = sorted(rewriter.changes, key=lambda n: n.line)
    for qualified, (old, new_name) in rewriter.renamed.items():
        changes.append(Note(0, f"{old} -> {new_name} where it is used ({qualified} is covet's {new_name})"))
    problems = sorted(set(rewriter.problems), key=lambda n: (n.line, n.text))
    return FileResult(new.bytes, changes, problems)

