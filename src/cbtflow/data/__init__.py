"""Stage 1: patient profiles, generated CBT courses, their quality gates and the training set."""
