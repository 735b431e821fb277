"""Management figures from stored journeys: pure definitions and arithmetic, no I/O.

The database counts (`agi_app.db.repositories.kpi`); this package says what the figures mean —
the reporting period in the bank's time zone, containment, drop-offs, queue figures — and turns
the counts into them, so the CLI, a report or a test reads one definition.
"""
