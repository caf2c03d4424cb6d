-- Functions of earlier releases that this one no longer has, dropped by their signatures
-- (re-creating the rest never removes an object).
drop function if exists omni_kube._abandon(bigint[], omni_kube.request_state, text);
