"""cbtflow: does fine-tuning a small open-weight model on synthetic CBT sessions make it a
more faithful CBT therapist? The library behind the Snakemake workflow.

Nothing here imports Snakemake: every stage is a plain function that the thin rule scripts
call, so it can be tested and reused outside the workflow.
"""

__version__ = "0.1.0"
