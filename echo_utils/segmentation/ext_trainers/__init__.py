"""nnU-Net's external-trainer folder (``nnUNet_extTrainer``): see :mod:`echo_utils.segmentation.trainer`."""
