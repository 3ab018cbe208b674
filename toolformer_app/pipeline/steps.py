"""The model-bound steps of the pipeline, now one module per stage of the paper (section 2):

    positions  -> p_i = p_M(" [" | P(x), x_<i) for every i, one teacher-forced pass (``pipeline.positions``)
    sampling   -> m calls per kept position, from P(x) + x_<i + " [" (``pipeline.sampling``)
    execution  -> r = tool(input), or no result with its reason (``pipeline.execution``)
    scoring    -> L_i(eps), L_i(e(c, eps)), L_i(e(c, r)) and L- - L+ (``pipeline.scoring``)

This module only re-exports their names, for code written against the old single module.
"""

from toolformer_app.pipeline.batching import (
    MAX_PADDING,
    POSITION_PASS_COPY_TOKENS,
    POSITION_PASS_TOKENS,
    SCORING_PASS_TOKENS,
    TokenCounter,
    length_groups,
)
from toolformer_app.pipeline.execution import count_results, execute_calls, run_calls
from toolformer_app.pipeline.positions import (
    EncodedText,
    PromptPrefix,
    ScoredPositions,
    encode_text,
    position_scores,
    prompt_prefix,
    top_positions,
)
from toolformer_app.pipeline.sampling import (
    Samples,
    candidates_from_samples,
    draw_tokens,
    fixed_call_samples,
    parse_sampled_call,
    rows_per_batch,
    sample_calls,
    sample_calls_batch,
)
from toolformer_app.pipeline.scoring import placebo_results, plain_logprobs, score_candidates

__all__ = [
    "MAX_PADDING", "POSITION_PASS_COPY_TOKENS", "POSITION_PASS_TOKENS", "SCORING_PASS_TOKENS", "EncodedText",
    "PromptPrefix", "Samples", "ScoredPositions", "TokenCounter", "candidates_from_samples", "count_results",
    "draw_tokens", "encode_text", "execute_calls", "fixed_call_samples", "length_groups", "parse_sampled_call",
    "placebo_results", "plain_logprobs", "position_scores", "prompt_prefix", "rows_per_batch", "run_calls",
    "sample_calls", "sample_calls_batch", "score_candidates", "top_positions",
]
