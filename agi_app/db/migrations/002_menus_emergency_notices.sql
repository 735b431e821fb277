-- Published menu versions (immutable), the active pointer, emergency notices, service notices,
-- and survey answers.
CREATE TABLE menu_versions (
    version      serial PRIMARY KEY,
    document     json NOT NULL,          -- json, not jsonb: key order is meaning (options are announced in order)
    checksum     text NOT NULL,
    source_name  text NOT NULL DEFAULT '',
    comment      text NOT NULL DEFAULT '',
    published_at timestamptz NOT NULL DEFAULT now(),
    published_by text NOT NULL
);

-- Versions are immutable: the only way to change what callers hear is a new version.
CREATE FUNCTION menu_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'menu versions are immutable (publish a new version instead)';
END $$;
CREATE TRIGGER menu_versions_no_update BEFORE UPDATE OR DELETE ON menu_versions
    FOR EACH ROW EXECUTE FUNCTION menu_versions_immutable();

-- Exactly one row: which version new calls get.
CREATE TABLE menu_active (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version      integer NOT NULL REFERENCES menu_versions (version),
    activated_at timestamptz NOT NULL DEFAULT now(),
    activated_by text NOT NULL
);

CREATE TABLE emergencies (
    id         bigserial PRIMARY KEY,
    line       text,                         -- NULL: every line
    text_zh    text,
    text_en    text,
    sound      text,                         -- a recorded prompt id instead of text
    starts_at  timestamptz NOT NULL DEFAULT now(),
    until      timestamptz,                  -- NULL: until switched off
    ended_at   timestamptz,
    created_by text NOT NULL,
    CHECK (sound IS NOT NULL OR text_zh IS NOT NULL OR text_en IS NOT NULL)
);
CREATE INDEX emergencies_live ON emergencies (line) WHERE ended_at IS NULL;

CREATE TABLE notices (
    id         bigserial PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('product', 'fee', 'branch', 'hours', 'other')),
    line       text,                         -- NULL: every line
    text_zh    text,
    text_en    text,
    sound      text,
    valid_from date NOT NULL,
    valid_to   date NOT NULL,
    priority   integer NOT NULL DEFAULT 0,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    removed_at timestamptz,
    CHECK (valid_to >= valid_from),
    CHECK (sound IS NOT NULL OR text_zh IS NOT NULL OR text_en IS NOT NULL)
);

CREATE TABLE survey_answers (
    call_id text NOT NULL,
    node_id text NOT NULL,
    score   integer NOT NULL CHECK (score BETWEEN 1 AND 5),
    at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (call_id, node_id)
);
