"""Pure functions on numbers, arrays and tables (no models, no files): answer-distribution statistics, KL with
smoothing, bootstrap intervals, FDR control, permutation tests, curves, attention reductions, vertical scores, kurtosis, sparse top-p KL and the paper's per-category aggregation."""
