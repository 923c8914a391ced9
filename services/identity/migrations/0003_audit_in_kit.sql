-- Identity's audit trail moves into the kit's table (crm_kit.audit_entry, created by the
-- kit's migrations, which run first), shared by every service: same entries, same order.
INSERT INTO crm_kit.audit_entry (occurred_at, actor, actor_name, action, subject, source_address, details)
SELECT occurred_at, actor, actor, action, target, source_address, details
FROM identity_audit
ORDER BY audit_id;

DROP TABLE identity_audit;
