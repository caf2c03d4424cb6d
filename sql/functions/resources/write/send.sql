-- Sends a write to the cluster at once: the object the server answered with (NULL for a delete).
-- `cluster` NULL: the caller's settings.
create or replace function omni_kube._send(request omni_kube.resource_request, cluster text)
  returns jsonb
  language plpgsql volatile set search_path = pg_catalog, pg_temp
  as $$
begin
  if request.method = 'DELETE' then
    perform omni_kube._delete_object(request.path, cluster);
    return null;
  end if;
  return omni_kube.api(request.path, cluster => cluster, method => request.method,
                       body => request.body);
end
$$;
