"""Research studies built on QLDM: their designs, launchers and summaries, importable and tested.

Scripts in ``benchmarks/`` are thin entry points to these; results go to ``benchmarks/results/``.
"""
