"""Face detector plug-ins for the worker-process tests of ``fakescope prepare`` (imported by name in the workers)."""

from __future__ import annotations

import os
import signal

import numpy as np

from fakescope.faces import Face, FaceDetector


class CentreFace(FaceDetector):
    """A face box in the middle of every frame; kills its own process on a black frame (a decoder crash)."""

    name = "centre-test"

    def __init__(self, weights=None, device="cpu") -> None:
        pass

    def detect(self, frames):
        out = []
        for f in frames:
            if np.asarray(f).mean() < 5:
                os.kill(os.getpid(), signal.SIGKILL)
            h, w = f.shape[:2]
            out.append([Face((w / 4, h / 4, 3 * w / 4, 3 * h / 4), 0.99)])
        return out


class OnlyInParent(CentreFace):
    """Cannot be made in any process but the one named by FAKESCOPE_TEST_PARENT (a worker setup failure)."""

    def __init__(self, weights=None, device="cpu") -> None:
        if os.environ.get("FAKESCOPE_TEST_PARENT") != str(os.getpid()):
            raise RuntimeError("this detector cannot start here")
