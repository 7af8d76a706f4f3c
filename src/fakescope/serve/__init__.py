"""``fakescope serve``: the REST service and web page (needs the ``serve`` extra: FastAPI, uvicorn).

>>> from fakescope import Detector
>>> from fakescope.serve import ServeSettings, create_app
>>> app = create_app(Detector.from_pretrained("runs/quickstart/model"), ServeSettings(max_upload_mb=20))

FastAPI is imported only when an app is created, so importing this package costs nothing.
"""

from fakescope.serve.app import Gate, ServeSettings, create_app, serve
from fakescope.serve.uploads import MediaError, sniff

__all__ = ["Gate", "MediaError", "ServeSettings", "create_app", "serve", "sniff"]
