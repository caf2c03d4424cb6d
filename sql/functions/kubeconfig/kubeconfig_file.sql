-- A file named in a kubeconfig, read on the server. Relative paths are relative to the kubeconfig's
-- directory (as kubectl reads them); a kubeconfig given as jsonb or json has none (base_dir NULL).
create or replace function omni_kube._kubeconfig_file(path text, base_dir text, field text, what text)
  returns text
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if left(path, 1) <> '/' then
    if base_dir is null then
      raise exception 'omni_kube: % of % is a relative path, "%"', field, what, path
        using errcode = '22023',
          hint = 'A kubeconfig passed as jsonb or json has no directory to resolve it against: use an absolute path, embed the data (certificate-authority-data, client-certificate-data, client-key-data, token), or load the file with load_kubeconfig(filename).';
    end if;
    path := base_dir || '/' || path;
  end if;
  return omni_kube._read_server_file(path, format('%s of %s', field, what));
end
$$;
revoke all on function omni_kube._kubeconfig_file(text, text, text, text) from public;
grant execute on function omni_kube._kubeconfig_file(text, text, text, text) to omni_kube;
