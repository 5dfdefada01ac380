"""Stage 6: the markdown report, its figures and the transcript viewer."""
