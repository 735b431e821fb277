"""The verbs administrators use (menus, calendar, emergency, notices): the CLI parses, calls one
of these, and prints."""


class Refused(ValueError):
    """An administrator's request refused before anything changed; the message says why."""
