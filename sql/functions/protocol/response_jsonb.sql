-- A response body as jsonb: JSON when it parses, else a JSON string (pod logs, /healthz); NULL
-- when empty.
create or replace function omni_kube._response_jsonb(body text, is_json boolean) returns jsonb
  language plpgsql immutable set search_path = pg_catalog, pg_temp
  as $$
begin
  if body is null or body = '' then
    return null;
  end if;
  if is_json then
    begin
      return body::jsonb;
    exception when others then
      -- Not valid JSON after all (or not storable as jsonb, such as \u0000): keep it as text.
      return to_jsonb(body);
    end;
  end if;
  return to_jsonb(body);
end
$$;
