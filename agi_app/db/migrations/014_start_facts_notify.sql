-- Every running server keeps what each call reads at its start (the business calendar, emergencies,
-- notices) in memory, and must hear of any change within a second, whoever makes it (`hotline`
-- commands, another server, plain SQL): each statement that changes these tables announces it on
-- `hotline_start_facts` (delivered when its transaction commits; one per transaction and table).
CREATE FUNCTION hotline_start_facts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hotline_start_facts', TG_TABLE_NAME);
    RETURN NULL;
END $$;

CREATE TRIGGER emergencies_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON emergencies
    FOR EACH STATEMENT EXECUTE FUNCTION hotline_start_facts_changed();
CREATE TRIGGER notices_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON notices
    FOR EACH STATEMENT EXECUTE FUNCTION hotline_start_facts_changed();
CREATE TRIGGER calendar_settings_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON calendar_settings
    FOR EACH STATEMENT EXECUTE FUNCTION hotline_start_facts_changed();
CREATE TRIGGER calendar_weekly_hours_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON calendar_weekly_hours
    FOR EACH STATEMENT EXECUTE FUNCTION hotline_start_facts_changed();
CREATE TRIGGER calendar_days_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON calendar_days
    FOR EACH STATEMENT EXECUTE FUNCTION hotline_start_facts_changed();
