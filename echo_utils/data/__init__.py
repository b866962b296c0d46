"""The data: CAMUS/TED readers (:mod:`.camus`), the synthetic phantom (:mod:`.phantom`) and the study's cohort,
splits and selections (:mod:`.study`)."""
