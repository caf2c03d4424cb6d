-- What members of the omni_kube role need beyond the grants next to each function: resource_views()
-- and resource_tables() create a schema per API group, which takes CREATE on the database.
do $$
begin
  execute format('grant create on database %I to omni_kube', current_database());
end
$$;
