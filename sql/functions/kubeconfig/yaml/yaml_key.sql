-- Whether `content` (a line without its indentation) starts a mapping entry: {key, rest} with the
-- text after the colon, else NULL.
create or replace function omni_kube._yaml_key(content text, line int) returns text[]
  language plpgsql immutable strict
  set search_path = pg_catalog, pg_temp
  as $$
declare
  q record;
  spaced text;
  colon int;
  hash int;
  key text;
begin
  if left(content, 1) in ('"', '''') then
    select * into q from omni_kube._yaml_quoted(content, line);
    if q.rest ~ '^[ \t]*:([ \t]|$)' then
      return array[q.value, substr(q.rest, strpos(q.rest, ':') + 1)];
    end if;
    return null;
  end if;
  if content ~ '^\?([ \t]|$)' then
    perform omni_kube._yaml_error(line, 'complex mapping keys (?) are not supported', '0A000');
  end if;
  if content ~ '^[\[{|>]' then
    return null;
  end if;
  spaced := translate(content, E'\t', ' ') || ' ';
  colon := strpos(spaced, ': ');
  hash := strpos(' ' || spaced, ' #'); -- the position of the '#' in spaced
  if colon = 0 or (hash > 0 and hash < colon) then
    return null;
  end if;
  key := rtrim(left(content, colon - 1), E' \t');
  if key = '' then
    perform omni_kube._yaml_error(line, 'an empty mapping key');
  end if;
  if key ~ '^[&*!]' then
    perform omni_kube._yaml_error(line, 'anchors, aliases and tags are not supported', '0A000');
  end if;
  if key ~ '^[%@`,\]}]' then
    perform omni_kube._yaml_error(line, 'a plain key cannot start with %, @, `, ",", "]" or "}"; quote it');
  end if;
  return array[key, substr(content, colon + 1)];
end
$$;
revoke all on function omni_kube._yaml_key(text, int) from public;
grant execute on function omni_kube._yaml_key(text, int) to omni_kube;
