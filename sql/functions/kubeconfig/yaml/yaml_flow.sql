-- One flow node ([...], {...}, a quoted or plain scalar) at the start of `src`, which starts with
-- no whitespace; returns it and the text after it.
create or replace function omni_kube._yaml_flow(src text, line int, out value jsonb, out rest text)
  language plpgsql immutable strict
  set search_path = pg_catalog, pg_temp
  as $$
declare
  s text;
  key text;
  item_value jsonb;
  item_rest text;
  q record;
  plain text;
begin
  if src = '' then
    perform omni_kube._yaml_error(line, 'a flow collection is not closed');
  end if;
  case left(src, 1)
  when '[' then
    value := '[]';
    s := omni_kube._yaml_skip(substr(src, 2));
    loop
      if s = '' then
        perform omni_kube._yaml_error(line, 'a flow sequence ([...]) is not closed');
      end if;
      if left(s, 1) = ']' then
        rest := substr(s, 2);
        return;
      end if;
      select * into item_value, item_rest from omni_kube._yaml_flow(s, line);
      s := omni_kube._yaml_skip(item_rest);
      if left(s, 1) = ':' then
        perform omni_kube._yaml_error(line, 'key: value pairs inside a flow sequence are not supported', '0A000');
      end if;
      value := value || jsonb_build_array(item_value);
      if left(s, 1) = ',' then
        s := omni_kube._yaml_skip(substr(s, 2));
      elsif left(s, 1) <> ']' then
        perform omni_kube._yaml_error(line, 'expected "," or "]" in a flow sequence');
      end if;
    end loop;
  when '{' then
    value := '{}';
    s := omni_kube._yaml_skip(substr(src, 2));
    loop
      if s = '' then
        perform omni_kube._yaml_error(line, 'a flow mapping ({...}) is not closed');
      end if;
      if left(s, 1) = '}' then
        rest := substr(s, 2);
        return;
      end if;
      if left(s, 1) in ('"', '''') then
        select * into q from omni_kube._yaml_quoted(s, line);
        if q.rest is null then
          perform omni_kube._yaml_error(line, 'a quoted key is not closed');
        end if;
        key := q.value;
        s := q.rest;
      elsif left(s, 1) in ('[', '{', ']', ',', '&', '*', '!') or s ~ '^\?\s' then
        perform omni_kube._yaml_error(line, 'only scalar keys are supported in a flow mapping', '0A000');
      else
        plain := (regexp_match(s, '^(.*?)(?=:(?:[\s,\[\]{}]|$)|[,\[\]{}]|\s#|$)'))[1];
        key := btrim(omni_kube._yaml_fold(plain), E' \t\n');
        s := substr(s, length(plain) + 1);
      end if;
      if value ? key then
        perform omni_kube._yaml_error(line, 'a mapping key appears twice');
      end if;
      s := omni_kube._yaml_skip(s);
      if left(s, 1) = ':' then
        s := omni_kube._yaml_skip(substr(s, 2));
        if left(s, 1) in (',', '}') then
          item_value := null;
          item_rest := s;
        else
          select * into item_value, item_rest from omni_kube._yaml_flow(s, line);
        end if;
      else
        item_value := null; -- {a, b}: keys without values
        item_rest := s;
      end if;
      value := value || jsonb_build_object(key, item_value);
      s := omni_kube._yaml_skip(item_rest);
      if left(s, 1) = ',' then
        s := omni_kube._yaml_skip(substr(s, 2));
      elsif left(s, 1) <> '}' then
        perform omni_kube._yaml_error(line, 'expected "," or "}" in a flow mapping');
      end if;
    end loop;
  when '"', '''' then
    select * into q from omni_kube._yaml_quoted(src, line);
    if q.rest is null then
      perform omni_kube._yaml_error(line, 'a quoted string is not closed');
    end if;
    value := to_jsonb(q.value);
    rest := q.rest;
  when '&', '*', '!' then
    perform omni_kube._yaml_error(line, 'anchors, aliases and tags are not supported', '0A000');
  when ']', '}', ',', ':' then
    perform omni_kube._yaml_error(line, 'expected a value in a flow collection');
  else
    plain := (regexp_match(src, '^(.*?)(?=:(?:[\s,\[\]{}]|$)|[,\[\]{}]|\s#|$)'))[1];
    if plain = '' then
      perform omni_kube._yaml_error(line, 'expected a value in a flow collection');
    end if;
    value := omni_kube._yaml_plain(btrim(omni_kube._yaml_fold(plain), E' \t\n'));
    rest := substr(src, length(plain) + 1);
  end case;
end
$$;
revoke all on function omni_kube._yaml_flow(text, int) from public;
grant execute on function omni_kube._yaml_flow(text, int) to omni_kube;
