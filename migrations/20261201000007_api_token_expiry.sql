-- Every API token expires, and none has more rights than its creator has
-- now or outlives the creator's membership. Tokens made before these rules
-- get them here: no expiry becomes 90 days from now.
SELECT set_config('icehouse.system', 'on', true);

UPDATE api_tokens SET expires_at = now() + interval '90 days' WHERE expires_at IS NULL;
ALTER TABLE api_tokens ALTER COLUMN expires_at SET NOT NULL;

DELETE FROM api_tokens t
WHERE t.created_by IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.tenant_id = t.tenant_id AND m.user_id = t.created_by);

UPDATE api_tokens t SET role = m.role
FROM memberships m
WHERE m.tenant_id = t.tenant_id AND m.user_id = t.created_by
  AND array_position(ARRAY['viewer', 'editor', 'admin', 'owner'], t.role)
    > array_position(ARRAY['viewer', 'editor', 'admin', 'owner'], m.role);
