-- What a resource of this view or table is, for messages: "v1 ConfigMap".
create or replace function omni_kube._resource_label(group_version text, kind text) returns text
  language sql immutable set search_path = pg_catalog, pg_temp
  as $$ select group_version || ' ' || kind $$;
