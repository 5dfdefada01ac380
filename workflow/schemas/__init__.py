"""Data package: the config and artifact JSON Schemas, installed with cbtflow as ``cbtflow.schemas``."""
