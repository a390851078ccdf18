"""Methods: one module per method, one entry point each, one frozen result dataclass each (`.to_pandas()`).

Imports point down only (metrics, rollouts, models, traces); nothing here imports the CLI or the figures.
"""
