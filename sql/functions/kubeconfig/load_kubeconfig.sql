-- omni_kube.load_kubeconfig(): sets the omni_kube.* settings that api() and watch() default to from
-- a kubeconfig context, as Omnigres' omni_kube does. These functions run as their caller: reading
-- a file needs the caller's own right to read server files. Messages name contexts, clusters, users,
-- fields and paths, never a value that could be a credential.

-- The work of load_kubeconfig: checks the context, reads what it names, then sets every setting.
create or replace function omni_kube._load_kubeconfig(config jsonb, context text, local boolean,
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

create or replace function omni_kube.load_kubeconfig(config jsonb, context text default null,
                                          local boolean default false)
  returns text
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$ select omni_kube._load_kubeconfig(config, context, coalesce(local, false), null) $$;

create or replace function omni_kube.load_kubeconfig(config json, context text default null,
                                          local boolean default false)
  returns text
  language sql volatile
  set search_path = pg_catalog, pg_temp
  as $$ select omni_kube._load_kubeconfig(config::jsonb, context, coalesce(local, false), null) $$;

create or replace function omni_kube.load_kubeconfig(filename text, context text default null,
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
revoke all on function omni_kube._load_kubeconfig(jsonb, text, boolean, text) from public;
revoke all on function omni_kube.load_kubeconfig(jsonb, text, boolean) from public;
revoke all on function omni_kube.load_kubeconfig(json, text, boolean) from public;
revoke all on function omni_kube.load_kubeconfig(text, text, boolean) from public;
grant execute on function omni_kube._load_kubeconfig(jsonb, text, boolean, text) to omni_kube;
grant execute on function omni_kube.load_kubeconfig(jsonb, text, boolean) to omni_kube;
grant execute on function omni_kube.load_kubeconfig(json, text, boolean) to omni_kube;
grant execute on function omni_kube.load_kubeconfig(text, text, boolean) to omni_kube;
