"""The methods, one module per method (one entry point and one frozen result each), in three families:
`blackbox` (resampling-based thought anchors), `whitebox` (attention, suppression, patching on a local model) and
`causality` (trace-level tests). Importing this package imports none of them. Imports point down only (metrics,
rollouts, models, traces); nothing here imports the CLI, the results folder or the figures.
"""
