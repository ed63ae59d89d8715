-- The app's database role may write the audit log but never erase it.
--
-- Two roles: the owner of the tables (it runs `manage.py migrate`) and the app's role
-- (the web processes and workers connect as it). Only a table's owner (or a superuser)
-- may disable or drop the append-only trigger, and TRUNCATE is granted to no one here,
-- so the app's role can neither TRUNCATE triage_auditlog nor switch its trigger off.
--
-- Run as the owner, in the app's database, after every `migrate` (new tables need their
-- grants). Replace triage_app with the app's role. tests/test_audit_log_roles.py runs
-- this very file and checks what the app's role can and cannot do.

GRANT USAGE ON SCHEMA public TO triage_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO triage_app;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO triage_app;
REVOKE TRUNCATE ON ALL TABLES IN SCHEMA public FROM triage_app;
REVOKE UPDATE, DELETE, TRUNCATE ON triage_auditlog FROM triage_app;
