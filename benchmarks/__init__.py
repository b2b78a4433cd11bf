"""Benchmarks comparing otelprod against its anchors in the same run.

Each ``bench_*.py`` module exposes ``run(quick: bool = False) -> list[Result]``;
``python -m benchmarks`` runs them all and prints one table of ratios.
"""
