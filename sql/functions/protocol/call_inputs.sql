-- Checks shared by every way a call is made (_call for api() and watch(), api_async()): each
-- raises, naming what was wrong and what to give instead.

-- Whether a server a call names itself is only https://host[:port], since credentials never travel
-- in clear text and a path or user part would change where the call goes. (No SET clause, and only
-- qualified names: inlined into each call that names a server.)
create or replace function omni_kube._server_url_ok(server text) returns boolean
  language sql immutable parallel safe
  as $$
    select server operator(pg_catalog.~) '^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$'
        or server operator(pg_catalog.~) '^https://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?/?$'
  $$;

-- The same, raising when it is not. (Called only then: see _server_url_ok.)
create or replace function omni_kube._check_server_url(server text) returns void
  language plpgsql immutable
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if not omni_kube._server_url_ok(server) then
    raise exception 'omni_kube: server "%" must be https://host[:port]', server
      using errcode = '22023',
        hint = 'Give the API server''s URL without a path, e.g. https://kubernetes.default.svc or https://10.0.0.1:6443.';
  end if;
end
$$;
revoke all on function omni_kube._server_url_ok(text) from public;
revoke all on function omni_kube._check_server_url(text) from public;

-- A set omni_kube.request_timeout in milliseconds. (Strict: an unset one costs no call.)
create or replace function omni_kube._parse_request_timeout(setting text) returns int
  language plpgsql stable strict
  set search_path = pg_catalog, pg_temp
  as $$
declare
  timeout_ms int;
begin
  begin
    timeout_ms := extract(epoch from setting::interval) * 1000;
  exception when others then
    raise exception 'omni_kube.request_timeout is not an interval: %', setting
      using errcode = '22023', hint = 'Use a value such as ''30s'' or ''500ms''.';
  end;
  if timeout_ms <= 0 then
    raise exception 'omni_kube.request_timeout must be positive, got %', setting
      using errcode = '22023';
  end if;
  return timeout_ms;
end
$$;
revoke all on function omni_kube._parse_request_timeout(text) from public;

-- omni_kube.request_timeout in milliseconds (30 s when unset). (No SET clause, and only qualified
-- names: inlined into every call, where the setting is usually unset.)
create or replace function omni_kube._request_timeout_ms() returns int
  language sql stable
  as $$
    select coalesce(omni_kube._parse_request_timeout(omni_kube._setting('omni_kube.request_timeout')),
                    30000)
  $$;
revoke all on function omni_kube._request_timeout_ms() from public;

-- A set omni_kube.patch_type, if it is one of the patch types. (Strict, as above.)
create or replace function omni_kube._checked_patch_type(patch_type text) returns text
  language plpgsql immutable strict
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if not omni_kube._protocol() -> 'patch_types' ? patch_type then
    raise exception 'omni_kube.patch_type must be merge, json, strategic or apply, got %', patch_type
      using errcode = '22023';
  end if;
  return patch_type;
end
$$;
revoke all on function omni_kube._checked_patch_type(text) from public;

-- omni_kube.patch_type (NULL when unset: inferred from the body). (Inlined, as
-- _request_timeout_ms is.)
create or replace function omni_kube._patch_type() returns text
  language sql stable
  as $$ select omni_kube._checked_patch_type(omni_kube._setting('omni_kube.patch_type')) $$;
revoke all on function omni_kube._patch_type() from public;

-- Whether credentials passed inline, if any, are usable: a bearer token alone, a client certificate
-- with its key. (Inlined, as _server_url_ok is: no credentials, the usual call, cost no call.)
create or replace function omni_kube._credentials_ok(
  token text, clientcert omni_kube.client_certificate
) returns boolean
  language sql immutable parallel safe
  as $$
    select (token is null or token operator(pg_catalog.~) '^[\x21-\x7e]+$')
       and ((clientcert).certificate is null) operator(pg_catalog.=) ((clientcert).private_key is null)
  $$;

-- The same, raising when they are not. (Never quoted in a message.)
create or replace function omni_kube._check_credentials(
  token text, clientcert omni_kube.client_certificate
) returns void
  language plpgsql immutable
  set search_path = pg_catalog, pg_temp
  as $$
begin
  if not omni_kube._credentials_ok(token, null) then
    raise exception 'omni_kube: the token contains spaces, control or non-ASCII characters'
      using errcode = '22023', hint = 'Pass the bearer token alone, without "Bearer " or a newline.';
  end if;
  if not omni_kube._credentials_ok(null, clientcert) then
    raise exception 'omni_kube: a client certificate needs both its certificate and its private key'
      using errcode = '22023';
  end if;
end
$$;
revoke all on function omni_kube._credentials_ok(text, omni_kube.client_certificate) from public;
revoke all on function omni_kube._check_credentials(text, omni_kube.client_certificate) from public;
