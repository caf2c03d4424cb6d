-- Live tables' writers (omni_kube._live_writer) insert a first list without reconciling it: every
-- writer is made anew at its table's next write.
update omni_kube.live_registry set writer_target = null;
