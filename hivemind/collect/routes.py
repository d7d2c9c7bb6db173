"""Where each of the paper's 25 models can still be reached, and which routes are retired.

A *route* is one litellm model id (vendor API, a marketplace such as Together AI, DeepInfra, Fireworks,
Bedrock or Vertex, or a self-hosted OpenAI-compatible vLLM server for open weights) plus what must be set
to use it. Routes are listed in order of preference; the default route of a model is the first one that is
not retired on the given day. A model with no such route is *retired*: `hivemind reproduce` says so in its
plan instead of letting every request fail.

A route is retired when
- litellm's price map (`model_prices_and_context_window`, read offline) gives it a `deprecation_date` on
  or before the day, or
- the vendor documented its retirement (RETIREMENTS below, with the date and the source).
A route that litellm's map does not know is *unverified*: it may work, its price is unknown, and the plan
says both.

min_p is not an OpenAI parameter: litellm passes it to the provider in the request body (litellm docs,
"Provider-specific Params"). Together AI, DeepInfra, Fireworks, OpenRouter and vLLM implement it; OpenAI,
Azure, Anthropic, Gemini/Vertex, Mistral, Cohere, DashScope and Bedrock reject it with a 400.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

MIN_P_PROVIDERS = {"together_ai", "deepinfra", "fireworks_ai", "openrouter", "hosted_vllm", "vllm"}
VLLM_BASE = "http://localhost:8000/v1"
VLLM_KEY = "VLLM_API_KEY"


@dataclass(frozen=True)
class Route:
    model: str                    # litellm model id
    key_env: str | None           # the variable to set; None: litellm's own variables (AWS_*, Vertex ADC)
    api_base: str | None = None
    note: str = ""

    @property
    def provider(self) -> str:
        return self.model.split("/", 1)[0]

    @property
    def accepts_min_p(self) -> bool:
        return self.provider in MIN_P_PROVIDERS

    @property
    def what_to_set(self) -> str:
        if self.provider == "hosted_vllm":
            return f"serve it: `vllm serve {self.model.split('/', 1)[1]} --api-key ${VLLM_KEY}`, set {VLLM_KEY}"
        if self.key_env:
            return f"set {self.key_env}"
        if self.provider == "bedrock":
            return "set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION_NAME"
        if self.provider.startswith("vertex_ai"):
            return "set VERTEXAI_PROJECT, VERTEXAI_LOCATION and Google application-default credentials"
        return "set the provider's variables (litellm.validate_environment names them)"


@dataclass(frozen=True)
class PaperModel:
    name: str
    routes: tuple[Route, ...]
    reasoning: bool = False       # thinks before answering: the reasoning is stored apart from the answer


@dataclass(frozen=True)
class Retirement:
    """One documented retirement (shutdown) of a route: the day requests start to fail, where that was read,
    and whether the vendor's own page says so (verified) or only a secondary source does (unverified: the
    plan says "unverified" next to the date)."""
    date: str                     # ISO day the route stops answering
    source: str                   # where it was read (a URL; the vendor's page when verified)
    verified: bool


# Retirements that litellm's map does not carry (removed entries have no date). SOURCES: every date was read in
# stored copies of the pages named (search corpora of this project, read 2026-11-25); none is from memory.
# `verified` is True only where the vendor's own page shows the date.
RETIREMENTS: dict[str, Retirement] = {
    # Anthropic's deprecations table: claude-3-sonnet-20240229 retired 2025-07-21, claude-3-opus-20240229
    # retires 2026-01-05. The page says Bedrock and Google Cloud set their own schedules.
    "anthropic/claude-3-sonnet-20240229": Retirement(
        "2025-07-21", "https://docs.anthropic.com/zh-CN/docs/about-claude/model-deprecations", True),
    "anthropic/claude-3-opus-20240229": Retirement(
        "2026-01-05", "https://docs.anthropic.com/zh-CN/docs/about-claude/model-deprecations", True),
    # Anthropic release notes, October 28, 2025: "We've retired the Claude Sonnet 3.5 models."
    "anthropic/claude-3-5-sonnet-20241022": Retirement(
        "2025-10-28", "https://docs.claude.com/en/release-notes/overview (October 28, 2025)", True),
    # Bedrock's own lifecycle page was not in the stored material; the date is Anthropic's, which Bedrock
    # need not follow.
    "bedrock/anthropic.claude-3-sonnet-20240229-v1:0": Retirement(
        "2025-07-21", "Anthropic's date; AWS Bedrock model lifecycle page not found", False),
    # Gemini 1.5: the stored Gemini deprecations pages no longer list 1.5; Vertex AI pages say "Starting April
    # 29, 2025, Gemini 1.5 Pro and Gemini 1.5 Flash models are not available in projects that have no prior
    # usage". The shutdown day itself was not found.
    "gemini/gemini-1.5-pro": Retirement(
        "2025-09-24", "shutdown day not found; Vertex AI docs: unavailable to new projects from 2025-04-29 "
                      "(https://cloud.google.com/vertex-ai/generative-ai/docs/reference/rest/v1/"
                      "projects.locations.models)", False),
    "vertex_ai/gemini-1.5-pro": Retirement(
        "2025-09-24", "shutdown day not found; Vertex AI docs: unavailable to new projects from 2025-04-29",
        False),
    # Google's Firebase AI Logic docs: "Gemini 2.0 Flash and Flash-Lite models were shut down on June 1, 2026".
    "gemini/gemini-2.0-flash": Retirement(
        "2026-06-01", "https://firebase.google.com/docs/ai-logic/prompt-design (Google)", True),
    # Secondary sources only: a third-party API doc (Mistral Large 2.1 retired 2026-05-31) and blog posts quoting
    # OpenAI's deprecations page (dated gpt-4o / gpt-4o-mini snapshots shut down 2027-01-14).
    "mistral/mistral-large-2411": Retirement(
        "2026-05-31", "https://docs.embabel.com (MISTRAL_LARGE_21: retired by Mistral on 2026-05-31); "
                      "Mistral's own page not found", False),
    "openai/gpt-4o-2024-11-20": Retirement(
        "2027-01-14", "https://codersera.com/blog/gpt-4o-gpt-4-1-api-shutdown-migration-2026/ quoting "
                      "OpenAI's deprecations page", False),
    "openai/gpt-4o-mini-2024-07-18": Retirement(
        "2027-01-14", "https://codersera.com/blog/gpt-4o-gpt-4-1-api-shutdown-migration-2026/ quoting "
                      "OpenAI's deprecations page", False),
}


def _documented(retired: Retirement) -> str:
    return f"{retired.source}" if retired.verified else f"unverified: {retired.source}"


def _vllm(weights: str) -> Route:
    return Route(f"hosted_vllm/{weights}", VLLM_KEY, VLLM_BASE, "your own vLLM server (open weights)")


def _together(model_id: str) -> Route:
    return Route(f"together_ai/{model_id}", "TOGETHER_API_KEY")


def _deepinfra(model_id: str) -> Route:
    return Route(f"deepinfra/{model_id}", "DEEPINFRA_API_KEY")


def _fireworks(model_id: str) -> Route:
    return Route(f"fireworks_ai/accounts/fireworks/models/{model_id}", "FIREWORKS_AI_API_KEY")


PAPER_MODELS: tuple[PaperModel, ...] = (
    PaperModel("Llama-3.1-70B-Instruct", (
        _together("meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo"), _deepinfra("meta-llama/Meta-Llama-3.1-70B-Instruct"),
        _fireworks("llama-v3p1-70b-instruct"), _vllm("meta-llama/Llama-3.1-70B-Instruct"))),
    PaperModel("Meta-Llama-3.1-405B-Instruct-Turbo", (
        _together("meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo"), _fireworks("llama-v3p1-405b-instruct"),
        Route("bedrock/meta.llama3-1-405b-instruct-v1:0", None), _vllm("meta-llama/Llama-3.1-405B-Instruct-FP8"))),
    PaperModel("Llama-3.3-70B-Instruct", (
        _together("meta-llama/Llama-3.3-70B-Instruct-Turbo"), _deepinfra("meta-llama/Llama-3.3-70B-Instruct"),
        _fireworks("llama-v3p3-70b-instruct"), _vllm("meta-llama/Llama-3.3-70B-Instruct"))),
    PaperModel("gemma-2-27b-it", (_together("google/gemma-2-27b-it"), _vllm("google/gemma-2-27b-it"))),
    PaperModel("Qwen1.5-110B-Chat", (_together("Qwen/Qwen1.5-110B-Chat"), _vllm("Qwen/Qwen1.5-110B-Chat"))),
    PaperModel("Qwen2-72B-Instruct", (
        _together("Qwen/Qwen2-72B-Instruct"), _fireworks("qwen2-72b-instruct"), _vllm("Qwen/Qwen2-72B-Instruct"))),
    PaperModel("Qwen2.5-72B-Instruct", (
        _together("Qwen/Qwen2.5-72B-Instruct-Turbo"), _together("Qwen/Qwen2.5-72B-Instruct"),
        _deepinfra("Qwen/Qwen2.5-72B-Instruct"), _vllm("Qwen/Qwen2.5-72B-Instruct"))),
    PaperModel("Qwen3-32B", (
        _deepinfra("Qwen/Qwen3-32B"), _fireworks("qwen3-32b"), _vllm("Qwen/Qwen3-32B")), reasoning=True),
    PaperModel("DeepSeek-V3", (
        _together("deepseek-ai/DeepSeek-V3"), _deepinfra("deepseek-ai/DeepSeek-V3"), _fireworks("deepseek-v3"))),
    PaperModel("Mistral-Large-Instruct-2411", (
        Route("mistral/mistral-large-2411", "MISTRAL_API_KEY"), Route("vertex_ai/mistral-large-2411", None),
        _vllm("mistralai/Mistral-Large-Instruct-2411"))),
    PaperModel("Mixtral-8x7B-Instruct-v0.1", (
        _together("mistralai/Mixtral-8x7B-Instruct-v0.1"), _deepinfra("mistralai/Mixtral-8x7B-Instruct-v0.1"),
        Route("bedrock/mistral.mixtral-8x7b-instruct-v0:1", None), _vllm("mistralai/Mixtral-8x7B-Instruct-v0.1"))),
    PaperModel("phi-4", (_deepinfra("microsoft/phi-4"), Route("azure_ai/Phi-4", "AZURE_AI_API_KEY"),
                         _vllm("microsoft/phi-4"))),
    PaperModel("aya-expanse-32b", (Route("cohere/c4ai-aya-expanse-32b", "COHERE_API_KEY"),
                                   _vllm("CohereForAI/aya-expanse-32b"))),
    PaperModel("c4ai-command-r-plus-08-2024", (Route("cohere/command-r-plus-08-2024", "COHERE_API_KEY"),
                                               _vllm("CohereForAI/c4ai-command-r-plus-08-2024"))),
    PaperModel("OLMo-2-1124-13B-Instruct", (_vllm("allenai/OLMo-2-1124-13B-Instruct"),)),
    PaperModel("Llama-3.1-Tulu-3-70B", (_vllm("allenai/Llama-3.1-Tulu-3-70B"),)),
    PaperModel("gpt-4o-2024-11-20", (Route("openai/gpt-4o-2024-11-20", "OPENAI_API_KEY"),
                                     Route("azure/gpt-4o-2024-11-20", "AZURE_API_KEY"))),
    PaperModel("gpt-4o-mini-2024-07-18", (Route("openai/gpt-4o-mini-2024-07-18", "OPENAI_API_KEY"),
                                          Route("azure/gpt-4o-mini-2024-07-18", "AZURE_API_KEY"))),
    PaperModel("claude-3-5-sonnet-20241022", (
        Route("anthropic/claude-3-5-sonnet-20241022", "ANTHROPIC_API_KEY"),
        Route("bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0", None))),
    PaperModel("claude-3-sonnet-20240229", (
        Route("anthropic/claude-3-sonnet-20240229", "ANTHROPIC_API_KEY"),
        Route("bedrock/anthropic.claude-3-sonnet-20240229-v1:0", None))),
    PaperModel("claude-3-opus-20240229", (
        Route("anthropic/claude-3-opus-20240229", "ANTHROPIC_API_KEY"),
        Route("bedrock/anthropic.claude-3-opus-20240229-v1:0", None))),
    PaperModel("gemini-1.5-pro", (Route("gemini/gemini-1.5-pro", "GEMINI_API_KEY"),
                                  Route("vertex_ai/gemini-1.5-pro", None))),
    PaperModel("gemini-2.0-flash", (Route("gemini/gemini-2.0-flash", "GEMINI_API_KEY"),
                                    Route("vertex_ai/gemini-2.0-flash", None))),
    PaperModel("qwen-max-2025-01-25", (Route("dashscope/qwen-max-2025-01-25", "DASHSCOPE_API_KEY"),)),
    PaperModel("qwen-plus-2025-01-25", (Route("dashscope/qwen-plus-2025-01-25", "DASHSCOPE_API_KEY"),)),
)


def _map_entry(model: str) -> dict | None:
    """litellm's price-map entry for a model id (with or without its provider prefix), or None."""
    import litellm

    entry = litellm.model_cost.get(model)
    if entry is None and "/" in model:
        entry = litellm.model_cost.get(model.split("/", 1)[1])
    return entry


def retirement(model: str, today: dt.date | None = None) -> str | None:
    """Why a litellm model id no longer answers on `today`, or None when nothing says it is retired."""
    today = today or dt.date.today()
    documented = RETIREMENTS.get(model)
    if documented and dt.date.fromisoformat(documented.date) <= today:
        return f"retired {documented.date} ({_documented(documented)})"
    date = (_map_entry(model) or {}).get("deprecation_date")
    if date and dt.date.fromisoformat(str(date)[:10]) <= today:
        return f"retired {str(date)[:10]} (litellm's model map: deprecation_date)"
    return None


def upcoming_retirement(model: str, today: dt.date | None = None) -> str | None:
    """A documented retirement still ahead of `today` (the route works until then), or None."""
    today = today or dt.date.today()
    documented = RETIREMENTS.get(model)
    if documented and dt.date.fromisoformat(documented.date) > today:
        return f"retires {documented.date} ({_documented(documented)})"
    return None


def known_to_litellm(model: str) -> bool:
    return _map_entry(model) is not None


def default_route(model: PaperModel, today: dt.date | None = None) -> Route | None:
    """The first route that is not retired; None when every route is."""
    return next((r for r in model.routes if retirement(r.model, today) is None), None)


def paper_model(system_name: str) -> PaperModel | None:
    """The paper model a system of the paper config is named after ('<model>@<decoding>')."""
    base = system_name.split("@", 1)[0]
    return next((m for m in PAPER_MODELS if m.name == base), None)


def routes_table(today: dt.date | None = None) -> str:
    """Every model's routes: default, alternatives, retired ones, and what to set (`reproduce --routes`)."""
    lines = []
    for model in PAPER_MODELS:
        default = default_route(model, today)
        head = f"{model.name}: " + ("RETIRED, no route reaches it" if default is None
                                    else f"default {default.model} ({default.what_to_set})")
        if model.reasoning:
            head += "; reasoning model (reasoning stored apart from the answer)"
        lines.append(head)
        for route in model.routes:
            why = retirement(route.model, today)
            status = why or ("min_p ok" if route.accepts_min_p else "no min_p")
            if not why and not known_to_litellm(route.model):
                status += ", not in litellm's map (unverified, price unknown)"
            if not why and upcoming_retirement(route.model, today):
                status += f", {upcoming_retirement(route.model, today)}"
            mark = "*" if route is default else "-"
            lines.append(f"  {mark} {route.model}: {status}")
    return "\n".join(lines)


# The packaged config -------------------------------------------------------------------------------

TOP_P = "{temperature: 1.0, top_p: 0.9, max_tokens: 2048}"
MIN_P = "{temperature: 2.0, top_p: 1.0, min_p: 0.1, max_tokens: 2048}"

HEADER = """\
# The "Artificial Hivemind" configuration (Jiang et al., NeurIPS 2025, arXiv:2510.22954):
# 25 models under top-p, and under min-p where the route reaches a provider that accepts min_p.
# 50 samples per prompt on Infinity-Chat-Eval (INFINITY-CHAT100).
#
# GENERATED by `python -m hivemind.collect.routes {day}` from hivemind/collect/routes.py (routes, retirements as of {day}).
# `hivemind reproduce paper --routes` lists every model's routes, the default and what to set.
#
#   hivemind reproduce paper                          # plan + cost estimate, asks for --yes above the threshold
#   hivemind reproduce paper --systems 'gpt-4o-2024-11-20@top-p' --limit 5
#
# Decoding (from the paper):  top-p: temperature 1.0, top_p 0.9;  min-p: temperature 2.0, min_p 0.1, top_p 1.0.
# min_p reaches the provider as a body field: Together AI, DeepInfra, Fireworks, OpenRouter and vLLM take it;
# OpenAI, Anthropic, Gemini, Mistral, Cohere, DashScope and Bedrock answer 400, so those models have no
# @min-p system here. Retired models keep their last vendor route and are reported as retired by the plan.
name: paper
prompts:
  dataset: liweijiang/infinite-chats-eval
  field: query
  split: train
samples: 50
embedder:
  provider: litellm
  model: openai/text-embedding-3-small
  api_key_env: OPENAI_API_KEY
systems:
"""


def _system_yaml(model: PaperModel, decoding: str, route: Route, status: str, first: bool) -> str:
    anchor = {"top-p": ("&top_p " + TOP_P) if first else "*top_p",
              "min-p": ("&min_p " + MIN_P) if first else "*min_p"}[decoding]
    lines = [f"  # {model.name}: {status}", f"  - name: {model.name}@{decoding}", f"    model: {route.model}"]
    if route.api_base:
        lines.append(f"    api_base: {route.api_base}")
    if route.key_env:
        lines.append(f"    api_key_env: {route.key_env}")
    lines.append(f"    params: {anchor}")
    return "\n".join(lines) + "\n"


def paper_config_text(today: dt.date) -> str:
    """paper.yaml for `today`: every model under top-p on its default route (a retired model on its last
    vendor route, so the plan names it), and under min-p where the default route accepts min_p."""
    text = HEADER.format(day=today.isoformat()) + "\n  # ---- top-p ----\n"
    for i, model in enumerate(PAPER_MODELS):
        route = default_route(model, today)
        status = f"{route.model} ({route.what_to_set})" if route else \
            f"RETIRED ({retirement(model.routes[0].model, today)}); no route reaches it"
        text += _system_yaml(model, "top-p", route or model.routes[0], status, i == 0)
    text += "\n  # ---- min-p (only where the provider accepts min_p) ----\n"
    first = True
    for model in PAPER_MODELS:
        route = default_route(model, today)
        if route is None or not route.accepts_min_p:
            continue
        text += _system_yaml(model, "min-p", route, f"{route.model}, min_p accepted", first)
        first = False
    return text


if __name__ == "__main__":  # regenerate the packaged config: python -m hivemind.collect.routes 2026-11-25
    import sys
    from pathlib import Path

    day = dt.date.fromisoformat(sys.argv[1]) if len(sys.argv) > 1 else dt.date.today()
    target = Path(__file__).resolve().parents[1] / "configs" / "paper.yaml"
    target.write_text(paper_config_text(day))
    print(f"wrote {target}")
