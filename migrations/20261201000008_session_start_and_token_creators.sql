-- A session's start travels with its refresh tokens, so its age is known
-- however many of its older tokens have been pruned.
SELECT set_config('icehouse.system', 'on', true);

ALTER TABLE refresh_tokens ADD COLUMN session_started_at timestamptz;
UPDATE refresh_tokens r SET session_started_at = f.started
FROM (SELECT family_id, min(created_at) AS started FROM refresh_tokens GROUP BY family_id) f
WHERE r.family_id = f.family_id;
ALTER TABLE refresh_tokens
    ALTER COLUMN session_started_at SET DEFAULT now(),
    ALTER COLUMN session_started_at SET NOT NULL;

-- An API token answers to the member who made it: one whose account is gone
-- (or that never had a creator) goes, and one goes with its creator's account.
DELETE FROM api_tokens WHERE created_by IS NULL;
ALTER TABLE api_tokens
    ALTER COLUMN created_by SET NOT NULL,
    DROP CONSTRAINT api_tokens_created_by_fkey,
    ADD CONSTRAINT api_tokens_created_by_fkey FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE CASCADE;
