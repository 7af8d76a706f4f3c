"""``fakescope serve``: the REST service and web page."""

from __future__ import annotations

import argparse

from fakescope.cli.options import default, echo, inference_kwargs, inference_options, set_threads


def add_serve_parser(sub) -> None:
    from fakescope.serve.app import ServeSettings as S

    s = sub.add_parser("serve", help="REST service and web page for a detector (FastAPI on uvicorn)",
                       description="Serve a detector: POST /v1/detect (multipart upload 'file': an image or a "
                                   "video) returns the record, GET /healthz, GET / is a web page. Binds "
                                   "127.0.0.1 unless told otherwise; uploads are decoded and scored in worker "
                                   "processes, each with the model loaded once. Requests must name an allowed "
                                   "host (Host header); listening on anything but loopback needs --api-key-file "
                                   "or an explicit --no-auth.")
    s.add_argument("model", nargs="?", default="default",
                   help="checkpoint folder, pretrained name, hf-hub:user/name[@revision], .onnx file, fusion folder "
                        "(fakescope fuse) or py:my_detector.py; none: 'default', the released NPR with the "
                        "watermark and provenance signals (docs/fusion.md)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--allowed-hosts", nargs="+", default=[], metavar="NAME",
                   help="host names (Host header) to answer besides 127.0.0.1, localhost, [::1] and --host; others "
                        "get a JSON 400 (a guard against DNS rebinding); '*' answers any (behind a proxy that checks)")
    s.add_argument("--api-key-file", metavar="FILE",
                   help="require the key in FILE (its first line, at least 16 characters) as 'Authorization: "
                        "Bearer KEY' on every request but GET / and GET /healthz (JSON 401 otherwise); the web page "
                        "asks for it. Needed when --host is not loopback, unless --no-auth")
    s.add_argument("--no-auth", action="store_true",
                   help="serve on a non-loopback --host without an API key (e.g. behind a proxy that authenticates)")
    s.add_argument("--max-upload-mb", type=float, **default(S, "max_upload_mb"), help="larger uploads get 413")
    s.add_argument("--workers", type=int, **default(S, "workers"),
                   help="worker processes, each scoring one upload at a time with its own copy of the model "
                        "(memory: a few hundred MB each plus the model)")
    s.add_argument("--queue", type=int, **default(S, "queue"),
                   help="requests waiting (or uploading) beyond those being scored; more get a JSON 503")
    s.add_argument("--timeout", type=float, **default(S, "timeout_s"),
                   help="seconds to read an upload (then 408), and again to score it, waiting in the queue "
                        "included (then 504: a worker still at work is killed and replaced)")
    s.add_argument("--max-connections", type=int, **default(S, "max_connections"),
                   help="open connections, idle ones included; more get a JSON 503 with Retry-After")
    s.add_argument("--header-timeout", type=float, **default(S, "header_timeout_s"),
                   help="seconds for a request's headers to arrive before the connection is closed")
    s.add_argument("--idle-timeout", type=float, **default(S, "idle_timeout_s"),
                   help="longest pause, in seconds, while an upload arrives before the connection is closed")
    s.add_argument("--max-batch", type=int, **default(S, "max_batch"),
                   help="uploads that arrive together are scored in one forward pass, at most this many (images "
                        "of a detector without a face stage; videos and face-stage models are scored one at a "
                        "time); 1 turns batching off")
    s.add_argument("--max-delay-ms", type=float, **default(S, "max_delay_ms"),
                   help="longest wait, in milliseconds, for more uploads to join a batch; waited only while "
                        "other admitted requests are still arriving, so a lone request is not held back")
    inference_options(s)
    s.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from fakescope.serve import ServeSettings, serve

    set_threads(args.threads)
    settings = ServeSettings(max_upload_mb=args.max_upload_mb, workers=args.workers, queue=args.queue,
                             timeout_s=args.timeout, max_connections=args.max_connections,
                             header_timeout_s=args.header_timeout, idle_timeout_s=args.idle_timeout,
                             max_batch=args.max_batch, max_delay_ms=args.max_delay_ms)
    settings.check()  # before the model is loaded: a bad option is a usage error, not a traceback
    serve(args.model, host=args.host, port=args.port, settings=settings, backend=args.backend, onnx=args.onnx,
          device=args.device, weights_file=args.weights_file, echo=echo, allowed_hosts=args.allowed_hosts,
          api_key_file=args.api_key_file, no_auth=args.no_auth, **inference_kwargs(args))
    return 0
