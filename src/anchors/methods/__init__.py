"""The methods: one module per method, one entry point and one frozen result each.

White-box (methods.md §6): `receivers`, `suppression`, `patching`.
Black-box thought anchors (methods.md §4): `resampling.resampling_importance`,
`counterfactual.counterfactual_importance`, `forced_answer.forced_answer_importance`,
`sentence_matrix.sentence_matrix`; `scores.score_trace` / `score_rollouts` run them all for a trace,
`adaptive.score_trace_adaptive` samples in rounds, `compat.compat_check` checks against the authors' files.
Importing this package imports none of them.
The causality tests (trace-level, methods.md §7) live beside them. Imports point down only (metrics, rollouts,
models, traces); nothing here imports the CLI or the figures.
"""
