"""Data generation (paper section 2): sample API calls, execute them, keep the helpful ones, build C*."""

from toolformer_app.pipeline.config import Candidate, PipelineConfig
from toolformer_app.pipeline.filtering import build_stats, keep_if_helpful, kept_table, merge_calls
from toolformer_app.pipeline.run import PipelineResult, TextResult, annotate_batch, load_candidates, run_pipeline
from toolformer_app.pipeline.scoring import filter_tokens_with_api_response, loss_weights, weighted_loss

__all__ = [
    "Candidate", "PipelineConfig", "PipelineResult", "TextResult", "annotate_batch", "build_stats",
    "filter_tokens_with_api_response", "keep_if_helpful", "kept_table", "load_candidates", "loss_weights",
    "merge_calls", "run_pipeline", "weighted_loss",
]
