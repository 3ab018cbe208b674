"""C* as training examples: read and validate the JSONL, split off a held-out set, tokenize, mask.

The objective is the paper's plain causal LM loss on x* (text with the calls interleaved).
With ``mask_results`` (the default) the tokens of each tool result r, between "->" and "]",
get label -100: they stay in the input, so everything after a call is still conditioned on the
result exactly as the paper trains it, but the model is never trained to *predict* a result.
A 135M model cannot compute 400 / 1400 or know a fact, and learning to guess results teaches it
to hallucinate them at inference, where the tool would have answered anyway. It still learns
everything that it must emit: " [", the tool name, the input, "->" and the closing "]".
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolformer_app.calls import ARROW, find_calls
from toolformer_app.files import parse_json_line
from toolformer_app.training.options import FinetuneConfig, TrainingInputError

IGNORE_INDEX = -100  # the label value the HF loss skips
KL_MASK = "kl_mask"  # per token: 1 where the KL term to the base applies (FinetuneConfig.kl_weight)


@dataclass
class LoadedData:
    """The usable texts of a JSONL file, and what was skipped on the way."""

    path: str
    texts: list[str]
    sha256: str
    lines: int = 0
    skipped_malformed: list[int] = field(default_factory=list)  # 1-based line numbers
    skipped_no_text: list[int] = field(default_factory=list)
    calls_per_tool: dict[str, int] = field(default_factory=dict)
    texts_with_calls: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "lines": self.lines,
            "examples": len(self.texts),
            "examples_with_calls": self.texts_with_calls,
            "calls_per_tool": dict(self.calls_per_tool),
            "skipped_malformed": len(self.skipped_malformed),
            "skipped_no_text": len(self.skipped_no_text),
        }

    def warnings(self) -> list[str]:
        out = []
        if self.skipped_malformed:
            out.append(f"skipped {len(self.skipped_malformed)} malformed JSON line(s): {_lines(self.skipped_malformed)}")
        if self.skipped_no_text:
            out.append(f"skipped {len(self.skipped_no_text)} line(s) without a text string: {_lines(self.skipped_no_text)}")
        return out


def _lines(numbers: list[int], limit: int = 8) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")


def load_texts(path: str | Path) -> LoadedData:
    """Read ``path`` (JSONL, a string "text" per line) and check it can train a Toolformer.

    Malformed lines and lines without "text" are skipped and reported; it is an error only when
    nothing usable is left, or when no text holds a single API call (nothing to learn).
    """
    p = Path(path).expanduser()
    if not str(path).strip():
        raise TrainingInputError("no data file given (--data)")
    if not p.exists():
        raise TrainingInputError(f"data file {p} does not exist")
    if not p.is_file():
        raise TrainingInputError(f"data file {p} is not a file")
    raw = p.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    try:
        content = raw.decode("utf-8-sig")  # an editor's BOM is not part of the first line
    except UnicodeDecodeError as exc:
        raise TrainingInputError(f"data file {p} is not UTF-8 text (byte {exc.start})") from exc
    data = LoadedData(path=str(p.resolve()), texts=[], sha256=sha)
    tools: Counter[str] = Counter()
    # "\n" only: splitlines() also splits at U+2028, which the app's writers leave raw inside texts
    for number, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        data.lines += 1
        try:  # also refuses nesting too deep for the parser and lone surrogates (unencodable)
            row = parse_json_line(line)
        except ValueError:
            data.skipped_malformed.append(number)
            continue
        text = row.get("text") if isinstance(row, dict) else None
        if not isinstance(text, str) or not text.strip():
            data.skipped_no_text.append(number)
            continue
        data.texts.append(text)
        calls = find_calls(text)
        if calls:
            data.texts_with_calls += 1
            tools.update(c.tool for c in calls)
    data.calls_per_tool = dict(tools)
    if data.lines == 0:
        raise TrainingInputError(f"data file {p} is empty")
    if not data.texts:
        if data.skipped_malformed and not data.skipped_no_text:
            raise TrainingInputError(f"data file {p}: no valid JSON line (malformed: {_lines(data.skipped_malformed)})")
        raise TrainingInputError(
            f'data file {p}: no line has a "text" string field '
            f"({len(data.skipped_malformed)} malformed, {len(data.skipped_no_text)} without text)"
        )
    if not data.texts_with_calls:
        raise TrainingInputError(
            f"data file {p}: none of the {len(data.texts)} texts holds an API call like "
            '" [Calculator(1 + 2) -> 3]"; run the pipeline (generate) first'
        )
    return data


def split_texts(texts: list[str], cfg: FinetuneConfig) -> tuple[list[str], list[str]]:
    """A seeded shuffle, then the held-out set: round(n * eval_fraction) distinct texts, at least 1, at most
    max_eval_examples. A text that occurs more than once (a mix that repeats its call texts) is held out with
    every copy, so no held-out text is also trained on; without repeats this is a plain split of the shuffle."""
    order = list(range(len(texts)))
    random.Random(cfg.seed).shuffle(order)
    distinct = len(set(texts))
    n_eval = 0
    if cfg.eval_fraction > 0:
        n_eval = min(max(1, round(distinct * cfg.eval_fraction)), cfg.max_eval_examples)
    if distinct - n_eval < 1:
        raise TrainingInputError(
            f"eval split too big: {n_eval} of {distinct} examples held out leaves none to train on; "
            "lower --eval-fraction (0 disables evaluation) or add data"
        )
    eval_idx: set[int] = set()
    held_texts: set[str] = set()
    for i in order:
        if len(held_texts) == n_eval:
            break
        if texts[i] not in held_texts:
            held_texts.add(texts[i])
            eval_idx.add(i)
    train = [texts[i] for i in order if texts[i] not in held_texts]
    held = [texts[i] for i in sorted(eval_idx)]
    return train, held


def result_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the tool results r in ``text``: from the first non-space after "->" to "]".

    The leading space is not part of the span but a token " 0.29" overlaps it, so it is masked;
    "->" and "]" are never inside it. Calls without a result, or with an empty one, give no span.
    """
    spans = []
    for call in find_calls(text):
        if not call.result:
            continue
        arrow = text.rfind(ARROW, call.start, call.end)  # results are sanitised: no "->" inside
        start, end = arrow + len(ARROW), call.end - 1  # call.end - 1 is the "]"
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            spans.append((start, end))
    return spans


def call_spans(text: str) -> list[tuple[int, int]]:
    return [(c.start, c.end) for c in find_calls(text)]


def _overlaps(a: int, b: int, spans: list[tuple[int, int]]) -> bool:
    return b > a and any(a < e and b > s for s, e in spans)


def _window_ends(offsets: list[tuple[int, int]], first: int, size: int, calls: list[tuple[int, int]]) -> int:
    """End (exclusive) of the window that starts at token ``first``: as long as allowed, never cutting a call."""
    n = len(offsets)
    end = min(first + size, n)
    if end == n:
        return end
    cut = end
    while cut > first + 1 and any(s < offsets[cut][0] < e for s, e in calls):
        cut -= 1
    return cut if cut > first + 1 else end  # a call longer than the window: cut it anyway


def build_examples(text: str, tokenizer: Any, cfg: FinetuneConfig) -> list[dict[str, list[int]]]:
    """Token ids and labels for one x*: one example, or several windows when it is longer than max_length.

    Labels are the ids (the model shifts them), with IGNORE_INDEX on result tokens when
    ``cfg.mask_results``. Token/character alignment comes from the fast tokenizer's offsets.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TrainingInputError("the tokenizer has no offset mapping (not a fast tokenizer); it cannot mark results")
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=True)
    ids: list[int] = list(enc["input_ids"])
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    results = result_spans(text) if cfg.mask_results else []
    labels = [IGNORE_INDEX if _overlaps(a, b, results) else t for t, (a, b) in zip(ids, offsets, strict=True)]
    calls = call_spans(text)
    # Call-free tokens: trained ones that end before the first call, where the base sees the same context.
    first_call = min((s for s, _ in calls), default=len(text))
    free = [int(lab != IGNORE_INDEX and b <= first_call) for lab, (_, b) in zip(labels, offsets, strict=True)]

    bos = getattr(tokenizer, "bos_token_id", None)
    lead = [bos] if bos is not None and ids and ids[0] == bos and offsets[0] == (0, 0) else []
    out, first = [], 0
    while first < len(ids):
        # Later windows get the BOS again (when the tokenizer uses one), so each looks like a document start.
        extra = lead if first > 0 else []
        end = _window_ends(offsets, first, cfg.max_length - len(extra), calls)
        window_ids, window_labels = extra + ids[first:end], [IGNORE_INDEX] * len(extra) + labels[first:end]
        if len(window_ids) >= 2:
            example = {"input_ids": window_ids, "labels": window_labels}
            if cfg.kl_weight > 0:
                example[KL_MASK] = [0] * len(extra) + free[first:end]
            out.append(example)
        if cfg.long_texts == "truncate":
            break
        first = end
    return out


def build_dataset(texts: list[str], tokenizer: Any, cfg: FinetuneConfig) -> list[dict[str, list[int]]]:
    examples = []
    for text in texts:
        examples.extend(build_examples(text, tokenizer, cfg))
    return examples


def dataset_stats(examples: list[dict[str, list[int]]]) -> dict[str, int]:
    tokens = sum(len(e["input_ids"]) for e in examples)
    trained = sum(sum(1 for lab in e["labels"][1:] if lab != IGNORE_INDEX) for e in examples)
    return {"sequences": len(examples), "tokens": tokens, "trained_tokens": trained}


class ListDataset:
    """A map-style dataset over prepared examples (torch's DataLoader needs only len and getitem)."""

    def __init__(self, examples: list[dict[str, list[int]]]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.examples[i]


class PadCollator:
    """Right-pads a batch. Padding is found from lengths, never by comparing ids with pad_token_id:
    for SmolLM2 pad == eos, and a real eos in the text must keep its label."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = int(pad_token_id)

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(e["input_ids"]) for e in batch)
        ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        free = torch.zeros((len(batch), width), dtype=torch.bool) if KL_MASK in batch[0] else None
        for row, e in enumerate(batch):
            n = len(e["input_ids"])
            ids[row, :n] = torch.tensor(e["input_ids"], dtype=torch.long)
            labels[row, :n] = torch.tensor(e["labels"], dtype=torch.long)
            mask[row, :n] = 1
            if free is not None:
                free[row, :n] = torch.tensor(e[KL_MASK], dtype=torch.bool)
        out = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        return out | ({KL_MASK: free} if free is not None else {})


# ---------------------------------------------------------------- packing


Placement = tuple[int, int, int]  # (row, first column, length) of one text in a packed batch


def pack_rows(lengths: list[int], max_length: int) -> list[list[int]]:
    """Indices of the texts per row: as few rows of at most ``max_length`` tokens as fit, balanced.

    Longest first, each text into the row with the fewest tokens that still has room (LPT), so the
    rows end up about the same width and the batch needs little padding. A row is never cut.
    """
    total = sum(lengths)
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    n_rows = max(1, -(-total // max_length))
    while True:
        rows: list[list[int]] = [[] for _ in range(n_rows)]
        used = [0] * n_rows
        for i in order:
            fits = [r for r in range(n_rows) if used[r] + lengths[i] <= max_length]
            if not fits:
                break
            r = min(fits, key=lambda r: used[r])
            rows[r].append(i)
            used[r] += lengths[i]
        else:
            return [sorted(r) for r in rows if r]
        n_rows += 1


def pack_batch(batch: list[dict[str, list[int]]], pad_token_id: int, max_length: int) -> tuple[dict[str, Any], list[Placement]]:
    """Pack texts into rows of at most ``max_length`` tokens, attention kept inside each text.

    Position ids restart at 0 for each text, and no attention mask is passed: transformers then
    builds a block-diagonal causal mask from the position ids (``find_packed_sequence_indices``),
    so each token attends to its own text only, as it would alone. The first token of each text
    gets label IGNORE_INDEX: alone it is never predicted (the shift drops it), and packed it must
    not be predicted from the end of the previous text. Pad columns continue the last text's
    positions with IGNORE_INDEX labels: causal attention keeps them out of every real token's view.
    Returns the model inputs and where each text of ``batch`` went.
    """
    import torch

    lengths = [len(e["input_ids"]) for e in batch]
    if max(lengths) > max_length:
        raise ValueError(f"a text of {max(lengths)} tokens does not fit in rows of {max_length}")
    rows = pack_rows(lengths, max_length)
    width = max(sum(lengths[i] for i in row) for row in rows)
    ids = torch.full((len(rows), width), int(pad_token_id), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    free = torch.zeros((len(rows), width), dtype=torch.bool) if KL_MASK in batch[0] else None
    placed: list[Placement] = [(0, 0, 0)] * len(batch)
    for r, row in enumerate(rows):
        col = 0
        for i in row:
            n = lengths[i]
            ids[r, col : col + n] = torch.tensor(batch[i]["input_ids"], dtype=torch.long)
            labels[r, col + 1 : col + n] = torch.tensor(batch[i]["labels"][1:], dtype=torch.long)
            positions[r, col : col + n] = torch.arange(n)
            if free is not None:  # like the labels: a text's first token is not predicted
                free[r, col + 1 : col + n] = torch.tensor(batch[i][KL_MASK][1:], dtype=torch.bool)
            placed[i] = (r, col, n)
            col += n
        if col < width:  # the pad tail: its own positions, after the last text's
            start = int(positions[r, col - 1]) + 1 if col else 0
            positions[r, col:] = torch.arange(start, start + width - col)
    inputs = {"input_ids": ids, "position_ids": positions, "labels": labels}
    return inputs | ({KL_MASK: free} if free is not None else {}), placed


class PackCollator:
    """``pack_batch`` as a data collator: the texts of a batch share rows, with no attention across texts."""

    def __init__(self, pad_token_id: int, max_length: int):
        self.pad_token_id, self.max_length = int(pad_token_id), int(max_length)

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        return pack_batch(batch, self.pad_token_id, self.max_length)[0]


def token_losses(model: Any, inputs: dict[str, Any]) -> Any:
    """-log p(x_t | x_<t) for every (row, column t >= 1), 0 where the label is IGNORE_INDEX; shape (rows, width)."""
    import torch

    device = next(model.parameters()).device
    model_inputs = {k: v.to(device) for k, v in inputs.items() if k not in ("labels", KL_MASK)}
    # use_cache=False: with a KV cache transformers no longer reads packing from the position ids
    logits = model(**model_inputs, use_cache=False).logits.float()
    labels = inputs["labels"][:, 1:].to(device)
    nll = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), labels.clamp(min=0), reduction="none")
    nll = nll.masked_fill(labels == IGNORE_INDEX, 0.0)
    return torch.nn.functional.pad(nll, (1, 0))  # column t holds the loss of the token at t


def kl_to_base(logits: Any, base_logits: Any, free: Any) -> Any:
    """Mean over the call-free tokens of KL(base || model) of the next-token distributions, a 0-dim tensor.

    ``logits``/``base_logits``: (rows, width, vocab), column t predicting the token at t + 1; ``free``:
    (rows, width) bool, True where the token at that column is call-free (``KL_MASK``). 0 when none is.
    """
    import torch

    keep = free[:, 1:].to(logits.device)
    if not bool(keep.any()):
        return logits.sum() * 0.0  # keeps the graph (and DDP's gradient hooks) intact
    log_p = torch.log_softmax(logits[:, :-1][keep].float(), dim=-1)  # (tokens, vocab)
    log_q = torch.log_softmax(base_logits[:, :-1][keep].float(), dim=-1)
    return torch.nn.functional.kl_div(log_p, log_q, log_target=True, reduction="batchmean")


def text_losses(model: Any, batch: list[dict[str, list[int]]], pad_token_id: int, max_length: int | None = None) -> list[float]:
    """The summed loss of each text of ``batch``: packed into rows when ``max_length`` is given, else padded.

    Both must agree (to rounding): that is what makes packing the same objective as padding.
    """
    import torch

    with torch.no_grad():
        if max_length is None:
            inputs = PadCollator(pad_token_id)(batch)
            nll = token_losses(model, inputs)
            return [float(nll[i].sum()) for i in range(len(batch))]
        inputs, placed = pack_batch(batch, pad_token_id, max_length)
        nll = token_losses(model, inputs)
        return [float(nll[r, c : c + n].sum()) for r, c, n in placed]
