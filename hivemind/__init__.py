"""hivemind: how alike do language models answer open-ended questions?

The pipeline, one module per stage:

    config -> prompts -> collect -> store -> embed -> similarity / neighbors / phrases
           -> analyze (writes the tables) -> report / leaderboard / snapshot

`local_server` runs the bundled llama.cpp models (the no-API-key default), `imports` turns generations
that already exist into a run, and `cli` is a thin layer over all of it.
"""

__version__ = "0.1.0"


from hivemind.core.errors import HivemindError  # noqa: E402,F401  (the public name: `from hivemind import HivemindError`)
