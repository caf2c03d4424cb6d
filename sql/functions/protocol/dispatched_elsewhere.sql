-- Whether a queued request is another worker's to run: it was dispatched (_insert_requests) less
-- than a second ago, so its call may be under way before its row says so, and another session
-- holds its lock (a shared try fails; a lock this session holds itself does not conflict).
-- After that second, or once its lock is free (that worker died), any claim may take it.
-- (No SET clause, and only qualified names: inlined into the claim's statements.)
create or replace function omni_kube._dispatched_elsewhere(
  dispatched boolean, created_at timestamptz, request_id bigint, salt int4) returns boolean
  language sql volatile
  as $$
    select dispatched
       and created_at
             operator(pg_catalog.>) (pg_catalog.now() operator(pg_catalog.-) interval '1 second')
       and not (pg_catalog.pg_try_advisory_lock_shared(omni_kube._lock_class(),
                                                       omni_kube._lock_key(request_id, salt))
                and pg_catalog.pg_advisory_unlock_shared(omni_kube._lock_class(),
                                                         omni_kube._lock_key(request_id, salt)))
  $$;
revoke all on function omni_kube._dispatched_elsewhere(boolean, timestamptz, bigint, int4)
  from public;
