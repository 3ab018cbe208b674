"""Annotate tab: sample API calls on a text and show where the model wants them (paper, 2: steps 1-2).

Library calls: ``pipeline.run_pipeline`` (one text at a time, so the table fills in live and Stop
works between texts), ``pipeline.corpus`` for uploads and typed texts (with their ids and metadata, so the
Calendar answers with an uploaded document's "date"), ``tools.get_tool(...).thresholds`` for the
defaults. Everything shown comes from ``TextResult`` / ``Candidate`` via ``render``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gradio as gr

from toolformer_app import config
from toolformer_app.pipeline.corpus import split_paragraphs, typed_texts
from toolformer_app.tools import get_tool
from toolformer_app.ui import annotate_intro, render, runtime, user_tools

EXAMPLES_DIR = render.ASSETS / "examples"
DEFAULT_TOOLS = ["Calculator", "Calendar"]
DEFAULT_EXAMPLE = "orchard"  # selected when the tab opens, so a newcomer has something to press


def example_texts() -> dict[str, str]:
    """{file stem: text} of assets/examples/*.txt."""
    return {p.stem: p.read_text(encoding="utf-8").strip() for p in sorted(EXAMPLES_DIR.glob("*.txt"))}


def load_example(name: str | None) -> str:
    texts = example_texts()
    if not name or name not in texts:
        raise gr.Error(f"no example named {name!r}")
    return texts[name]


def read_upload(path: str) -> dict[str, Any]:
    """A .txt or .jsonl upload as {"text": the text box content (texts separated by blank lines),
    "items": [{"id", "text", "meta"}]}: each text as the box shows it, with its id and metadata (a .jsonl
    row's "id", "date" and "title"), kept in the tab's state while the box holds exactly these texts."""
    from toolformer_app.pipeline.corpus import load_texts

    name = Path(path).name
    if Path(path).suffix.lower() not in (".txt", ".jsonl"):
        raise gr.Error(f"{name}: upload a .txt or .jsonl file")
    errors: list[str] = []
    metas: dict[str, dict] = {}
    try:
        items = load_texts(path, errors=errors, metas=metas, max_bytes=config.max_upload_bytes())
    except (ValueError, OSError, UnicodeError) as exc:
        message = render.one_line(exc).replace(str(path), name)
        raise gr.Error(message if message.startswith(name) else f"{name}: {message}") from None
    if errors:
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        gr.Warning(f"{name}: skipped {'; '.join(errors[:3])}{more}; the other {len(items)} texts are used")
    if len(items) > runtime.MAX_UI_TEXTS:
        gr.Warning(f"{name} holds {len(items)} texts; the first {runtime.MAX_UI_TEXTS} are shown "
                   "(run `python -m toolformer_app generate` for a whole corpus)")
        items = items[: runtime.MAX_UI_TEXTS]
    # one text per paragraph: blank lines inside a text would split it
    text = "\n\n".join(" ".join(t.split("\n\n")) for _, t in items)
    shown = split_paragraphs(text)  # each text as Annotate reads it back from the box
    if len(shown) != len(items):  # a text the box cannot hold as one paragraph: the box's own numbering
        return {"text": text, "items": []}
    docs, seen = [], set()
    for (text_id, _), body in zip(items, shown, strict=True):
        unique, n = text_id, 1
        while unique in seen:  # C* is keyed by id: a repeated id must not merge two texts
            n += 1
            unique = f"{text_id}~{n}"
        seen.add(unique)
        docs.append({"id": unique, "text": body, "meta": metas.get(text_id)})
    return {"text": text, "items": docs}


def load_upload(path: str | None) -> str:
    """A .txt or .jsonl upload as the text box content (texts separated by blank lines)."""
    if not path:
        return gr.skip()
    return read_upload(path)["text"]


def on_upload(path: str | None):
    """The upload event: (text box content, the uploaded texts with their ids and metadata for the state)."""
    if not path:
        return gr.skip(), gr.skip()
    upload = read_upload(path)
    return upload["text"], upload


def tool_defaults(tools: list[str] | None) -> tuple[float, int, int, str]:
    """(tau_s, k, m, note): the first chosen tool's defaults, and a note when the tools differ."""
    tools = user_tools.known(tools) or DEFAULT_TOOLS
    ths = {t: get_tool(t).thresholds for t in tools}
    first = ths[tools[0]]
    if len({(th.tau_s, th.k, th.m) for th in ths.values()}) > 1:
        per = "; ".join(f"{t}: τs={th.tau_s}, k={th.k}, m={th.m}" for t, th in ths.items())
        note = f"Defaults differ per tool ({per}). With *each tool's defaults* on, every tool uses its own."
    else:
        note = f"Defaults of {', '.join(tools)}: τs={first.tau_s}, k={first.k}, m={first.m}."
    return first.tau_s, first.k, first.m, note


def on_tools_change(tools: list[str]):
    tau_s, k, m, note = tool_defaults(tools)
    return tau_s, k, m, note


def _text_record(tr) -> dict[str, Any]:
    return {"text_id": tr.text_id, "text": tr.text, "tokens": list(tr.tokens), "char_starts": list(tr.char_starts),
            "position_scores": {t: list(v) for t, v in tr.position_scores.items()}, "counts": tr.counts}


def empty_run() -> dict[str, Any]:
    return {"texts": [], "candidates": [], "tools": [], "config": {}, "model": "", "source": ""}


def prepare_texts(text: str | None) -> list[tuple[str, str]]:
    """The text box as (id, text) pairs: cut at the configured limit, at most MAX_UI_TEXTS texts."""
    text = runtime.checked_input(text, "The text is empty: type a text, pick an example or upload a .txt / .jsonl file.")
    items = typed_texts(text)
    if len(items) > runtime.MAX_UI_TEXTS:
        gr.Warning(f"{len(items)} texts given; only the first {runtime.MAX_UI_TEXTS} are annotated here "
                   "(use `python -m toolformer_app generate` for a corpus).")
        items = items[: runtime.MAX_UI_TEXTS]
    return items


def prepare_items(text: str | None, uploaded: dict[str, Any] | None = None) -> list[tuple]:
    """``prepare_texts(text)``, or the uploaded texts with their ids and metadata ((id, text, meta), as
    ``run_pipeline`` takes them) when the box still holds exactly what the upload put there."""
    items = prepare_texts(text)
    docs = (uploaded or {}).get("items") or []
    if docs and text == uploaded.get("text") and [t for _, t in items] == [d["text"] for d in docs]:
        return [(d["id"], d["text"], d["meta"]) for d in docs]
    return items


def make_config(tools: list[str] | None, use_defaults: bool, tau_s: float, k: float, m: float,
                temperature: float):
    from toolformer_app.pipeline import PipelineConfig

    tools = user_tools.known(tools)
    if not tools:
        raise gr.Error("Choose at least one tool.")
    cfg = PipelineConfig(
        tools=tuple(tools),
        tau_s=None if use_defaults else float(tau_s),
        k=None if use_defaults else int(k),
        m=None if use_defaults else int(m),
        temperature=float(temperature),
        batch_size=1,
    )
    try:
        cfg.validate()
    except ValueError as exc:
        raise gr.Error(render.one_line(exc)) from None
    return cfg


def summary_markdown(run: dict[str, Any], seconds: float | None = None, done: bool = True) -> str:
    if not run["texts"]:
        return ""
    cands = run["candidates"]
    lines = []
    n_tok = sum(len(t["tokens"]) for t in run["texts"])
    head = f"**{len(run['texts'])} text{'s' if len(run['texts']) != 1 else ''}**, {n_tok} tokens"
    if seconds is not None:
        head += f", {seconds:.1f} s" + ("" if done else " so far")
    lines.append(head + f" · model `{run['model']}`")
    for tool in run["tools"]:
        counts: dict[str, int] = {}
        for t in run["texts"]:
            for key, value in t["counts"].get(tool, {}).items():
                counts[key] = counts.get(key, 0) + int(value)
        mine = [c for c in cands if c["tool"] == tool]
        ok = sum(c.get("result") is not None for c in mine)
        if not counts.get("texts_selected"):
            lines.append(f"- **{tool}**: skipped: its heuristic (paper A.1) selects none of the texts")
            continue
        lines.append(f"- **{tool}**: {counts['texts_selected']} text(s) selected, "
                     f"{counts.get('positions_over_tau_s', 0)} positions over τs, "
                     f"{counts.get('samples_drawn', 0)} samples drawn, {len(mine)} well-formed calls, "
                     f"{ok} with a result")
    if done and not cands:
        if not any(t["counts"].get(tool, {}).get("texts_selected") for t in run["texts"] for tool in run["tools"]):
            lines.append("\nNo tool's heuristic selected this text, so no position was scored: choose a tool "
                         "that fits it (the Calculator wants numbers, the Calendar dates); τs plays no part here.")
        elif any(t["counts"].get(tool, {}).get("positions_over_tau_s") for t in run["texts"] for tool in run["tools"]):
            lines.append("\nNo sampled call was well formed: try another temperature or a larger m.")
        else:
            lines.append("\nNo position passed τs: try a lower τs or a higher k in *Advanced*.")
    return "\n".join(lines)


def text_choices(run: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for t in run["texts"]:
        preview = t["text"][:48].replace("\n", " ")
        out.append((f"{t['text_id']}: {preview}{'…' if len(t['text']) > 48 else ''}", t["text_id"]))
    return out


def show_text(run: dict[str, Any] | None, text_id: str | None, tool: str | None):
    """(heat map, highlighted candidates) of one text of the run: no model pass."""
    run = run or empty_run()
    rec = next((t for t in run["texts"] if t["text_id"] == text_id), run["texts"][0] if run["texts"] else None)
    if rec is None:
        return None, None
    scores = rec["position_scores"].get(tool or "") or next(iter(rec["position_scores"].values()), None)
    heat = render.position_heatmap(rec["text"], rec["char_starts"], scores) if scores else [(rec["text"], None)]
    cands = [c for c in run["candidates"] if c["text_id"] == rec["text_id"]]
    return heat, render.candidate_highlights(rec["text"], cands)


def _outputs(run: dict[str, Any], text_id: str | None, tool: str | None, seconds: float, done: bool):
    heat, marked = show_text(run, text_id, tool)
    table = render.candidates_table(run["candidates"], {t["text_id"]: t["text"] for t in run["texts"]})
    choices = text_choices(run)
    tools_scored = [t for t in run["tools"] if any(t in r["position_scores"] for r in run["texts"])]
    return (
        run,
        gr.update(choices=choices, value=text_id if text_id else (choices[0][1] if choices else None),
                  visible=len(choices) > 1),
        gr.update(choices=tools_scored or run["tools"], value=tool if tool in tools_scored else
                  (tools_scored[0] if tools_scored else None)),
        heat,
        marked,
        table,
        summary_markdown(run, seconds, done),
    )


@runtime.gpu_bound
def run_annotation(text: str, tools: list[str], model_name: str, use_defaults: bool, tau_s: float, k: float,
                   m: float, temperature: float, uploaded: dict[str, Any] | None = None, progress=gr.Progress()):
    """Generator: (run, text selector, heat-map tool, heat map, highlights, table, summary) after each text.
    ``uploaded``: the state ``on_upload`` filled (ids and metadata of an uploaded file's texts)."""
    from toolformer_app.models import ModelLoadError
    from toolformer_app.pipeline import run_pipeline

    items = prepare_items(text, uploaded)
    cfg = make_config(tools, use_defaults, tau_s, k, m, temperature)
    model_name = (model_name or config.default_model()).strip()
    progress(0.0, desc=f"loading {model_name}")
    try:
        model, tok = runtime.get_model(model_name)
    except ModelLoadError as exc:
        raise gr.Error(f"Model: {render.one_line(exc)}") from None
    run = {**empty_run(), "tools": list(cfg.tools), "config": cfg.to_dict(), "model": model_name,
           "source": "annotate"}
    t0 = time.perf_counter()
    first_id = items[0][0]
    try:
        for n, item in enumerate(progress.tqdm(items, desc="annotating", unit="text") if len(items) > 1 else items):
            if len(items) == 1:
                progress(0.05, desc="scoring positions, sampling and scoring calls")
            try:
                result = run_pipeline([item], cfg, model, tok)
            except (ValueError, KeyError) as exc:
                raise gr.Error(render.one_line(exc)) from None
            for tr in result.texts:
                run["texts"].append(_text_record(tr))
                run["candidates"] += [c.to_dict() for c in tr.candidates]
            done = n == len(items) - 1
            if done:
                annotate_intro.record(time.perf_counter() - t0, len(items), cfg.tools, model_name)
            yield _outputs(run, first_id, cfg.tools[0], time.perf_counter() - t0, done)
    finally:
        runtime.release_memory()  # a long text's activations, freed, back to the OS


def show_selected(run: dict[str, Any] | None, text_id: str | None, tool: str | None):
    return show_text(run, text_id, tool)


def build(shared) -> None:
    """The tab's components and events (called inside ``gr.Blocks``)."""
    examples = example_texts()
    tau_s0, k0, m0, note0 = tool_defaults(DEFAULT_TOOLS)
    first = DEFAULT_EXAMPLE if DEFAULT_EXAMPLE in examples else next(iter(examples), None)
    gr.Markdown(annotate_intro.intro_line(DEFAULT_TOOLS), elem_id="annotate-intro")
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(examples.get(first, ""), label="Text", lines=6, elem_id="annotate-text",
                              placeholder="Type a text (separate several texts with a blank line), "
                                          "pick an example, or upload a .txt / .jsonl file.")
            with gr.Row():
                example = gr.Dropdown(list(examples), value=first, label="Example", scale=2,
                                      elem_id="annotate-example")
                upload = gr.File(label="Upload .txt / .jsonl", file_types=[".txt", ".jsonl"], type="filepath",
                                 scale=2, height=120, elem_id="annotate-upload")
        with gr.Column(scale=2):
            tools = gr.CheckboxGroup(user_tools.choices(), value=DEFAULT_TOOLS, label="Tools", elem_id="annotate-tools")
            gr.Markdown(user_tools.notice(), elem_id="annotate-user-tools")
            model = gr.Dropdown(shared.model_choices(include_checkpoints=False), value=config.default_model(),
                                allow_custom_value=True, label="Model",
                                info="a preset, a hub id or a local directory", elem_id="annotate-model")
            with gr.Accordion("Advanced: τs, k, m, temperature", open=False):
                use_defaults = gr.Checkbox(True, label="Use each tool's defaults (τs, k, m)")
                defaults_note = gr.Markdown(note0)
                tau_s = gr.Slider(0.0, 0.2, value=tau_s0, step=0.001, label="τs: keep positions with p(\" [\") > τs")
                k = gr.Slider(1, 20, value=k0, step=1, label="k: positions per text and tool", elem_id="annotate-k")
                m = gr.Slider(1, 10, value=m0, step=1, label="m: calls sampled per position", elem_id="annotate-m")
                temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="temperature for sampling calls")
            with gr.Row():
                go = gr.Button("Annotate", variant="primary", elem_id="annotate-run")
                stop = gr.Button("Stop", variant="stop", elem_id="annotate-stop")
    summary = gr.Markdown(elem_id="annotate-summary")
    with gr.Row():
        text_pick = gr.Dropdown([], label="Text shown", visible=False, scale=3)
        heat_tool = gr.Radio([], label="Heat map for", scale=2)
    heat = gr.HighlightedText(label="p(\" [\") before each token (log scale: white 1e-4 … red 1)",
                              elem_id="annotate-heatmap", show_legend=False, show_inline_category=False)
    marked = gr.HighlightedText(label="Sampled calls, inserted where they were sampled (colour = tool)",
                                color_map=render.color_map(), show_legend=True, elem_id="annotate-candidates")
    table = gr.DataFrame(label="Candidates", elem_id="annotate-table", wrap=True, interactive=False,
                         value=render.candidates_table([]),
                         column_widths=["6%", "11%", "22%", "27%", "20%", "7%", "7%"])

    uploaded = gr.State(None)  # the last upload's texts with ids and metadata (used while the box holds them)
    example.change(load_example, example, text, api_visibility="private")
    upload.upload(on_upload, upload, [text, uploaded], api_visibility="private")
    tools.change(on_tools_change, tools, [tau_s, k, m, defaults_note], api_visibility="private")
    for s in (tau_s, k, m):
        s.input(lambda: False, None, use_defaults, api_visibility="private")
    outputs = [shared.run, text_pick, heat_tool, heat, marked, table, summary]
    event = go.click(run_annotation, [text, tools, model, use_defaults, tau_s, k, m, temperature, uploaded], outputs,
                     api_name="annotate", concurrency_id=runtime.MODEL_CONCURRENCY, concurrency_limit=1)
    shared.annotate_event = event  # blocks.py chains the Filter tab's refresh onto it
    stop.click(None, None, None, cancels=[event], api_visibility="private")
    text_pick.change(show_selected, [shared.run, text_pick, heat_tool], [heat, marked], api_visibility="private")
    heat_tool.change(show_selected, [shared.run, text_pick, heat_tool], [heat, marked], api_visibility="private")
