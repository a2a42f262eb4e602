-- Publish compares only what changed since the last publish.
--
-- ops.curated_pending: the records (entity, record_key) whose staging row or quarantine
-- changed since the last publish; the next publish synchronises curated for those keys
-- only and consumes the rows. The stage step adds the keys it upserts or re-points at
-- another employee; the triggers below add a record whose quarantine changes, whoever
-- changes it (a quality rule, the ingest rejecting a copy, a write-back check).
--
-- ops.curated_full_sync: entities whose next publish compares every row instead (a
-- snapshot entity, a stage too large for keys to pay, a new entity, a full rebuild asked
-- for); entity '*' stands for every entity. A migration marks '*' (trigger on
-- ops.schema_migrations), this one included.
CREATE TABLE IF NOT EXISTS ops.curated_pending (
    entity     text NOT NULL,
    record_key text NOT NULL,
    PRIMARY KEY (entity, record_key)
);

CREATE TABLE IF NOT EXISTS ops.curated_full_sync (
    entity    text PRIMARY KEY,
    reason    text NOT NULL,
    marked_at timestamptz NOT NULL DEFAULT now()
);

-- DO UPDATE, not DO NOTHING: it locks a pending row that is already there, so a publish
-- taking that row waits for this transaction and then reads the quarantine it committed
-- (an ingest opens `<entity>.ingest_rejected` errors outside the transform's lock).
CREATE OR REPLACE FUNCTION ops.note_quarantine_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ops.curated_pending (entity, record_key)
    VALUES (NEW.entity, NEW.record_key)
    ON CONFLICT (entity, record_key) DO UPDATE SET record_key = EXCLUDED.record_key;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS exceptions_quarantine_opened ON ops.exceptions;
CREATE TRIGGER exceptions_quarantine_opened
    AFTER INSERT ON ops.exceptions FOR EACH ROW
    WHEN (NEW.status = 'open' AND NEW.severity = 'error')
    EXECUTE FUNCTION ops.note_quarantine_change();

DROP TRIGGER IF EXISTS exceptions_quarantine_changed ON ops.exceptions;
CREATE TRIGGER exceptions_quarantine_changed
    AFTER UPDATE OF status, severity ON ops.exceptions FOR EACH ROW
    WHEN ((OLD.status = 'open' AND OLD.severity = 'error')
          IS DISTINCT FROM (NEW.status = 'open' AND NEW.severity = 'error'))
    EXECUTE FUNCTION ops.note_quarantine_change();

CREATE OR REPLACE FUNCTION ops.mark_full_sync_after_migration() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ops.curated_full_sync (entity, reason)
    VALUES ('*', 'migration ' || NEW.version)
    ON CONFLICT (entity) DO UPDATE SET reason = EXCLUDED.reason, marked_at = now();
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS schema_migrations_full_sync ON ops.schema_migrations;
CREATE TRIGGER schema_migrations_full_sync
    AFTER INSERT ON ops.schema_migrations FOR EACH ROW
    EXECUTE FUNCTION ops.mark_full_sync_after_migration();

-- GX validates the records changed since the last publish (scope 'changed': the keys in
-- ops.curated_pending) and the whole staging table (scope 'table') when the entity is
-- marked for a full comparison or its suite had no whole-table validation for a week.
-- element_count and unexpected_count are over the scope; sql_failing_count (the SQL
-- rule's failing records) is always over the whole table.
ALTER TABLE ops.quality_results
    ADD COLUMN IF NOT EXISTS scope text NOT NULL DEFAULT 'table'
        CHECK (scope IN ('table', 'changed'));
