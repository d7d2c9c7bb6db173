"""The store: one SQLite file per run, the single source of truth between stages.

- schema.py: the one declaration of every table and column, the schema version and the migrations;
- errors.py: every store and file error as one HivemindError naming the file;
- records.py: the records the store holds and hands out (Prompt, Response, Score, ...);
- store.py, reads.py: the Store class (reads.py holds its embedding and analysis reads);
- merge.py: merging stores, derived from the declaration.
This package is the only code that speaks SQL to a store file.
"""
from hivemind.store.errors import (
                                   KEYS_PER_QUERY,
                                   LOCK_TIMEOUT_S,
                                   RESTORE,
                                   check_folder,
                                   file_error,
                                   folder_conflict,
                                   read_only_reason,
                                   store_error,
)
from hivemind.store.merge import MergeCounts
from hivemind.store.records import (BLANKS, SQL_BLANKS, Answer, Prompt, PromptGroup, Response, Score, Verdict, now,
                                     text_hash)
from hivemind.store.schema import SCHEMA_VERSION, TABLES
from hivemind.store.store import Store

__all__ = ["Answer", "BLANKS", "KEYS_PER_QUERY", "LOCK_TIMEOUT_S", "MergeCounts", "Prompt", "PromptGroup", "RESTORE",
           "Response", "SCHEMA_VERSION", "SQL_BLANKS", "Score", "Store", "TABLES", "Verdict", "check_folder", "file_error",
           "folder_conflict", "now", "read_only_reason", "store_error", "text_hash"]
