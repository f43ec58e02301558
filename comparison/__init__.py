"""The paper's comparison: every model trained and tested on the same data under one protocol.

:func:`comparison.run.run_comparison` trains each model (each as its authors train it, with an
equal budget or at their full settings, see :mod:`comparison.settings`), tests it as its authors
test it, and writes ``results/compare/<name>/``: ``plan.json`` (every row's flags), ``table.csv``/``table.md``
(:mod:`comparison.report`) and ``figure.png`` plus ``index.html`` (:mod:`comparison.figure`).
``python -m scripts.compare`` is its command line.
"""

from .plan import PAPER_ORDER, SETTINGS, Experiment, Plan, make_plan
from .run import run_comparison

__all__ = ["PAPER_ORDER", "SETTINGS", "Experiment", "Plan", "make_plan", "run_comparison"]
