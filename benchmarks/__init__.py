"""Benchmarks of keras_convlstm against the official keras.io example, one script per question.

Run them from the repository root, one at a time (``python -m benchmarks.rollout_speed --quick``) or all in
sequence (``python benchmarks/run_all.py [--quick]``). Results go to ``benchmarks/results/<name>.json``
(``benchmarks/results/quick/`` for ``--quick`` runs); BENCHMARKS.md records the measured figures.
"""
