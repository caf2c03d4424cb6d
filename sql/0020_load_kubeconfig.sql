-- omni_kube.load_kubeconfig(): sets the omni_kube.* settings that api() and watch() default to from
-- a kubeconfig context, as Omnigres' omni_kube does. These functions run as their caller: reading
-- a file needs the caller's own right to read server files. Messages name contexts, clusters, users,
-- fields and paths, never a value that could be a credential.

-- A server file's text. pg_read_file for superusers (and roles granted it); for members of
-- pg_read_server_files, whom PostgreSQL lets read files with COPY but not with pg_read_file unless
-- also granted it, COPY into a temporary table.
create function omni_kube._read_server_file(path text, what text) returns text
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  content text;
begin
  begin
    if has_function_privilege('pg_catalog.pg_read_file(text)', 'EXECUTE') then
      return pg_read_file(path);
    end if;
    if not pg_has_role('pg_read_server_files', 'USAGE') then
      raise insufficient_privilege;
    end if;
    -- CSV with delimiter and quote bytes no text file holds: one row per line, nothing unescaped.
    -- (Whether the last line ended with a line break is lost, which matters to none of the
    -- files read here.)
    create temporary table omni_kube_file_lines (n bigint generated always as identity, line text);
    execute format('copy pg_temp.omni_kube_file_lines (line) from %L with (format csv, delimiter %L, quote %L, encoding %L)',
                   path, E'\x01', E'\x02', getdatabaseencoding());
    select string_agg(coalesce(line, ''), E'\n' order by n) into content
      from pg_temp.omni_kube_file_lines;
    drop table pg_temp.omni_kube_file_lines;
    return coalesce(content, '');
  exception
    -- (Errors about a file's content would quote it: only the path and the OS error are passed on.)
    when insufficient_privilege then
      raise exception 'omni_kube: permission denied to read "%" (%)', path, what
        using errcode = '42501',
          hint = 'Reading files on the database server needs superuser or membership in pg_read_server_files (grant pg_read_server_files to ...). Without it, pass the kubeconfig as jsonb or json with the certificates and token embedded (certificate-authority-data, client-certificate-data, client-key-data, token).';
    when undefined_file then
      raise exception 'omni_kube: "%" (%) does not exist', path, what
        using errcode = '58P01', hint = 'Paths are read on the database server, as its operating-system user.';
    when read_only_sql_transaction then
      raise exception 'omni_kube: cannot read "%" (%) in a read-only transaction', path, what
        using errcode = '25006',
          hint = 'Members of pg_read_server_files read files with COPY into a temporary table, which a read-only transaction does not allow. Call it in a read-write transaction, or grant execute on function pg_read_file(text) to the role.';
    when others then
      -- Data exceptions (class 22) can quote bytes of the file; the rest name only the path.
      if left(sqlstate, 2) = '22' then
        raise exception 'omni_kube: cannot read "%" (%): it is not text in the database encoding', path, what
          using errcode = sqlstate;
      end if;
      raise exception 'omni_kube: cannot read "%" (%)', path, what
        using errcode = sqlstate, detail = sqlerrm;
  end;
end
$$;

-- A string field of a kubeconfig entry; NULL when absent, null or ''.
create function omni_kube._kubeconfig_string(entry jsonb, field text, what text) returns text
  language plpgsql immutable
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if entry -> field is null or jsonb_typeof(entry -> field) = 'null' then
    return null;
  end if;
  if jsonb_typeof(entry -> field) <> 'string' then
    raise exception 'omni_kube: % of % must be a string', field, what
      using errcode = '22023', hint = 'Quote the value in the YAML.';
  end if;
  return nullif(entry ->> field, '');
end
$$;

-- A file named in a kubeconfig, read on the server. Relative paths are relative to the kubeconfig's
-- directory (as kubectl reads them); a kubeconfig given as jsonb or json has none (base_dir NULL).
create function omni_kube._kubeconfig_file(path text, base_dir text, field text, what text)
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

-- PEM text from field-data (base64) or field (a file), data first as client-go does; NULL if neither.
create function omni_kube._kubeconfig_pem(entry jsonb, field text, base_dir text, what text)
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

-- The entry named `name` in the kubeconfig list `list` (contexts, clusters, users).
create function omni_kube._kubeconfig_entry(config jsonb, list text, kind text, name text)
  returns jsonb
  language plpgsql immutable
  set search_path = pg_catalog, pg_temp
  as $$
declare
  entries constant jsonb := case when jsonb_typeof(config -> list) = 'array' then config -> list
                                 else '[]' end;
  entry jsonb;
  names text;
begin
  select e into entry from jsonb_array_elements(entries) e
   where jsonb_typeof(e) = 'object' and e ->> 'name' = name limit 1;
  if entry is null then
    select string_agg(format('"%s"', e ->> 'name'), ', ' order by ordinality) into names
      from jsonb_array_elements(entries) with ordinality as x(e, ordinality)
     where jsonb_typeof(e) = 'object' and e ->> 'name' is not null;
    raise exception 'omni_kube: the kubeconfig has no % named "%"', kind, name
      using errcode = '42704',
        detail = case when names is null then format('It has no %s.', list)
                      else format('Its %s: %s.', list, names) end;
  end if;
  return case when jsonb_typeof(entry -> kind) = 'object' then entry -> kind else '{}' end;
end
$$;

-- The work of load_kubeconfig: checks the context, reads what it names, then sets every setting.
create function omni_kube._load_kubeconfig(config jsonb, context text, local boolean,
                                           base_dir text)
  returns text
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  context_name text := coalesce(context, nullif(config ->> 'current-context', ''));
  ctx jsonb;
  cluster_name text;
  user_name text;
  cluster jsonb;
  kube_user jsonb := '{}';
  cluster_what text;
  user_what text;
  insecure jsonb;
  server text;
  cacert text;
  certificate text;
  private_key text;
  token text;
  token_file text;
begin
  if config is null or jsonb_typeof(config) <> 'object' then
    raise exception 'omni_kube: a kubeconfig must be a mapping (JSON object)' using errcode = '22023';
  end if;
  if context_name is null then
    raise exception 'omni_kube: the kubeconfig has no current-context'
      using errcode = '22023', hint = 'Name the context: load_kubeconfig(..., context => ''NAME'').';
  end if;
  ctx := omni_kube._kubeconfig_entry(config, 'contexts', 'context', context_name);
  cluster_name := omni_kube._kubeconfig_string(ctx, 'cluster', format('context "%s"', context_name));
  if cluster_name is null then
    raise exception 'omni_kube: context "%" names no cluster', context_name using errcode = '22023';
  end if;
  cluster := omni_kube._kubeconfig_entry(config, 'clusters', 'cluster', cluster_name);
  cluster_what := format('cluster "%s"', cluster_name);
  user_name := omni_kube._kubeconfig_string(ctx, 'user', format('context "%s"', context_name));
  if user_name is not null then
    kube_user := omni_kube._kubeconfig_entry(config, 'users', 'user', user_name);
  end if;
  user_what := format('user "%s"', user_name);

  -- What the worker cannot do is refused rather than ignored: ignoring would send the calls
  -- unauthenticated, as someone else, or past a check the kubeconfig asked for.
  if nullif(kube_user ->> 'exec', '') is not null
     or nullif(kube_user ->> 'auth-provider', '') is not null then
    raise exception 'omni_kube: % authenticates through %, which the worker cannot run yet', user_what,
      case when nullif(kube_user ->> 'exec', '') is not null then 'an exec plugin'
           else format('the auth-provider "%s"', kube_user -> 'auth-provider' ->> 'name') end
      using errcode = '0A000',
        hint = 'Use a user with a token, tokenFile or client certificate, e.g. a ServiceAccount token from kubectl create token NAME.';
  end if;
  if nullif(kube_user ->> 'username', '') is not null
     or nullif(kube_user ->> 'password', '') is not null then
    raise exception 'omni_kube: % uses basic authentication (username and password), which the worker does not support', user_what
      using errcode = '0A000', hint = 'Use a user with a token, tokenFile or client certificate.';
  end if;
  if exists (select from jsonb_each(kube_user)
              where key in ('as', 'as-uid', 'as-groups', 'as-user-extra')
                and value not in ('null', '""', '[]', '{}')) then
    raise exception 'omni_kube: % impersonates another user (as, as-groups, ...), which the worker does not support', user_what
      using errcode = '0A000', hint = 'Use a user that authenticates as the identity the calls should have.';
  end if;
  insecure := cluster -> 'insecure-skip-tls-verify';
  if insecure is not null and insecure not in ('false', 'null')
     and not (jsonb_typeof(insecure) = 'string' and lower(insecure #>> '{}') in ('false', 'no', 'off', '')) then
    raise exception 'omni_kube: % turns TLS verification off (insecure-skip-tls-verify), which this bridge never does', cluster_what
      using errcode = '0A000',
        hint = 'Give the cluster''s CA instead, as certificate-authority or certificate-authority-data.';
  end if;
  if omni_kube._kubeconfig_string(cluster, 'tls-server-name', cluster_what) is not null
     or omni_kube._kubeconfig_string(cluster, 'proxy-url', cluster_what) is not null then
    raise exception 'omni_kube: % sets %, which the worker does not support', cluster_what,
      case when nullif(cluster ->> 'proxy-url', '') is not null then 'proxy-url'
           else 'tls-server-name' end
      using errcode = '0A000';
  end if;

  server := omni_kube._kubeconfig_string(cluster, 'server', cluster_what);
  if server is null then
    raise exception 'omni_kube: % has no server', cluster_what using errcode = '22023';
  end if;
  -- As api() requires: only https://host[:port], so that credentials never travel in clear text.
  if server !~ '^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$'
     and server !~ '^https://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?/?$' then
    raise exception 'omni_kube: the server of % must be https://host[:port]%', cluster_what,
      -- (A URL with user information could hold a password.)
      case when server ~ '@' then '' else format(', not "%s"', server) end
      using errcode = '22023';
  end if;

  cacert := omni_kube._kubeconfig_pem(cluster, 'certificate-authority', base_dir, cluster_what);
  certificate := omni_kube._kubeconfig_pem(kube_user, 'client-certificate', base_dir, user_what);
  private_key := omni_kube._kubeconfig_pem(kube_user, 'client-key', base_dir, user_what);
  if (certificate is null) <> (private_key is null) then
    raise exception 'omni_kube: % has a client % without its %', user_what,
      case when certificate is null then 'key' else 'certificate' end,
      case when certificate is null then 'certificate' else 'key' end
      using errcode = '22023';
  end if;
  -- token before tokenFile, as client-go.
  token := omni_kube._kubeconfig_string(kube_user, 'token', user_what);
  token_file := omni_kube._kubeconfig_string(kube_user, 'tokenFile', user_what);
  if token is null and token_file is not null then
    token := nullif(btrim(omni_kube._kubeconfig_file(token_file, base_dir, 'tokenFile', user_what),
                          E' \t\r\n'), '');
  end if;

  -- Every setting, so that nothing of a previously loaded context lingers ('' reads as unset).
  perform set_config('omni_kube.server', server, local),
          set_config('omni_kube.cacert', coalesce(cacert, ''), local),
          set_config('omni_kube.clientcert', coalesce(certificate, ''), local),
          set_config('omni_kube.client_private_key', coalesce(private_key, ''), local),
          set_config('omni_kube.token', coalesce(token, ''), local);
  return context_name;
end
$$;

create function omni_kube.load_kubeconfig(config jsonb, context text default null,
                                          local boolean default false)
  returns text
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$ select omni_kube._load_kubeconfig(config, context, coalesce(local, false), null) $$;

create function omni_kube.load_kubeconfig(config json, context text default null,
                                          local boolean default false)
  returns text
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$ select omni_kube._load_kubeconfig(config::jsonb, context, coalesce(local, false), null) $$;

create function omni_kube.load_kubeconfig(filename text, context text default null,
                                          local boolean default false)
  returns text
  language plpgsql volatile
  set search_path = pg_catalog, pg_temp
  as $$
declare
  config jsonb;
  hint text;
begin
  if filename is null or filename = '' then
    raise exception 'omni_kube: load_kubeconfig needs a file name' using errcode = '22004';
  end if;
  -- A kubeconfig's content passed as text would otherwise end up, secrets and all, in the
  -- "file does not exist" message.
  if filename ~ '[\n\r]' or left(ltrim(filename), 1) in ('{', '[') or length(filename) > 4096 then
    raise exception 'omni_kube: load_kubeconfig(text) takes the name of a file on the database server, and this is not one'
      using errcode = '22023',
        hint = 'To pass a kubeconfig''s content, cast it: load_kubeconfig(''{...}''::jsonb), or load_kubeconfig(omni_kube._yaml_to_jsonb(yaml_text)) for YAML.';
  end if;
  begin
    config := omni_kube._yaml_to_jsonb(omni_kube._read_server_file(filename, 'the kubeconfig'));
  exception when sqlstate '22P02' or sqlstate '0A000' then
    -- The YAML reader's errors give a line: say of which file.
    get stacked diagnostics hint = pg_exception_hint;
    if hint = '' then
      raise exception '% (in the kubeconfig "%")', sqlerrm, filename using errcode = sqlstate;
    end if;
    raise exception '% (in the kubeconfig "%")', sqlerrm, filename using errcode = sqlstate, hint = hint;
  end;
  return omni_kube._load_kubeconfig(config, context, coalesce(local, false),
                                    coalesce(substring(filename from '^(.*)/[^/]*$'), '.'));
end
$$;

revoke all on function omni_kube._read_server_file(text, text),
  omni_kube._kubeconfig_string(jsonb, text, text), omni_kube._kubeconfig_file(text, text, text, text),
  omni_kube._kubeconfig_pem(jsonb, text, text, text),
  omni_kube._kubeconfig_entry(jsonb, text, text, text),
  omni_kube._load_kubeconfig(jsonb, text, boolean, text),
  omni_kube.load_kubeconfig(jsonb, text, boolean), omni_kube.load_kubeconfig(json, text, boolean),
  omni_kube.load_kubeconfig(text, text, boolean) from public;
grant execute on function omni_kube._read_server_file(text, text),
  omni_kube._kubeconfig_string(jsonb, text, text), omni_kube._kubeconfig_file(text, text, text, text),
  omni_kube._kubeconfig_pem(jsonb, text, text, text),
  omni_kube._kubeconfig_entry(jsonb, text, text, text),
  omni_kube._load_kubeconfig(jsonb, text, boolean, text),
  omni_kube.load_kubeconfig(jsonb, text, boolean), omni_kube.load_kubeconfig(json, text, boolean),
  omni_kube.load_kubeconfig(text, text, boolean) to omni_kube;
