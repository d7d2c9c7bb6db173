"""The decoding parameters hivemind knows by name, and the one check that says a `params:` key is probably a
misspelling of one of them (`max_token` -> max_tokens, `temprature` -> temperature).

Three readers share it: the warning `hivemind plan`, `run`, `collect` (every command that reads a config)
print for a misspelt key (hivemind.core.config_files), the secrets check, which must not take `max_token: 64`
for a credential because its name ends in "token" (hivemind.core.secrets), and the did-you-mean for a decoding
setting written beside `params:` instead of under it (config_files.unknown_setting).

The list is litellm's own list of OpenAI chat-completion parameters (`litellm.constants.
OPENAI_CHAT_COMPLETION_PARAMS`, copied from litellm 1.110 so that reading a config never imports litellm, which
takes seconds; tests/test_config.py checks the copy still holds every name of the installed litellm's list), plus
the sampler settings OpenAI-compatible servers (llama.cpp, vLLM, TGI, Ollama) and other providers take through
litellm. A key in neither list and close to none of it is sent as written, without a warning: providers have
parameters of their own.
"""
from __future__ import annotations

OPENAI_PARAMS = (
    "functions", "function_call", "temperature", "top_p", "n", "stream", "stream_options", "stop",
    "max_completion_tokens", "modalities", "prediction", "audio", "max_tokens", "presence_penalty",
    "frequency_penalty", "logit_bias", "user", "request_timeout", "api_base", "api_version", "api_key",
    "deployment_id", "organization", "base_url", "default_headers", "timeout", "response_format", "seed", "tools",
    "tool_choice", "max_retries", "parallel_tool_calls", "logprobs", "top_logprobs", "reasoning_effort",
    "extra_headers", "thinking", "web_search_options", "include_server_side_tool_invocations", "service_tier",
    "prompt_cache_key", "prompt_cache_retention", "safety_identifier", "verbosity", "store",
)
SAMPLER_PARAMS = (
    "top_k", "min_p", "top_a", "typical_p", "tfs_z", "repetition_penalty", "repeat_penalty", "repeat_last_n",
    "mirostat", "mirostat_tau", "mirostat_eta", "dry_multiplier", "dry_base", "dry_allowed_length",
    "xtc_probability", "xtc_threshold", "min_tokens", "max_output_tokens", "max_new_tokens", "num_predict",
    "num_ctx", "stop_sequences", "best_of", "use_beam_search", "length_penalty", "ignore_eos",
    "skip_special_tokens", "n_probs", "cache_prompt", "samplers", "grammar", "json_schema", "echo", "suffix",
    "extra_body", "reasoning", "random_seed", "safe_prompt", "candidate_count", "top_n_tokens",
)
KNOWN_PARAMS = frozenset(OPENAI_PARAMS + SAMPLER_PARAMS)

# The decoding settings people write most, for "did you mean ... (under `params:`)" on a system's own keys.
DECODING_PARAMS = ("temperature", "top_p", "min_p", "top_k", "max_tokens", "seed", "presence_penalty",
                   "frequency_penalty", "stop", "n")

# How alike a key and a known name must be (difflib's ratio) to call the key a misspelling: max_token and
# temprature score 0.95, top-p 0.8; an unrelated provider parameter (`safe_mode`) scores lower.
MISSPELLING_CUTOFF = 0.8


def misspelt_param(name: object) -> str | None:
    """The known parameter `name` is probably a misspelling of, or None (a known name, or close to none)."""
    import difflib

    if not isinstance(name, str) or name in KNOWN_PARAMS:
        return None
    close = difflib.get_close_matches(name.lower().replace("-", "_"), sorted(KNOWN_PARAMS), n=1,
                                      cutoff=MISSPELLING_CUTOFF)
    return close[0] if close and close[0] != name else None


def param_warnings(params: dict, who: str) -> list[str]:
    """"system 'a': params.max_token is not a decoding parameter; did you mean max_tokens? ..." for each
    top-level key of `params` that looks like a misspelt known parameter."""
    lines = []
    for key in params:
        known = misspelt_param(key)
        if known:
            lines.append(f"{who}: params.{key} is not a decoding parameter litellm knows; did you mean {known}? "
                         f"(it is sent to the model as written, which may ignore it or refuse it)")
    return lines
