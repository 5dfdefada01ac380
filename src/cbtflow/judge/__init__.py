"""CTRS judging: the rubric as data, a transparent lexicon judge, and LLM judges.

Every judge sees the transcript with neutral speaker labels and nothing else about where
it came from (no model, condition or file names).
"""
