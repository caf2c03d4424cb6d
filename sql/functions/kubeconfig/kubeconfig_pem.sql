-- PEM text from field-data (base64) or field (a file), data first as client-go does; NULL if neither.
create or replace function omni_kube._kubeconfig_pem(entry jsonb, field text, base_dir text, what text)
  returns text
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  data constant text := omni_kube._kubeconfig_string(entry, field || '-data', what);
  path constant text := omni_kube._kubeconfig_string(entry, field, what);
  pem text;
begin
  if data is not null then
    begin
      pem := convert_from(decode(data, 'base64'), 'UTF8');
    exception when others then
      -- (The decoder's message quotes the offending character.)
      raise exception 'omni_kube: %-data of % is not base64-encoded PEM', field, what
        using errcode = '22023';
    end;
  elsif path is not null then
    pem := omni_kube._kubeconfig_file(path, base_dir, field, what);
  else
    return null;
  end if;
  if pem !~ '-----BEGIN [A-Z0-9 ]+-----' then
    raise exception 'omni_kube: % of % holds no PEM block', case when data is not null then field || '-data' else field end, what
      using errcode = '22023', hint = 'Certificates and keys must be PEM (-----BEGIN ...-----).';
  end if;
  return pem;
end
$$;
revoke all on function omni_kube._kubeconfig_pem(jsonb, text, text, text) from public;
grant execute on function omni_kube._kubeconfig_pem(jsonb, text, text, text) to omni_kube;
