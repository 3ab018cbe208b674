"""The pure rendering helpers: what the components receive."""

from __future__ import annotations

from tests.ui.helpers import TEXT, candidate
from toolformer_app.ui import render


def test_heatmap_covers_the_text_exactly_and_scores_p_on_a_log_scale():
    text = "It holds 864 trees."
    starts = [0, 2, 8, 9, 12, 18]
    scores = [0.9, 1e-5, 0.01, 1.0, 0.5, 0.001]
    value = render.position_heatmap(text, starts, scores)
    assert "".join(span for span, _ in value) == text
    assert value[0][1] is None  # no call before the first token
    assert value[1][1] == 0.0 and value[2][1] == 0.5 and value[3][1] == 1.0
    assert all(s is None or 0.0 <= s <= 1.0 for _, s in value)


def test_candidate_highlights_insert_every_call_labelled_by_tool_and_failed_ones_as_no_result():
    cands = [candidate(reduction=1.0), candidate(reduction=0.1, inp="36 + 24", result="60"),
             candidate(reduction=None, inp="36 *", reason="incomplete")]
    value = render.candidate_highlights(TEXT, cands)
    labels = [label for _, label in value if label]
    assert labels.count("Calculator") == 2 and labels.count(render.NO_RESULT) == 1
    plain = "".join(span for span, label in value if label is None)
    assert plain == TEXT  # the text around the calls is untouched
    first_call = next(span for span, label in value if label)
    assert first_call == " [Calculator(36 * 24) -> 864]"  # best loss reduction first


def test_histogram_bins_split_at_tau_f_so_counts_are_exact():
    values = [-0.3, 0.1, 0.25, 0.35, 1.2]
    for tau in (0.3, 0.0, 2.0, -1.0):
        h = render.histogram_bins(values, tau)
        assert sum(b["kept"] for b in h["bins"]) == sum(v >= tau for v in values)
        assert sum(b["rejected"] for b in h["bins"]) == sum(v < tau for v in values)
        assert h["lo"] <= min(values + [tau]) and h["hi"] >= max(values + [tau])


def test_histogram_svg_draws_the_threshold_line_and_kept_counts():
    svg = render.histogram_svg("Calculator", [-0.2, 0.5, 1.5], 0.3)
    assert svg.startswith("<svg") and "τf = 0.30" in svg
    assert "2 kept, 1 rejected of 3 scored" in svg
    assert 'stroke-dasharray="5 3"' in svg  # the dashed line at tau_f


def test_per_token_change_uses_the_smaller_of_the_two_minus_losses():
    c = candidate(reduction=1.0)
    assert render.minus_condition(c) == "plain"  # loss_plain 2.3 < loss_empty 2.4
    rows = render.per_token_change(c)
    assert [r["weight"] for r in rows] == [0.333, 0.267, 0.2, 0.133, 0.067]
    assert rows[2]["change"] == round(-0.1 - -3.6, 3)
    heat = render.token_change_heatmap(TEXT, c)
    scores = [s for _, s in heat if s is not None]
    assert len(scores) == 5 and max(scores) == 1.0 and all(-1 <= s <= 1 for s in scores)


def test_losses_html_marks_l_minus_and_the_verdict():
    c = candidate(reduction=1.0)
    html = render.losses_html(c, 0.5)
    assert "this is L⁻" in html and "kept" in html
    assert "rejected" in render.losses_html(c, 2.0)
    assert "never kept" in render.losses_html(candidate(reduction=None, reason="bad input"), 0.0)


def test_chat_markup_marks_calls_and_neutralises_markdown_and_html():
    out = render.chat_markup([("2 * 3 is <b>", None, True), (" [Calculator(2 * 3) -> 6]", "Calculator", True),
                              (" $x$", None, True), (" [Foo(1)]", "Foo", False)])
    assert '<mark class="tool-Calculator"' in out and '<mark class="tool-failed"' in out
    assert "<b>" not in out and "&lt;b&gt;" in out
    assert "*" not in out and "$" not in out and "[" not in out


def test_cut_text_cuts_long_input_with_a_note():
    text, note = render.cut_text("word " * 300_000, 20_000)
    assert len(text) <= 20_000 and note and "20,000" in note
    assert render.cut_text("short", 10) == ("short", None)


def test_tool_css_has_a_rule_per_tool():
    css = render.app_css()
    for tool in render.TOOL_COLORS:
        assert f"mark.tool-{tool}" in css
