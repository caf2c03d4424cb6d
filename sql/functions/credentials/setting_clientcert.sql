-- The client certificate from the omni_kube.clientcert and omni_kube.client_private_key settings.
create or replace function omni_kube._setting_clientcert() returns omni_kube.client_certificate
  language sql stable parallel safe
  as $$
    select case when omni_kube._setting('omni_kube.clientcert') is not null
                  or omni_kube._setting('omni_kube.client_private_key') is not null
                then row(omni_kube._setting('omni_kube.clientcert'),
                         omni_kube._setting('omni_kube.client_private_key'))::omni_kube.client_certificate
           end
  $$;
