"""Make the audit log append-only in the database itself: UPDATE and DELETE on it raise.

The model refuses updates and deletes too; the triggers close the paths that bypass the ORM
(raw SQL, admin bulk actions, a cascading delete). TRUNCATE is left to the table's owner: Django's
test flush needs it, and whoever owns the table can drop a trigger anyway; the hash chain is what
makes such a change visible (verify_audit)."""
from django.db import migrations

POSTGRES_UP = """
CREATE OR REPLACE FUNCTION chaosplane_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER tenants_auditentry_append_only
    BEFORE UPDATE OR DELETE ON tenants_auditentry
    FOR EACH ROW EXECUTE FUNCTION chaosplane_audit_append_only();
"""
POSTGRES_DOWN = """
DROP TRIGGER IF EXISTS tenants_auditentry_append_only ON tenants_auditentry;
DROP FUNCTION IF EXISTS chaosplane_audit_append_only();
"""
SQLITE_UP = [
    """CREATE TRIGGER tenants_auditentry_no_update BEFORE UPDATE ON tenants_auditentry
       BEGIN SELECT RAISE(ABORT, 'audit entries are append-only (UPDATE refused)'); END;""",
    """CREATE TRIGGER tenants_auditentry_no_delete BEFORE DELETE ON tenants_auditentry
       BEGIN SELECT RAISE(ABORT, 'audit entries are append-only (DELETE refused)'); END;""",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS tenants_auditentry_no_update;",
    "DROP TRIGGER IF EXISTS tenants_auditentry_no_delete;",
]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_UP, params=None)
    elif schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_UP:
            schema_editor.execute(statement)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_DOWN, params=None)
    elif schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_DOWN:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
