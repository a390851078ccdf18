"""Pure functions on numbers and arrays: answer-distribution statistics, bootstrap intervals, FDR control and
the paper's per-category aggregation. No model, no rollouts: the methods build on these."""
