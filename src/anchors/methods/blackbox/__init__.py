"""Black-box thought anchors (resampling, counterfactual and forced-answer importance, the sentence→sentence
matrix): `scores.score_trace` samples a trace's prefixes and scores every sentence, `scores.score_rollouts` scores
rollouts already graded, `adaptive` samples in rounds, `compat` checks against the authors' released files."""
