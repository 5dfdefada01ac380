"""The report's sections, in the order the report gives them: each module's ``section``
takes the ReportInputs and returns its markdown lines."""

from cbtflow.report.sections import (
    course,
    crisis,
    failures,
    figures,
    header,
    human,
    judges,
    outcomes,
    reliability,
    robustness,
    training,
    usage,
)

SECTIONS = (
    header,
    judges,
    course,
    crisis,
    outcomes,
    failures,
    robustness,
    human,
    reliability,
    training,
    usage,
    figures,
)
