-- omni_kube._yaml_to_jsonb(text): the YAML that kubectl, client-go, kind, k3s and people write in
-- kubeconfigs, as jsonb. PostgreSQL has no YAML reader and plpython is not available, so this is
-- a careful subset in PL/pgSQL: block mappings and sequences, plain, single- and double-quoted
-- scalars, literal and folded block scalars, comments, one document (optionally after ---), and
-- flow collections ({}, [], {a: 1, b: [x, y]}). Anchors, aliases, tags, complex keys and several
-- documents are refused with the line number. Errors never quote the input: it holds secrets.

-- YAML (or JSON) text as jsonb; NULL for an empty document.
create or replace function omni_kube._yaml_to_jsonb(source text) returns jsonb
  language plpgsql immutable strict
  set search_path = pg_catalog, pg_temp
  as $$
declare
  lines text[];
  total int;
  n int := 1;
  raw text;
  ind int;
  content text;
  rest text;
  kv text[];
  parsed record;
  value jsonb;
  -- The open block collections, innermost last: kind ('map' or 'seq'), indentation, value so far,
  -- the key whose value comes next (maps), and whether a key or item still waits for its value.
  depth int := 0;
  kinds text[] := '{}';
  indents int[] := '{}';
  vals jsonb[] := '{}';
  keys text[] := '{}';
  awaiting boolean[] := '{}';
  root jsonb;
  has_root boolean := false;
  started boolean := false;
begin
  -- JSON is YAML; PostgreSQL's own parser reads it faster.
  begin
    return source::jsonb;
  exception when others then
    null;
  end;

  lines := string_to_array(
    replace(replace(regexp_replace(source, '^\uFEFF', ''), E'\r\n', E'\n'), E'\r', E'\n'), E'\n');
  -- The break that ends the last line starts no line of its own.
  if lines[cardinality(lines)] = '' then
    lines := lines[1 : cardinality(lines) - 1];
  end if;
  total := coalesce(cardinality(lines), 0);
  while n <= total loop
    raw := lines[n];
    if raw ~ '^[ \t]*(#.*)?$' then
      n := n + 1;
      continue;
    end if;
    if raw ~ '^ *\t' then
      perform omni_kube._yaml_error(n, 'a tab in the indentation (YAML indents with spaces)');
    end if;
    if raw ~ '^---([ \t]|$)' then
      if started then
        perform omni_kube._yaml_error(n, 'several documents in one file are not supported', '0A000');
      end if;
      if raw !~ '^---([ \t]+#.*)?[ \t]*$' then
        perform omni_kube._yaml_error(n, 'content on the --- line is not supported', '0A000');
      end if;
      started := true;
      n := n + 1;
      continue;
    end if;
    exit when raw ~ '^\.\.\.([ \t]|$)'; -- the end of the document
    if raw ~ '^%' then
      if started or raw !~ '^%YAML[ \t]' then
        perform omni_kube._yaml_error(n, 'directives other than %YAML are not supported', '0A000');
      end if;
      n := n + 1;
      continue;
    end if;
    started := true;
    ind := length(raw) - length(ltrim(raw, ' '));
    content := rtrim(substr(raw, ind + 1), E' \t');

    -- Line n may hold several nodes ("- key: value"): each pass handles one, at indentation ind.
    <<line>>
    loop
      kv := null;
      -- Close the collections this line ends; a key or item left without a value gets null.
      loop
        exit when depth = 0;
        if awaiting[depth] then
          exit when ind > indents[depth];
          -- key:\n- item: a sequence may sit at its key's indentation.
          exit when ind = indents[depth] and kinds[depth] = 'map' and content ~ '^-([ \t]|$)';
          vals[depth] := omni_kube._yaml_attach(kinds[depth], vals[depth], keys[depth], 'null');
          awaiting[depth] := false;
        end if;
        if ind < indents[depth]
           or (ind = indents[depth] and kinds[depth] = 'seq' and content !~ '^-([ \t]|$)'
               and depth > 1 and kinds[depth - 1] = 'map' and indents[depth - 1] = ind) then
          value := vals[depth];
          depth := depth - 1;
          if depth = 0 then
            root := value;
            has_root := true;
          else
            vals[depth] := omni_kube._yaml_attach(kinds[depth], vals[depth], keys[depth], value);
            awaiting[depth] := false;
          end if;
          continue;
        end if;
        exit;
      end loop;

      if depth = 0 and has_root then
        perform omni_kube._yaml_error(n, 'text after the end of the document''s top-level node');
      end if;
      if depth > 0 and not awaiting[depth] then
        if ind > indents[depth] then
          perform omni_kube._yaml_error(n, 'unexpected indentation');
        end if;
        if kinds[depth] = 'seq' and content !~ '^-([ \t]|$)' then
          perform omni_kube._yaml_error(n, 'expected a "- " sequence item at this indentation');
        end if;
        if kinds[depth] = 'map' and content ~ '^-([ \t]|$)' then
          perform omni_kube._yaml_error(n, 'a "- " sequence item where a mapping key was expected');
        end if;
      else
        -- A new node starts here.
        if content ~ '^-([ \t]|$)' then
          kinds[depth + 1] := 'seq';
          vals[depth + 1] := '[]';
        else
          kv := omni_kube._yaml_key(content, n);
          if kv is null then
            select * into parsed from omni_kube._yaml_value(lines, n, content,
                                            case when depth = 0 then -1 else indents[depth] end);
            if depth = 0 then
              root := parsed.value;
              has_root := true;
            else
              vals[depth] := omni_kube._yaml_attach(kinds[depth], vals[depth], keys[depth], parsed.value);
              awaiting[depth] := false;
            end if;
            n := parsed.next_line;
            exit line;
          end if;
          kinds[depth + 1] := 'map';
          vals[depth + 1] := '{}';
        end if;
        depth := depth + 1;
        indents[depth] := ind;
        keys[depth] := null;
        awaiting[depth] := false;
      end if;

      if kinds[depth] = 'seq' then
        rest := substr(content, 2);
        awaiting[depth] := true;
        if rest ~ '^[ \t]*(#.*)?$' then
          n := n + 1;
          exit line;
        end if;
        -- The item's node starts on this line, after "- ".
        ind := ind + 1 + length(rest) - length(ltrim(rest, E' \t'));
        content := ltrim(rest, E' \t');
        continue line;
      end if;

      kv := coalesce(kv, omni_kube._yaml_key(content, n));
      if kv is null then
        perform omni_kube._yaml_error(n, 'expected "key: value"');
      end if;
      if vals[depth] ? kv[1] then
        perform omni_kube._yaml_error(n, 'a mapping key appears twice');
      end if;
      keys[depth] := kv[1];
      awaiting[depth] := true;
      rest := ltrim(kv[2], E' \t');
      if rest ~ '^(#.*)?$' then
        n := n + 1;
        exit line;
      end if;
      select * into parsed from omni_kube._yaml_value(lines, n, rest, ind);
      vals[depth] := omni_kube._yaml_attach('map', vals[depth], kv[1], parsed.value);
      awaiting[depth] := false;
      n := parsed.next_line;
      exit line;
    end loop;
  end loop;

  -- After "...", only comments may follow.
  for k in n + 1 .. total loop
    if lines[k] !~ '^[ \t]*(#.*)?$' then
      perform omni_kube._yaml_error(k, 'several documents in one file are not supported', '0A000');
    end if;
  end loop;

  while depth > 0 loop
    if awaiting[depth] then
      vals[depth] := omni_kube._yaml_attach(kinds[depth], vals[depth], keys[depth], 'null');
    end if;
    value := vals[depth];
    depth := depth - 1;
    if depth = 0 then
      root := value;
    else
      vals[depth] := omni_kube._yaml_attach(kinds[depth], vals[depth], keys[depth], value);
      awaiting[depth] := false;
    end if;
  end loop;
  return root;
end
$$;

revoke all on function omni_kube._yaml_to_jsonb(text) from public;
-- load_kubeconfig runs as its caller, so its callers need these; _yaml_to_jsonb is useful on its own
-- (a kubeconfig's YAML text, read by the client, into load_kubeconfig(jsonb)).

grant execute on function omni_kube._yaml_to_jsonb(text) to omni_kube;
