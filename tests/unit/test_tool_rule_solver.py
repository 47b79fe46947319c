"""Tool rules: their wire shape (validate_tool_rules) and how a run's calls are held to them (the solver)."""

from __future__ import annotations

from typing import Any

import pytest

from agenthost.errors import InvalidArgument
from agenthost.tools.rules import RULE_TYPES, ToolRuleSolver, validate_tool_rules

TOOLS = ["search", "fetch", "summarise", "send", "memory_insert"]


def _solver(*rules: dict[str, Any]) -> ToolRuleSolver:
    # Rules reach the solver validated, as they are stored on the agent.
    return ToolRuleSolver(validate_tool_rules(list(rules)))


# -- validate_tool_rules ---------------------------------------------------------------------------


def test_rule_types_are_lettas_nine() -> None:
    assert {
        "run_first",
        "exit_loop",
        "continue_loop",
        "constrain_child_tools",
        "conditional",
        "parent_last_tool",
        "max_count_per_step",
        "required_before_exit",
        "requires_approval",
    } == RULE_TYPES


def test_valid_rules_of_every_type_come_back_without_none_fields() -> None:
    rules: list[dict[str, Any]] = [
        {"type": "run_first", "tool_name": "search", "args": {"query": "news"}, "prompt_template": None},
        {"type": "exit_loop", "tool_name": "send"},
        {"type": "continue_loop", "tool_name": "memory_insert", "prompt_template": "ignored {x}"},
        {
            "type": "constrain_child_tools",
            "tool_name": "search",
            "children": ["fetch", "summarise"],
            "child_arg_nodes": [{"name": "fetch", "args": {"limit": 3}}, {"name": "summarise", "args": None}],
        },
        {
            "type": "conditional",
            "tool_name": "fetch",
            "child_output_mapping": {"ok": "summarise", "fail": "search"},
            "default_child": None,
            "require_output_mapping": True,
        },
        {"type": "parent_last_tool", "tool_name": "fetch", "children": ["summarise"]},
        {"type": "max_count_per_step", "tool_name": "search", "max_count_limit": 2},
        {"type": "required_before_exit", "tool_name": "memory_insert"},
        {"type": "requires_approval", "tool_name": "send"},
    ]
    out = validate_tool_rules(rules)
    assert len(out) == len(rules)
    assert out[0] == {"type": "run_first", "tool_name": "search", "args": {"query": "news"}}
    assert out[2]["prompt_template"] == "ignored {x}"
    assert out[3]["child_arg_nodes"] == [{"name": "fetch", "args": {"limit": 3}}, {"name": "summarise"}]
    assert "default_child" not in out[4]
    assert out[6] == {"type": "max_count_per_step", "tool_name": "search", "max_count_limit": 2}
    assert all(None not in r.values() for r in out)
    # The input is left alone.
    assert rules[0]["prompt_template"] is None


def test_validating_no_rules_gives_none() -> None:
    assert validate_tool_rules([]) == []


@pytest.mark.parametrize(
    ("rule", "field", "message"),
    [
        ({"tool_name": "x"}, "type", "'type' is required"),
        ({"type": None, "tool_name": "x"}, "type", "'type' is required"),
        ({"type": "run_last", "tool_name": "x"}, "type", "unknown rule type 'run_last'"),
        ({"type": 3, "tool_name": "x"}, "type", "unknown rule type 3"),
        ({"type": "exit_loop"}, "tool_name", "'tool_name' must be a non-empty string"),
        ({"type": "exit_loop", "tool_name": "  "}, "tool_name", "non-empty string"),
        ({"type": "exit_loop", "tool_name": 7}, "tool_name", "non-empty string"),
        ({"type": "exit_loop", "tool_name": "x", "children": ["y"]}, "children", "unknown field 'children'"),
        ({"type": "exit_loop", "tool_name": "x", "prompt_template": 1}, "prompt_template", "a string"),
        ({"type": "run_first", "tool_name": "x", "args": ["a"]}, "args", "'args' must be an object"),
        ({"type": "constrain_child_tools", "tool_name": "x"}, "children", "non-empty list"),
        ({"type": "constrain_child_tools", "tool_name": "x", "children": []}, "children", "non-empty list"),
        ({"type": "constrain_child_tools", "tool_name": "x", "children": "y"}, "children", "non-empty list"),
        ({"type": "parent_last_tool", "tool_name": "x", "children": ["y", ""]}, "children", "non-empty list"),
        ({"type": "parent_last_tool", "tool_name": "x", "children": [1]}, "children", "non-empty list"),
        (
            {"type": "parent_last_tool", "tool_name": "x", "children": ["y"], "child_arg_nodes": []},
            "child_arg_nodes",
            "unknown field 'child_arg_nodes'",
        ),
        ({"type": "conditional", "tool_name": "x"}, "child_output_mapping", "must be an object"),
        (
            {"type": "conditional", "tool_name": "x", "child_output_mapping": {"a": 1}},
            "child_output_mapping",
            "mapping outputs to tool names",
        ),
        (
            {"type": "conditional", "tool_name": "x", "child_output_mapping": ["a"]},
            "child_output_mapping",
            "must be an object",
        ),
        (
            {"type": "conditional", "tool_name": "x", "child_output_mapping": {}, "default_child": ""},
            "default_child",
            "non-empty string",
        ),
        (
            {
                "type": "conditional",
                "tool_name": "x",
                "child_output_mapping": {},
                "require_output_mapping": "yes",
            },
            "require_output_mapping",
            "a boolean",
        ),
        ({"type": "max_count_per_step", "tool_name": "x"}, "max_count_limit", "integer >= 1"),
        ({"type": "max_count_per_step", "tool_name": "x", "max_count_limit": 0}, "max_count_limit", ">= 1"),
        ({"type": "max_count_per_step", "tool_name": "x", "max_count_limit": 1.5}, "max_count_limit", ">= 1"),
        (
            {"type": "max_count_per_step", "tool_name": "x", "max_count_limit": True},
            "max_count_limit",
            ">= 1",
        ),
        ({"type": "max_count_per_step", "tool_name": "x", "max_count_limit": "2"}, "max_count_limit", ">= 1"),
    ],
)
def test_a_malformed_rule_names_its_field(rule: dict[str, Any], field: str, message: str) -> None:
    good = {"type": "exit_loop", "tool_name": "send"}
    with pytest.raises(InvalidArgument) as info:
        validate_tool_rules([good, rule])
    assert message in info.value.message
    assert info.value.message.startswith("tool_rules[1]: ")
    assert info.value.status_code == 422
    assert info.value.extra["errors"][0]["loc"] == ["body", "tool_rules", 1, field]


def test_a_rule_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_tool_rules(["exit_loop"])  # type: ignore[list-item]
    assert info.value.extra["errors"][0]["loc"] == ["body", "tool_rules", 0]


@pytest.mark.parametrize(
    ("nodes", "loc_tail", "message"),
    [
        ({"name": "fetch"}, ["child_arg_nodes"], "must be a list"),
        (["fetch"], ["child_arg_nodes", 0], "must be an object"),
        ([{"args": {}}], ["child_arg_nodes", 0, "name"], "one of 'children'"),
        ([{"name": "send"}], ["child_arg_nodes", 0, "name"], "one of 'children'"),
        ([{"name": "fetch"}, {"name": "fetch", "args": 1}], ["child_arg_nodes", 1, "args"], "an object"),
        ([{"name": "fetch", "extra": 1}], ["child_arg_nodes", 0, "extra"], "unknown field 'extra'"),
    ],
)
def test_child_arg_nodes_must_name_a_child(nodes: Any, loc_tail: list[str | int], message: str) -> None:
    rule = {
        "type": "constrain_child_tools",
        "tool_name": "search",
        "children": ["fetch"],
        "child_arg_nodes": nodes,
    }
    with pytest.raises(InvalidArgument) as info:
        validate_tool_rules([rule])
    assert message in info.value.message
    assert info.value.extra["errors"][0]["loc"] == ["body", "tool_rules", 0, *loc_tail]


def test_an_empty_output_mapping_with_a_default_child_is_valid() -> None:
    rule = {"type": "conditional", "tool_name": "x", "child_output_mapping": {}, "default_child": "y"}
    assert validate_tool_rules([rule]) == [rule]


# -- no rules ---------------------------------------------------------------------------------------


def test_without_rules_every_tool_is_allowed_and_nothing_is_required() -> None:
    solver = ToolRuleSolver([])
    assert solver.allowed_tools(TOOLS) == TOOLS
    assert not solver.must_call_tool()
    assert solver.check_call("fetch", TOOLS) is None
    assert solver.record_call("fetch", "anything") is None
    assert solver.allowed_tools(TOOLS) == TOOLS
    assert not solver.must_call_tool()
    assert solver.missing_before_exit() == []
    assert solver.prefilled_args("fetch") == {}
    assert not solver.is_terminal("fetch")
    assert not solver.is_continue("fetch")
    assert not solver.requires_approval("fetch")


def test_allowed_tools_keeps_the_order_of_available_and_drops_repeats() -> None:
    solver = ToolRuleSolver([])
    assert solver.allowed_tools(["b", "a", "b", "c"]) == ["b", "a", "c"]
    assert solver.allowed_tools([]) == []


def test_a_tool_that_is_not_available_is_refused() -> None:
    message = ToolRuleSolver([]).check_call("nope", TOOLS)
    assert message is not None
    assert "'nope' is not an available tool" in message
    assert "'search', 'fetch'" in message


# -- run_first --------------------------------------------------------------------------------------


def test_run_first_forces_the_first_call_only() -> None:
    solver = _solver({"type": "run_first", "tool_name": "search"})
    assert solver.must_call_tool()
    assert solver.allowed_tools(TOOLS) == ["search"]
    message = solver.check_call("fetch", TOOLS)
    assert message is not None
    assert "first tool call of this run must be one of 'search'" in message
    assert "Tools allowed now: 'search'." in message
    assert solver.check_call("search", TOOLS) is None

    assert solver.record_call("search", "results") is None
    assert not solver.must_call_tool()
    assert solver.allowed_tools(TOOLS) == TOOLS


def test_several_run_first_rules_allow_any_of_them_first() -> None:
    solver = _solver(
        {"type": "run_first", "tool_name": "fetch"}, {"type": "run_first", "tool_name": "search"}
    )
    # The order is that of `available`, not of the rules.
    assert solver.allowed_tools(TOOLS) == ["search", "fetch"]
    solver.record_call("fetch")
    assert solver.allowed_tools(TOOLS) == TOOLS


def test_a_refused_first_call_leaves_the_init_rule_pending() -> None:
    solver = _solver({"type": "run_first", "tool_name": "search"})
    assert solver.check_call("fetch", TOOLS) is not None
    # The lead does not record a refused call, so the first call is still to come.
    assert solver.must_call_tool()
    assert solver.allowed_tools(TOOLS) == ["search"]


def test_run_first_whose_tool_is_not_available_leaves_nothing_allowed() -> None:
    solver = _solver({"type": "run_first", "tool_name": "gone"})
    assert solver.allowed_tools(TOOLS) == []
    assert solver.must_call_tool()
    message = solver.check_call("search", TOOLS)
    assert message is not None
    assert message.endswith("No tool may be called now.")


def test_run_first_args_prefill_the_first_call_only() -> None:
    solver = _solver(
        {"type": "run_first", "tool_name": "search", "args": {"query": "news", "limit": 3}},
        {"type": "run_first", "tool_name": "fetch"},
    )
    assert solver.prefilled_args("search") == {"query": "news", "limit": 3}
    assert solver.prefilled_args("fetch") == {}
    assert solver.prefilled_args("send") == {}
    solver.record_call("search", "results")
    assert solver.prefilled_args("search") == {}


def test_prefilled_args_are_a_copy() -> None:
    solver = _solver({"type": "run_first", "tool_name": "search", "args": {"query": "news"}})
    solver.prefilled_args("search")["query"] = "changed"
    assert solver.prefilled_args("search") == {"query": "news"}


# -- exit_loop, continue_loop, requires_approval ---------------------------------------------------------


def test_static_rules_answer_by_name() -> None:
    solver = _solver(
        {"type": "exit_loop", "tool_name": "send"},
        {"type": "continue_loop", "tool_name": "memory_insert"},
        {"type": "requires_approval", "tool_name": "fetch"},
    )
    assert solver.is_terminal("send")
    assert not solver.is_terminal("memory_insert")
    assert solver.is_continue("memory_insert")
    assert not solver.is_continue("send")
    assert solver.requires_approval("fetch")
    assert not solver.requires_approval("send")
    # None of them constrains what may be called.
    assert solver.allowed_tools(TOOLS) == TOOLS
    assert not solver.must_call_tool()


# -- constrain_child_tools --------------------------------------------------------------------------


def test_children_constrain_the_next_call_only() -> None:
    solver = _solver(
        {"type": "constrain_child_tools", "tool_name": "search", "children": ["summarise", "fetch"]}
    )
    assert solver.allowed_tools(TOOLS) == TOOLS
    solver.record_call("search", "results")
    assert solver.must_call_tool()
    assert solver.allowed_tools(TOOLS) == ["fetch", "summarise"]
    message = solver.check_call("send", TOOLS)
    assert message is not None
    assert "after 'search' the next tool must be one of 'fetch', 'summarise'" in message
    assert "Tools allowed now: 'fetch', 'summarise'." in message
    assert solver.check_call("fetch", TOOLS) is None
    solver.record_call("fetch", "page")
    assert not solver.must_call_tool()
    assert solver.allowed_tools(TOOLS) == TOOLS


def test_children_that_are_not_available_leave_nothing_allowed() -> None:
    solver = _solver({"type": "constrain_child_tools", "tool_name": "search", "children": ["gone"]})
    solver.record_call("search")
    assert solver.must_call_tool()
    assert solver.allowed_tools(TOOLS) == []


def test_children_apply_call_by_call_within_one_response() -> None:
    solver = _solver({"type": "constrain_child_tools", "tool_name": "search", "children": ["fetch"]})
    # The LLM answered with [search, fetch, search, send]: each call is checked, then recorded.
    assert solver.check_call("search", TOOLS) is None
    solver.record_call("search")
    assert solver.check_call("fetch", TOOLS) is None
    solver.record_call("fetch")
    assert solver.check_call("search", TOOLS) is None
    solver.record_call("search")
    assert solver.check_call("send", TOOLS) is not None


def test_two_child_rules_on_one_tool_intersect() -> None:
    solver = _solver(
        {"type": "constrain_child_tools", "tool_name": "search", "children": ["fetch", "summarise"]},
        {"type": "constrain_child_tools", "tool_name": "search", "children": ["summarise", "send"]},
    )
    solver.record_call("search")
    assert solver.allowed_tools(TOOLS) == ["summarise"]


def test_a_child_chain_runs_step_by_step() -> None:
    solver = _solver(
        {"type": "run_first", "tool_name": "search"},
        {"type": "constrain_child_tools", "tool_name": "search", "children": ["fetch"]},
        {"type": "constrain_child_tools", "tool_name": "fetch", "children": ["summarise"]},
        {"type": "constrain_child_tools", "tool_name": "summarise", "children": ["send"]},
        {"type": "exit_loop", "tool_name": "send"},
    )
    seen = []
    for _ in range(4):
        assert solver.must_call_tool()
        allowed = solver.allowed_tools(TOOLS)
        assert len(allowed) == 1
        seen.append(allowed[0])
        assert solver.record_call(allowed[0], "ok") is None
    assert seen == ["search", "fetch", "summarise", "send"]
    assert solver.is_terminal("send")
    assert not solver.must_call_tool()


def test_child_arg_nodes_prefill_the_child_right_after_its_parent() -> None:
    solver = _solver(
        {
            "type": "constrain_child_tools",
            "tool_name": "search",
            "children": ["fetch", "summarise"],
            "child_arg_nodes": [{"name": "fetch", "args": {"limit": 1}}, {"name": "summarise"}],
        }
    )
    assert solver.prefilled_args("fetch") == {}
    solver.record_call("search")
    assert solver.prefilled_args("fetch") == {"limit": 1}
    assert solver.prefilled_args("summarise") == {}
    solver.record_call("fetch")
    assert solver.prefilled_args("fetch") == {}


# -- conditional ------------------------------------------------------------------------------------


def _conditional(**extra: Any) -> dict[str, Any]:
    return {
        "type": "conditional",
        "tool_name": "fetch",
        "child_output_mapping": {"ok": "summarise", "retry": "search"},
        **extra,
    }


def test_conditional_picks_the_child_by_output() -> None:
    solver = _solver(_conditional())
    assert solver.record_call("fetch", "retry") is None
    assert solver.must_call_tool()
    assert solver.allowed_tools(TOOLS) == ["search"]
    message = solver.check_call("summarise", TOOLS)
    assert message is not None
    assert "'fetch' returned 'retry', so the next tool must be 'search'" in message
    solver.record_call("search")
    solver.record_call("fetch", "  ok\n")
    assert solver.allowed_tools(TOOLS) == ["summarise"]


def test_conditional_without_a_match_or_default_allows_any_tool() -> None:
    solver = _solver(_conditional())
    assert solver.record_call("fetch", "something else") is None
    assert not solver.must_call_tool()
    assert solver.allowed_tools(TOOLS) == TOOLS


def test_conditional_without_a_match_falls_back_to_the_default_child() -> None:
    solver = _solver(_conditional(default_child="send"))
    assert solver.record_call("fetch", "something else") is None
    assert solver.must_call_tool()
    assert solver.allowed_tools(TOOLS) == ["send"]
    solver.record_call("send")
    solver.record_call("fetch", "ok")
    # A match wins over the default.
    assert solver.allowed_tools(TOOLS) == ["summarise"]


def test_an_empty_mapping_always_takes_the_default() -> None:
    solver = _solver(
        {"type": "conditional", "tool_name": "fetch", "child_output_mapping": {}, "default_child": "send"}
    )
    solver.record_call("fetch", "ok")
    assert solver.allowed_tools(TOOLS) == ["send"]


@pytest.mark.parametrize(
    ("key", "output"),
    [
        ("ok", "ok"),
        ("ok", "  ok \n"),
        (" ok ", "ok"),
        ("true", "True"),
        ("True", "true"),
        ("false", "FALSE"),
        ("1", "1.0"),
        ("1.0", "1"),
        ("-2", "-2.00"),
        ("1000", "1e3"),
        ("0", "-0"),
    ],
)
def test_conditional_outputs_match_loosely(key: str, output: str) -> None:
    solver = _solver({"type": "conditional", "tool_name": "fetch", "child_output_mapping": {key: "send"}})
    solver.record_call("fetch", output)
    assert solver.allowed_tools(TOOLS) == ["send"]


@pytest.mark.parametrize(
    ("key", "output"),
    [
        ("ok", "OK"),
        ("true", "1"),
        ("1", "true"),
        ("1", "2"),
        ("12345678901234567890", "12345678901234567891"),
        ("nan", "NaN"),
        ("", "anything"),
    ],
)
def test_conditional_outputs_that_do_not_match(key: str, output: str) -> None:
    solver = _solver({"type": "conditional", "tool_name": "fetch", "child_output_mapping": {key: "send"}})
    solver.record_call("fetch", output)
    assert solver.allowed_tools(TOOLS) == TOOLS


def test_the_first_matching_key_wins() -> None:
    solver = _solver(
        {"type": "conditional", "tool_name": "fetch", "child_output_mapping": {"1": "send", "1.0": "search"}}
    )
    solver.record_call("fetch", "1")
    assert solver.allowed_tools(TOOLS) == ["send"]


def test_require_output_mapping_reports_an_unmatched_output() -> None:
    solver = _solver(_conditional(require_output_mapping=True))
    assert solver.record_call("fetch", "ok") is None
    solver.record_call("summarise")
    violation = solver.record_call("fetch", "weird")
    assert violation is not None
    assert "'fetch' returned 'weird', which matches none of the expected outputs 'ok', 'retry'" in violation
    # With no default child, any tool may follow the violation.
    assert solver.allowed_tools(TOOLS) == TOOLS


def test_require_output_mapping_with_a_default_reports_and_still_routes_to_the_default() -> None:
    solver = _solver(_conditional(require_output_mapping=True, default_child="send"))
    assert solver.record_call("fetch", "weird") is not None
    assert solver.allowed_tools(TOOLS) == ["send"]


def test_require_output_mapping_without_output_is_a_violation() -> None:
    solver = _solver(_conditional(require_output_mapping=True))
    violation = solver.record_call("fetch", None)
    assert violation is not None
    assert "returned no output" in violation


def test_an_errored_call_is_matched_but_never_reported() -> None:
    solver = _solver(_conditional(require_output_mapping=True, default_child="send"))
    assert solver.record_call("fetch", "Traceback ...", status="error") is None
    assert solver.allowed_tools(TOOLS) == ["send"]
    assert solver.record_call("fetch", "retry", status="error") is None
    assert solver.allowed_tools(TOOLS) == ["search"]


def test_a_long_output_is_shortened_in_the_violation() -> None:
    solver = _solver(_conditional(require_output_mapping=True))
    violation = solver.record_call("fetch", "x" * 500)
    assert violation is not None
    assert len(violation) < 250


def test_conditional_and_child_rule_on_one_tool_intersect() -> None:
    solver = _solver(
        _conditional(),
        {"type": "constrain_child_tools", "tool_name": "fetch", "children": ["summarise", "send"]},
    )
    solver.record_call("fetch", "ok")
    assert solver.allowed_tools(TOOLS) == ["summarise"]
    solver.record_call("summarise")
    solver.record_call("fetch", "retry")  # search is not among the children: nothing is left
    assert solver.allowed_tools(TOOLS) == []
    assert solver.must_call_tool()


# -- parent_last_tool -------------------------------------------------------------------------------


def test_a_gated_child_may_only_follow_its_parent() -> None:
    solver = _solver({"type": "parent_last_tool", "tool_name": "fetch", "children": ["summarise"]})
    assert solver.allowed_tools(TOOLS) == ["search", "fetch", "send", "memory_insert"]
    message = solver.check_call("summarise", TOOLS)
    assert message is not None
    assert "'summarise' may only be called right after 'fetch'" in message
    solver.record_call("fetch")
    # Gating does not force the child: anything may follow the parent.
    assert not solver.must_call_tool()
    assert solver.allowed_tools(TOOLS) == TOOLS
    solver.record_call("summarise")
    # The child is gated again once something else (here itself) was last.
    assert solver.check_call("summarise", TOOLS) is not None
    solver.record_call("fetch")
    solver.record_call("search")
    assert "summarise" not in solver.allowed_tools(TOOLS)


def test_a_child_of_two_parents_may_follow_either() -> None:
    solver = _solver(
        {"type": "parent_last_tool", "tool_name": "fetch", "children": ["summarise"]},
        {"type": "parent_last_tool", "tool_name": "search", "children": ["summarise", "send"]},
    )
    message = solver.check_call("summarise", TOOLS)
    assert message is not None
    assert "right after 'fetch' or 'search'" in message
    solver.record_call("search")
    assert solver.allowed_tools(TOOLS) == TOOLS
    solver.record_call("fetch")
    assert solver.allowed_tools(TOOLS) == ["search", "fetch", "summarise", "memory_insert"]


def test_run_first_that_is_a_gated_child_leaves_nothing_allowed() -> None:
    solver = _solver(
        {"type": "run_first", "tool_name": "summarise"},
        {"type": "parent_last_tool", "tool_name": "fetch", "children": ["summarise"]},
    )
    assert solver.allowed_tools(TOOLS) == []


# -- max_count_per_step ----------------------------------------------------------------------------


def test_a_tool_is_refused_once_its_count_is_reached() -> None:
    solver = _solver({"type": "max_count_per_step", "tool_name": "search", "max_count_limit": 2})
    for _ in range(2):
        assert solver.check_call("search", TOOLS) is None
        solver.record_call("search")
    assert solver.allowed_tools(TOOLS) == ["fetch", "summarise", "send", "memory_insert"]
    message = solver.check_call("search", TOOLS)
    assert message is not None
    assert "'search' may be called at most 2 times per run and has reached that limit" in message


def test_errored_calls_count_too_and_the_smallest_limit_wins() -> None:
    solver = _solver(
        {"type": "max_count_per_step", "tool_name": "search", "max_count_limit": 3},
        {"type": "max_count_per_step", "tool_name": "search", "max_count_limit": 1},
    )
    solver.record_call("search", "boom", status="error")
    message = solver.check_call("search", TOOLS)
    assert message is not None
    assert "at most 1 time per run" in message


def test_a_child_whose_count_is_reached_leaves_nothing_allowed() -> None:
    solver = _solver(
        {"type": "constrain_child_tools", "tool_name": "search", "children": ["fetch"]},
        {"type": "max_count_per_step", "tool_name": "fetch", "max_count_limit": 1},
    )
    solver.record_call("search")
    solver.record_call("fetch")
    solver.record_call("search")
    assert solver.must_call_tool()
    assert solver.allowed_tools(TOOLS) == []
    message = solver.check_call("fetch", TOOLS)
    assert message is not None
    assert "has reached that limit" in message
    assert message.endswith("No tool may be called now.")


def test_counts_are_per_run() -> None:
    rules = validate_tool_rules([{"type": "max_count_per_step", "tool_name": "search", "max_count_limit": 1}])
    first = ToolRuleSolver(rules)
    first.record_call("search")
    assert "search" not in first.allowed_tools(TOOLS)
    assert "search" in ToolRuleSolver(rules).allowed_tools(TOOLS)


# -- required_before_exit --------------------------------------------------------------------------


def test_required_before_exit_lists_the_tools_not_called_yet() -> None:
    solver = _solver(
        {"type": "required_before_exit", "tool_name": "memory_insert"},
        {"type": "required_before_exit", "tool_name": "send"},
        {"type": "required_before_exit", "tool_name": "memory_insert"},
    )
    assert solver.missing_before_exit() == ["memory_insert", "send"]
    # It does not force a tool call by itself; the lead nudges the LLM when it tries to end.
    assert not solver.must_call_tool()
    solver.record_call("send", "boom", status="error")
    assert solver.missing_before_exit() == ["memory_insert"]
    solver.record_call("memory_insert")
    assert solver.missing_before_exit() == []


# -- combinations and robustness -------------------------------------------------------------------------


def test_init_then_conditional_then_terminal() -> None:
    solver = _solver(
        {"type": "run_first", "tool_name": "search", "args": {"query": "q"}},
        {"type": "constrain_child_tools", "tool_name": "search", "children": ["fetch"]},
        _conditional(default_child="send"),
        {"type": "exit_loop", "tool_name": "send"},
        {"type": "required_before_exit", "tool_name": "summarise"},
        {"type": "requires_approval", "tool_name": "send"},
    )
    assert solver.allowed_tools(TOOLS) == ["search"]
    assert solver.prefilled_args("search") == {"query": "q"}
    solver.record_call("search", "results")
    assert solver.allowed_tools(TOOLS) == ["fetch"]
    solver.record_call("fetch", "retry")
    assert solver.allowed_tools(TOOLS) == ["search"]
    assert solver.prefilled_args("search") == {}
    solver.record_call("search", "results")
    solver.record_call("fetch", "ok")
    assert solver.allowed_tools(TOOLS) == ["summarise"]
    solver.record_call("summarise", "digest")
    assert solver.missing_before_exit() == []
    assert not solver.must_call_tool()
    solver.record_call("fetch", "nothing useful")
    assert solver.allowed_tools(TOOLS) == ["send"]
    assert solver.requires_approval("send")
    solver.record_call("send")
    assert solver.is_terminal("send")


def test_the_solver_skips_malformed_stored_rules() -> None:
    solver = ToolRuleSolver(
        [
            {"type": "unknown", "tool_name": "search"},
            {"type": "exit_loop"},
            {"type": "max_count_per_step", "tool_name": "search"},
            {"type": "conditional", "tool_name": "fetch"},
            {"type": "constrain_child_tools", "tool_name": "search", "children": None},
            {"type": "exit_loop", "tool_name": "send"},
        ]
    )
    assert solver.allowed_tools(TOOLS) == TOOLS
    solver.record_call("fetch", "ok")
    assert solver.allowed_tools(TOOLS) == TOOLS
    solver.record_call("search")
    assert solver.allowed_tools(TOOLS) == TOOLS
    assert not solver.must_call_tool()
    assert solver.is_terminal("send")
