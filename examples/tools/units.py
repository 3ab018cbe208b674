"""Units: a unit converter, as a complete example of bringing your own tool (fully offline, stdlib only).

    toolformer tool --tools-from examples/tools/units.py Units "5 km in miles"       # 3.11 miles
    toolformer generate --tools-from examples/tools/units.py --tools Units --input examples/tools/units_corpus.txt --out runs/units
    toolformer chat --tools-from examples/tools/units.py --tools Units "The trail is 5 km long, which is about"

A tool is four things (paper, section 2 and A.1): a few-shot prompt that shows where calls go, a heuristic that
picks the texts worth annotating, an executor, and the sampling/filtering thresholds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from toolformer_app.calls import linearize
from toolformer_app.tools import Thresholds, Tool, ToolResult

# -- the executor ---------------------------------------------------------------------------------
# unit -> (dimension, factor to the base unit); temperatures are affine and handled apart.
_UNITS: dict[str, tuple[str, float]] = {}
for _names, _dim, _factor in (
    (("mm", "millimeter", "millimeters", "millimetre", "millimetres"), "length", 0.001),
    (("cm", "centimeter", "centimeters", "centimetre", "centimetres"), "length", 0.01),
    (("m", "meter", "meters", "metre", "metres"), "length", 1.0),
    (("km", "kilometer", "kilometers", "kilometre", "kilometres"), "length", 1000.0),
    (("in", "inch", "inches"), "length", 0.0254),
    (("ft", "foot", "feet"), "length", 0.3048),
    (("yd", "yard", "yards"), "length", 0.9144),
    (("mi", "mile", "miles"), "length", 1609.344),
    (("g", "gram", "grams"), "mass", 0.001),
    (("kg", "kilogram", "kilograms", "kilo", "kilos"), "mass", 1.0),
    (("t", "tonne", "tonnes"), "mass", 1000.0),
    (("oz", "ounce", "ounces"), "mass", 0.028349523125),
    (("lb", "lbs", "pound", "pounds"), "mass", 0.45359237),
    (("ml", "milliliter", "milliliters", "millilitre", "millilitres"), "volume", 0.001),
    (("l", "liter", "liters", "litre", "litres"), "volume", 1.0),
    (("gal", "gallon", "gallons"), "volume", 3.785411784),
    (("km/h", "kph"), "speed", 1 / 3.6),
    (("mph",), "speed", 0.44704),
    (("m/s",), "speed", 1.0),
):
    for _name in _names:
        _UNITS[_name] = (_dim, _factor)
_TEMPERATURES = {"c": "C", "°c": "C", "celsius": "C", "f": "F", "°f": "F", "fahrenheit": "F", "k": "K",
                 "kelvin": "K"}

_QUERY = re.compile(r"^\s*(-?\d[\d,]*(?:\.\d+)?)\s*([^\d\s][^\s]*(?:\s[^\s]+)?)\s+(?:in|to|into)\s+(.+?)\s*$",
                    re.IGNORECASE)


def _to_kelvin(value: float, unit: str) -> float:
    return {"C": value + 273.15, "F": (value - 32) * 5 / 9 + 273.15, "K": value}[unit]


def _from_kelvin(value: float, unit: str) -> float:
    return {"C": value - 273.15, "F": (value - 273.15) * 9 / 5 + 32, "K": value}[unit]


def convert(query: str) -> str:
    """"5 km in miles" -> "3.11 miles"; raises ValueError with the reason when it cannot convert."""
    m = _QUERY.match(query)
    if not m:
        raise ValueError("expected 'NUMBER UNIT in UNIT', e.g. '5 km in miles'")
    value = float(m.group(1).replace(",", ""))
    source, target = m.group(2).strip().lower(), m.group(3).strip()
    key = target.lower()
    if source in _TEMPERATURES and key in _TEMPERATURES:
        if _TEMPERATURES[source] == _TEMPERATURES[key]:
            raise ValueError(f"{source} and {target} are the same unit: nothing to convert")
        result = _from_kelvin(_to_kelvin(value, _TEMPERATURES[source]), _TEMPERATURES[key])
    elif source in _UNITS and key in _UNITS:
        (dim_a, fa), (dim_b, fb) = _UNITS[source], _UNITS[key]
        if (dim_a, fa) == (dim_b, fb):
            raise ValueError(f"{source} and {target} are the same unit: nothing to convert")
        if dim_a != dim_b:
            raise ValueError(f"cannot convert {dim_a} ({source}) to {dim_b} ({target})")
        result = value * fa / fb
    else:
        unknown = source if source not in _UNITS and source not in _TEMPERATURES else target
        raise ValueError(f"unknown unit {unknown!r}")
    text = f"{result:.2f}".rstrip("0").rstrip(".")  # 2 decimals, like the paper's Calculator
    return f"{text} {target}"


# -- the prompt (paper A.2: instruction, Input/Output pairs, then "Input: x") ---------------------------
def _ex(before: str, query: str, after: str) -> tuple[str, str]:
    return before + after, before + linearize("Units", query, convert(query)) + after


EXAMPLES: tuple[tuple[str, str], ...] = (
    _ex("The marathon is 42.2 km long, or", "42.2 km in miles", " 26.2 miles."),
    _ex("The suitcase weighs 23 kg, which is", "23 kg in pounds", " 50.71 pounds, just under the limit."),
    _ex("Water boils at 212 °F, that is", "212 F in C", " 100 C at sea level."),
    _ex("The tank holds 10 gallons, about", "10 gallons in litres", " 37.85 litres of fuel."),
)

INSTRUCTION = (
    "Your task is to add calls to a Units API to a piece of text. The calls should help you get information "
    "required to complete the text. You can call the API by writing \"[Units(quantity in unit)]\" where "
    "\"quantity\" is a number with its unit and \"unit\" is the unit to convert it to. Here are some examples of "
    "API calls:"
)

# -- the heuristic (paper A.1): a number followed by a unit this tool knows -------------------------------
_UNIT_WORDS = sorted((u for u in [*_UNITS, *_TEMPERATURES] if len(u) > 1 or u in ("m", "g", "l")),
                     key=len, reverse=True)
_QUANTITY = re.compile(r"\b\d[\d,]*(?:\.\d+)?\s?(?:" + "|".join(re.escape(u) for u in _UNIT_WORDS) + r")(?![\w/])",
                       re.IGNORECASE)


@dataclass
class Units(Tool):
    """Converts a quantity between units of length, mass, volume, speed and temperature (2 decimals)."""

    name: str = "Units"
    description: str = "Unit conversion, e.g. 5 km in miles -> 3.11 miles."
    instruction: str = INSTRUCTION
    examples: tuple[tuple[str, str], ...] = EXAMPLES
    # Like the Calculator: a 135M model's p(" [") peaks near 0.01, so tau_s is low; gains L- - L+ measured on
    # such models are 0.3-1.2, so tau_f is 0.3 (the paper's 1.0 keeps almost nothing at this size).
    thresholds: Thresholds = field(default_factory=lambda: Thresholds(tau_s=0.003, k=5, m=5, tau_f=0.3))

    def selection_reason(self, text: str) -> str | None:
        m = _QUANTITY.search(text)
        return f"mentions a quantity with a unit: {m.group()!r}" if m else None

    def selects(self, text: str) -> bool:
        return self.selection_reason(text) is not None

    def run(self, input: str) -> ToolResult:
        try:
            return ToolResult(convert(input))
        except ValueError as exc:
            return ToolResult(None, str(exc))
