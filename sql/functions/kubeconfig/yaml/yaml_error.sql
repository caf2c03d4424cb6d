-- Raises a YAML error at `line`: 22P02 for malformed input, 0A000 for YAML this reader does not cover.
create or replace function omni_kube._yaml_error(line int, message text, code text default '22P02')
  returns void
  language plpgsql immutable
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if code = '0A000' then
    raise exception 'omni_kube: YAML line %: %', line, message
      using errcode = code,
        hint = 'This reader covers the YAML that kubectl and client-go write. Convert the file to JSON, e.g. kubectl config view --raw -o json.';
  end if;
  raise exception 'omni_kube: YAML line %: %', line, message using errcode = code;
end
$$;
revoke all on function omni_kube._yaml_error(int, text, text) from public;
grant execute on function omni_kube._yaml_error(int, text, text) to omni_kube;
