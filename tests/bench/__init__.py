"""On-demand benchmarks: whole `slng-bulk` runs measured beside the tools users would pick instead.

Run with ``python -m tests.bench [--quick] [--only NAME]`` (see ``__main__.py``). Never part of the
unit-test run: pytest's ``norecursedirs`` skips this folder, and no file here is named ``test_*``.
"""
