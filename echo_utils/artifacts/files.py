"""The name of every file a run directory holds, as constants: one place to read them, one place to change them.

Folders are :class:`echo_utils.rundir.RunPaths` (``paths.data``, ``paths.registration``, ``paths.metrics``, ...);
these are the files inside them.  A module that writes or reads one of these files takes its name from here, and
a notebook writes a metrics table as ``paths.metrics / files.TABLE1_SCORES``.  The names are part of the on-disk
format: a run directory written before keeps being read, so a name changes only with a migration.

Names of the datasets' own files (CAMUS ``Info_2CH.cfg``, nnU-Net's ``dataset.json``, ...) are the data sets' and
nnU-Net's conventions, not ours, and stay with their readers.
"""

from __future__ import annotations

__all__ = [
    "SETTINGS_FILE", "LOCK_FILE", "KERNEL_LOG_SUFFIX",
    "COHORT_FILE", "COHORT_SUMMARY_FILE", "COHORT_TIMING_FILE", "SPLIT_FILE",
    "PARAMS_FILE",
    "REGISTRATION_MODEL_FILE", "REGISTRATION_CHECKPOINT_FILE", "REGISTRATION_LOG_FILE", "REGISTRATION_KEY_FILE",
    "EXPORT_MARKER", "PREPROCESS_MARKER", "TRAINING_MARKER", "TRAINING_LOG_FILE", "PREDICTION_MARKER",
    "JOB_FILE", "SUBMITTED_FILE", "DONE_FILE", "ERROR_FILE",
    "REGISTRATION_CHECK", "REGISTRATION_COMPARISON", "REGISTRATION_COMPARISON_PAIRS", "REGISTRATION_NCC",
    "REGISTRATION_EPE", "REGISTRATION_EPE_SUMMARY",
    "SIN2_LAW_DISTANCE", "PSEUDO_LABEL_SCORES", "PSEUDO_LABEL_VIDEOS", "REGISTRATION_GAIN", "REGISTRATION_LABEL_COMPARISON",
    "CONFIDENCE_AUROC", "CONFIDENCE_RELIABILITY",
    "NNUNET_PLANS", "NNUNET_TRAINING_LOG", "NNUNET_CONVERGENCE", "NNUNET_TIMINGS",
    "TABLE1_SCORES", "TABLE2_INDICES", "FRAME_POSITION_ERRORS", "SMOOTHNESS", "SMOOTHNESS_EVEN_ODD", "MASKED_COMPARISON", "TEMPORAL_INCONSISTENCY", "FIG2_VIDEOS", "EVALUATION_SUMMARY",
    "METRICS_TABLES",
]  # fmt: skip

# -- the run directory itself (echo_utils.rundir) ----------------------------------------------------------------
#: the settings the run directory was made with (resolved profile, its hash, where it came from)
SETTINGS_FILE = "run.json"
#: the runner's exclusive lock (PID, host, start time, command, token)
LOCK_FILE = "run.lock"
#: logs/<notebook stem> + this: the notebook kernel's own stdout and stderr (echo_utils.run)
KERNEL_LOG_SUFFIX = ".kernel.log"

# -- data/ (echo_utils.data) -------------------------------------------------------------------------------------
#: the synthetic cohort's generation parameters; written last, it marks a complete cohort
COHORT_FILE = "cohort.json"
#: per-patient summary of a generated cohort (deterministic)
COHORT_SUMMARY_FILE = "cohort_summary.json"
#: how long the generation took (varies from run to run)
COHORT_TIMING_FILE = "cohort_timing.json"
#: the seeded patient split of a data set without official split files, with the settings it was made for
SPLIT_FILE = "split.json"

# -- a cached store's settings record (pseudo_labels/<method>/, pseudo_labels/<method>/confidence/<key>/) ------------
PARAMS_FILE = "params.json"

# -- registration/<key>/ (echo_utils.registration.train) ----------------------------------------------------------
REGISTRATION_MODEL_FILE = "model.pt"
REGISTRATION_CHECKPOINT_FILE = "checkpoint.pt"
REGISTRATION_LOG_FILE = "log.csv"
REGISTRATION_KEY_FILE = "key.json"

# -- nnunet/ (echo_utils.segmentation): our done markers beside nnU-Net's own files -------------------------------
EXPORT_MARKER = "echo_export.json"
PREPROCESS_MARKER = "echo_preprocess.json"
TRAINING_MARKER = "echo_training.json"
TRAINING_LOG_FILE = "echo_training_log.json"
PREDICTION_MARKER = "echo_predictions.json"

# -- a compute job's folder (echo_utils.compute) ---------------------------------------------------------------
JOB_FILE = "job.json"
SUBMITTED_FILE = "submitted.json"
DONE_FILE = "done.json"
ERROR_FILE = "error.txt"

# -- metrics/: the tables the notebooks write (and the report reads back) -----------------------------------------
# notebook 02
REGISTRATION_CHECK = "registration_check.csv"
REGISTRATION_COMPARISON = "registration_comparison.csv"  # the five-way comparison, one row per registration
REGISTRATION_COMPARISON_PAIRS = "registration_comparison_pairs.csv"  # its per-pair table
REGISTRATION_NCC = "registration_ncc.csv"  # DLIR vs InstanceBSpline NCC per pair
REGISTRATION_EPE = "registration_epe.csv"
REGISTRATION_EPE_SUMMARY = "registration_epe_summary.csv"
# notebook 03
SIN2_LAW_DISTANCE = "sin2_law_distance.csv"
PSEUDO_LABEL_SCORES = "pseudo_label_scores.csv"
PSEUDO_LABEL_VIDEOS = "pseudo_label_videos.csv"
REGISTRATION_GAIN = "registration_gain.csv"
REGISTRATION_LABEL_COMPARISON = "registration_label_comparison.csv"  # every registration's propagated labels
CONFIDENCE_AUROC = "pseudo_label_confidence_auroc.csv"
CONFIDENCE_RELIABILITY = "pseudo_label_confidence_reliability.csv"
# notebook 04
NNUNET_PLANS = "nnunet_plans.csv"
NNUNET_TRAINING_LOG = "nnunet_training_log.csv"
NNUNET_CONVERGENCE = "nnunet_convergence.csv"
NNUNET_TIMINGS = "nnunet_timings.csv"
# notebook 05
TABLE1_SCORES = "table1_scores.csv"
TABLE2_INDICES = "table2_indices.csv"
FRAME_POSITION_ERRORS = "frame_position_errors.csv"  # LV area error at the first frame, inside, at the last frame
SMOOTHNESS = "smoothness.csv"
SMOOTHNESS_EVEN_ODD = "smoothness_even_odd.csv"
MASKED_COMPARISON = "masked_comparison.csv"  # the confidence-masked 3D model against 3D dense
TEMPORAL_INCONSISTENCY = "temporal_inconsistency.csv"
FIG2_VIDEOS = "fig2_videos.csv"
EVALUATION_SUMMARY = "evaluation_summary.json"

#: every metrics table, in the order the notebooks write them
METRICS_TABLES = (
    REGISTRATION_CHECK, REGISTRATION_COMPARISON, REGISTRATION_COMPARISON_PAIRS, REGISTRATION_NCC, REGISTRATION_EPE, REGISTRATION_EPE_SUMMARY,
    SIN2_LAW_DISTANCE, PSEUDO_LABEL_SCORES, PSEUDO_LABEL_VIDEOS, REGISTRATION_GAIN, REGISTRATION_LABEL_COMPARISON, CONFIDENCE_AUROC,
    CONFIDENCE_RELIABILITY, NNUNET_PLANS, NNUNET_TRAINING_LOG, NNUNET_CONVERGENCE, NNUNET_TIMINGS,
    TABLE1_SCORES, TABLE2_INDICES, FRAME_POSITION_ERRORS, SMOOTHNESS, SMOOTHNESS_EVEN_ODD, MASKED_COMPARISON, TEMPORAL_INCONSISTENCY, FIG2_VIDEOS, EVALUATION_SUMMARY,
)  # fmt: skip
