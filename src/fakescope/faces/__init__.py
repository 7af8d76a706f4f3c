"""Faces: detectors (MTCNN, dlib), boxes, tracks over a video, crops, and the one pipeline that chains them.

``fakescope prepare`` and inference both run :class:`FacePipeline`, built from a model's
:class:`~fakescope.preprocess.FaceCropConfig`.
"""

import warnings as _warnings

from fakescope.faces.boxes import batched_nms, box_iou, crop_resize, nms, shrink
from fakescope.faces.crop import align_face, crop_box, face_crop, five_point_template, margin_box
from fakescope.faces.detector import (FACE_DETECTORS, Face, FaceDetector, create_detector, list_detectors,
                                      register_detector)
from fakescope.faces.tracking import Track, link_tracks, search_again, select_faces, track_face

# importing a backend registers it
from fakescope.faces.mtcnn import MTCNN, ONet, PNet, RNet, mtcnn_weights_dir  # noqa: E402
from fakescope.faces.dlib_detector import DlibDetector  # noqa: E402
from fakescope.faces.pipeline import FaceCrop, FacePipeline, FaceResult, detector_options  # noqa: E402

__all__ = ["FACE_DETECTORS", "DlibDetector", "Face", "FaceCrop", "FaceDetector", "FacePipeline", "FaceResult", "MTCNN",
           "ONet", "PNet", "RNet", "Track", "align_face", "batched_nms", "box_iou", "create_detector", "crop_box",
           "crop_resize", "detector_options", "face_crop", "five_point_template", "link_tracks", "list_detectors",
           "margin_box", "mtcnn_weights_dir", "nms", "register_detector", "search_again", "select_faces", "shrink",
           "track_face"]


def __getattr__(name: str):
    if name == "DETECTORS":  # the face-detector registry's name until 0.1
        _warnings.warn("fakescope.faces.DETECTORS is now fakescope.faces.FACE_DETECTORS", DeprecationWarning,
                       stacklevel=2)
        return FACE_DETECTORS
    raise AttributeError(f"module 'fakescope.faces' has no attribute {name!r}")
