-- analytics: issuing and decomposing business targets is head office's (ADMIN) and,
-- inside their subtree, the supervisors' who split their org's target to sub-orgs and
-- RMs.
UPDATE role SET permissions = array_append(permissions, 'analytics.targets')
WHERE code IN ('ADMIN', 'RM_SUPERVISOR') AND NOT ('analytics.targets' = ANY (permissions));
