"""Run `hivemind run` in this process on a config given as argv[1] and write, as JSON to argv[2], every SQLite
connection opened on the run's store while it ran: (mode, the hivemind module and function that asked).

Audit hooks cannot be removed, so tests/test_pipeline.py runs this as its own process."""
import json
import sys
import traceback
from pathlib import Path

from hivemind import pipeline
from hivemind.core.config_files import load_config

config = load_config(sys.argv[1])
store = str(config.store_path.resolve())
opened = []


def hook(event, args):
    if event != "sqlite3.connect" or not args or store not in str(args[0]).replace("file://", ""):
        return
    stack = traceback.extract_stack()[:-1]
    callers = [f"{Path(f.filename).parent.name}/{Path(f.filename).name}:{f.name}" for f in stack
               if "/hivemind/" in f.filename and "/hivemind/store/" not in f.filename]
    opened.append({"read_only": any(f.name == "_connect_readonly" for f in stack), "by": callers[-1] if callers else "?"})


sys.addaudithook(hook)
pipeline.run(config, progress=False)
Path(sys.argv[2]).write_text(json.dumps(opened, indent=1))
