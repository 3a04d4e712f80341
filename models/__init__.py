"""Model bundles shipped with the toolkit (installed as `mrnet.models`).

`demo/` is trained by `make models` with the project's own pipeline on a fixed-seed synthetic knee
phantom: demo weights, not for clinical use.
"""
