"""Stage 4, analyze: from the store's vectors and scores to the results tables (entry point: stage.py,
`analyze_run`).

The kernels are arithmetic on arrays and texts, touching no store, file or config (tests/test_layering.py):
similarity.py (intra- and inter-model similarity), neighbors.py (near duplicates), phrases.py (shared
phrases), diversity.py (Vendi, distinct ideas, effective diversity), quality_gate.py (the quality gate),
equivalence.py (which answers say the same thing: pair features, the shipped pair model, NoveltyBench's
partition over any judge).
Around them: stage.py (the streaming pass and the tables), equivalence_choice.py (the run's method),
controls.py (the shuffled and duplicated control systems), categories.py (the per-category breakdown).
"""
