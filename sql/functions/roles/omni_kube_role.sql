-- The role that may use the bridge: grant it to whoever may call the Kubernetes API. Each
-- function's file grants what the role needs of it; this file, what it needs beyond that.
do $$
begin
  if not exists (select from pg_roles where rolname = 'omni_kube') then
    create role omni_kube nologin;
  end if;
end
$$;
grant usage on schema omni_kube to omni_kube;
grant usage on type omni_kube.http_method, omni_kube.client_certificate,
  omni_kube.request_state to public;

-- resource_views() and resource_tables() create a schema per API group, which takes CREATE on the
-- database.
do $$
begin
  execute format('grant create on database %I to omni_kube', current_database());
end
$$;
