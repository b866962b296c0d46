"""The folder ``nnUNet_extTrainer`` points at: nnU-Net's command line finds ``EchoTrainer`` here by name.

``nnUNetv2_train 802 3d_fullres_small 0 -tr EchoTrainer`` imports this module (nnU-Net 2.8.1,
``recursive_find_trainer_class_by_name``); the class itself lives in :mod:`echo_utils.segmentation.trainer`.
"""

from echo_utils.segmentation.trainer import EchoTrainer

__all__ = ["EchoTrainer"]
