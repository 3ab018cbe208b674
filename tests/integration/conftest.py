"""Fixtures of the real-model integration tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def fp32_model():
    from toolformer_app import models

    return models.load("smollm2-135m", dtype="float32")
