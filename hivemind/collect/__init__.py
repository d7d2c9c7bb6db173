"""Stage 1, collect: ask every system for its answers and store each one (entry point: stage.py, `collect`).

- stage.py: the resumable, concurrent collector over litellm;
- prompts.py: the prompt sets (files, Hugging Face datasets) a config names;
- local_server.py: the bundled llama.cpp models, started when a system points at them;
- routes.py: which litellm route serves each of the paper's models.
"""
