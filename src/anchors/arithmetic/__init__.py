"""An exact checker of the arithmetic claims a reasoning trace makes ("3 × 13 = 39", "48 divided by 2 is 24"):
`claims.check_sentence` finds and judges them; used by the step-validity test."""
