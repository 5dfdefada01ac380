"""Data package: the project's resources (rubric, prompts, lexicons, profile attributes,
chat templates), installed with cbtflow as ``cbtflow.resources``."""
