"""Loss reductions and filter tab: explore τf on the stored losses, with no model pass (paper, 2: step 3).

Library calls: ``Candidate.kept`` / ``pipeline.keep_if_helpful`` (the filter), ``pipeline.kept_table``
(Table 2), ``pipeline.cstar.write_cstar`` (C*, also the Finetune tab's "current run"),
``pipeline.load_candidates`` / ``files.read_jsonl`` for saved runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gradio as gr

from toolformer_app import config
from toolformer_app.ui import render

DEFAULT_TAU_F = 0.3  # every tool's default (tools/*.py); the slider starts here
MAX_LISTED_RUNS = 50
MAX_PUBLIC_EXPORTS = 20  # exports kept on a public deployment (the newest; older ones are removed)


def _candidates(run: dict[str, Any] | None):
    rows = (run or {}).get("candidates", [])
    if not rows:  # no import: the pipeline package pulls in torch, and the page must start fast
        return []
    from toolformer_app.pipeline import Candidate

    return [Candidate.from_dict(c) for c in rows]


def counts_frame(run: dict[str, Any] | None, tau_f: float):
    """Per tool: calls sampled, with a result, kept (L- - L+ >= τf), rejected, without a result, and the
    precision of the kept calls (the share whose result is borne out by the next tokens)."""
    import pandas as pd

    columns = ["tool", "sampled", "with result", "kept", "rejected", "no result", "precision"]
    cands = _candidates(run)
    if not cands:
        return pd.DataFrame(columns=columns)
    from toolformer_app.pipeline.filtering import precision

    rows = []
    groups = [(tool, [c for c in cands if c.tool == tool])
              for tool in sorted({c.tool for c in cands}, key=render.tool_order)]
    if len(groups) > 1:
        groups.append(("all", cands))
    for tool, mine in groups:
        scored = [c for c in mine if c.loss_reduction is not None]
        kept = [c for c in mine if c.kept(tau_f)]
        p = precision(kept)
        rows.append({"tool": tool, "sampled": len(mine), "with result": len(scored), "kept": len(kept),
                     "rejected": len(scored) - len(kept), "no result": len(mine) - len(scored),
                     "precision": "" if p is None else f"{p:.0%}"})
    return pd.DataFrame(rows, columns=columns)


def table2_frame(run: dict[str, Any] | None):
    """The paper's Table 2: calls kept per tool at τf = 0.5, 1 and 2."""
    import pandas as pd

    columns = ["tool", "τf = 0.5", "τf = 1.0", "τf = 2.0", "self-retrieved (τf = 0.5)"]
    cands = _candidates(run)
    if not cands:
        return pd.DataFrame(columns=columns)
    from toolformer_app.pipeline.filtering import kept_table, self_retrieved_table

    table = kept_table(cands)
    texts = {t["text_id"]: t.get("text", "") for t in (run or {}).get("texts", [])}
    # calls whose result shares >= 40 characters with their own text: copies, not lookups
    copied = self_retrieved_table([c for c in cands if c.kept(0.5)], texts)
    rows = [{"tool": tool, **{f"τf = {th}": n for th, n in by.items()}, columns[-1]: copied.get(tool, 0)}
            for tool, by in sorted(table.items(), key=lambda kv: render.tool_order(kv[0]))]
    return pd.DataFrame(rows, columns=columns)


def kept_summary(run: dict[str, Any] | None, tau_f: float) -> str:
    cands = _candidates(run)
    if not cands:
        return "No candidates yet: annotate a text in the first tab, or load a `candidates.jsonl` below."
    kept = [c for c in cands if c.kept(tau_f)]
    scored = sum(c.loss_reduction is not None for c in cands)
    texts = len({c.text_id for c in kept})
    src = (run or {}).get("source") or "current run"
    return (f"**Kept at τf = {tau_f:.2f}: {len(kept)} of {scored} scored calls** "
            f"({len(cands)} sampled) in {texts} text{'s' if texts != 1 else ''} · source: {src}")


def refilter(run: dict[str, Any] | None, tau_f: float):
    """Everything that depends on τf: (kept summary, histograms, counts). Pure: no model pass."""
    tau_f = float(tau_f)
    cands = (run or {}).get("candidates", [])
    return kept_summary(run, tau_f), render.histograms_html(cands, tau_f), counts_frame(run, tau_f)


def candidate_choices(run: dict[str, Any] | None, tau_f: float) -> list[tuple[str, int]]:
    """Dropdown choices for the detail view, best loss reduction first; the value is the index in the run."""
    cands = (run or {}).get("candidates", [])
    kept = [c.kept(tau_f) for c in _candidates(run)]  # the keep rule lives on Candidate only
    order = sorted(range(len(cands)), key=lambda i: -(cands[i].get("loss_reduction") if
                                                       cands[i].get("loss_reduction") is not None else -1e9))
    out = []
    for i in order:
        c = cands[i]
        red = c.get("loss_reduction")
        mark = "–" if red is None else ("✓" if kept[i] else "✗")
        value = "no result" if red is None else f"L⁻−L⁺ = {red:+.3f}"
        out.append((f"{mark} {render.call_text(c)} · {value} · text {c['text_id']}, token {c['token_pos']}", i))
    return out


def candidate_detail(run: dict[str, Any] | None, index: int | None, tau_f: float):
    """(the three losses side by side, per-token loss change heat map, per-token table) of one candidate."""
    import pandas as pd

    cands = (run or {}).get("candidates", [])
    cols = ["token", "weight", "loss without", "loss with call", "change"]
    if index is None or not isinstance(index, int) or not 0 <= index < len(cands):
        return "", None, pd.DataFrame(columns=cols)
    c = cands[index]
    text = next((t["text"] for t in (run or {}).get("texts", []) if t["text_id"] == c["text_id"]), "")
    rows = render.per_token_change(c)
    heat = render.token_change_heatmap(text, c) if rows else None
    return render.losses_html(c, float(tau_f)), heat, pd.DataFrame(rows, columns=cols)


def on_new_run(run: dict[str, Any] | None, tau_f: float, keep: int | None = None):
    """A new run (annotated or loaded), or the tab shown again: refresh every output of the tab
    (keeping the selected candidate ``keep`` when it is still there)."""
    summary, hist, counts = refilter(run, tau_f)
    choices = candidate_choices(run, float(tau_f))
    first = keep if keep in [v for _, v in choices] else (choices[0][1] if choices else None)
    losses, heat, tokens = candidate_detail(run, first, tau_f)
    return (summary, hist, counts, table2_frame(run), gr.update(choices=choices, value=first), losses, heat,
            tokens)


def on_tau_change(run: dict[str, Any] | None, tau_f: float, index: int | None):
    """τf moved: re-filter, re-mark the candidate list, and re-judge the selected candidate."""
    summary, hist, counts = refilter(run, tau_f)
    losses, _, _ = candidate_detail(run, index, tau_f)
    return summary, hist, counts, gr.update(choices=candidate_choices(run, float(tau_f)), value=index), losses


# -- loading saved runs ---------------------------------------------------------------------------

def run_from_rows(rows: list[tuple[int, dict[str, Any]]], source: str, errors: list[str]) -> dict[str, Any]:
    """A run dict from (line number, row) pairs of records.jsonl (text + candidates) or candidates.jsonl."""
    from toolformer_app.pipeline import Candidate

    texts: dict[str, dict[str, Any]] = {}
    first_line: dict[str, int] = {}
    cands: list[dict[str, Any]] = []
    for n, row in rows:
        text = None
        if "candidates" in row and "text" in row:  # a records.jsonl line
            if not isinstance(row["text"], str) or not isinstance(row["candidates"], list):
                errors.append(f"line {n}: \"text\" must be a string and \"candidates\" a list")
                continue
            text_id = str(row.get("text_id"))
            if text_id in texts:
                # C* keys texts by id: a second text under the same id would get the first one's calls
                # mid-word (or lose its own). The first record wins, as in ``pipeline.run.finalize``;
                # a repeat of the same text (a resumed work log) is dropped without a word.
                if texts[text_id]["text"] != row["text"]:
                    errors.append(f"line {n}: text_id {text_id[:40]!r} already holds another text "
                                  f"(line {first_line[text_id]}); skipped")
                continue
            first_line[text_id] = n
            text = texts.setdefault(text_id, {"text_id": text_id, "text": row["text"]})["text"]
            items = row["candidates"]
        else:
            items = [row]
        for item in items:
            try:  # every field, so the histogram, the filter and C* never meet a bad value
                if text is not None and isinstance(item, dict) and str(item.get("text_id")) != str(row.get("text_id")):
                    raise ValueError("its text_id differs from the record's")
                c = Candidate.checked(item, text)
            except ValueError as exc:
                errors.append(f"line {n}: not a candidate ({exc})")
                continue
            cands.append(c.to_dict())
    tools = sorted({c["tool"] for c in cands}, key=render.tool_order)
    return {"texts": [{**t, "tokens": [], "char_starts": [], "position_scores": {}, "counts": {}}
                      for t in texts.values()],
            "candidates": cands, "tools": tools, "config": {}, "model": "", "source": source}


def _read_rows(path: Path, errors: list[str], max_bytes: int | None = None) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every JSON object line; other lines are reported by number in ``errors``."""
    from toolformer_app.files import parse_json_line, read_text_file

    if path.suffix.lower() != ".jsonl":
        raise gr.Error(f"{path.name}: load a candidates.jsonl or records.jsonl")
    try:
        content = read_text_file(path, max_bytes)  # the whole file, not a prefix
    except (ValueError, OSError) as exc:
        raise gr.Error(f"{render.one_line(exc)}: load a candidates.jsonl or records.jsonl") from None
    rows = []
    for n, line in enumerate(content.split("\n"), 1):  # file lines (splitlines also splits at U+2028)
        if not line.strip():
            continue
        try:  # nested too deeply or a lone surrogate: one line naming it, never a broken response
            row = parse_json_line(line)
        except ValueError as exc:
            errors.append(f"line {n}: {exc}")
            continue
        if isinstance(row, dict):
            rows.append((n, row))
        else:
            errors.append(f"line {n}: expected a JSON object")
    return rows


def load_run_file(path: str | None):
    """An uploaded candidates.jsonl or records.jsonl as the session's run."""
    if not path:
        return gr.skip()
    p = Path(path)
    errors: list[str] = []
    rows = _read_rows(p, errors, config.max_upload_bytes())
    run = run_from_rows(rows, f"uploaded {p.name}", errors)
    _report(p.name, run, errors)
    return run


def saved_runs() -> list[tuple[str, str]]:
    """Pipeline outputs in the data dir (directories holding candidates.jsonl), newest first."""
    root = config.data_dir()
    found = []
    for path in root.rglob("candidates.jsonl"):
        if "jobs" in path.relative_to(root).parts:
            continue
        found.append(path)
    found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    # values relative to the data dir: a server path would show in every session's page
    return [(p.parent.relative_to(root).as_posix(), p.relative_to(root).as_posix()) for p in found[:MAX_LISTED_RUNS]]


def load_saved_run(path: str | None):
    """A run directory from the data dir (a saved_runs value: relative to it): its candidates, and its
    texts from the work log."""
    if not path:
        return gr.skip()
    root = config.data_dir().resolve()
    p = (root / path).resolve()  # an absolute path stays absolute: accepted only inside the data dir
    if not p.is_relative_to(root) or p.name != "candidates.jsonl" or not p.is_file():
        raise gr.Error(f"{Path(path).name}: no such run in the data dir")
    errors: list[str] = []
    records = sorted(p.parent.glob("records*.jsonl"))
    if records:  # the work log holds the texts and the same candidates
        rows = [r for f in records for r in _read_rows(f, errors)]
    else:
        rows = _read_rows(p, errors)
    run = run_from_rows(rows, f"{p.parent.name}/", errors)
    _report(p.parent.name, run, errors)
    return run


def _report(name: str, run: dict[str, Any], errors: list[str]) -> None:
    if not run["candidates"]:
        first = f" ({errors[0]})" if errors else ""
        raise gr.Error(f"{name}: no candidates found{first}")
    if errors:
        more = f" and {len(errors) - 3} more" if len(errors) > 3 else ""
        gr.Warning(f"{name}: skipped {'; '.join(errors[:3])}{more}; {len(run['candidates'])} candidates loaded")


# -- export ---------------------------------------------------------------------------------------

def export_dataset(run: dict[str, Any] | None, tau_f: float, plain_ratio: float = 0.0) -> str:
    """Write C* at τf (with ``plain_ratio`` of the run's call-free texts per text with calls; 0: none) to
    DATA_DIR/datasets/export-<time>-tau<τf>/dataset.jsonl through ``pipeline.cstar.write_cstar``; its path."""
    from toolformer_app.files import prune_dirs
    from toolformer_app.pipeline.cstar import NoCallKept, write_cstar

    run = run or {}
    texts = {t["text_id"]: t["text"] for t in run.get("texts", [])}
    cands = _candidates(run)
    if not cands:
        raise gr.Error("Nothing to export: annotate a text or load a run first.")
    if not texts:
        raise gr.Error("This candidates file holds no texts, so C* cannot be built: load the run's "
                       "records.jsonl (or its directory from the data dir) instead.")
    tau_f, plain_ratio = float(tau_f), float(plain_ratio or 0.0)
    datasets = config.data_dir() / "datasets"
    name = f"export-{time.strftime('%Y%m%d-%H%M%S')}-tau{tau_f:.2f}" + (f"-mix{plain_ratio:g}" if plain_ratio else "")
    out = _unique(datasets / name)
    try:
        cstar = write_cstar(out, texts, cands, tau_f, plain_ratio,
                            meta={"source": run.get("source", ""), "model": run.get("model", "")})
    except NoCallKept:
        raise gr.Error(f"No call is kept at τf = {tau_f:.2f}: lower τf to export a dataset.") from None
    except ValueError as exc:  # a call insert_calls refused, or a text UTF-8 cannot hold: nothing is written
        raise gr.Error(f"C* not written: {render.one_line(exc)}") from None
    except OSError as exc:  # a full or read-only data dir: one line, without the server path
        raise gr.Error(render.write_error(exc)) from None
    if config.public():  # anyone may call /export_dataset: a bounded number of exports is kept
        prune_dirs(datasets, "export-", MAX_PUBLIC_EXPORTS)
    mixed = f" and {cstar.plain} without (of {cstar.available_plain})" if plain_ratio else ""
    gr.Info(f"C* at τf = {tau_f:.2f}: {cstar.with_calls} texts with {cstar.kept} calls{mixed}, "
            f"saved in {out.relative_to(config.data_dir())}/dataset.jsonl")
    return str(out / "dataset.jsonl")


def _unique(path: Path) -> Path:
    n, candidate = 1, path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def build(shared) -> None:
    kept = gr.Markdown(kept_summary(None, DEFAULT_TAU_F), elem_id="filter-kept")
    tau_f = gr.Slider(-1.0, 4.0, value=DEFAULT_TAU_F, step=0.05, label="τf: keep a call if L⁻ − L⁺ ≥ τf",
                      elem_id="filter-tau")
    shared.tau_f = tau_f
    with gr.Row():
        with gr.Column(scale=3):
            hist = gr.HTML(render.histograms_html([], DEFAULT_TAU_F), elem_id="filter-hist",
                           label="L⁻ − L⁺ per tool")
        with gr.Column(scale=2):
            counts = gr.DataFrame(counts_frame(None, DEFAULT_TAU_F), label="At this τf", interactive=False,
                                  elem_id="filter-counts")
            table2 = gr.DataFrame(table2_frame(None), label="Kept calls at τf 0.5 / 1 / 2 (the paper's Table 2)",
                                  interactive=False, elem_id="filter-table2")
    gr.Markdown("### One candidate")
    pick = gr.Dropdown([], label="Candidate (✓ kept, ✗ rejected at this τf)", elem_id="filter-candidate")
    losses = gr.HTML(elem_id="filter-losses")
    with gr.Row():
        token_heat = gr.HighlightedText(label="Loss change on x_i … x_i+4 (red: the call made the token likelier, blue: less likely)",
                                        show_legend=False, show_inline_category=False, elem_id="filter-token-heat",
                                        scale=3)
        tokens = gr.DataFrame(label="Per token (−log p, weighted 5:4:3:2:1)", interactive=False, scale=2)
    with gr.Accordion("Load a saved run, export C*", open=True):
        with gr.Row():
            with gr.Column():
                runs = gr.Dropdown(saved_runs(), value=None, label="A run in the data dir (generate --out)",
                                   elem_id="filter-saved")
                refresh = gr.Button("Refresh list", size="sm")
            upload = gr.File(label="Or upload candidates.jsonl / records.jsonl", file_types=[".jsonl"],
                             type="filepath", height=120, elem_id="filter-upload")
        with gr.Row():
            export = gr.Button("Export C* at this τf (dataset.jsonl)", variant="primary", elem_id="filter-export")
            exported = gr.File(label="dataset.jsonl", interactive=False, visible=False, elem_id="filter-exported")

    all_outputs = [kept, hist, counts, table2, pick, losses, token_heat, tokens]
    shared.filter_outputs, shared.filter_pick = all_outputs, pick
    tau_f.change(on_tau_change, [shared.run, tau_f, pick], [kept, hist, counts, pick, losses], api_name="refilter",
                 show_progress="hidden", trigger_mode="always_last")
    pick.change(candidate_detail, [shared.run, pick, tau_f], [losses, token_heat, tokens], api_visibility="private",
                show_progress="hidden")
    upload.upload(load_run_file, upload, shared.run, api_visibility="private").then(
        on_new_run, [shared.run, tau_f], all_outputs, api_visibility="private")
    runs.change(load_saved_run, runs, shared.run, api_visibility="private").then(
        on_new_run, [shared.run, tau_f], all_outputs, api_visibility="private")
    refresh.click(lambda: gr.update(choices=saved_runs()), None, runs, api_visibility="private")
    export.click(export_dataset, [shared.run, tau_f], exported, api_name="export_dataset").then(
        lambda: gr.update(visible=True), None, exported, api_visibility="private")


def connect(shared, tab: gr.Tab) -> None:
    """Redraw the tab for the session's run: after each annotation and whenever the tab is opened."""
    shared.annotate_event.then(on_new_run, [shared.run, shared.tau_f], shared.filter_outputs,
                               api_visibility="private")
    tab.select(on_new_run, [shared.run, shared.tau_f, shared.filter_pick], shared.filter_outputs,
               api_visibility="private", show_progress="hidden")
