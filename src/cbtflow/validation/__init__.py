"""What a judge measures: known groups, targeted perturbations and length as the baseline (the judge card)."""
