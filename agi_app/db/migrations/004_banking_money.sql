-- The banking stand-in's money: accounts, cards, billers and bills, registered payees, the
-- transactions that move money, and an audit row per banking operation a call asked for.
-- Amounts are integer fen (1 yuan = 100 fen), never floating point. Written by
-- agi_app/db/repositories/banking.py; loaded by `hotline accounts import`.

CREATE TABLE bank_accounts (
    -- The bank's own format; callers hear the last 4 of its digits.
    account_id  text PRIMARY KEY CHECK (account_id ~ '^[0-9A-Za-z_-]{1,34}$'),
    customer_id text NOT NULL REFERENCES customers (customer_id),
    kind        text NOT NULL CHECK (kind IN ('savings', 'current', 'credit')),
    currency    text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    balance_fen bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- Only a credit account may go below zero (what is owed on it).
    CONSTRAINT bank_accounts_no_overdraft CHECK (kind = 'credit' OR balance_fen >= 0)
);
CREATE INDEX bank_accounts_customer ON bank_accounts (customer_id, account_id);

-- One card per account at most. The full number is never stored: its SHA-256 digest finds the
-- card when a caller types it, and the last 4 digits are all that is ever shown or said.
CREATE TABLE bank_cards (
    account_id  text PRIMARY KEY REFERENCES bank_accounts (account_id) ON DELETE CASCADE,
    card_digest text NOT NULL UNIQUE CHECK (card_digest ~ '^[0-9a-f]{64}$'),
    last4       text NOT NULL CHECK (last4 ~ '^[0-9]{4}$'),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'blocked')),
    blocked_at  timestamptz
);

CREATE TABLE bank_billers (
    biller_id text PRIMARY KEY CHECK (biller_id ~ '^[0-9A-Za-z_-]{1,32}$'),
    name      text NOT NULL CHECK (name <> '')
);

CREATE TABLE bank_bills (
    bill_id     bigserial PRIMARY KEY,
    customer_id text NOT NULL REFERENCES customers (customer_id),
    biller_id   text NOT NULL REFERENCES bank_billers (biller_id),
    amount_fen  bigint NOT NULL CHECK (amount_fen > 0),
    due_date    date NOT NULL,
    paid_txn    bigint  -- the transaction that paid it; NULL while due
);
CREATE INDEX bank_bills_unpaid ON bank_bills (customer_id, due_date) WHERE paid_txn IS NULL;
-- One bill per customer, biller and due date: importing the same file twice adds nothing.
CREATE UNIQUE INDEX bank_bills_once ON bank_bills (customer_id, biller_id, due_date);

-- Registered payees: the only accounts outside the customer's own a phone transfer may reach.
CREATE TABLE bank_payees (
    customer_id    text NOT NULL REFERENCES customers (customer_id),
    payee_id       text NOT NULL CHECK (payee_id ~ '^[0-9]{1,8}$'),  -- what the caller keys in
    name           text NOT NULL CHECK (name <> ''),
    account_number text NOT NULL CHECK (account_number ~ '^[0-9]{4,34}$'),
    registered_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, payee_id)
);

-- Receipt references read back to callers: digits only, never reused.
CREATE SEQUENCE bank_receipts START 100000001;

-- Money that moved. The idempotency key makes a retried request return the first receipt.
CREATE TABLE bank_transactions (
    txn_id          bigserial PRIMARY KEY,
    receipt         text NOT NULL UNIQUE,
    idempotency_key text NOT NULL UNIQUE,
    call_id         text,
    customer_id     text NOT NULL REFERENCES customers (customer_id),
    kind            text NOT NULL CHECK (kind IN ('bill_payment', 'transfer')),
    from_account    text NOT NULL REFERENCES bank_accounts (account_id),
    to_account      text REFERENCES bank_accounts (account_id),
    payee_id        text,
    bill_id         bigint REFERENCES bank_bills (bill_id),
    amount_fen      bigint NOT NULL CHECK (amount_fen > 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bank_transactions_daily ON bank_transactions (customer_id, created_at);

-- Audit: every banking operation a call asked for, done or refused, with the call and customer.
CREATE TABLE banking_operations (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    call_id     text,
    customer_id text,
    operation   text NOT NULL,
    result      text NOT NULL CHECK (result IN ('ok', 'refused', 'failed')),
    reason      text,
    receipt     text,
    amount_fen  bigint
);
CREATE INDEX banking_operations_call ON banking_operations (call_id);
CREATE INDEX banking_operations_customer ON banking_operations (customer_id, at);
