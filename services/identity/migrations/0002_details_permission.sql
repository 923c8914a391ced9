-- RMs maintain their customers' contacts, family, events and notes (customer-profile's
-- party details): a permission of its own, narrower than customer.write (source data).
UPDATE role SET permissions = array_append(permissions, 'customer.details.write')
WHERE code IN ('ADMIN', 'RM', 'RM_SUPERVISOR', 'SOURCE_SYSTEM') AND NOT ('customer.details.write' = ANY (permissions));
