"""Self-service banking: accounts, cards, bills, payees and the money-moving operations.

`money.py` is the money type, `accounts.py` the data and the typed protocol a core-banking system
would implement (`db/repositories/banking.py` is our PostgreSQL stand-in), `services.py` the
services `process` nodes call. The package sits above flows (its services speak through
`flows.services` and the saying machinery) and knows no SQL.
"""
