"""Reports of a run.

Figures (:mod:`.figures`, :mod:`.maps`) and a self-contained HTML page (:mod:`.html`),
assembled by :func:`impactmodel.report.build.build_report`.
"""
