"""Turning library results into component values: heat maps, highlighted calls, histograms, chat markup.

Everything here is a pure function of plain data (dicts from ``Candidate.to_dict()``, lists of
floats), so the tabs stay thin and the tests can check what a person would see.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from toolformer_app.pipeline.config import is_kept  # the paper's keep rule, written once
from toolformer_app.tools import TOOL_NAMES

ASSETS = Path(__file__).resolve().parents[2] / "assets"

# One colour per tool, used by every tab (HighlightedText colour maps, chat <mark>s, histograms).
TOOL_COLORS: dict[str, str] = {
    "Calculator": "#f59e0b",
    "Calendar": "#10b981",
    "WikiSearch": "#3b82f6",
    "QA": "#8b5cf6",
    "MT": "#ec4899",
}
NO_RESULT = "no result"
NO_RESULT_COLOR = "#9ca3af"
REJECTED_COLOR = "#d1d5db"


def tool_color(tool: str) -> str:
    return TOOL_COLORS.get(tool, "#64748b")


def color_map() -> dict[str, str]:
    """The HighlightedText colour map: one entry per tool, plus calls without a result."""
    return {**TOOL_COLORS, NO_RESULT: NO_RESULT_COLOR}


def tool_css() -> str:
    """CSS for ``<mark class="tool-NAME">`` (chat) and the tool chips; passed to ``launch(css=...)``."""
    rules = []
    for name, col in TOOL_COLORS.items():
        rules.append(
            f"mark.tool-{name} {{ background: {col}33; border-bottom: 2px solid {col}; color: inherit;"
            f" border-radius: 3px; padding: 0 2px; }}"
        )
        rules.append(f".tf-chip.tool-{name} {{ background: {col}; }}")
    rules.append(f"mark.tool-failed {{ background: {NO_RESULT_COLOR}33; border-bottom: 2px dashed {NO_RESULT_COLOR};"
                 " color: inherit; border-radius: 3px; padding: 0 2px; }")
    return "\n".join(rules)


def app_css() -> str:
    """assets/style.css followed by the per-tool rules."""
    path = ASSETS / "style.css"
    base = path.read_text(encoding="utf-8") if path.exists() else ""
    return base + "\n" + tool_css()


def one_line(exc: BaseException | str) -> str:
    """The first line of an error message (never a traceback), with its type when it says nothing."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(exc, BaseException) and not first:
        return type(exc).__name__
    return first[:400]


_ABS_PATH = re.compile(r"(?<![\w.~:/-])/(?:[^\s/'\"<>|:,;()\[\]]+/)+")  # the folders of an absolute path


def hide_paths(text: str) -> str:
    """``text`` with no server path: a path in the data dir becomes its place there (``datasets/x.jsonl``),
    and any other absolute path its last part (``/srv/venv/lib/site-packages/torch/x.py`` -> ``x.py``)."""
    from toolformer_app import config

    root = config.data_dir()
    for prefix in {str(root.resolve()), str(root.absolute()), str(root)}:
        if prefix not in ("", ".", "/"):
            text = text.replace(prefix.rstrip("/") + "/", "")
    return _ABS_PATH.sub("", text)


def write_error(exc: OSError) -> str:
    """One line for a write the data dir refused (full, read-only), without the path it names."""
    reason = exc.strerror or type(exc).__name__
    return f"Could not write to the data dir ({reason}): it is full or read-only, so nothing was saved."


def cut_text(text: str, limit: int) -> tuple[str, str | None]:
    """(text cut to ``limit`` characters at a whitespace if one is near, a note or None)."""
    if len(text) <= limit:
        return text, None
    cut = text.rfind(" ", max(0, limit - 200), limit)
    cut = cut if cut > 0 else limit
    note = (f"The text was {len(text):,} characters; only the first {cut:,} are used "
            f"(the limit is TOOLFORMER_MAX_TEXT_CHARS={limit:,}).")
    return text[:cut], note


# -- Annotate: heat map and highlighted candidates ------------------------------------------------

P_FLOOR = 1e-4  # the heat map's log scale runs from p = 1e-4 (blank) to p = 1 (full colour)


def token_spans(text: str, char_starts: Sequence[int]) -> list[tuple[int, int]]:
    """Character span of each token of x in ``text`` (the first token owns the prepended space)."""
    spans = []
    for i, start in enumerate(char_starts):
        end = char_starts[i + 1] if i + 1 < len(char_starts) else len(text)
        spans.append((start, max(start, end)))
    return spans


def heat_score(p: float) -> float:
    """p(" [") on a log scale in [0, 1]: 1e-4 -> 0, 1e-2 -> 0.5, 1 -> 1."""
    if p <= P_FLOOR:
        return 0.0
    return round(min(1.0, (math.log10(p) - math.log10(P_FLOOR)) / -math.log10(P_FLOOR)), 4)


def position_heatmap(text: str, char_starts: Sequence[int], scores: Sequence[float]) -> list[tuple[str, float | None]]:
    """HighlightedText value: each token of the text with its p_i as a heat score.

    p_0 is meaningless (no call before the first token), so the first token gets no score.
    """
    out: list[tuple[str, float | None]] = []
    for i, (a, b) in enumerate(token_spans(text, char_starts)):
        if b <= a:
            continue
        score = heat_score(float(scores[i])) if 0 < i < len(scores) else None
        out.append((text[a:b], score))
    return out


def candidate_highlights(text: str, candidates: Iterable[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """HighlightedText value: the text with every sampled call inserted where it was sampled,
    labelled by its tool (or "no result" when the tool gave none)."""
    by_pos: dict[int, list[dict[str, Any]]] = {}
    for c in candidates:
        by_pos.setdefault(int(c["char_pos"]), []).append(c)
    out: list[tuple[str, str | None]] = []
    last = 0
    for pos in sorted(by_pos):
        if pos > last:
            out.append((text[last:pos], None))
        calls = sorted(by_pos[pos], key=lambda c: -(c.get("loss_reduction") or -1e9))
        for c in calls:
            label = c["tool"] if c.get("result") is not None else NO_RESULT
            out.append((" " + call_text(c), label))
        last = max(last, pos)
    if last < len(text):
        out.append((text[last:], None))
    return out


def call_text(c: dict[str, Any]) -> str:
    """[Tool(input) -> r], or [Tool(input)] when the tool gave no result."""
    from toolformer_app.calls import linearize

    return linearize(c["tool"], c["input"], c.get("result"), leading_space=False)


def candidates_table(candidates: Sequence[dict[str, Any]], texts: dict[str, str] | None = None):
    """The Annotate tab's table: tool, position, call, result or reason, p_i (and L- - L+ when scored)."""
    import pandas as pd

    rows = []
    for c in candidates:
        text = (texts or {}).get(c["text_id"], "")
        before = text[max(0, c["char_pos"] - 24) : c["char_pos"]].replace("\n", " ")
        rows.append({
            "text": c["text_id"],
            "tool": c["tool"],
            "position": f"token {c['token_pos']} (…{before})" if text else f"token {c['token_pos']}",
            "call": call_text({**c, "result": None}),
            "result or reason": c["result"] if c.get("result") is not None else f"no result: {c.get('reason') or '?'}",
            "p_i": round(float(c["p_i"]), 4),
            "L- - L+": None if c.get("loss_reduction") is None else round(float(c["loss_reduction"]), 3),
        })
    cols = ["text", "tool", "position", "call", "result or reason", "p_i", "L- - L+"]
    return pd.DataFrame(rows, columns=cols)


# -- Filter: histogram of L- - L+ with a line at tau_f ------------------------------------------------

def _nice_step(span: float, target: int) -> float:
    raw = max(span, 1e-9) / target
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def histogram_bins(values: Sequence[float], tau_f: float, bins: int = 24) -> dict[str, Any]:
    """Fixed bins over the values (and tau_f); each bin split into the part below tau_f (rejected)
    and the part at or above it (kept), so the counts are exact wherever the line falls."""
    lo = min([*values, tau_f]) if values else tau_f - 1
    hi = max([*values, tau_f]) if values else tau_f + 1
    width = _nice_step(hi - lo, bins)
    start = math.floor(lo / width) * width
    n = max(1, math.ceil((hi - start) / width + 1e-9))
    if start + n * width <= hi:
        n += 1
    rows = []
    for i in range(n):
        a, b = start + i * width, start + (i + 1) * width
        inside = [v for v in values if a <= v < b or (i == n - 1 and v == b)]
        kept = sum(is_kept(v, tau_f) for v in inside)
        rows.append({"left": a, "right": b, "kept": kept, "rejected": len(inside) - kept})
    return {"bins": rows, "lo": start, "hi": start + n * width, "width": width}


def histogram_frame(candidates: Sequence[dict[str, Any]], tau_f: float):
    """The histograms as one DataFrame: tool, bin_left, bin_right, kept, rejected."""
    import pandas as pd

    rows = []
    for tool, values in scored_by_tool(candidates).items():
        for b in histogram_bins(values, tau_f)["bins"]:
            rows.append({"tool": tool, "bin_left": round(b["left"], 4), "bin_right": round(b["right"], 4),
                         "kept": b["kept"], "rejected": b["rejected"]})
    return pd.DataFrame(rows, columns=["tool", "bin_left", "bin_right", "kept", "rejected"])


def scored_by_tool(candidates: Sequence[dict[str, Any]]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for c in candidates:
        if c.get("loss_reduction") is not None:
            out.setdefault(c["tool"], []).append(float(c["loss_reduction"]))
    return {t: out[t] for t in sorted(out, key=tool_order)}


def tool_order(tool: str) -> tuple[int, str]:
    """Sort key: the built-in tools in the paper's order, then the user's by name."""
    return (TOOL_NAMES.index(tool) if tool in TOOL_NAMES else len(TOOL_NAMES), tool)


def _fmt(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".") if abs(x) < 100 else f"{x:.0f}"


def histogram_svg(tool: str, values: Sequence[float], tau_f: float, width: int = 620, height: int = 184) -> str:
    """One tool's histogram of L- - L+ as inline SVG: kept part in the tool's colour, rejected in grey,
    a dashed line at tau_f."""
    h = histogram_bins(values, tau_f)
    pad_l, pad_r, pad_t, pad_b = 34, 12, 22, 44
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    top = max([b["kept"] + b["rejected"] for b in h["bins"]] + [1])
    lo, hi = h["lo"], h["hi"]

    def x(v: float) -> float:
        return pad_l + (v - lo) / (hi - lo) * plot_w

    def y(count: float) -> float:
        return pad_t + plot_h - count / top * plot_h

    col = tool_color(tool)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
             f'role="img" aria-label="histogram of loss reductions for {html.escape(tool)}" class="tf-hist">']
    kept = sum(is_kept(v, tau_f) for v in values)
    parts.append(f'<text x="{pad_l}" y="14" font-size="12" font-weight="600" fill="currentColor">'
                 f'{html.escape(tool)}: {kept} kept, {len(values) - kept} rejected of {len(values)} scored</text>')
    # axes and ticks
    parts.append(f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - pad_r}" y2="{pad_t + plot_h}" '
                 'stroke="currentColor" stroke-opacity="0.5"/>')
    step = _nice_step(hi - lo, 8)
    t = math.ceil(lo / step) * step
    while t <= hi + 1e-9:
        parts.append(f'<line x1="{x(t):.1f}" y1="{pad_t + plot_h}" x2="{x(t):.1f}" y2="{pad_t + plot_h + 4}" '
                     'stroke="currentColor" stroke-opacity="0.5"/>')
        parts.append(f'<text x="{x(t):.1f}" y="{pad_t + plot_h + 16}" font-size="10" text-anchor="middle" '
                     f'fill="currentColor" fill-opacity="0.8">{_fmt(t)}</text>')
        t += step
    for count in sorted({top, top // 2} - {0}):  # whole counts only
        parts.append(f'<text x="{pad_l - 4}" y="{y(count) + 3:.1f}" font-size="10" text-anchor="end" '
                     f'fill="currentColor" fill-opacity="0.8">{_fmt(count)}</text>')
    # bars: rejected part at the bottom, kept part above it
    bw = plot_w / len(h["bins"])
    for i, b in enumerate(h["bins"]):
        bx = pad_l + i * bw + 1
        if b["rejected"]:
            parts.append(f'<rect x="{bx:.1f}" y="{y(b["rejected"]):.1f}" width="{bw - 2:.1f}" '
                         f'height="{y(0) - y(b["rejected"]):.1f}" fill="{REJECTED_COLOR}">'
                         f'<title>[{_fmt(b["left"])}, {_fmt(b["right"])}): {b["rejected"]} rejected</title></rect>')
        if b["kept"]:
            total = b["kept"] + b["rejected"]
            parts.append(f'<rect x="{bx:.1f}" y="{y(total):.1f}" width="{bw - 2:.1f}" '
                         f'height="{y(b["rejected"]) - y(total):.1f}" fill="{col}">'
                         f'<title>[{_fmt(b["left"])}, {_fmt(b["right"])}): {b["kept"]} kept</title></rect>')
    # the threshold
    tx = x(tau_f)
    parts.append(f'<line x1="{tx:.1f}" y1="{pad_t - 4}" x2="{tx:.1f}" y2="{pad_t + plot_h}" stroke="#dc2626" '
                 'stroke-width="2" stroke-dasharray="5 3"/>')
    anchor = "end" if tx > width * 0.8 else "start"
    dx = -4 if anchor == "end" else 4
    parts.append(f'<text x="{tx + dx:.1f}" y="{pad_t + 8}" font-size="11" fill="#dc2626" text-anchor="{anchor}">'
                 f'τf = {tau_f:.2f}</text>')
    parts.append(f'<text x="{width - pad_r}" y="{height - 2}" font-size="10" text-anchor="end" fill="currentColor" '
                 'fill-opacity="0.7">L⁻ − L⁺ (nats, weighted over the next 5 tokens)</text>')
    parts.append("</svg>")
    return "".join(parts)


def histograms_html(candidates: Sequence[dict[str, Any]], tau_f: float) -> str:
    by_tool = scored_by_tool(candidates)
    if not by_tool:
        return ('<div class="tf-empty">No scored candidates yet: annotate a text, or load a '
                '<code>candidates.jsonl</code>.</div>')
    return '<div class="tf-hists">' + "".join(
        f'<div class="tf-hist-box">{histogram_svg(t, v, tau_f)}</div>' for t, v in by_tool.items()) + "</div>"


# -- Filter: one candidate in detail ----------------------------------------------------------------

def minus_condition(c: dict[str, Any]) -> str:
    """Which of L_i(eps) and L_i(e(c, eps)) is L- (the smaller one)."""
    return "plain" if (c.get("loss_plain") or 0.0) <= (c.get("loss_empty") or 0.0) else "empty"


def per_token_change(c: dict[str, Any]) -> list[dict[str, Any]]:
    """For x_i..x_i+4: -log p under L- 's condition, under e(c, r), and the change (positive = the call helped)."""
    minus = c.get("logprobs_" + minus_condition(c)) or []
    plus = c.get("logprobs_result") or []
    weights = [5, 4, 3, 2, 1]
    rows = []
    for j, tok in enumerate(c.get("next_tokens") or []):
        if j >= len(minus) or j >= len(plus):
            break
        rows.append({"token": tok.replace(" ", "␣"), "weight": round(weights[j] / 15, 3) if j < 5 else 0.0,
                     "loss without": round(-float(minus[j]), 3), "loss with call": round(-float(plus[j]), 3),
                     "change": round(float(plus[j]) - float(minus[j]), 3)})
    return rows


def token_change_heatmap(text: str, c: dict[str, Any], context_chars: int = 60) -> list[tuple[str, float | None]]:
    """HighlightedText value: some context, the call, then x_i..x_i+4 coloured by their loss change
    (scores in [-1, 1]: positive where the call made the token more likely)."""
    rows = per_token_change(c)
    scale = max([abs(r["change"]) for r in rows] + [1e-6])
    pos = int(c["char_pos"])
    out: list[tuple[str, float | None]] = []
    if text:
        start = max(0, pos - context_chars)
        out.append((("…" if start else "") + text[start:pos], None))
    out.append((" " + call_text(c) + " ", None))
    for r in rows:
        out.append((r["token"].replace("␣", " "), round(max(-1.0, min(1.0, r["change"] / scale)), 4)))
    return out


def losses_html(c: dict[str, Any], tau_f: float) -> str:
    """L_i(eps), L_i(e(c, eps)) and L_i(e(c, r)) side by side, with L- marked and the verdict."""
    def num(v: Any) -> str:
        return "–" if v is None else f"{float(v):.3f}"

    which = minus_condition(c) if c.get("loss_plain") is not None else ""
    cards = [
        ("L<sub>i</sub>(ε)", "no call", c.get("loss_plain"), which == "plain"),
        ("L<sub>i</sub>(e(c, ε))", "call, empty result", c.get("loss_empty"), which == "empty"),
        ("L<sub>i</sub>(e(c, r)) = L⁺", "call with its result", c.get("loss_result"), False),
    ]
    items = "".join(
        f'<div class="tf-card{" tf-minus" if is_min else ""}"><div class="tf-card-title">{title}</div>'
        f'<div class="tf-card-value">{num(v)}</div><div class="tf-card-note">{note}'
        f'{" — this is L⁻" if is_min else ""}</div></div>'
        for title, note, v, is_min in cards
    )
    red = c.get("loss_reduction")
    if red is None:
        verdict = f"no result ({html.escape(c.get('reason') or 'unknown reason')}): never kept"
    else:
        kept = is_kept(red, tau_f)
        verdict = (f"L⁻ − L⁺ = {red:.3f} {'≥' if kept else '<'} τf = {tau_f:.2f}: "
                   f"<b>{'kept' if kept else 'rejected'}</b>")
    return (f'<div class="tf-call"><span class="tf-chip tool-{html.escape(c["tool"])}">{html.escape(c["tool"])}</span> '
            f'<code>{html.escape(call_text(c))}</code> at token {c["token_pos"]}, p_i = {float(c["p_i"]):.4f}</div>'
            f'<div class="tf-cards">{items}</div><div class="tf-verdict">{verdict}</div>')


# -- Chat: calls highlighted inline -------------------------------------------------------------------

_MD_ESCAPES = {"*": "&#42;", "_": "&#95;", "`": "&#96;", "[": "&#91;", "]": "&#93;", "~": "&#126;",
               "$": "&#36;", "#": "&#35;", "|": "&#124;", "\\": "&#92;"}


def escape_chat(text: str) -> str:
    """Model text as inert chat markup: HTML escaped, and nothing that markdown or LaTeX would format."""
    out = html.escape(text, quote=False)
    return "".join(_MD_ESCAPES.get(ch, ch) for ch in out)


def chat_markup(segments: Sequence[tuple[str, str | None, bool]]) -> str:
    """Segments (text, tool or None, ok) -> chat HTML with each call in <mark class="tool-NAME">."""
    out = []
    for text, tool, ok in segments:
        if tool is None:
            out.append(escape_chat(text))
        else:
            cls = f"tool-{tool}" if ok and tool in TOOL_COLORS else "tool-failed"
            out.append(f'<mark class="{cls}" title="{html.escape(tool or "call")}">{escape_chat(text)}</mark>')
    return "".join(out)
