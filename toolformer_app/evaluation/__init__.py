"""Zero-shot evaluation (paper, section 4): fixed offline suites, scoring rules, three modes, perplexity.

Library entry points (for the UI): ``runner.evaluate(model_name, suites, limit, ...) -> dict`` and
``runner.format_table(results) -> str``. The CLI is ``python -m toolformer_app eval``.
"""
