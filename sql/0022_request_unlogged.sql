-- Requests, and the responses stored in them, are never WAL-logged. A response can carry secrets
-- (GET a Secret, a ServiceAccount token request) and a request body can too (POST a Secret): logged,
-- they would be copied into every replica, WAL archive and backup, and kept there long after the
-- request itself is purged. Unlogged, the queue's three commits per call (enqueue, claim, result)
-- write only their commit records to the WAL, and none of them waits for a WAL flush under
-- synchronous_commit = on.
-- The price: after a crash (not a clean shutdown) the table is empty. The calls in flight ended
-- with their sessions in that crash anyway; the recent history in omni_kube.requests is lost. A
-- standby cannot read it.
alter table omni_kube.request set unlogged;
