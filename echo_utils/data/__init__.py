"""The data: the sequence every reader returns (:mod:`.sequence`), the CAMUS/TED readers (:mod:`.camus`), the
synthetic phantom (:mod:`.phantom_patient`, :mod:`.phantom_motion`, :mod:`.phantom`; its cohort on disk in
:mod:`.phantom_cohort`) and the cohort's roots, splits and selections in plain arguments (:mod:`.cohort`, the
seeded split in :mod:`.split`; a study's cohort is resolved by :mod:`echo_utils.study.cohort`)."""
