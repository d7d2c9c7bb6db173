"""Side studies over runs, none of them on the pipeline's path.

agreement.py (do two embedders rank systems alike?), scorer_calibration/ (scorers against human labels),
classify.py (prompt categories by an LM; the categories table), clusters.py (k-means of one prompt's answers),
reproduce.py (the paper's setup, routed to today's providers), plan.py (cost and time before a run).
"""
