"""Dataset specs of the 2D segmentation sets (declared in :mod:`gatelab.vision.registry`).

No files ship with gatelab: point ``--data-dir`` / ``$GATELAB_DATA`` at a folder holding
``isbi2012_membrane/`` and ``DRIVE/`` in the layouts below (checked against these sha256 digests).
"""

from __future__ import annotations

from gatelab.core.harness.data import DatasetSpec

from .segmentation_checksums import DRIVE_SHA256, MEMBRANE_SHA256

__all__ = ["DRIVE", "MEMBRANE"]

MEMBRANE = DatasetSpec(
    name="isbi2012-membrane",
    subdir="isbi2012_membrane",
    files=MEMBRANE_SHA256,
    source=(
        "ISBI 2012 EM segmentation challenge (Cardona et al. 2010), 30 labelled 512x512 slices as PNG "
        "from https://github.com/zhixuhao/unet (data/membrane/train/{image,label}/<k>.png, commit b45af4d); "
        "the challenge's train-volume.tif/train-labels.tif in isbi2012_membrane/ are read instead when present"
    ),
    license="ISBI 2012 challenge terms: non-commercial segmentation research, cite Cardona et al. 2010",
    description="ISBI 2012 neuronal membranes, 30 labelled EM slices (membrane = 0, cell = 255)",
    compressed=False,
)

DRIVE = DatasetSpec(
    name="drive",
    subdir="DRIVE",
    files=DRIVE_SHA256,
    source=(
        "DRIVE (Staal et al. 2004), https://drive.grand-challenge.org/ (registration): "
        "training/{images,1st_manual,mask}, test/{images,1st_manual,mask} in the original release layout"
    ),
    license="research use after registration; redistribution not permitted/unclear -- do not redistribute",
    description="DRIVE retinal vessels, 20 training + 20 test fundus images with FOV masks",
    compressed=False,
)
