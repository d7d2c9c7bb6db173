"""Stage 5, report: the tables drawn as report.html and report.md (entry point: stage.py, `report_run`).

tables.py (loading and checking the tables, what is shown), figures.py (matplotlib), html.py and markdown.py
(the two renderings), browser.py (the answer browser inside report.html), summary.py (the table printed at the
end of `run`, `analyze` and `report`).
"""
