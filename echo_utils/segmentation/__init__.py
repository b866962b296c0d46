"""Segmentation with nnU-Net v2: four models (and an optional fifth) trained on arrangements of the same sequences.

The paper's claim is about *training data*, not architecture: the same self-configuring nnU-Net
{cite}`isensee2021nnunet` is trained on ED/ES frames only (``2d_sparse``), on every frame with pseudo-labels
(``2d_dense``), on whole sequences as (T, H, W) volumes with pseudo-labels (``3d_dense``, the method) and on whole
sequences labelled at ED/ES only, with nnU-Net's ignore label elsewhere (``3d_sparse``, a baseline the paper did
not run); the optional ``3d_dense_masked`` is 3D dense with its low-confidence pseudo-labelled pixels ignored.
Everything goes through nnU-Net's own Python API; this package arranges the data and the run directory. Its
functions take plain arguments: sequences and label arrays, folders, the profile's ``nnunet`` section, or an
:class:`~echo_utils.segmentation.env.NnUNetRun` (that section with the run's nnU-Net and prediction folders), never
the whole profile: :func:`echo_utils.study.stages.nnunet_run` translates a study at the edge.

==================  ===================================================================================
module              concept
==================  ===================================================================================
``env``             ``NnUNetRun`` (the nnunet section and the run's folders), model names, dataset ids, pools,
                    threads, per-model seeds
``export``          the raw datasets (``export_dataset``), patient-wise splits, frame roles
``masking``         the optional ``3d_dense_masked`` set: confidence threshold, ignored pixels
``time_padding``    optional reflect padding of the 3D volumes along time (context past ED and ES)
``plans``           fingerprint, plans, the narrow CPU configuration, preprocessing, training settings
``trainer``         ``EchoTrainer``, the ``nnUNetTrainer`` subclass nnU-Net's command line finds by name
``train``           cached, resumable, seeded training; training curves and convergence verdicts
``predict``         in-process prediction of every frame, NIfTI cache
==================  ===================================================================================

Command-line equivalents (for users of the nnU-Net CLI, after :func:`configure_nnunet` has set the variables)::

    nnUNetv2_plan_and_preprocess -d 802 -c 3d_fullres -np 2 --verify_dataset_integrity
    # two steps have no command: time is kept as the first axis (ExperimentPlanner(..., suppress_transpose=True)),
    # and small profiles add the 3d_fullres_small configuration with its "echo" settings to nnUNetPlans.json
    nnUNetv2_train 802 3d_fullres_small 0 -tr EchoTrainer -device cpu
    nnUNetv2_predict -d 802 -c 3d_fullres_small -f 0 -tr EchoTrainer -i <raw>/imagesTs -o <out> --disable_tta \\
        -device cpu

The modules that need torch and nnU-Net import them inside their functions, except ``trainer`` (imported only to
train); importing this package is cheap.
"""

from .env import (FILE_ENDING, IGNORE_LABEL, LABEL_VALUES, MODELS, PLANS, SPECS, TRAINER, ModelSpec, NnUNetError,
                  NnUNetRun, configuration_name, configure_nnunet, dataset_id, dataset_name, model_seed)
from .export import (dataset_masking, dataset_time_padding, dataset_time_spacing, datasets_table, dense_pseudo_labels,
                     export_dataset, frame_roles, make_splits, verify_dataset, volume_time_spacing)
from .plans import (REFERENCE_VOLUMES, epoch_budgets, model_budget, plan_and_preprocess, plan_stages, plans_table,
                    reference_plan, small_configuration, stage_table, training_settings)
from . import masking, time_padding
from .predict import load_prediction, load_predictor, predict_all, predict_sequence, prediction_path
from .train import convergence, train_model, training_log

__all__ = [
    "MODELS", "LABEL_VALUES", "IGNORE_LABEL", "PLANS", "TRAINER", "FILE_ENDING", "SPECS", "ModelSpec", "NnUNetError",
    "NnUNetRun",
    "configure_nnunet", "dataset_id", "dataset_name", "configuration_name", "model_seed",
    "export_dataset", "datasets_table", "dense_pseudo_labels", "frame_roles", "make_splits", "verify_dataset",
    "volume_time_spacing", "dataset_time_spacing", "dataset_time_padding", "dataset_masking", "masking",
    "time_padding",
    "plan_and_preprocess", "plans_table", "small_configuration", "training_settings", "model_budget", "epoch_budgets",
    "reference_plan", "stage_table", "plan_stages", "REFERENCE_VOLUMES",
    "train_model", "training_log", "convergence",
    "load_predictor", "predict_sequence", "predict_all", "prediction_path", "load_prediction",
]  # fmt: skip
