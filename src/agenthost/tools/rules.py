"""Tool rules: checking their wire shape, and tracking one run's tool calls against them.

An agent's ``tool_rules`` are Letta's nine rule types, each a dict with ``type`` and ``tool_name``.
This module is pure logic (no I/O); the agent loop asks a :class:`ToolRuleSolver` (one per run)
which tools the LLM may call next and tells it about each call it executed.

What each rule means here:

- ``run_first``: while no tool has been called in this run, the next call must be one of the
  ``run_first`` tools. Its optional ``args`` are prefilled into that first call only (they win
  over the LLM's arguments of the same keys); later calls of the same tool are free.
- ``exit_loop``: calling this tool ends the run (the loop stops with stop_reason ``tool_rule``).
- ``continue_loop``: after this tool the loop goes on, even where the call would otherwise end it.
- ``constrain_child_tools``: the call right after this tool must be one of ``children``. A child
  named in ``child_arg_nodes`` with ``args`` gets those prefilled when it is that next call.
- ``conditional``: the call right after this tool is chosen by the tool's output. The output is
  compared with each ``child_output_mapping`` key (both stripped; ``true``/``True`` and
  ``false``/``False`` alike; numbers by value, so ``1`` equals ``1.0``); the first key that
  matches selects its child. With no match, ``default_child`` (if set) is the only tool allowed,
  else any tool is. With ``require_output_mapping`` an unmatched output is also a violation,
  reported back for that call. An errored call is matched too, but is never reported as a
  violation (its error already is).
- ``parent_last_tool``: its ``children`` may only be called right after this tool. A tool that is
  the child of several such rules may follow any of its parents.
- ``max_count_per_step``: the tool may be called at most ``max_count_limit`` times per run (in
  Letta a "step" request is one run); after that it is no longer allowed.
- ``required_before_exit``: the run may not end (the LLM answering without a tool call) before
  this tool has been called in it.
- ``requires_approval``: a call of this tool waits for a human approval before it runs.

Every rule is a separate constraint: a tool is allowed next only when no rule forbids it, so two
constraints on the same call intersect (and may leave nothing allowed, which ends the run).
A call counts (for counts, "last tool", children and ``required_before_exit``) once it was
executed, whatever its status; calls refused by :meth:`ToolRuleSolver.check_call` do not count.
``prompt_template`` is accepted and kept, but ignored, as in Letta.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from agenthost.errors import InvalidArgument

RULE_TYPES: frozenset[str] = frozenset(
    {
        "run_first",
        "exit_loop",
        "continue_loop",
        "constrain_child_tools",
        "conditional",
        "parent_last_tool",
        "max_count_per_step",
        "required_before_exit",
        "requires_approval",
    }
)

# The fields each rule type may carry besides "type", "tool_name" and "prompt_template"
# (the OpenAPI schemas set additionalProperties: false).
_EXTRA_FIELDS: dict[str, frozenset[str]] = {
    "run_first": frozenset({"args"}),
    "constrain_child_tools": frozenset({"children", "child_arg_nodes"}),
    "parent_last_tool": frozenset({"children"}),
    "conditional": frozenset({"child_output_mapping", "default_child", "require_output_mapping"}),
    "max_count_per_step": frozenset({"max_count_limit"}),
}
_COMMON_FIELDS = frozenset({"type", "tool_name", "prompt_template"})


def validate_tool_rules(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check each rule's wire shape and return normalised copies (fields set to None dropped).

    Raises :class:`~agenthost.errors.InvalidArgument` naming the field, as
    ``loc=["body", "tool_rules", index, field]``.
    """
    return [_validate_rule(i, rule) for i, rule in enumerate(rules)]


def _validate_rule(index: int, rule: Any) -> dict[str, Any]:
    fail = _Failure(index)
    if not isinstance(rule, dict):
        raise fail("a tool rule must be an object")
    present = {key: value for key, value in rule.items() if value is not None}
    rule_type = present.get("type")
    if rule_type is None:
        raise fail(f"'type' is required; one of {sorted(RULE_TYPES)}", "type")
    if not isinstance(rule_type, str) or rule_type not in RULE_TYPES:
        raise fail(f"unknown rule type {rule_type!r}; use one of {sorted(RULE_TYPES)}", "type")
    allowed = _COMMON_FIELDS | _EXTRA_FIELDS.get(rule_type, frozenset())
    for key in present:
        if key not in allowed:
            raise fail(f"unknown field {key!r} for a '{rule_type}' rule", key)
    if not _is_name(present.get("tool_name")):
        raise fail("'tool_name' must be a non-empty string", "tool_name")
    if "prompt_template" in present and not isinstance(present["prompt_template"], str):
        raise fail("'prompt_template' must be a string", "prompt_template")

    if rule_type == "run_first" and "args" in present and not _is_str_dict(present["args"]):
        raise fail("'args' must be an object", "args")
    if rule_type in ("constrain_child_tools", "parent_last_tool"):
        children = present.get("children")
        if not isinstance(children, list) or not children or not all(_is_name(c) for c in children):
            raise fail("'children' must be a non-empty list of tool names", "children")
        if "child_arg_nodes" in present:
            present["child_arg_nodes"] = _validate_arg_nodes(present["child_arg_nodes"], children, fail)
    if rule_type == "conditional":
        mapping = present.get("child_output_mapping")
        if not isinstance(mapping, dict) or not all(
            isinstance(k, str) and _is_name(v) for k, v in mapping.items()
        ):
            raise fail(
                "'child_output_mapping' must be an object mapping outputs to tool names",
                "child_output_mapping",
            )
        if "default_child" in present and not _is_name(present["default_child"]):
            raise fail("'default_child' must be a non-empty string", "default_child")
        if "require_output_mapping" in present and not isinstance(present["require_output_mapping"], bool):
            raise fail("'require_output_mapping' must be a boolean", "require_output_mapping")
    if rule_type == "max_count_per_step":
        limit = present.get("max_count_limit")
        # bool is an int subclass; `true` is not a count.
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise fail("'max_count_limit' must be an integer >= 1", "max_count_limit")
    return present


class _Failure:
    """Builds the error for one rule, its ``loc`` pointing at the offending field."""

    def __init__(self, index: int) -> None:
        self.index = index

    def __call__(self, message: str, *field: str | int) -> InvalidArgument:
        loc = ["body", "tool_rules", self.index, *field]
        return InvalidArgument(f"tool_rules[{self.index}]: {message}", loc=loc)


def _validate_arg_nodes(nodes: Any, children: list[str], fail: _Failure) -> list[dict[str, Any]]:
    if not isinstance(nodes, list):
        raise fail("'child_arg_nodes' must be a list", "child_arg_nodes")
    result: list[dict[str, Any]] = []
    for j, node in enumerate(nodes):
        if not isinstance(node, dict):
            raise fail("a child arg node must be an object", "child_arg_nodes", j)
        node = {key: value for key, value in node.items() if value is not None}
        for key in node:
            if key not in ("name", "args"):
                raise fail(f"unknown field {key!r} in a child arg node", "child_arg_nodes", j, key)
        if node.get("name") not in children:
            raise fail("a child arg node's 'name' must be one of 'children'", "child_arg_nodes", j, "name")
        if "args" in node and not _is_str_dict(node["args"]):
            raise fail("'args' must be an object", "child_arg_nodes", j, "args")
        result.append(node)
    return result


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_str_dict(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) for k in value)


class ToolRuleSolver:
    """Tracks one run's tool calls against the agent's rules.

    Create one per run from the agent's (validated) rules. Before each LLM request ask
    :meth:`allowed_tools` and :meth:`must_call_tool`; for each tool call the LLM makes, in order,
    ask :meth:`check_call` (and :meth:`prefilled_args`) before executing it and :meth:`record_call`
    after. Malformed rules (say, stored before validation existed) are skipped, not raised.
    """

    def __init__(self, rules: list[dict[str, Any]]) -> None:
        self._init: dict[str, dict[str, Any]] = {}  # run_first tool -> its prefilled args
        self._terminal: set[str] = set()
        self._continue: set[str] = set()
        self._approval: set[str] = set()
        self._required: list[str] = []
        self._limits: dict[str, int] = {}
        self._children: dict[str, list[frozenset[str]]] = {}  # one entry per constrain_child_tools rule
        self._child_args: dict[tuple[str, str], dict[str, Any]] = {}  # (parent, child) -> args
        self._conditionals: dict[str, list[dict[str, Any]]] = {}
        self._parents: dict[str, set[str]] = {}  # gated child -> the tools it may directly follow
        for rule in rules:
            self._add(rule)
        # Per-run state: kept small on purpose.
        self._counts: Counter[str] = Counter()
        self._last: str | None = None
        self._next: frozenset[str] | None = None  # what the next call must be one of, if constrained
        self._next_reason = ""

    def _add(self, rule: dict[str, Any]) -> None:
        kind, name = rule.get("type"), rule.get("tool_name")
        if not isinstance(name, str):
            return
        if kind == "run_first":
            args = rule.get("args")
            self._init.setdefault(name, {}).update(args if isinstance(args, dict) else {})
        elif kind == "exit_loop":
            self._terminal.add(name)
        elif kind == "continue_loop":
            self._continue.add(name)
        elif kind == "requires_approval":
            self._approval.add(name)
        elif kind == "required_before_exit":
            if name not in self._required:
                self._required.append(name)
        elif kind == "max_count_per_step":
            limit = rule.get("max_count_limit")
            if isinstance(limit, int):
                self._limits[name] = min(limit, self._limits.get(name, limit))
        elif kind == "constrain_child_tools":
            children = _names(rule.get("children"))
            if not children:
                return
            self._children.setdefault(name, []).append(frozenset(children))
            for node in rule.get("child_arg_nodes") or []:
                if isinstance(node, dict) and isinstance(node.get("args"), dict):
                    self._child_args.setdefault((name, str(node.get("name"))), {}).update(node["args"])
        elif kind == "conditional":
            if isinstance(rule.get("child_output_mapping"), dict):
                self._conditionals.setdefault(name, []).append(rule)
        elif kind == "parent_last_tool":
            for child in _names(rule.get("children")):
                self._parents.setdefault(child, set()).add(name)

    # -- asking ---------------------------------------------------------------------------------

    def allowed_tools(self, available: Sequence[str]) -> list[str]:
        """The tools the LLM may call next, in the order of ``available``; ``[]`` means none may be."""
        return [name for name in dict.fromkeys(available) if self._why_not(name) is None]

    def must_call_tool(self) -> bool:
        """Whether the next LLM response must be a tool call (``tool_choice="required"``)."""
        return self._init_pending() or self._next is not None

    def check_call(self, name: str, available: Sequence[str]) -> str | None:
        """None when calling ``name`` now is allowed, else a message for the LLM: why not, and what is."""
        reason = self._why_not(name) if name in available else f"'{name}' is not an available tool"
        if reason is None:
            return None
        allowed = self.allowed_tools(available)
        hint = f"Tools allowed now: {_quoted(allowed)}." if allowed else "No tool may be called now."
        return f"Tool call rejected: {reason}. {hint}"

    def prefilled_args(self, name: str) -> dict[str, Any]:
        """Arguments that override the LLM's for this call (ask before :meth:`record_call`).

        The ``run_first`` rule's ``args`` for the run's first call, or a ``constrain_child_tools``
        rule's ``child_arg_nodes`` args for the call right after its tool; else ``{}``.
        """
        if self._init_pending():
            return dict(self._init.get(name, {}))
        if self._last is not None:
            return dict(self._child_args.get((self._last, name), {}))
        return {}

    def requires_approval(self, name: str) -> bool:
        """Whether a call of ``name`` must wait for a human approval."""
        return name in self._approval

    def is_terminal(self, name: str) -> bool:
        """Whether calling ``name`` ends the run (stop_reason ``tool_rule``)."""
        return name in self._terminal

    def is_continue(self, name: str) -> bool:
        """Whether the loop must go on after ``name`` was called."""
        return name in self._continue

    def missing_before_exit(self) -> list[str]:
        """The ``required_before_exit`` tools not called yet in this run, in rule order."""
        return [name for name in self._required if not self._counts[name]]

    # -- telling --------------------------------------------------------------------------------

    def record_call(self, name: str, output: str | None = None, *, status: str = "success") -> str | None:
        """Note that ``name`` was executed with this output; returns a violation message or None.

        The violation is a ``conditional`` rule with ``require_output_mapping`` whose mapping has no
        key for a successful call's output. The call counts either way.
        """
        self._counts[name] += 1
        self._last = name
        constraints: list[frozenset[str]] = list(self._children.get(name, []))
        reasons = [f"after '{name}' the next tool must be one of {_quoted(sorted(c))}" for c in constraints]
        violations: list[str] = []
        for rule in self._conditionals.get(name, []):
            mapping: dict[str, Any] = rule["child_output_mapping"]
            child = _select(mapping, output)
            if child is not None:
                constraints.append(frozenset({child}))
                reasons.append(f"'{name}' returned {_show(output)}, so the next tool must be '{child}'")
                continue
            if rule.get("require_output_mapping") and status == "success":
                violations.append(
                    f"'{name}' returned {_show(output)}, which matches none of the expected outputs "
                    f"{_quoted(list(mapping))}"
                )
            default = rule.get("default_child")
            if isinstance(default, str):
                constraints.append(frozenset({default}))
                reasons.append(f"after '{name}' the next tool must be '{default}'")
        if constraints:
            self._next = frozenset.intersection(*constraints)
            self._next_reason = "; ".join(reasons)
        else:
            self._next, self._next_reason = None, ""
        return "Tool rule violated: " + "; ".join(violations) + "." if violations else None

    # -- internals ------------------------------------------------------------------------------

    def _init_pending(self) -> bool:
        return bool(self._init) and not self._counts

    def _why_not(self, name: str) -> str | None:
        if self._init_pending() and name not in self._init:
            return f"the first tool call of this run must be one of {_quoted(list(self._init))}"
        if self._next is not None and name not in self._next:
            return self._next_reason
        limit = self._limits.get(name)
        if limit is not None and self._counts[name] >= limit:
            times = "time" if limit == 1 else "times"
            return f"'{name}' may be called at most {limit} {times} per run and has reached that limit"
        parents = self._parents.get(name)
        if parents is not None and self._last not in parents:
            return f"'{name}' may only be called right after {_quoted(sorted(parents), ' or ')}"
        return None


def _select(mapping: dict[str, Any], output: str | None) -> str | None:
    if output is None:
        return None
    for key, child in mapping.items():
        if _outputs_equal(output, key):
            return str(child)
    return None


def _outputs_equal(output: str, key: str) -> bool:
    a, b = output.strip(), key.strip()
    if a == b:
        return True
    if a.lower() in ("true", "false") or b.lower() in ("true", "false"):
        return a.lower() == b.lower()
    x, y = _number(a), _number(b)
    return x is not None and y is not None and x == y


def _number(text: str) -> Decimal | None:
    # Decimal, not float: "1" equals "1.0", but two long integers that differ stay different.
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _names(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _quoted(names: Iterable[str], sep: str = ", ") -> str:
    return sep.join(f"'{n}'" for n in names)


def _show(output: str | None, limit: int = 80) -> str:
    if output is None:
        return "no output"
    text = output.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")
