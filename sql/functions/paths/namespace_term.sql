-- Splits a field selector into its metadata.namespace=NAME term, if any, and the other terms.
create or replace function omni_kube._namespace_term(field_selector text, out namespace text, out rest text)
  language plpgsql immutable set search_path = pg_catalog, pg_temp
  as $$
declare
  namespace_term constant text := '^\s*metadata\.namespace\s*==?\s*([a-z0-9]([-a-z0-9]*[a-z0-9])?)\s*$';
  terms text[] := string_to_array(field_selector, ',');
  term text;
begin
  foreach term in array coalesce(terms, '{}') loop
    if term ~ namespace_term then
      namespace := substring(term from namespace_term);
      terms := array_remove(terms, term);
      exit;
    end if;
  end loop;
  rest := nullif(array_to_string(terms, ','), '');
end
$$;
