-- The access audit trail moves into the kit's table (crm_kit.audit_entry, created by the
-- kit's migrations, which run first), shared by every service: same entries, same
-- order; the customer number becomes the entry's subject.
INSERT INTO crm_kit.audit_entry (occurred_at, actor, actor_name, action, subject, source_address, trace_id, details)
SELECT occurred_at, actor, actor_name, action, customer_number, source_address, trace_id, details
FROM access_audit
ORDER BY audit_id;

DROP TABLE access_audit;
