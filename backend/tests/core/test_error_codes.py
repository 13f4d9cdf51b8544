"""Every error code the backend can emit is listed for the web UI, which words each one itself.

The list, ``frontend/src/i18n/error-codes.json``, maps each code to the ``params`` that every place
emitting it fills in; a Vitest test checks that each code has a Korean and an English text that
uses no other placeholder. Codes are found without grep: the ``RagError`` subclasses (imported,
and read from the source for classes no import reaches) give the default codes, and ``ast`` finds
``code="..."`` arguments, ``error_payload("...")`` calls and the ``*_CODES`` tables of status
codes in ``backend/app``. A code computed at run time cannot be listed and fails this test.

After adding or removing an error code, rewrite the list with::

    cd backend && UPDATE_ERROR_CODES=1 ../.venv/bin/pytest -q tests/core/test_error_codes.py
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeGuard

import app
import app.cli
import app.main
from app.core.errors import RagError

APP_DIR = Path(app.__file__).resolve().parent
CODE_LIST = APP_DIR.parents[1] / "frontend" / "src" / "i18n" / "error-codes.json"
REWRITE = "cd backend && UPDATE_ERROR_CODES=1 ../.venv/bin/pytest -q tests/core/test_error_codes.py"


@dataclass
class Found:
    """Codes with the params every emission of each carries, and what could not be read."""

    params: dict[str, set[str] | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def declare(self, code: str) -> None:
        """A code that exists (a class default) without saying which params it carries."""
        self.params.setdefault(code, None)

    def emit(self, code: str, params: set[str]) -> None:
        known = self.params.get(code)
        self.params[code] = set(params) if known is None else known & params

    def listing(self) -> dict[str, list[str]]:
        return {code: sorted(self.params[code] or ()) for code in sorted(self.params)}


def _subclasses(cls: type[RagError]) -> Iterator[type[RagError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(APP_DIR.rglob("*.py")):
        where = path.relative_to(APP_DIR.parent).as_posix()
        yield where, ast.parse(path.read_text(encoding="utf-8"), filename=where)


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _literal(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _class_codes(modules: list[tuple[str, ast.Module]]) -> dict[str, str]:
    """Error class name → its code, for imported classes and for those only the source shows."""
    codes = {cls.__name__: cls.code for cls in [RagError, *_subclasses(RagError)]}
    classes = [
        node for _, tree in modules for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
    ]
    grown = True
    while grown:
        grown = False
        for node in classes:
            if node.name in codes:
                continue
            bases = [codes[b] for b in map(_name, node.bases) if b in codes]
            if not bases:
                continue
            own = [
                _literal(stmt.value)
                for stmt in node.body
                if isinstance(stmt, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "code" for t in stmt.targets)
            ]
            codes[node.name] = next((c for c in own if c), bases[0])
            grown = True
    return codes


def _params(node: ast.expr | None) -> set[str]:
    """Keys of a ``params={...}`` literal; anything else promises none."""
    if isinstance(node, ast.Dict):
        return {key for key in map(_literal, (k for k in node.keys if k)) if key}
    return set()


def _code_values(node: ast.expr) -> list[str] | None:
    """The codes a ``code=`` argument can take, or None when only run time knows them."""
    if (text := _literal(node)) is not None:
        return [text]
    if isinstance(node, ast.IfExp):
        body, orelse = _code_values(node.body), _code_values(node.orelse)
        return None if body is None or orelse is None else body + orelse
    return None


def _passes_through(node: ast.expr) -> TypeGuard[ast.Attribute]:
    # ``code=exc.code`` re-sends a code that was listed where it was first raised.
    return isinstance(node, ast.Attribute) and node.attr == "code"


def _forwards_params(code: ast.Attribute, params: ast.expr | None) -> bool:
    """``code=exc.code`` must come with ``params=exc.params``, or the client's text loses its values."""
    return (
        isinstance(params, ast.Attribute)
        and params.attr == "params"
        and ast.dump(params.value) == ast.dump(code.value)
    )


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_table_lookup(call: ast.Call) -> bool:
    """``_HTTP_CODES.get(status, "http_error")``: the default is a code too."""
    if not (isinstance(call.func, ast.Attribute) and call.func.attr == "get"):
        return False
    table = _name(call.func.value)
    return bool(table and table.endswith("_CODES")) and len(call.args) == 2


def _scan_call(call: ast.Call, where: str, class_codes: dict[str, str], found: Found) -> None:
    callee = _name(call.func)
    code = _keyword(call, "code")
    params_arg = _keyword(call, "params")
    if callee == "error_payload" and call.args:
        code, params_arg = call.args[0], call.args[2] if len(call.args) > 2 else params_arg
    params = _params(params_arg)
    if code is not None and _passes_through(code):
        if not _forwards_params(code, params_arg):
            found.problems.append(
                f"{where}:{call.lineno}: {ast.unparse(code)} is passed on without "
                f"params={ast.unparse(code.value)}.params"
            )
        return
    if callee == "error_payload":
        if code is not None and (text := _literal(code)) is not None:
            found.emit(text, params)
        return
    if _is_table_lookup(call):
        if (text := _literal(call.args[1])) is not None:
            found.emit(text, set())
        return
    if code is None:
        if callee in class_codes:
            found.emit(class_codes[callee], params)
        return
    values = _code_values(code)
    if values is None:
        found.problems.append(
            f"{where}:{call.lineno}: code={ast.unparse(code)} is computed at run time; "
            "use a string literal so the web UI can translate it"
        )
        return
    for value in values:
        found.emit(value, params)


def _scan_tables(tree: ast.Module, found: Found) -> None:
    """``_HTTP_CODES = {404: "not_found", ...}``: codes chosen by HTTP status."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if any(name.endswith("_CODES") for name in names):
                for value in node.value.values:
                    if (text := _literal(value)) is not None:
                        found.emit(text, set())


def collect() -> Found:
    """Every error code in ``backend/app`` and the params each always carries."""
    modules = list(_modules())
    class_codes = _class_codes(modules)
    found = Found()
    for code in class_codes.values():
        found.declare(code)
    for where, tree in modules:
        _scan_tables(tree, found)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                _scan_call(node, where, class_codes, found)
    return found


def _as_json(listing: dict[str, list[str]]) -> str:
    # One code a line, as the frontend's formatter (prettier) writes it.
    lines = [f"  {json.dumps(code)}: {json.dumps(params)}" for code, params in listing.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def test_every_error_code_is_listed_for_the_web_ui() -> None:
    found = collect()
    assert not found.problems, "\n".join(found.problems)
    listing = found.listing()
    if os.environ.get("UPDATE_ERROR_CODES") == "1":
        CODE_LIST.write_text(_as_json(listing), encoding="utf-8")
    listed = json.loads(CODE_LIST.read_text(encoding="utf-8"))
    added = sorted(set(listing) - set(listed))
    gone = sorted(set(listed) - set(listing))
    changed = sorted(c for c in set(listing) & set(listed) if listing[c] != listed[c])
    assert listing == listed, (
        f"{CODE_LIST.name} is out of date (new: {added}, gone: {gone}, params changed: {changed}); "
        f"rewrite it with `{REWRITE}`, then give each new code a text in frontend/src/i18n/ko.ts "
        "and en.ts"
    )


def test_the_collector_sees_the_kinds_of_emission() -> None:
    """Known emissions of each kind, so that a collector that finds nothing cannot pass."""
    listing = collect().listing()
    assert "invalid_input" in listing  # class default
    assert "question_too_long" in listing  # code="..." literal
    assert listing["request_too_large"] == ["limit_mb"]  # error_payload("...", ..., {...})
    assert "method_not_allowed" in listing and "http_error" in listing  # the *_CODES table
    assert "indexing_failed" in listing  # ErrorDetail(code="...") of an upload result
    assert {"database_unavailable", "model_unavailable", "internal_error"} <= set(listing)


def _scan_source(source: str) -> Found:
    found = Found()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            _scan_call(node, "example.py", {"InvalidInput": "invalid_input"}, found)
    return found


def test_a_code_computed_at_run_time_is_a_problem() -> None:
    found = _scan_source('raise InvalidInput("x", code=f"bad_{kind}")\n')
    assert len(found.problems) == 1 and "example.py:1" in found.problems[0]
    assert found.params == {}


def test_a_code_passed_on_needs_its_params() -> None:
    found = _scan_source(
        "ErrorDetail(code=exc.code, message=exc.message, params=exc.params)\n"
        "error_payload(exc.code, exc.message, exc.params)\n"
        "ErrorDetail(code=error.code, message=error.message)\n"
        "error_payload(exc.code, exc.message, other.params)\n"
    )
    assert [p.split(":")[1] for p in found.problems] == ["3", "4"]
    assert found.params == {}
