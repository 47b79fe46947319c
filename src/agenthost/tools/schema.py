"""Deriving a tool's JSON schema from its Python source, without executing it.

The server must never run user code in its own process, so everything here reads the source with
``ast`` only: annotations and defaults are inspected as syntax, never evaluated (defaults go through
``ast.literal_eval``, which accepts literals and nothing else).

Which function is the tool: if the source has exactly one top-level ``def`` / ``async def``, that one;
with several, the *last* top-level function whose name does not start with ``_`` (helpers come first,
the tool last). Functions nested in classes or other functions never count.

The tool function must have a Google-style docstring. Its summary (the text before the first section
such as ``Args:`` or ``Returns:``, whitespace collapsed) becomes the tool's description; each parameter
must be described in ``Args:`` as ``name (type): description`` or ``name: description``, with
continuation lines indented further. A parameter's type comes from its annotation, else from the
docstring's ``(type)``. ``self`` and ``agent_state`` are supplied by the runtime, so they are left out.
"""

from __future__ import annotations

import ast
import copy
import math
from dataclasses import dataclass
from typing import Any

from agenthost.errors import InvalidArgument
from agenthost.tools.docstrings import parse_docstring

_SOURCE_LOC = ["body", "source_code"]
_SCHEMA_LOC = ["body", "json_schema"]
_HIDDEN_PARAMETERS = frozenset({"self", "agent_state"})
_MAX_NESTING = 16

# Python type names (bare, or the last part of a dotted name such as `typing.List`) -> JSON type.
_SCALARS = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "None": "null"}
_ARRAYS = frozenset(
    {"list", "List", "Sequence", "MutableSequence", "Iterable", "Collection", "set", "Set"}
    | {"frozenset", "FrozenSet", "tuple", "Tuple"}
)
_OBJECTS = frozenset({"dict", "Dict", "Mapping", "MutableMapping"})
# Docstring types are free text: also accept the JSON names and a few common words.
_DOC_WORDS = {
    **_SCALARS,
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "array": "array",
    "list": "array",
    "object": "object",
    "dict": "object",
}
_FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef
_NO_DEFAULT = object()


@dataclass(frozen=True, slots=True)
class DerivedTool:
    """A tool as read from its source: name, description and the OpenAI-style function schema."""

    name: str
    description: str
    json_schema: dict[str, Any]


def derive_tool(source_code: str) -> DerivedTool:
    """Read the tool function in ``source_code`` and build its JSON schema.

    Raises ``InvalidArgument`` (loc ``["body", "source_code"]``) naming what is wrong: the source does
    not parse, defines no function, the function has no docstring, a parameter is undescribed or
    untyped, or the signature uses ``*args``, ``**kwargs`` or positional-only parameters.
    """
    fn = _tool_function(_parse(source_code))
    docstring = ast.get_docstring(fn, clean=True)
    if not docstring or not docstring.strip():
        raise _source_error(f"function '{fn.name}' has no docstring; describe the tool and its Args there")
    summary, documented = parse_docstring(docstring)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for arg, default in _parameters(fn):
        name = arg.arg
        if name in _HIDDEN_PARAMETERS:
            continue
        if name not in documented:
            raise _source_error(
                f"parameter '{name}' of '{fn.name}' is not described in the docstring's Args section"
            )
        doc_type, description = documented[name]
        if not description:
            raise _source_error(
                f"parameter '{name}' of '{fn.name}' has an empty description in the docstring"
            )
        if arg.annotation is None and doc_type is None:
            raise _source_error(
                f"parameter '{name}' of '{fn.name}' has no type: annotate it or write 'name (type):' in Args"
            )
        prop, optional = _property_type(name, arg.annotation, doc_type)
        prop["description"] = description
        if default is not None:
            value = _literal(default)
            if value is not _NO_DEFAULT:
                prop["default"] = value
        elif not optional:
            required.append(name)
        properties[name] = prop
    schema = {
        "name": fn.name,
        "description": summary,
        "parameters": {"type": "object", "properties": properties, "required": required},
    }
    return DerivedTool(name=fn.name, description=summary, json_schema=schema)


def function_name(source_code: str) -> str:
    """The name of the function ``derive_tool`` would take as the tool (``InvalidArgument`` if none)."""
    return _tool_function(_parse(source_code)).name


def check_json_schema(json_schema: dict[str, Any]) -> dict[str, Any]:
    """Validate a client-given tool schema and return a normalised copy.

    The schema needs a non-empty string ``name`` and a ``parameters`` object schema with
    ``properties`` (each an object). Normalising fills in ``description`` (``""``), the parameters'
    ``"type": "object"`` and ``required`` (``[]``); everything else is kept as given. Raises
    ``InvalidArgument`` with loc ``["body", "json_schema"]``.
    """
    if not isinstance(json_schema, dict):
        raise _schema_error("json_schema must be an object")
    name = json_schema.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _schema_error("json_schema.name must be a non-empty string")
    description = json_schema.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        raise _schema_error("json_schema.description must be a string")
    parameters = json_schema.get("parameters")
    if not isinstance(parameters, dict):
        raise _schema_error("json_schema.parameters must be an object schema with 'properties'")
    if parameters.get("type", "object") != "object":
        raise _schema_error(f"json_schema.parameters.type must be 'object', not {parameters['type']!r}")
    properties = parameters.get("properties")
    if not isinstance(properties, dict):
        raise _schema_error("json_schema.parameters.properties must be an object")
    for key, value in properties.items():
        if not isinstance(value, dict):
            raise _schema_error(f"json_schema.parameters.properties.{key} must be an object schema")
    required = parameters.get("required", [])
    if not isinstance(required, list) or not all(isinstance(item, str) for item in required):
        raise _schema_error("json_schema.parameters.required must be a list of strings")
    unknown = [item for item in required if item not in properties]
    if unknown:
        raise _schema_error(f"json_schema.parameters.required names unknown properties: {', '.join(unknown)}")
    # A deep copy, so the caller's dict (often a request body) is never aliased into stored rows.
    rest = {
        k: copy.deepcopy(v) for k, v in json_schema.items() if k not in ("name", "description", "parameters")
    }
    params_rest = {
        k: copy.deepcopy(v) for k, v in parameters.items() if k not in ("type", "properties", "required")
    }
    return {
        "name": name,
        "description": description,
        "parameters": {
            "type": "object",
            "properties": copy.deepcopy(properties),
            "required": list(required),
            **params_rest,
        },
        **rest,
    }


# --- choosing the function -------------------------------------------------------------------------


def _parse(source_code: str) -> ast.Module:
    try:
        return ast.parse(source_code)
    except SyntaxError as exc:
        where = f"line {exc.lineno}" if exc.lineno else "source"
        text = f" near {exc.text.strip()!r}" if exc.text and exc.text.strip() else ""
        raise _source_error(f"source_code does not parse: {where}: {exc.msg}{text}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        # ValueError: null bytes (Python 3.11); RecursionError/MemoryError: absurdly nested input.
        raise _source_error(f"source_code does not parse: {exc}") from None


def _tool_function(module: ast.Module) -> _FunctionNode:
    functions = [node for node in module.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    if not functions:
        raise _source_error("source_code defines no top-level function (def or async def)")
    if len(functions) == 1:
        return functions[0]
    public = [fn for fn in functions if not fn.name.startswith("_")]
    if not public:
        names = ", ".join(fn.name for fn in functions)
        raise _source_error(
            f"source_code defines several functions ({names}) but none without a leading '_' to be the tool"
        )
    return public[-1]


def _parameters(fn: _FunctionNode) -> list[tuple[ast.arg, ast.expr | None]]:
    """The tool's parameters with their default expressions, refusing what JSON arguments cannot fill."""
    args = fn.args
    if args.posonlyargs:
        names = ", ".join(a.arg for a in args.posonlyargs)
        raise _source_error(
            f"'{fn.name}' has positional-only parameters ({names}); tools take keyword arguments"
        )
    if args.vararg is not None:
        raise _source_error(f"'{fn.name}' takes *{args.vararg.arg}; tools need named parameters only")
    if args.kwarg is not None:
        raise _source_error(f"'{fn.name}' takes **{args.kwarg.arg}; tools need named parameters only")
    # `defaults` line up with the last positional parameters; `kw_defaults` holds None for "no default".
    padded: list[ast.expr | None] = [None] * (len(args.args) - len(args.defaults))
    padded.extend(args.defaults)
    return [*zip(args.args, padded, strict=True), *zip(args.kwonlyargs, args.kw_defaults, strict=True)]


# --- types -----------------------------------------------------------------------------------------


def _property_type(
    name: str, annotation: ast.expr | None, doc_type: str | None
) -> tuple[dict[str, Any], bool]:
    """The JSON schema for a parameter's type (without description), and whether it is Optional."""
    optional = False
    if annotation is not None:
        schema, optional = _map_annotation(annotation, name, 0)
        if schema is not None:
            return schema, optional
    if doc_type is not None:
        schema, doc_optional = _map_doc_type(doc_type, name)
        if annotation is None:
            optional = doc_optional
        if schema is not None:
            return schema, optional
    # Any, or a type we cannot express: leave the value unconstrained rather than guess.
    return {}, optional


def _map_doc_type(text: str, name: str) -> tuple[dict[str, Any] | None, bool]:
    try:
        expr = ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        expr = None
    if expr is not None:
        schema, optional = _map_annotation(expr, name, 0)
        if schema is not None:
            return schema, optional
    # Free text such as "list of str" or a JSON name such as "string": go by its first word.
    words = text.split()
    json_type = _DOC_WORDS.get(words[0].lower()) if words else None
    return ({"type": json_type} if json_type else None), False


def _map_annotation(node: ast.expr, name: str, depth: int) -> tuple[dict[str, Any] | None, bool]:
    """Map an annotation to a JSON schema (None = any value) and whether it admits None."""
    if depth > _MAX_NESTING:
        raise _source_error(f"the type of parameter '{name}' is nested too deeply")
    if isinstance(node, ast.Constant):
        if node.value is None:
            return {"type": "null"}, False
        if isinstance(node.value, str):  # a forward reference such as "list[str]"
            try:
                inner = ast.parse(node.value.strip(), mode="eval").body
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                return None, False
            return _map_annotation(inner, name, depth + 1)
        return None, False
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _map_union(_flatten_or(node), name, depth)
    if isinstance(node, ast.Subscript):
        return _map_generic(_type_name(node.value), _subscript_items(node), name, depth)
    type_name = _type_name(node)
    if type_name in _SCALARS:
        return {"type": _SCALARS[type_name]}, False
    if type_name in _ARRAYS:
        return {"type": "array"}, False
    if type_name in _OBJECTS:
        return {"type": "object"}, False
    return None, False  # Any, object, or a class we do not know


def _map_generic(
    origin: str | None, items: list[ast.expr], name: str, depth: int
) -> tuple[dict[str, Any] | None, bool]:
    if origin == "Optional" and len(items) == 1:
        schema, _ = _map_annotation(items[0], name, depth + 1)
        return schema, True
    if origin == "Union":
        return _map_union(items, name, depth)
    if origin == "Annotated" and items:
        return _map_annotation(items[0], name, depth + 1)
    if origin == "Literal":
        return _map_literal(items, name), False
    if origin in _ARRAYS:
        array: dict[str, Any] = {"type": "array"}
        # tuple[int, str] has mixed positions; only tuple[X, ...] and one-argument generics give items.
        element = items[0] if len(items) == 1 or (len(items) == 2 and _is_ellipsis(items[1])) else None
        if element is not None:
            item_schema, _ = _map_annotation(element, name, depth + 1)
            if item_schema is not None:
                array["items"] = item_schema
        return array, False
    if origin in _OBJECTS:
        return {"type": "object"}, False
    return None, False


def _map_union(members: list[ast.expr], name: str, depth: int) -> tuple[dict[str, Any] | None, bool]:
    optional = False
    schemas: list[dict[str, Any]] = []
    for member in members:
        schema, member_optional = _map_annotation(member, name, depth + 1)
        optional = optional or member_optional
        if schema == {"type": "null"}:
            optional = True
        elif schema is None:
            return None, optional  # a union with Any accepts anything
        elif schema not in schemas:
            schemas.append(schema)
    if not schemas:
        return {"type": "null"}, False
    if len(schemas) == 1:
        return schemas[0], optional
    return {"anyOf": schemas}, optional


def _map_literal(items: list[ast.expr], name: str) -> dict[str, Any]:
    if not items:
        raise _source_error(f"Literal[...] of parameter '{name}' must list at least one value")
    values: list[Any] = []
    for item in items:
        value = _literal(item)
        if value is _NO_DEFAULT or isinstance(value, list | dict):
            raise _source_error(
                f"Literal[...] of parameter '{name}' must list plain str/int/float/bool values"
            )
        values.append(value)
    schema: dict[str, Any] = {}
    kinds = {_SCALARS.get(type(v).__name__) for v in values}
    if len(kinds) == 1 and None not in kinds:
        schema["type"] = kinds.pop()
    schema["enum"] = values
    return schema


def _flatten_or(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return [*_flatten_or(node.left), *_flatten_or(node.right)]
    return [node]


def _subscript_items(node: ast.Subscript) -> list[ast.expr]:
    return list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]


def _type_name(node: ast.expr) -> str | None:
    """`List` for `List`, `typing.List` or `t.List`; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Constant) and node.value is None:
        return "None"
    return None


def _is_ellipsis(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is Ellipsis


def _literal(node: ast.expr) -> Any:
    """The JSON value of a literal expression, or ``_NO_DEFAULT`` when it is not a JSON literal."""
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NO_DEFAULT
    return _as_json(value)


def _as_json(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _NO_DEFAULT
    if isinstance(value, list | tuple):
        items = [_as_json(v) for v in value]
        return _NO_DEFAULT if any(v is _NO_DEFAULT for v in items) else items
    if isinstance(value, dict):
        pairs = {k: _as_json(v) for k, v in value.items()}
        ok = all(isinstance(k, str) and v is not _NO_DEFAULT for k, v in pairs.items())
        return pairs if ok else _NO_DEFAULT
    return _NO_DEFAULT  # bytes, sets, complex numbers, Ellipsis: not JSON


# --- docstring -------------------------------------------------------------------------------------


def _source_error(message: str) -> InvalidArgument:
    return InvalidArgument(message, loc=_SOURCE_LOC)


def _schema_error(message: str) -> InvalidArgument:
    return InvalidArgument(message, loc=_SCHEMA_LOC)
