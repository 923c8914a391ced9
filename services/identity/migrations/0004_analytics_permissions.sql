-- analytics: reading customer value (levels, AUM) follows customer.read's holders;
-- defining level rules is an administrator's; feeding facts is a source system's.
UPDATE role SET permissions = array_append(permissions, 'analytics.read')
WHERE code IN ('ADMIN', 'RM', 'RM_SUPERVISOR', 'MARKETING_MANAGER', 'SERVICE_AGENT') AND NOT ('analytics.read' = ANY (permissions));
UPDATE role SET permissions = array_append(permissions, 'analytics.define')
WHERE code IN ('ADMIN') AND NOT ('analytics.define' = ANY (permissions));
UPDATE role SET permissions = array_append(permissions, 'analytics.ingest')
WHERE code IN ('ADMIN', 'SOURCE_SYSTEM') AND NOT ('analytics.ingest' = ANY (permissions));
