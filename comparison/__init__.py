"""The paper's comparison: every model trained and tested on the same data under one protocol.

:func:`comparison.run.run_comparison` trains each model with the same number of training images
seen, tests it, and writes ``results/compare/<name>/``: ``table.csv``/``table.md``
(:mod:`comparison.report`) and ``figure.png`` plus ``index.html`` (:mod:`comparison.figure`).
``python -m scripts.compare`` is its command line.
"""

from .plan import PAPER_ORDER, SETTINGS, Experiment, Plan, make_plan
from .run import run_comparison

__all__ = ["PAPER_ORDER", "SETTINGS", "Experiment", "Plan", "make_plan", "run_comparison"]
