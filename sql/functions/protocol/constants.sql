-- The constants the SQL side and the worker share: the request kinds, HTTP methods, PATCH
-- flavours and states, and the longest a call may be meant to last. The checks in _call use these;
-- the worker compares its own with them at start (lib/queue/protocol.ts) and refuses to serve a
-- database that disagrees. Immutable and without a SET clause: inlined, and folded into the plans
-- of the statements that use it.
create or replace function omni_kube._protocol() returns jsonb
  language sql immutable parallel safe
  as $$
    select pg_catalog.jsonb_build_object(
      'kinds', pg_catalog.jsonb_build_array('api', 'watch'),
      'methods', pg_catalog.to_jsonb(pg_catalog.enum_range(null::omni_kube.http_method)),
      'patch_types', pg_catalog.jsonb_build_array('merge', 'json', 'strategic', 'apply'),
      'states', pg_catalog.to_jsonb(pg_catalog.enum_range(null::omni_kube.request_state)),
      'max_duration_seconds', 3600)
  $$;
