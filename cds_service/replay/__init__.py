"""Silent-mode replay: what the rules would have said on a FHIR export, before go-live (``ketamine-cds replay``).

``cli`` (the command) → ``run`` (work directory, workers, resume) → ``index`` (the export on disk, by patient;
read by ``source``) → ``patient`` (which orders, as of when: ``asof``) → ``evaluate`` (the seam: the only
module that calls the service's pipeline) → ``tally`` (sums) → ``document`` / ``report`` (the outputs);
``merge`` and ``ids`` combine shards.
"""
