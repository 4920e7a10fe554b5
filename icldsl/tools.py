"""Tools that ship with icldsl, for `tool name = python("icldsl.tools:<function>")`."""

from __future__ import annotations

import ast
import operator

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
MAX_LENGTH = 500
# Python's ints grow without bound and one `**` of them holds the interpreter until it ends
# ((((9**99)**99)**99)**99 would take hours), so no whole number may pass MAX_BITS bits: a
# power is refused from its operands' sizes before it is computed, any other result after
# (its operands are bounded, so it is cheap). A float answer ends below 2**1024 anyway;
# float arithmetic overflows at once.
MAX_BITS = 4096


def calculator(expression: str) -> float:
    """Evaluate an arithmetic expression with + - * / // % ** and parentheses, e.g. "(48 / 2) + 48"."""
    if len(expression) > MAX_LENGTH:
        raise ValueError(f"expression longer than {MAX_LENGTH} characters")
    tree = ast.parse(expression.replace("^", "**").replace(",", ""), mode="eval")
    try:
        return float(_evaluate(tree.body))
    except OverflowError:
        raise ValueError("the result is too large for a float") from None


def _evaluate(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return _bounded(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and isinstance(left, int) and isinstance(right, int) and right > 0:
            # |left| ** right has at least (bit_length - 1) * right + 1 bits
            if abs(left) > 1 and (left.bit_length() - 1) * right >= MAX_BITS:
                raise ValueError(f"the result has more than {MAX_BITS} bits")
        return _bounded(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    raise ValueError(f"not arithmetic: {ast.unparse(node)!r}")


def _bounded(value: int | float | complex) -> int | float:
    if isinstance(value, complex):  # (-8) ** 0.5
        raise ValueError("the result is not a real number")
    if isinstance(value, int) and value.bit_length() > MAX_BITS:
        raise ValueError(f"the result has more than {MAX_BITS} bits")
    return value
