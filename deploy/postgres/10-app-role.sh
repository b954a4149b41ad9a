#!/bin/sh
# Run once by the postgres image when it creates the database (docker-entrypoint-initdb.d).
#
# Two roles: `policydesk` (POSTGRES_USER) owns the schema and runs only `manage.py migrate`;
# `policydesk_app` is what Daphne, Celery and beat connect as. The app role is not a superuser,
# owns no table and so cannot disable the audit log's append-only trigger or alter a table; it
# reads and writes rows only. The audit chain's HMAC key is in the app's environment, never in
# the database, so even the owner cannot rewrite an event unnoticed (docs/privacy-and-audit.md).
# Migration audit.0009 then takes DELETE and TRUNCATE on the audit log back from every role but the
# owner: the app deletes audit rows only through the owner's retention purge function
# (docs/audit-and-security.md).
set -eu
: "${POLICYDESK_APP_DB_PASSWORD:?set POLICYDESK_APP_DB_PASSWORD in policydesk.env}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v app_password="$POLICYDESK_APP_DB_PASSWORD" <<'SQL'
CREATE ROLE policydesk_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'app_password';
GRANT CONNECT ON DATABASE policydesk TO policydesk_app;
GRANT USAGE ON SCHEMA public TO policydesk_app;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- Tables and sequences the owner creates in migrations: rows only, never DDL or triggers.
ALTER DEFAULT PRIVILEGES FOR ROLE policydesk IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO policydesk_app;
ALTER DEFAULT PRIVILEGES FOR ROLE policydesk IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO policydesk_app;
SQL
