"""Secrets: keys come only from the environment and never reach the store, messages, results or snapshots.

Three defences, each a function here:
- `config_problems` refuses a config that holds a credential: a credential-named key (`api_key`,
  `Authorization`, ...), a key-shaped value under any name, user:password@ or ?key= in a URL. The problem
  names the setting, never the value.
- `redact` takes the values of the key variables (and anything key-shaped) out of a text before it is
  printed or stored (errors, the collector's error rows, litellm's exception text).
- `hivemind.results.scan.scan_paths` is the final check of files written under results/ and of snapshots (it
  decodes store files, so it sits above the store): it refuses any that holds a key variable's value or a
  key-shaped string, with the patterns declared here.

"Key-shaped" means a provider's key format: a known prefix followed by a long token (sk-, sk-ant-, AIza,
hf_, ghp_, xoxb-, AKIA, ...), a JWT, or an HTTP `Bearer`/`Basic` credential. Ordinary parameters (model
names, stop strings, logit_bias) have no such prefix. In a config any match is refused; in written files
(which hold model answers, where a made-up "sk-your-key-here" is common) the token must also look random:
digits and letters mixed, many distinct characters, no counting run like 1234567890.
"""
from __future__ import annotations

import os
import re
from typing import Any, Iterable
from urllib.parse import parse_qsl, urlsplit

from hivemind.core.config_params import misspelt_param

REDACTED = "<redacted>"
MASK = "***"
ALLOW_KEY_SHAPED = "HIVEMIND_ALLOW_KEY_SHAPED"   # =1: written files may hold key-shaped strings (never key values)

# Keys whose values are credentials. `api_key_env` (and any *_env) names a variable and stays. Matched at
# the end of the key, so `max_tokens` is not taken for one.
SECRET_KEY = re.compile(r"(^|[_-])(api[_-]?key|apikey|key|token|secret|password|passwd|authori[sz]ation"
                        r"|bearer|credentials?|cookie|sig|signature|access[_-]?key)$", re.I)

# Provider key formats. The look-behind keeps "task-specific" from reading as "sk-specific".
_EDGE = r"(?<![A-Za-z0-9_\-])"
_KEY_FORMATS = [
    r"sk-[A-Za-z0-9_\-]{12,}",                     # OpenAI (sk-, sk-proj-), Anthropic (sk-ant-), OpenRouter, DeepSeek
    r"(?:hf|gsk|r8|fw|pplx|nvapi|xai|csk|glpat|npm)[_\-][A-Za-z0-9_\-]{16,}",   # HF, Groq, Replicate, ...
    r"gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}",                 # GitHub
    r"AIza[0-9A-Za-z_\-]{20,}",                    # Google
    r"xox[abposr]-[A-Za-z0-9\-]{10,}",             # Slack
    r"(?:AKIA|ASIA)[0-9A-Z]{16}",                  # AWS access key id
    r"pypi-[A-Za-z0-9_\-]{16,}",                   # PyPI
    r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*",             # JWT
]
KEY_SHAPED = re.compile(_EDGE + "(?:" + "|".join(_KEY_FORMATS) + ")")
# An HTTP credential: the scheme, then a token of 8+ characters.
AUTH_HEADER = re.compile(r"\b(?:Bearer|Basic|Token)\s+[A-Za-z0-9_\-.~+/=]{8,}")
# Query parameters that carry credentials in URLs (Azure SAS `sig`, Azure Functions `code`, `key`, ...).
SECRET_QUERY = re.compile(r"(^|[_\-.])(api[_\-]?key|apikey|key|token|access[_\-]?token|secret|password|passwd"
                          r"|auth|sig|signature|code|credential)$", re.I)

# Variables whose values are never to be printed or written, when set: the providers' usual ones.
PROVIDER_VARIABLES = (
    "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "PALM_API_KEY",
    "MISTRAL_API_KEY", "COHERE_API_KEY", "CO_API_KEY", "GROQ_API_KEY", "TOGETHER_API_KEY", "TOGETHERAI_API_KEY",
    "TOGETHER_AI_API_KEY", "DEEPSEEK_API_KEY", "OPENROUTER_API_KEY", "FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY",
    "XAI_API_KEY", "PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY", "AZURE_API_KEY", "AZURE_OPENAI_API_KEY",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "REPLICATE_API_KEY", "REPLICATE_API_TOKEN",
    "DEEPINFRA_API_KEY", "ANYSCALE_API_KEY", "VOYAGE_API_KEY", "NVIDIA_NIM_API_KEY", "CEREBRAS_API_KEY",
    "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_API_KEY", "HUGGINGFACEHUB_API_TOKEN", "GITHUB_TOKEN",
    "GH_TOKEN", "DASHSCOPE_API_KEY", "VERTEXAI_API_KEY", "DATABRICKS_TOKEN", "WATSONX_APIKEY", "SAMBANOVA_API_KEY",
)
# Other variables treated as secret by name: ending in KEY, TOKEN, SECRET, PASSWORD, CREDENTIAL(S).
_SECRET_VARIABLE = re.compile(r"(^|_)(API_?KEY|APIKEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.I)


# Key-shaped strings -----------------------------------------------------------------------------------

def find_key_shaped(text: str, strict: bool = False) -> list[str]:
    """The key-shaped substrings of text. strict: only those whose token also looks random (for model
    answers and prompts, where made-up keys such as sk-your-key-here or sk-1234567890abcdef are common)."""
    found = [m.group(0) for m in KEY_SHAPED.finditer(text)]
    found += [m.group(0) for m in AUTH_HEADER.finditer(text)]
    if strict:
        found = [token for token in found if _looks_random(token)]
    return found


def is_key_shaped(text: str) -> bool:
    return bool(find_key_shaped(text))


def _looks_random(token: str) -> bool:
    """Digits and letters mixed, 10+ distinct characters, and not mostly a counting run (abcd..., 1234...)."""
    body = re.sub(r"^(Bearer|Basic|Token)\s+", "", token)
    body = re.sub(r"^[A-Za-z]+[_\-]", "", body)  # the prefix (sk-, hf_, ...) carries no randomness
    letters = sum(c.isalpha() for c in body)
    digits = sum(c.isdigit() for c in body)
    if len(body) < 16 or not letters or not digits or len(set(body)) < 10:
        return False
    counting = sum(1 for a, b in zip(body, body[1:]) if ord(b) - ord(a) == 1)
    return counting < len(body) / 3


def hint(token: str) -> str:
    """What kind of key a match is, without any of its secret part (e.g. 'sk-…')."""
    for word in ("Bearer", "Basic", "Token"):
        if token.startswith(word):
            return f"{word} …"
    match = re.match(r"[A-Za-z]+[_\-]|AKIA|ASIA|AIza|eyJ", token)
    return (match.group(0) if match else token[:2]) + "…"


# Config checks -----------------------------------------------------------------------------------------

URL_SETTINGS = {"api_base", "base_url", "api_url", "url", "endpoint"}


def url_problem(url: str) -> str | None:
    """Why a URL must not be in a config (credentials in it), or None. Never quotes the credential."""
    try:
        parts = urlsplit(url.strip())
        has_user = parts.username is not None or parts.password is not None
    except ValueError:
        return "is not a valid URL"
    if has_user:
        return ("holds credentials (user:password@host); put the key in an environment variable and name "
                "that variable in api_key_env")
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if SECRET_QUERY.search(name) or is_key_shaped(value):
            return (f"has a credential in its query string ({name}=…); put the key in an environment variable "
                    f"and name that variable in api_key_env")
    if is_key_shaped(url):
        return "holds a key-shaped string; keys come only from the environment: use api_key_env"
    return None


def config_problems(data: Any, path: str = "") -> list[str]:
    """'setting: what is wrong' for each credential in config data (nested dicts and lists).

    A credential-named key is refused whatever its value; a key-shaped value whatever its key name; a
    URL with user:password@ or a credential query parameter. Messages name the setting, not the value."""
    problems: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            here = f"{path}.{key}" if path else str(key)
            key_text = str(key)
            if _credential_setting(key_text, value):
                problems.append(f"{here}: keys come only from the environment; name the variable in api_key_env")
                continue
            if is_key_shaped(key_text):
                problems.append(f"{path or '(top level)'}: a key name is key-shaped ({hint(key_text)}); "
                                f"keys come only from the environment: use api_key_env")
                continue
            if isinstance(value, str) and (key_text in URL_SETTINGS or "://" in value):
                problem = url_problem(value)
                if problem:
                    problems.append(f"{here}: {problem}")
                    continue
            problems += config_problems(value, here)
    elif isinstance(data, (list, tuple)):
        for i, item in enumerate(data):
            problems += config_problems(item, f"{path}[{i}]")
    elif isinstance(data, str):
        shapes = find_key_shaped(data)
        if shapes:
            problems.append(f"{path}: holds a key-shaped value ({hint(shapes[0])}); keys come only from the "
                            f"environment: put it in a variable and name that in api_key_env")
        elif "://" in data and url_problem(data):
            problems.append(f"{path}: {url_problem(data)}")
    return problems


def _credential_setting(key: str, value: Any) -> bool:
    """Is `key: value` a credential by its name (`api_key`, `token`, `Authorization`, ...)? Not a variable's
    name (`*_env`), not empty, and not a misspelt decoding parameter: `max_token: 64` ends in "token" but is
    max_tokens mistyped (hivemind.core.config_params), and a number or a short word cannot be a key. A value
    that can be one (a string of 8+ characters, a mapping, a list) under such a name is still a credential."""
    if not SECRET_KEY.search(key) or key.lower().endswith("_env") or value in (None, ""):
        return False
    meant = misspelt_param(key)
    if meant and not SECRET_KEY.search(meant) and not _may_be_credential(value):
        return False
    return True


def _may_be_credential(value: Any) -> bool:
    if isinstance(value, str):
        return len(value.strip()) >= 8
    return not isinstance(value, (bool, int, float))


def refuse_secrets(data: Any, path: str = "") -> None:
    """For pydantic validators: ValueError naming the first offending setting."""
    problems = config_problems(data, path)
    if problems:
        raise ValueError(problems[0])


def scrub(data: Any) -> Any:
    """A copy of config data with every credential-looking value replaced by <redacted>."""
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            out[key] = REDACTED if _credential_setting(str(key), value) else scrub(value)
        return out
    if isinstance(data, list):
        return [scrub(item) for item in data]
    if isinstance(data, str):
        return _mask_shapes(data, REDACTED)
    return data


def _mask_shapes(text: str, mask: str) -> str:
    return AUTH_HEADER.sub(mask, KEY_SHAPED.sub(mask, text))


# Values of key variables -------------------------------------------------------------------------------

def key_variables(config=None) -> set[str]:
    """Names of the variables holding keys: the config's api_key_env (systems, scorers, embedder), the providers'
    usual variables, and any variable named like a credential (..._API_KEY, ..._TOKEN, ..._SECRET)."""
    names = {name for name in PROVIDER_VARIABLES if name in os.environ}
    names |= {name for name in os.environ if _SECRET_VARIABLE.search(name)}
    if config is not None:
        names |= {s.api_key_env for s in config.systems if s.api_key_env}
        names |= {s.api_key_env for s in getattr(config, "scorers", []) if s.api_key_env}
        if config.embedder.api_key_env:
            names.add(config.embedder.api_key_env)
    return names


def secret_values(config=None) -> dict[str, str]:
    """{variable: value} of the key variables that are set to something that can be a credential."""
    found = {}
    for name in key_variables(config):
        value = (os.environ.get(name) or "").strip()
        # Short values, flags and paths are not credentials, and would match by accident.
        if len(value) >= 8 and not value.startswith(("/", "~", ".")) and value.lower() not in {"true", "false"}:
            found[name] = value
    return found


def redact(text: str, config=None, extra: Iterable[str | None] = ()) -> str:
    """text with every key variable's value (and `extra` values) replaced by *** and every key-shaped
    string masked: for anything printed or stored (errors, litellm exception text)."""
    if not text:
        return text
    values = sorted({*secret_values(config).values(), *(v for v in extra if v and len(v) > 3)}, key=len, reverse=True)
    for value in values:
        text = text.replace(value, MASK)
    return _mask_shapes(text, MASK)
