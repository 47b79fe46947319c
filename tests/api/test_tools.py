"""The tools catalogue through the SDK: create from source, upsert, list, search, update, delete."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from letta_client import ConflictError, Letta, NotFoundError, UnprocessableEntityError
from tests.support import ThreadServer

BUILTINS = {
    "memory_insert",
    "memory_replace",
    "memory_rethink",
    "conversation_search",
    "archival_memory_insert",
    "archival_memory_search",
}


def _name(prefix: str = "tool") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def _source(name: str, body: str = "return f'{city}: sunny, {days} days'") -> str:
    return f'''
def {name}(city: str, days: int = 1) -> str:
    """Forecast the weather.

    Args:
        city (str): The city to look up.
        days (int): How many days ahead.

    Returns:
        str: The forecast.
    """
    {body}
'''


def test_create_from_source_derives_the_schema(server: ThreadServer) -> None:
    client = server.client()
    name = _name("weather")
    tool = client.tools.create(source_code=_source(name), tags=["weather"])
    assert tool.id.startswith("tool-") and tool.name == name
    assert tool.tool_type == "custom" and tool.source_type == "python"
    assert tool.description == "Forecast the weather."
    schema: Any = tool.json_schema
    assert schema["name"] == name
    params = schema["parameters"]
    assert params["properties"]["city"] == {"type": "string", "description": "The city to look up."}
    assert params["properties"]["days"]["type"] == "integer"
    assert params["required"] == ["city"]
    assert tool.tags == ["weather"]
    assert client.tools.retrieve(tool.id).json_schema == tool.json_schema


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("def broken(:\n    pass\n", "line 1"),
        ("x = 1\n", "no top-level function"),
        ("def f(a: int) -> int:\n    return a\n", "docstring"),
        ('def f(a: int, b: int) -> int:\n    """Add.\n\n    Args:\n        a: first\n    """\n', "'b'"),
    ],
)
def test_bad_source_is_a_clear_422(server: ThreadServer, source: str, fragment: str) -> None:
    client = server.client()
    with pytest.raises(UnprocessableEntityError) as exc:
        client.tools.create(source_code=source)
    body: Any = exc.value.body
    assert fragment in body["detail"], body
    assert body["errors"][0]["loc"] == ["body", "source_code"]


def test_explicit_json_schema_must_name_the_function(server: ThreadServer) -> None:
    client = server.client()
    name = _name()
    schema = {"name": "other", "parameters": {"type": "object", "properties": {}}}
    with pytest.raises(UnprocessableEntityError):
        client.tools.create(source_code=_source(name), json_schema=schema)
    ok = {"name": name, "description": "mine", "parameters": {"type": "object", "properties": {}}}
    tool = client.tools.create(source_code=_source(name), json_schema=ok)
    assert tool.json_schema == {**ok, "parameters": {**ok["parameters"], "required": []}}
    assert tool.description == "mine"


def test_duplicate_name_is_409_and_upsert_replaces(server: ThreadServer) -> None:
    client = server.client()
    name = _name()
    first = client.tools.create(source_code=_source(name))
    with pytest.raises(ConflictError):
        client.tools.create(source_code=_source(name))
    replaced = client.tools.upsert(source_code=_source(name, "return 'changed'"), tags=["v2"])
    assert replaced.id == first.id and "changed" in (replaced.source_code or "")
    assert replaced.tags == ["v2"]
    fresh = client.tools.upsert(source_code=_source(_name()))
    assert fresh.id != first.id
    with pytest.raises(ConflictError):  # a built-in's name cannot be taken
        client.tools.upsert(source_code=_source("conversation_search"))


def test_builtin_tools_are_listed_with_their_type(server: ThreadServer) -> None:
    client = server.client()
    listed = client.tools.list(return_only_letta_tools=True, limit=100).items
    by_name = {t.name: t for t in listed}
    assert BUILTINS <= set(by_name)
    assert by_name["memory_replace"].tool_type == "letta_memory_core"
    assert by_name["conversation_search"].tool_type == "letta_core"
    assert all((t.tool_type or "").startswith("letta") for t in listed)


def test_list_filters_and_pagination(server: ThreadServer) -> None:
    client = server.client()
    marker = uuid.uuid4().hex[:8]
    made = [client.tools.create(source_code=_source(f"pg_{marker}_{i}")) for i in range(3)]
    found = client.tools.list(search=f"pg_{marker}", order="asc").items
    assert [t.id for t in found] == [t.id for t in made]
    assert [t.id for t in client.tools.list(name=made[1].name).items] == [made[1].id]
    assert {t.id for t in client.tools.list(names=[made[0].name, made[2].name]).items} == {
        made[0].id,
        made[2].id,
    }
    assert [t.id for t in client.tools.list(tool_ids=[made[2].id]).items] == [made[2].id]
    page = client.tools.list(search=f"pg_{marker}", order="asc", limit=2)
    assert [t.id for t in page.items] == [made[0].id, made[1].id]
    rest = client.tools.list(search=f"pg_{marker}", order="asc", after=made[1].id).items
    assert [t.id for t in rest] == [made[2].id]
    customs = client.tools.list(search=f"pg_{marker}", exclude_tool_types=["letta_core"]).items
    assert len(customs) == 3
    assert client.tools.list(search=f"pg_{marker}", tool_types=["letta_core"]).items == []


def test_search_by_name_and_description(server: ThreadServer) -> None:
    client = server.client()
    marker = uuid.uuid4().hex[:8]
    hit = client.tools.create(
        source_code=f'''
def currency_{marker}(amount: float) -> str:
    """Convert an amount of money between currencies.

    Args:
        amount: How much money.
    """
    return str(amount)
'''
    )
    results = client.tools.search(query=f"currency_{marker} money", limit=5)
    assert results and results[0].tool.id == hit.id
    assert results[0].combined_score > 0
    assert all(r.tool.name != "memory_insert" for r in results[:1])


def test_update_and_delete(server: ThreadServer) -> None:
    client = server.client()
    name = _name()
    tool = client.tools.create(source_code=_source(name))
    updated = client.tools.update(
        tool.id, description="Better words", tags=["x"], return_char_limit=100, default_requires_approval=True
    )
    assert updated.description == "Better words" and updated.tags == ["x"]
    assert updated.return_char_limit == 100 and updated.default_requires_approval is True
    assert (updated.json_schema or {})["description"] == "Better words"
    new_source = (
        _source(name)
        .replace("city: str", "city: str, unit: str = 'C'")
        .replace(
            "        days (int): How many days ahead.",
            "        days (int): How many days ahead.\n        unit: C or F.",
        )
    )
    resourced = client.tools.update(tool.id, source_code=new_source)
    assert "unit" in (resourced.json_schema or {})["parameters"]["properties"]
    client.tools.delete(tool.id)
    with pytest.raises(NotFoundError):
        client.tools.retrieve(tool.id)


def test_builtins_cannot_be_rewritten_or_deleted(server: ThreadServer) -> None:
    client = server.client()
    (builtin,) = client.tools.list(name="memory_insert").items
    with pytest.raises(UnprocessableEntityError):
        client.tools.update(builtin.id, source_code=_source("memory_insert"))
    with pytest.raises(ConflictError):
        client.tools.delete(builtin.id)


def test_unknown_and_malformed_ids(server: ThreadServer) -> None:
    client = server.client()
    with pytest.raises(NotFoundError):
        client.tools.retrieve(f"tool-{uuid.uuid4()}")
    with pytest.raises(UnprocessableEntityError):
        client.tools.retrieve("nope")


def test_agent_tools_attach_detach_list(server: ThreadServer, handle: str) -> None:
    client: Letta = server.client()
    tool = client.tools.create(source_code=_source(_name()))
    agent = client.agents.create(model=handle, include_base_tools=False, tools=[tool.name])
    assert [t.name for t in client.agents.tools.list(agent.id).items] == [tool.name]
    other = client.tools.create(source_code=_source(_name()))
    state = client.agents.tools.attach(other.id, agent_id=agent.id)
    assert state is not None and {t.name for t in state.tools} == {tool.name, other.name}
    state = client.agents.tools.detach(tool.id, agent_id=agent.id)
    assert state is not None and [t.name for t in state.tools] == [other.name]
    with pytest.raises(NotFoundError):
        client.agents.tools.detach(tool.id, agent_id=agent.id)
    with pytest.raises(UnprocessableEntityError):
        client.agents.create(model=handle, tools=["no_such_tool_here"])
    base = client.agents.create(model=handle)
    assert BUILTINS <= {t.name for t in client.agents.tools.list(base.id).items}
