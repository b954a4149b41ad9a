"""Deletion only through the retention purge, run as the table's owner.

Before this migration the append-only trigger let any role DELETE once it had set the custom
setting `policydesk.audit_purge`, which every role can set, the app role included: a database
login could shorten the log's tail. Now:

- the trigger lets DELETE through only for the table's owner (or a member of that role, or a
  superuser), and TRUNCATE too (the owner can switch triggers off anyway; Django's test flush
  truncates), whatever any setting says;
- every other role loses DELETE and TRUNCATE on the table;
- the purge is `audit_purge_expired_events(keep_days)`, a SECURITY DEFINER function owned by
  the owner: anyone may call it, and it deletes only a prefix of the chain whose rows are older
  than `keep_days`, which it refuses to be shorter than the retention window, which sits in `audit_retention`, a table only the owner can change
  (`manage.py migrate`, run as the owner, copies POLICYDESK_AUDIT_RETENTION_DAYS into it).

It also adds key ids (the keyring, audit/keys.py) and the page's verified head.
"""

from django.conf import settings
from django.db import migrations, models

PURGE_LOCK = 0x5EC_A0D17  # audit.services._APPEND_LOCK

# Which roles may delete: the owner of the table (or a member of it, or a superuser).
OWNER_ONLY = """
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
DECLARE
    owner_role oid := (SELECT relowner FROM pg_class WHERE oid = TG_RELID);
BEGIN
    IF TG_OP = 'TRUNCATE' AND pg_has_role(current_user, owner_role, 'MEMBER') THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' AND pg_has_role(current_user, owner_role, 'MEMBER')
            AND current_setting('policydesk.audit_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_auditevent is append-only: % rejected for role %', TG_OP, current_user
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_event_no_truncate
    BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();

CREATE TABLE audit_retention (
    id smallint PRIMARY KEY CHECK (id = 1),
    days integer NOT NULL CHECK (days >= 1)
);

CREATE FUNCTION audit_retention_owner_only() RETURNS trigger AS $$
BEGIN
    IF pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER') THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    RAISE EXCEPTION 'audit_retention is changed by the owner only: % rejected for role %',
        TG_OP, current_user USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_retention_owner_only
    BEFORE INSERT OR UPDATE OR DELETE ON audit_retention
    FOR EACH ROW EXECUTE FUNCTION audit_retention_owner_only();

CREATE FUNCTION audit_purge_expired_events(keep_days integer)
RETURNS TABLE (through_seq bigint, through_hash varchar, purged bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    window_days integer := (SELECT days FROM audit_retention WHERE id = 1);
    cutoff timestamptz;
    boundary bigint;
    last_seq bigint;
    last_hash varchar;
    deleted bigint;
BEGIN
    IF window_days IS NULL THEN
        RAISE EXCEPTION 'audit purge refused: no retention window is set (run manage.py migrate)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF keep_days IS NULL OR keep_days < window_days THEN
        RAISE EXCEPTION 'audit purge refused: % days is inside the % day retention window',
            keep_days, window_days USING ERRCODE = 'insufficient_privilege';
    END IF;
    cutoff := clock_timestamp() - make_interval(days => keep_days);
    PERFORM pg_advisory_xact_lock(%(lock)s);
    -- Only a prefix of the chain: the first event younger than the cutoff ends it.
    SELECT min(e.seq) INTO boundary FROM audit_auditevent e WHERE e.created_at >= cutoff;
    SELECT e.seq, e.hash INTO last_seq, last_hash FROM audit_auditevent e
        WHERE boundary IS NULL OR e.seq < boundary ORDER BY e.seq DESC LIMIT 1;
    IF last_seq IS NULL THEN
        RETURN;
    END IF;
    PERFORM set_config('policydesk.audit_purge', 'on', true);
    DELETE FROM audit_auditevent e WHERE e.seq <= last_seq;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    PERFORM set_config('policydesk.audit_purge', 'off', true);
    through_seq := last_seq;
    through_hash := last_hash;
    purged := deleted;
    RETURN NEXT;
END;
$$;
""".replace("%(lock)s", str(PURGE_LOCK))

# Every role but the owner loses DELETE and TRUNCATE on the log and any write to the window,
# including grants made by ALTER DEFAULT PRIVILEGES (deploy/postgres/10-app-role.sh).
REVOKE_FROM_OTHERS = """
DO $$
DECLARE
    grantee oid;
BEGIN
    FOR grantee IN
        SELECT DISTINCT a.grantee FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.oid IN ('audit_auditevent'::regclass, 'audit_retention'::regclass)
          AND a.grantee <> c.relowner AND a.grantee <> 0
    LOOP
        EXECUTE format('REVOKE DELETE, TRUNCATE ON audit_auditevent FROM %I', pg_get_userbyid(grantee));
        EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON audit_retention FROM %I',
                       pg_get_userbyid(grantee));
    END LOOP;
END;
$$;
REVOKE DELETE, TRUNCATE ON audit_auditevent FROM PUBLIC;
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON audit_retention FROM PUBLIC;
"""

UNDO = """
DROP FUNCTION IF EXISTS audit_purge_expired_events(integer);
DROP TABLE IF EXISTS audit_retention;
DROP FUNCTION IF EXISTS audit_retention_owner_only();
DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_auditevent;
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('policydesk.audit_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_auditevent is append-only: % rejected', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def set_the_retention_window(apps, schema_editor):  # type: ignore[no-untyped-def]
    schema_editor.execute(
        "INSERT INTO audit_retention (id, days) VALUES (1, %s)", [settings.AUDIT_RETENTION_DAYS]
    )


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0008_document_lifecycle_kind"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditVerifiedHead",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("through_seq", models.BigIntegerField()),
                ("through_hash", models.CharField(max_length=64)),
                ("verified_at", models.DateTimeField()),
                ("key_id", models.CharField(blank=True, default="", max_length=16)),
                ("signature", models.CharField(max_length=64)),
            ],
        ),
        migrations.AddField(
            model_name="auditcheckpoint",
            name="key_id",
            field=models.CharField(blank=True, default="", max_length=16),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="key_id",
            field=models.CharField(blank=True, default="", max_length=16),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="kind",
            field=models.CharField(
                choices=[
                    ("question", "Question"),
                    ("feedback", "Feedback"),
                    ("auditor_view", "Auditor View"),
                    ("auditor_export", "Auditor Export"),
                    ("login_lockout", "Login Lockout"),
                    ("document_access", "Document Access"),
                    ("account_sync", "Account Sync"),
                    ("account_disabled", "Account Disabled"),
                    ("api_key", "Api Key"),
                    ("document_lifecycle", "Document Lifecycle"),
                    ("key_rotation", "Key Rotation"),
                ],
                db_index=True,
                max_length=20,
            ),
        ),
        migrations.RunSQL(OWNER_ONLY, UNDO),
        migrations.RunPython(set_the_retention_window, migrations.RunPython.noop),
        migrations.RunSQL(REVOKE_FROM_OTHERS, migrations.RunSQL.noop),
    ]
