"""Local development sandbox: a real Asterisk (in a chroot), PostgreSQL and SIPp callers.

Used by ``scripts/sandbox`` (rendering Asterisk's configuration), by the end-to-end
tests and by ``scripts/call`` (placing real SIP calls). Nothing here is imported by
the production call engine.
"""
