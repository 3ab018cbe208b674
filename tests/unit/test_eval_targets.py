"""The reproduction's targets table: met rows, shortfalls in points, and the calibrated rows."""
from toolformer_app.evaluation.targets import check, markdown


def _entry(acc, calls=None, right=0, n=100):
    rate = {"Calculator": 0.0, "Calendar": 0.0, "WikiSearch": 0.0, "QA": 0.0, "MT": 0.0, "other": 0.0, "any": 0.0}
    rate.update(calls or {})
    return {"n": n, "accuracy": acc, "call_rate": rate,
            "diagnostics": {"call_result_correct": right, "with_call": round(n * rate["any"])}}


def test_targets_report_met_and_missed_rows():
    results = {"suites": {
        "math": {"base": _entry(0.02), "tools": _entry(0.30, {"Calculator": 0.9, "any": 0.9}, right=55)},
        "facts": {"base": _entry(0.40), "tools": _entry(0.46, {"Calendar": 0.1, "any": 0.1}),
                  "disabled": _entry(0.36)},
        "facts_plain": {"base": _entry(0.20), "tools": _entry(0.50, {"QA": 0.4, "any": 0.4}, right=22),
                        "disabled": _entry(0.20)},
        "perplexity": {"base": {"perplexity": 10.0}, "disabled": {"perplexity": 10.4}},
    }}
    calibrated = {"suites": {"plain": {"tools": _entry(None, {"any": 0.2})},
                             "math": {"tools": _entry(0.3, {"any": 0.85})}}}
    rows = {r["target"]: r["verdict"] for r in check(results, calibrated)}
    assert rows["math with tools >= base + 35"] == "**missed by 7.0**"
    assert rows["Calculator result right on >= 50% of math items"] == "met"
    assert rows["math with tools >= 22"] == "met"
    assert rows["facts with tools >= base + 10 (moonshot + 15)"] == "**missed by 4.0**"
    assert rows["facts_plain with tools >= base + 10 (moonshot + 15)"] == "met"
    # QA is called only on facts_plain: 22 of its 40 calls right
    assert rows["the call's result right on >= 60% of the facts items with a call (QA is their tool)"] == \
        "**missed by 5.0**"
    assert rows["facts with tools disabled >= base - 3"] == "**missed by 1.0**"
    assert rows["wrong-tool rate on facts <= 5%"] == "**missed by 5.0**"
    assert rows["perplexity (disabled) <= base x 1.05"] == "met"
    assert rows["calibrated: calls on <= 10% of plain"] == "**missed by 10.0**"
    assert rows["calibrated: calls on >= 80% of math"] == "met"
    assert "dates with tools >= base + 10" not in rows  # not evaluated: no row
    assert markdown(check(results)).startswith("| target | result | |")


def test_math_split_by_the_operations_each_item_needs():
    from toolformer_app.evaluation.targets import math_by_operations, operations

    assert operations("138 / 5") == 1 and operations("(26 * 6) + 28") == 2 and operations("-3 + 4") == 1
    assert operations("(12 + 16 + 21) / 3") == 3
    expressions = {"a": "1 + 2", "b": "3 * 4", "c": "(1 + 2) * 3"}
    rows = [
        {"suite": "math", "mode": "tools", "id": "a", "correct": True, "call_result_correct": True},
        {"suite": "math", "mode": "tools", "id": "b", "correct": False, "call_result_correct": False},
        {"suite": "math", "mode": "tools", "id": "c", "correct": False},
        {"suite": "math", "mode": "base", "id": "a", "correct": True},  # other modes are not counted
        {"suite": "facts", "mode": "tools", "id": "a", "correct": True},
    ]
    assert math_by_operations(rows, expressions) == [
        {"operations": 1, "items": 2, "correct": 1, "call_result_right": 1},
        {"operations": 2, "items": 1, "correct": 0, "call_result_right": 0},
    ]
