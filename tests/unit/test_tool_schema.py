"""Deriving a tool's JSON schema from source with `ast` (never executing it); checking given schemas."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from agenthost.errors import InvalidArgument
from agenthost.tools.schema import DerivedTool, check_json_schema, derive_tool, function_name


def _derive(source: str) -> DerivedTool:
    return derive_tool(textwrap.dedent(source))


def _param(annotation: str, default: str | None = None) -> dict[str, Any]:
    """The schema of the single parameter `x` declared with `annotation` (and `default`)."""
    signature = f"x: {annotation}" + (f" = {default}" if default is not None else "")
    source = f'''
        from typing import *
        import typing

        def f({signature}):
            """Do it.

            Args:
                x: The value.
            """
    '''
    parameters = _derive(source).json_schema["parameters"]
    return {"schema": parameters["properties"]["x"], "required": parameters["required"] == ["x"]}


def _error(source: str) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        _derive(source)
    error = caught.value
    assert error.status_code == 422
    assert error.extra["errors"][0]["loc"] == ["body", "source_code"]
    return error


REALISTIC = '''
    """A weather tool with a helper."""
    import json
    from typing import Literal, Optional

    _UNITS = {"metric": "C", "imperial": "F"}


    def _format(temperature: float, unit: str) -> str:
        return f"{temperature:.1f} {_UNITS[unit]}"


    def get_weather(
        agent_state: "AgentState",
        city: str,
        days: int = 1,
        units: Literal["metric", "imperial"] = "metric",
        include_hourly: bool = False,
        fields: Optional[list[str]] = None,
    ) -> str:
        """Look up the weather forecast for a city.

        Uses the public forecast service; results are cached
        for ten minutes.

        Args:
            city (str): Name of the city, e.g. "Paris" or
                "San Francisco, CA".
            days (int, optional): How many days to forecast (1-7).
            units: Unit system for temperatures.
            include_hourly: Whether to include hour-by-hour
                figures as well as the daily summary.
            fields: Which fields to return; all when omitted.

        Returns:
            str: The forecast as JSON.

        Raises:
            ValueError: If the city is unknown.

        Example:
            >>> get_weather(state, "Paris", days=2)
        """
        return json.dumps({"city": city, "days": days})
'''


def test_a_realistic_tool() -> None:
    tool = _derive(REALISTIC)
    assert tool.name == "get_weather"
    description = (
        "Look up the weather forecast for a city. "
        "Uses the public forecast service; results are cached for ten minutes."
    )
    assert tool.description == description
    assert tool.json_schema == {
        "name": "get_weather",
        "description": description,
        "parameters": {
            "type": "object",
            "properties": {
                "city": {
                    "type": "string",
                    "description": 'Name of the city, e.g. "Paris" or "San Francisco, CA".',
                },
                "days": {"type": "integer", "description": "How many days to forecast (1-7).", "default": 1},
                "units": {
                    "type": "string",
                    "enum": ["metric", "imperial"],
                    "description": "Unit system for temperatures.",
                    "default": "metric",
                },
                "include_hourly": {
                    "type": "boolean",
                    "description": "Whether to include hour-by-hour figures as well as the daily summary.",
                    "default": False,
                },
                "fields": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Which fields to return; all when omitted.",
                    "default": None,
                },
            },
            "required": ["city"],
        },
    }
    assert function_name(textwrap.dedent(REALISTIC)) == "get_weather"


@pytest.mark.parametrize(
    ("annotation", "schema"),
    [
        ("str", {"type": "string"}),
        ("int", {"type": "integer"}),
        ("float", {"type": "number"}),
        ("bool", {"type": "boolean"}),
        ("list", {"type": "array"}),
        ("List", {"type": "array"}),
        ("list[str]", {"type": "array", "items": {"type": "string"}}),
        ("List[int]", {"type": "array", "items": {"type": "integer"}}),
        ("typing.List[float]", {"type": "array", "items": {"type": "number"}}),
        ("list[list[bool]]", {"type": "array", "items": {"type": "array", "items": {"type": "boolean"}}}),
        ("list[Any]", {"type": "array"}),
        ("tuple[int, ...]", {"type": "array", "items": {"type": "integer"}}),
        ("tuple[int, str]", {"type": "array"}),
        ("set[str]", {"type": "array", "items": {"type": "string"}}),
        ("dict", {"type": "object"}),
        ("Dict", {"type": "object"}),
        ("dict[str, int]", {"type": "object"}),
        ("Dict[str, Any]", {"type": "object"}),
        ('Literal["a", "b"]', {"type": "string", "enum": ["a", "b"]}),
        ("Literal[1, 2, 3]", {"type": "integer", "enum": [1, 2, 3]}),
        ('Literal["a", 1]', {"enum": ["a", 1]}),
        ('list[Literal["x", "y"]]', {"type": "array", "items": {"type": "string", "enum": ["x", "y"]}}),
        ("Annotated[int, 'a count']", {"type": "integer"}),
        ("Union[int, str]", {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
        ("int | str", {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
        ("'list[str]'", {"type": "array", "items": {"type": "string"}}),
        ("Any", {}),
        ("MyModel", {}),
        ("Union[int, Any]", {}),
    ],
)
def test_annotations_map_to_json_types(annotation: str, schema: dict[str, Any]) -> None:
    derived = _param(annotation)
    assert derived["schema"] == {**schema, "description": "The value."}
    assert derived["required"]


@pytest.mark.parametrize(
    ("annotation", "schema"),
    [
        ("Optional[str]", {"type": "string"}),
        ("typing.Optional[int]", {"type": "integer"}),
        ("str | None", {"type": "string"}),
        ("None | str", {"type": "string"}),
        ("Union[str, None]", {"type": "string"}),
        ("Optional[list[int]]", {"type": "array", "items": {"type": "integer"}}),
        ("int | str | None", {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
        ("Optional[Any]", {}),
    ],
)
def test_optional_types_are_their_inner_type_and_not_required(
    annotation: str, schema: dict[str, Any]
) -> None:
    derived = _param(annotation)
    assert derived["schema"] == {**schema, "description": "The value."}
    assert not derived["required"]


@pytest.mark.parametrize(
    ("default", "expected"),
    [
        ("3", 3),
        ("-2.5", -2.5),
        ("'text'", "text"),
        ("True", True),
        ("None", None),
        ("[1, 2]", [1, 2]),
        ("(1, 2)", [1, 2]),
        ("{'a': [1, None]}", {"a": [1, None]}),
    ],
)
def test_literal_defaults_are_included_and_not_required(default: str, expected: Any) -> None:
    derived = _param("Any", default)
    assert derived["schema"]["default"] == expected
    assert not derived["required"]


@pytest.mark.parametrize("default", ["compute()", "os.sep", "{1, 2}", "b'raw'", "1e999", "{1: 'a'}", "1j"])
def test_defaults_that_are_not_json_literals_are_left_out_but_still_not_required(default: str) -> None:
    derived = _param("Any", default)
    assert "default" not in derived["schema"]
    assert not derived["required"]


def test_keyword_only_parameters_with_and_without_defaults() -> None:
    tool = _derive(
        '''
        def f(a: int, *, b: str, c: bool = True):
            """Do it.

            Args:
                a: First.
                b: Second.
                c: Third.
            """
        '''
    )
    parameters = tool.json_schema["parameters"]
    assert list(parameters["properties"]) == ["a", "b", "c"]
    assert parameters["required"] == ["a", "b"]
    assert parameters["properties"]["c"]["default"] is True


def test_defaults_line_up_with_the_last_positional_parameters() -> None:
    tool = _derive(
        '''
        def f(a: int, b: int, c: int = 3, d: int = 4):
            """Do it.

            Args:
                a: A.
                b: B.
                c: C.
                d: D.
            """
        '''
    )
    properties = tool.json_schema["parameters"]["properties"]
    assert tool.json_schema["parameters"]["required"] == ["a", "b"]
    assert [properties[k].get("default") for k in "abcd"] == [None, None, 3, 4]


def test_docstring_types_are_used_when_there_is_no_annotation() -> None:
    tool = _derive(
        '''
        def f(a, b, c, d, e, f, g, h=None):
            """Do it.

            Args:
                a (str): A.
                b (list[int]): B.
                c (integer): C.
                d (list of str): D.
                e (MyThing): E.
                f (Optional[str]): F.
                g (tuple(int, int)): G, a pair.
                h (int, optional): H.
            """
        '''
    )
    parameters = tool.json_schema["parameters"]
    properties = parameters["properties"]
    assert properties["a"] == {"type": "string", "description": "A."}
    assert properties["b"] == {"type": "array", "items": {"type": "integer"}, "description": "B."}
    assert properties["c"] == {"type": "integer", "description": "C."}
    assert properties["d"] == {"type": "array", "description": "D."}
    assert properties["e"] == {"description": "E."}  # a type we cannot map: left unconstrained
    assert properties["f"] == {"type": "string", "description": "F."}
    assert properties["g"] == {"description": "G, a pair."}
    assert properties["h"] == {"type": "integer", "description": "H.", "default": None}
    assert parameters["required"] == ["a", "b", "c", "d", "e", "g"]


def test_the_annotation_wins_over_the_docstring_type_unless_it_is_any() -> None:
    tool = _derive(
        '''
        from typing import Any

        def f(a: int, b: Any):
            """Do it.

            Args:
                a (str): A.
                b (bool): B.
            """
        '''
    )
    properties = tool.json_schema["parameters"]["properties"]
    assert properties["a"]["type"] == "integer"
    assert properties["b"]["type"] == "boolean"


def test_multi_line_descriptions_and_sections() -> None:
    tool = _derive(
        '''
        def search(query: str, limit: int = 10, tags: list[str] | None = None):
            """Search the archive
            for passages.

            The summary may have   several paragraphs.

            Args:
                query:
                    The text to look for; matched by meaning,
                    not by exact words.
                limit: At most this
                       many results.

                tags: Only passages with one of these tags.
                    Leave empty for all.
            Returns:
                list: The passages, best first.
            Raises:
                KeyError: never.
            """
        '''
    )
    assert tool.description == "Search the archive for passages. The summary may have several paragraphs."
    properties = tool.json_schema["parameters"]["properties"]
    assert (
        properties["query"]["description"] == "The text to look for; matched by meaning, not by exact words."
    )
    assert properties["limit"]["description"] == "At most this many results."
    assert properties["tags"]["description"] == "Only passages with one of these tags. Leave empty for all."
    assert tool.json_schema["parameters"]["required"] == ["query"]


@pytest.mark.parametrize("header", ["Arguments:", "Parameters:", "Keyword Args:", "args:"])
def test_other_names_for_the_args_section(header: str) -> None:
    tool = _derive(
        f'''
        def f(a: int):
            """Do it.

            {header}
                a: The number.
            """
        '''
    )
    assert tool.json_schema["parameters"]["properties"]["a"]["description"] == "The number."


def test_a_section_after_args_ends_it() -> None:
    error = _error(
        '''
        def f(a: int, b: int):
            """Do it.

            Args:
                a: The number.
            Example:
                b: looks like an argument but is in the example.
            """
        '''
    )
    assert error.message == "parameter 'b' of 'f' is not described in the docstring's Args section"


def test_a_summary_line_ending_in_a_colon_is_kept() -> None:
    tool = _derive(
        '''
        def f():
            """Do the following:
            ring the bell.
            """
        '''
    )
    assert tool.description == "Do the following: ring the bell."


def test_async_def_without_parameters() -> None:
    tool = _derive(
        '''
        async def ping() -> str:
            """Answer pong."""
            return "pong"
        '''
    )
    assert tool.json_schema == {
        "name": "ping",
        "description": "Answer pong.",
        "parameters": {"type": "object", "properties": {}, "required": []},
    }


def test_self_and_agent_state_are_not_parameters_nor_need_documenting() -> None:
    tool = _derive(
        '''
        def f(self, agent_state, text: str):
            """Do it.

            Args:
                text: The text.
            """
        '''
    )
    assert list(tool.json_schema["parameters"]["properties"]) == ["text"]
    assert tool.json_schema["parameters"]["required"] == ["text"]


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("def _only():\n    '''Doc.'''\n", "_only"),
        ("def _a():\n    pass\ndef tool():\n    '''Doc.'''\ndef _b():\n    pass\n", "tool"),
        ("def first():\n    pass\nasync def second():\n    '''Doc.'''\n", "second"),
        ("class C:\n    def method(self):\n        '''Doc.'''\ndef f():\n    '''Doc.'''\n", "f"),
        ("import os\nif True:\n    def hidden():\n        pass\ndef f():\n    '''Doc.'''\n", "f"),
    ],
)
def test_which_function_is_the_tool(source: str, name: str) -> None:
    assert function_name(source) == name
    assert derive_tool(source).name == name


def test_helpers_are_not_checked_for_docstrings() -> None:
    tool = _derive(
        '''
        def helper(x):
            return x

        def tool(x: int):
            """Use the helper.

            Args:
                x: Input.
            """
            return helper(x)
        '''
    )
    assert tool.name == "tool"


def test_the_source_is_never_executed(tmp_path: Any) -> None:
    marker = tmp_path / "ran"
    source = f'''
        open({str(marker)!r}, "w").close()

        def f(x: int = open({str(marker)!r}, "w").close()):
            """Do it.

            Args:
                x: X.
            """
    '''
    tool = _derive(source)
    assert "default" not in tool.json_schema["parameters"]["properties"]["x"]
    assert not marker.exists()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def f(:\n    pass\n", "source_code does not parse: line 1: invalid syntax"),
        ("x = 1\ndef f():\n  return (\n", "source_code does not parse: line 3: '(' was never closed"),
        ("def f():\nreturn 1\n", "source_code does not parse: line 2: expected an indented block"),
        ("x = 1\n", "source_code defines no top-level function (def or async def)"),
        ("", "source_code defines no top-level function (def or async def)"),
        ("class T:\n    def f(self):\n        '''Doc.'''\n", "source_code defines no top-level function"),
        (
            "def _a():\n    pass\ndef _b():\n    pass\n",
            "several functions (_a, _b) but none without a leading '_'",
        ),
    ],
)
def test_errors_in_choosing_the_function(source: str, message: str) -> None:
    assert message in _error(source).message
    with pytest.raises(InvalidArgument, match=r"^source_code "):
        function_name(source)


@pytest.mark.parametrize("body", ["return x", "'''   '''", "x = '''not a docstring'''"])
def test_the_tool_function_needs_a_docstring(body: str) -> None:
    source = f"def f(x: int):\n    {body}\n"
    error = _error(source)
    assert error.message == "function 'f' has no docstring; describe the tool and its Args there"
    assert function_name(source) == "f"  # choosing the function does not look at docstrings


def test_a_syntax_error_names_the_offending_line() -> None:
    error = _error("def f():\n    '''Doc.'''\n    x = = 2\n")
    assert error.message == "source_code does not parse: line 3: invalid syntax near 'x = = 2'"
    assert error.extra["errors"] == [
        {"loc": ["body", "source_code"], "msg": error.message, "type": "invalid_argument"}
    ]


def test_null_bytes_are_a_parse_error() -> None:
    assert "source_code does not parse" in _error("def f():\n    '''Doc.'''\x00\n").message


@pytest.mark.parametrize(
    ("signature", "doc", "message"),
    [
        ("a: int, b: str", "a: A.", "parameter 'b' of 'f' is not described in the docstring's Args section"),
        ("a: int", "", "parameter 'a' of 'f' is not described in the docstring's Args section"),
        ("a: int", "b: Not a.", "parameter 'a' of 'f' is not described in the docstring's Args section"),
        ("a: int", "a:", "parameter 'a' of 'f' has an empty description in the docstring"),
        ("a", "a: A.", "parameter 'a' of 'f' has no type: annotate it or write 'name (type):' in Args"),
        ("a=1", "a: A.", "parameter 'a' of 'f' has no type"),
        ("*args: int", "args: A.", "'f' takes *args; tools need named parameters only"),
        ("a: int, **options: str", "a: A.", "'f' takes **options; tools need named parameters only"),
        ("a: int, b: int, /", "a: A.\n    b: B.", "'f' has positional-only parameters (a, b)"),
        ('x: Literal["a", foo]', "x: X.", "Literal[...] of parameter 'x' must list plain"),
        ("x: Literal[()]", "x: X.", "Literal[...] of parameter 'x' must list at least one value"),
    ],
)
def test_parameter_errors(signature: str, doc: str, message: str) -> None:
    source = f'def f({signature}):\n    """Do it.\n\n    Args:\n        {doc}\n    """\n'
    assert message in _error(source).message


def test_the_args_section_absent_entirely() -> None:
    error = _error('def f(a: int):\n    """Do it."""\n')
    assert error.message == "parameter 'a' of 'f' is not described in the docstring's Args section"


def test_an_absurdly_nested_type_is_refused() -> None:
    annotation = "list[" * 40 + "int" + "]" * 40
    error = _error(f'def f(a: {annotation}):\n    """Do it.\n\n    Args:\n        a: A.\n    """\n')
    assert error.message == "the type of parameter 'a' is nested too deeply"


# --- check_json_schema ------------------------------------------------------------------------------


def test_check_json_schema_accepts_and_normalises() -> None:
    given: dict[str, Any] = {
        "name": "lookup",
        "parameters": {"properties": {"q": {"type": "string"}}, "additionalProperties": False},
        "strict": True,
    }
    checked = check_json_schema(given)
    assert checked == {
        "name": "lookup",
        "description": "",
        "parameters": {
            "type": "object",
            "properties": {"q": {"type": "string"}},
            "required": [],
            "additionalProperties": False,
        },
        "strict": True,
    }
    checked["parameters"]["properties"]["q"]["type"] = "integer"
    assert given["parameters"]["properties"]["q"]["type"] == "string"  # a copy, not an alias


def test_check_json_schema_keeps_a_derived_schema_as_is() -> None:
    schema = _derive(REALISTIC).json_schema
    assert check_json_schema(schema) == schema


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ([], "json_schema must be an object"),
        ({"parameters": {"type": "object", "properties": {}}}, "json_schema.name must be a non-empty string"),
        ({"name": 3, "parameters": {"properties": {}}}, "json_schema.name must be a non-empty string"),
        ({"name": " ", "parameters": {"properties": {}}}, "json_schema.name must be a non-empty string"),
        ({"name": "f", "description": 1, "parameters": {"properties": {}}}, "description must be a string"),
        ({"name": "f"}, "json_schema.parameters must be an object schema with 'properties'"),
        ({"name": "f", "parameters": "x"}, "json_schema.parameters must be an object schema"),
        (
            {"name": "f", "parameters": {"type": "array", "properties": {}}},
            "type must be 'object', not 'array'",
        ),
        (
            {"name": "f", "parameters": {"type": "object"}},
            "json_schema.parameters.properties must be an object",
        ),
        (
            {"name": "f", "parameters": {"properties": []}},
            "json_schema.parameters.properties must be an object",
        ),
        ({"name": "f", "parameters": {"properties": {"a": "str"}}}, "properties.a must be an object schema"),
        (
            {"name": "f", "parameters": {"properties": {}, "required": "a"}},
            "required must be a list of strings",
        ),
        (
            {"name": "f", "parameters": {"properties": {}, "required": [1]}},
            "required must be a list of strings",
        ),
        ({"name": "f", "parameters": {"properties": {}, "required": ["a", "b"]}}, "unknown properties: a, b"),
    ],
)
def test_check_json_schema_errors(schema: Any, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_json_schema(schema)
    assert message in caught.value.message
    assert caught.value.extra["errors"][0]["loc"] == ["body", "json_schema"]


def test_one_line_sections_and_a_docstring_opening_on_its_own_line() -> None:
    tool = _derive(
        '''
        import functools

        @functools.lru_cache
        def total(prices: list[float], tax: float = 0.2) -> float:
            """
            Add up prices, with tax.

            Args:
                prices: The prices.
                tax: The tax rate.
            Returns: the total.
            Note: rounding is left to the caller.
            """
            def inner() -> None:
                """A nested function is never the tool."""
            return sum(prices) * (1 + tax)
        '''
    )
    assert tool.name == "total"
    assert tool.description == "Add up prices, with tax."
    assert tool.json_schema["parameters"]["required"] == ["prices"]


def test_literal_kinds() -> None:
    assert _param("Literal[True, False]")["schema"]["type"] == "boolean"
    assert _param("Literal[0.5, 1.5]")["schema"]["type"] == "number"
    optional = _param('Optional[Literal["a", "b"]]')
    assert optional["schema"] == {"type": "string", "enum": ["a", "b"], "description": "The value."}
    assert not optional["required"]
