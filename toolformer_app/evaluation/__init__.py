"""Zero-shot evaluation (paper, section 4): fixed offline suites, scoring rules, three modes, perplexity.

The rooms: ``suites`` (the items), ``scoring`` (the rules), ``config`` (``EvalConfig``), ``predict`` (decoding
one item in a mode), ``runner`` (loading the models and running the modes), ``perplexity``, ``report``
(scores, summaries, results files and tables), ``base_cache``, ``calibrate`` and ``targets``.

Library entry points (for the UI): ``runner.evaluate(model_name, suites, limit, ...) -> dict`` and
``runner.format_table(results) -> str``. The CLI is ``python -m toolformer_app eval``.
"""
