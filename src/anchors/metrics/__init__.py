"""Pure functions on numbers and arrays (areas over curves, answer-distribution KL, means with standard errors)."""
