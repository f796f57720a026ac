"""Evaluate a Terraform variable-validation condition offline, for tests that feed bad values.

No terraform binary can run here (it cannot fetch the google provider), so the module's
``validation`` conditions are translated to Python and evaluated against chosen variable
values. Only the subset the module's validations use is supported (and anything else fails
loudly): literals, ``var.*``, ``&& || ! == != < <= > >=``, arithmetic, lists, and the functions
``can try regex contains length tonumber tostring trimsuffix startswith endswith``. ``can``
and ``try`` take their arguments lazily, as in Terraform.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

_LAZY = ("can", "try")
_WORDS = {"null": "None", "true": "True", "false": "False"}


def _can(thunk: Callable[[], Any]) -> bool:
    try:
        thunk()
    except Exception:
        return False
    return True


def _try(*thunks: Callable[[], Any]) -> Any:
    for thunk in thunks:
        try:
            return thunk()
        except Exception:
            continue
    raise ValueError("no try() argument succeeded")


def _regex(pattern: str, text: str) -> str:
    if not isinstance(text, str):
        raise TypeError("regex needs a string")
    match = re.search(pattern, text)
    if match is None:
        raise ValueError(f"{pattern!r} does not match {text!r}")
    return match.group(0)


def _tonumber(value: Any) -> float:
    if value is None:
        raise TypeError("tonumber(null)")
    number = float(value)
    return int(number) if number.is_integer() else number


FUNCTIONS: dict[str, Any] = {
    "_can": _can,
    "_try": _try,
    "regex": _regex,
    "contains": lambda items, value: value in items,
    "length": len,
    "tonumber": _tonumber,
    "tostring": str,
    "trimsuffix": lambda text, suffix: text[: -len(suffix)] if text.endswith(suffix) else text,
    "startswith": lambda text, prefix: text.startswith(prefix),
    "endswith": lambda text, suffix: text.endswith(suffix),
}


def translate(expression: str) -> str:
    """HCL expression → Python source (strings are copied as they are)."""
    text = expression.strip()
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1]
    out: list[str] = []
    stack: list[bool] = []  # per open parenthesis: does it belong to can()/try()?
    i = 0
    while i < len(text):
        char = text[i]
        if char == '"':
            end = i + 1
            while text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            out.append(text[i : end + 1])
            i = end + 1
            continue
        word = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text[i:])
        if word:
            name = word.group(0)
            rest = text[i + len(name) :]
            if name == "var" and rest.startswith("."):
                field = re.match(r"\.([A-Za-z0-9_]+)", rest)
                assert field
                out.append(f'var["{field.group(1)}"]')
                i += len(name) + len(field.group(0))
                continue
            if name in _LAZY and rest.startswith("("):
                out.append(f"_{name}((lambda: (")
                stack.append(True)
                i += len(name) + 1
                continue
            if name not in _WORDS and name not in FUNCTIONS:
                raise NotImplementedError(f"tfeval does not know {name!r} in {expression!r}")
            out.append(_WORDS.get(name, name))
            i += len(name)
            continue
        if text.startswith("&&", i) or text.startswith("||", i):
            out.append(" and " if char == "&" else " or ")
            i += 2
        elif char == "!" and not text.startswith("!=", i):
            out.append(" not ")
            i += 1
        elif char == "(":
            stack.append(False)
            out.append(char)
            i += 1
        elif char == ")":
            out.append(")))" if stack.pop() else ")")
            i += 1
        elif char == "," and stack and stack[-1]:
            out.append(")), (lambda: (")
            i += 1
        elif char in "?:":
            raise NotImplementedError(f"tfeval has no conditional expressions: {expression!r}")
        else:
            out.append(char)
            i += 1
    assert not stack, f"unbalanced parentheses in {expression!r}"
    return "".join(out)


def evaluate(expression: str, variables: Mapping[str, Any]) -> Any:
    """The value of ``expression`` with ``var.*`` taken from ``variables``."""
    source = translate(expression)
    # One namespace: the lambdas of can()/try() must see `var` too.
    namespace = {"__builtins__": {}, **FUNCTIONS, "var": dict(variables)}
    return eval(source, namespace)


def valid(
    variables_block: Mapping[str, Mapping[str, Any]], name: str, values: Mapping[str, Any]
) -> bool:
    """Whether every validation of variable ``name`` passes, other variables at their
    defaults unless ``values`` says otherwise. A condition that errors fails, as in Terraform."""
    env = {key: body.get("default") for key, body in variables_block.items()}
    env.update(values)
    for rule in variables_block[name].get("validation", []):
        try:
            if evaluate(rule["condition"], env) is not True:
                return False
        except (TypeError, ValueError, AttributeError, KeyError):
            return False
    return True
