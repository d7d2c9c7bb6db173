"""The results folder: the only code that writes under it, and the declaration of what it holds.

- folder.py: every file any command keeps is staged beside its target, scanned for secrets, renamed into place
  (`writing`, `new_folder`, `write_text`), under the run lock (`run_locked`, `folder_locked`);
- scan.py: the final secret scan of staged files (stores read through hivemind.store, so this sits above it);
- contract.py: the results tables, each metric declared once with its direction, and results.json's schema;
- record.py: results.json (built from the tables), the run folder's config.yaml and import.json;
- fingerprint.py: what an analysis and a report were drawn from, so nothing stale is published.
"""
