"""Calculator: + - × ÷ and parentheses on exact rationals, rounded to 2 decimals (paper, section 3).

The expression is never evaluated as Python. It is normalised (thousands commas, percentages,
"×"/"x"/"÷"), checked against a character whitelist, parsed with ``ast.parse(mode="eval")`` and
walked over a whitelist of nodes, computing with ``fractions.Fraction`` so "0.1 + 0.2" is exact.
"""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass, field
from fractions import Fraction

from toolformer_app.calls import linearize
from toolformer_app.tools.base import Thresholds, Tool, ToolResult

MAX_INPUT_CHARS = 200
MAX_NUMBER = 10**15  # literals at or above this are refused
MAX_RESULT = 10**30  # intermediate results too (keeps the output readable and cheap)
MAX_DEPTH = 40  # nesting of the expression tree
_ALLOWED_CHARS = frozenset("0123456789.+-*/() ")


def _ex(before: str, expr: str, result: str, after: str) -> tuple[str, str]:
    """One few-shot pair; the call is written by calls.linearize so the format is exact."""
    return before + after, before + linearize("Calculator", expr, result) + after


EXAMPLES: tuple[tuple[str, str], ...] = (
    _ex("The orchard has 36 rows of 24 apple trees, so it holds", "36 * 24", "864", " 864 trees in all."),
    _ex("Of the 250 students who sat the exam, 215 passed, a pass rate of", "215 / 250", "0.86", " 86%."),
    _ex(
        "The bridge was 1,850 meters long before the extension and 2,310 meters after it, an increase of",
        "2310 - 1850",
        "460",
        " 460 meters.",
    ),
    _ex("A ticket costs $12.50, so a family of four pays", "12.50 * 4", "50", " $50 at the gate."),
    _ex(
        "The club had 58 members in spring; 17 joined and 9 left over the summer, leaving",
        "58 + 17 - 9",
        "66",
        " 66 members in autumn.",
    ),
)

INSTRUCTION = (
    "Your task is to add calls to a Calculator API to a piece of text. The calls should help you get "
    "information required to complete the text. You can call the API by writing \"[Calculator(expression)]\" "
    "where \"expression\" is the expression to be computed. Here are some examples of API calls:"
)


class CalculatorError(ValueError):
    """An expression the calculator refuses; the message is the reason shown to the user."""


# -- parsing numbers in running text (for the A.1 heuristic) ------------------------------------
# "1,850", "12.50", "86%", "-3"; a number glued to letters ("COVID-19", "3rd") still counts as one.
_NUM_IN_TEXT = re.compile(r"(?<![\d.,])(-?)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(%?)")
_KEYWORD = re.compile(
    r"(?:=|\bequals?\b|\bequal to\b|\btotal of\b|\baverage of\b)\s*(?:about\s+|approximately\s+)?[$€£]?\s*-?\d",
    re.IGNORECASE,
)
_WINDOW = 100  # whitespace tokens
_MAX_NUMBERS_PER_WINDOW = 30  # bound the O(n^3) search on number-heavy texts
_MAX_NUMBERS = 200
_MAX_RELATIVE_ERROR = 0.02


@dataclass(frozen=True)
class _Num:
    text: str  # as written, e.g. "1,850" or "86%"
    value: float
    tolerance: float  # half a unit of the shown precision, so "29%" matches 400 / 1400 = 0.2857
    token: int  # index of the whitespace token it sits in
    percent: bool = False


def numbers_in_text(text: str) -> list[_Num]:
    """Every number in ``text`` with its value, rounding tolerance and whitespace-token index."""
    out: list[_Num] = []
    for t_index, tok in enumerate(re.finditer(r"\S+", text)):
        for m in _NUM_IN_TEXT.finditer(tok.group()):
            sign, whole, frac, pct = m.groups()
            value = float(whole.replace(",", "") + (frac or ""))
            decimals = len(frac) - 1 if frac else 0
            if sign and m.start() == 0:  # "-3", but not the hyphen in "2020-21"
                value = -value
            if pct:
                value, decimals = value / 100, decimals + 2
            tolerance = 0.5 * 10.0**-decimals + 1e-9 * abs(value)
            out.append(_Num(m.group(), value, tolerance, t_index, bool(pct)))
    return out


def _operations(x: float, y: float, mixed_percent: bool = False):
    """(result, op) for x op y, skipping identities (x+0, x*1, x/1, x-x, x/x) that make repeats look like sums.

    A percentage is only multiplied or divided with a plain number (2025 + 85% is no calculation).
    """
    if x != 0 and y != 0 and not mixed_percent:
        yield x + y, "+"
        if x != y:
            yield x - y, "-"
    if x not in (0, 1) and y not in (0, 1):
        yield x * y, "*"
        if x != y:
            yield x / y, "/"


def arithmetic_triple(text: str) -> tuple[str, str, str, str] | None:
    """(a, op, b, c) as written, with c = a op b, for three numbers within any 100-token window; else None."""
    nums = numbers_in_text(text)[:_MAX_NUMBERS]
    for i, anchor in enumerate(nums):
        # Every triple is seen from its earliest number; the window is counted in whitespace tokens.
        rest = [n for n in nums[i + 1 :] if n.token - anchor.token < _WINDOW][:_MAX_NUMBERS_PER_WINDOW]
        for j, second in enumerate(rest):
            for third in rest[j + 1 :]:
                for c, x, y in ((third, anchor, second), (second, anchor, third), (anchor, second, third)):
                    for a, b in ((x, y), (y, x)):
                        for value, op in _operations(a.value, b.value, a.percent != b.percent):
                            # Shown precision alone is too loose for small integers (1.6 "is" 2),
                            # so the relative error must be small too (0.2857 vs 29%: 1.5%).
                            diff = abs(value - c.value)
                            if op == "/" and c.value == 1:  # any two close numbers (years) divide to ~1
                                continue
                            if diff <= c.tolerance and diff <= _MAX_RELATIVE_ERROR * abs(c.value):
                                return a.text, op, b.text, c.text
    return None


# -- evaluating an expression ----------------------------------------------------------------------
def normalise(expression: str) -> str:
    """The expression in the whitelisted alphabet: digits . + - * / ( ) and spaces."""
    s = expression.strip()
    for old, new in (("×", "*"), ("·", "*"), ("÷", "/"), ("−", "-"), ("–", "-"), ("—", "-"), ("∗", "*")):
        s = s.replace(old, new)
    s = re.sub(r"[$€£]", "", s)
    s = re.sub(r"\s*=\s*\??\s*$", "", s)  # "2 + 3 =" or "2 + 3 = ?"
    s = re.sub(r"(?<=[\d)\s])[xX](?=[\s\d(.])", "*", s)  # "3 x 4", "3x4"
    # thousands separators: "658,893" -> "658893"; any other comma is refused below
    s = re.sub(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?![\d,])", lambda m: m.group().replace(",", ""), s)
    s = re.sub(r"%\s*of\b", "% *", s)  # "15% of 80"
    s = re.sub(r"(\d+(?:\.\d+)?|\.\d+)\s*%", r"(\1 / 100)", s)  # "11.4%" -> (11.4 / 100)
    return s


def _check_depth(node: ast.AST, limit: int = MAX_DEPTH) -> None:
    stack = [(node, 0)]
    while stack:  # iterative: a deep tree must not hit the recursion limit here
        cur, depth = stack.pop()
        if depth > limit:
            raise CalculatorError("expression is nested too deeply")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(cur))


def _value(node: ast.AST, source: str) -> Fraction:
    if isinstance(node, ast.Expression):
        return _value(node.body, source)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        literal = ast.get_source_segment(source, node) or repr(node.value)
        value = Fraction(literal)  # from the text, so "0.1" is exactly 1/10
        if abs(value) >= MAX_NUMBER:
            raise CalculatorError(f"number too large: {literal}")
        return value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _value(node.operand, source)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        left, right = _value(node.left, source), _value(node.right, source)
        if isinstance(node.op, ast.Add):
            result = left + right
        elif isinstance(node.op, ast.Sub):
            result = left - right
        elif isinstance(node.op, ast.Mult):
            result = left * right
        else:
            if right == 0:
                raise CalculatorError("division by zero")
            result = left / right
        if abs(result) >= MAX_RESULT:
            raise CalculatorError("result too large")
        return result
    if isinstance(node, ast.BinOp):
        raise CalculatorError(f"unsupported operator {type(node.op).__name__}: only + - × ÷ are allowed")
    raise CalculatorError(f"unsupported syntax: {type(node).__name__}")


def evaluate(expression: str) -> Fraction:
    """The exact value of an arithmetic expression; CalculatorError with the reason otherwise."""
    if not expression or not expression.strip():
        raise CalculatorError("empty expression")
    if len(expression) > MAX_INPUT_CHARS:
        raise CalculatorError(f"expression longer than {MAX_INPUT_CHARS} characters")
    source = normalise(expression)
    bad = sorted({ch for ch in source if ch not in _ALLOWED_CHARS})
    if bad:
        shown = "".join(bad[:5])
        raise CalculatorError(f"unsupported character(s) {shown!r}: only numbers and + - × ÷ ( ) are allowed")
    if "**" in source or "//" in source:
        raise CalculatorError("only + - × ÷ are allowed")
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        raise CalculatorError(f"not a valid expression: {getattr(exc, 'msg', None) or type(exc).__name__}") from None
    _check_depth(tree)
    try:
        return _value(tree, source)
    except RecursionError:
        raise CalculatorError("expression is nested too deeply") from None


def format_number(value: Fraction, places: int = 2) -> str:
    """Round half away from zero to ``places`` decimals, without trailing zeros: 0.29, 5, -0.5."""
    scale = 10**places
    scaled = abs(value) * scale
    rounded = int(scaled + Fraction(1, 2))  # floor(x + 1/2) for x >= 0
    if rounded == 0:
        return "0"
    whole, frac = divmod(rounded, scale)
    text = str(whole) + (f".{frac:0{places}d}".rstrip("0") if frac else "")
    return ("-" if value < 0 else "") + text


# -- the tool ---------------------------------------------------------------------------------------
@dataclass
class Calculator(Tool):
    """Arithmetic on + - × ÷; results rounded to 2 decimals (paper: "0.29" for 400 / 1400)."""

    name: str = "Calculator"
    description: str = "Computes + - × ÷ expressions, e.g. 400 / 1400 -> 0.29 (rounded to 2 decimals)."
    instruction: str = INSTRUCTION
    examples: tuple[tuple[str, str], ...] = EXAMPLES
    # The paper samples Calculator and MT with tau_s=0.0, k=20, m=10, tau_f=0.5 (others 0.05/5/5/1.0).
    # tau_s=0 on GPT-J keeps any of the top-k positions; with a 135M model whose p(" [") peaks at
    # ~0.01 a small positive tau_s drops the many near-zero positions, and fewer k/m keep CPU runs
    # short. Our models' measured L- - L+ gains are 0.3-1.2, so tau_f=0.3 instead of 0.5/1.0.
    thresholds: Thresholds = field(default_factory=lambda: Thresholds(tau_s=0.003, k=10, m=5, tau_f=0.3))
    random_keep_rate: float = 0.01  # texts selected only for holding >= 3 numbers (A.1)

    def selection_reason(self, text: str) -> str | None:
        """Which A.1 rule selects ``text``: arithmetic triple, "=" keyword, or the random 1%; else None."""
        if not text.strip():
            return None
        triple = arithmetic_triple(text)
        if triple:
            a, op, b, c = triple
            return f"arithmetic: {a} {op} {b} ≈ {c}"
        if _KEYWORD.search(text):
            return "a number follows '=', 'equals', 'equal to', 'total of' or 'average of'"
        if len(numbers_in_text(text)) >= 3 and _stable_fraction(text) < self.random_keep_rate:
            return f"random {self.random_keep_rate:.0%} of texts with >= 3 numbers"
        return None

    def selects(self, text: str) -> bool:
        return self.selection_reason(text) is not None

    def keeps_call(self, text_before: str, text_after: str, input: str) -> bool:
        """Inputs from the past (the paper's MT rule, applied to numbers): ``inputs_from_past``."""
        return inputs_from_past(text_before, input)

    def run(self, input: str) -> ToolResult:
        try:
            return ToolResult(format_number(evaluate(input)))
        except CalculatorError as exc:
            return ToolResult(None, str(exc))
        except Exception as exc:  # an executor never raises: the reason goes back to the caller
            return ToolResult(None, f"calculator failed: {type(exc).__name__}")


# -- calls whose inputs come from the past ----------------------------------------------------------
# Constants a writer uses without stating them: percent, doubling, time and unit conversions.
UNSTATED_CONSTANTS = (1.0, 2.0, 10.0, 100.0, 1000.0, 7.0, 12.0, 24.0, 60.0, 365.0)
_LITERAL = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_MAX_PAST_NUMBERS = 30  # the last numbers before the call; pairs of them bound the derived set (4 * 30^2)


def stated_values(text_before: str) -> list[float]:
    """The numbers written before the call (a percentage both as 0.86 and as 86) and one operation on two
    of them."""
    nums = numbers_in_text(text_before)[-_MAX_PAST_NUMBERS:]
    seen = [n.value for n in nums] + [round(n.value * 100, 9) for n in nums if n.percent]
    seen = [abs(v) for v in seen]
    derived = [value for i, x in enumerate(seen) for y in seen[i + 1 :] for a, b in ((x, y), (y, x))
               for value, _ in _operations(a, b)]
    return seen + [abs(v) for v in derived]


def past_values(text_before: str) -> list[float]:
    """Values an input may use at this position: ``stated_values`` and ``UNSTATED_CONSTANTS``."""
    return list(UNSTATED_CONSTANTS) + stated_values(text_before)


def _matches(lit: str, values: list[float]) -> bool:
    x = float(lit)
    decimals = len(lit.split(".", 1)[1]) if "." in lit else 0
    tolerance = 0.5 * 10.0**-decimals + 1e-9 * abs(x)
    return any(abs(v - x) <= tolerance for v in values)


def inputs_from_past(text_before: str, input: str) -> bool:
    """Whether every number of a Calculator input appears before the call or is derivable from those
    numbers (one + - * / of two of them, or a unit constant), within the precision it is written to, and at
    least one of them is not a constant.

    The paper drops MT calls whose input appears only after the call; a Calculator call whose operand
    is read from the answer about to be written ("... sold [Calculator(347 + 289)] 636 loaves", with
    only 347 stated) passes tau_f by copying the future, and teaches nothing about computing.
    """
    try:
        expression = normalise(input)
    except Exception:
        return False
    literals = _LITERAL.findall(expression)
    if not literals:
        return False
    stated = stated_values(text_before)
    # constants alone are no input from the past: "The ferry sailed [Calculator(7 * 60)] 420 kilometres in
    # 7 hours, a speed of 60" reads both operands from the sentence about to be written
    if not any(_matches(lit, stated) for lit in literals):
        return False
    allowed = list(UNSTATED_CONSTANTS) + stated
    return all(_matches(lit, allowed) for lit in literals)


def _stable_fraction(text: str) -> float:
    """A reproducible pseudo-random number in [0, 1) from the text (same text -> same choice)."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
