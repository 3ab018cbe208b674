"""QA and MT with the real default model (smollm2-135m): the executors run end to end.

A 135M model's answers are often wrong, so these check the shape of the result, not its truth.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_qa_answers_in_a_few_words_with_the_real_model(real_model):
    from toolformer_app.tools.qa import QA

    result = QA().run("In which country is Mount Everest?")
    assert result.ok, result.reason
    assert 0 < len(result.output.split()) <= 12 and "\n" not in result.output


def test_mt_translates_few_shot_with_the_real_model(real_model):
    from toolformer_app.tools.mt import MT

    result = MT().run("Le chat dort sur le canapé.")
    assert result.ok, result.reason
    assert "\n" not in result.output and result.output != "Le chat dort sur le canapé."
    assert "cat" in result.output.lower()
