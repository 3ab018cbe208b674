"""`chat` refuses the settings the Chat tab refuses, in one line with rc 2, before any model loads."""

from __future__ import annotations

import pytest

from toolformer_app import cli


@pytest.mark.parametrize("flags, word", [(["--top-k", "-5"], "--top-k"), (["--call-threshold", "5"], "--call-threshold"),
                                         (["--call-threshold", "nan"], "--call-threshold"),
                                         (["--max-new-tokens", "0"], "--max-new-tokens"),
                                         (["--max-calls", "-1"], "--max-calls"), (["--top-p", "0"], "--top-p"),
                                         (["--temperature", "-1"], "--temperature")])
def test_out_of_range_settings_are_one_line_errors(flags, word, capsys, monkeypatch):
    from toolformer_app import models

    monkeypatch.setattr(models, "load", lambda *a, **k: pytest.fail("no model may load for a refused setting"))
    code = cli.main(["chat", "2 + 2 =", "--model", "smollm2-135m", *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and word in err[0], err
