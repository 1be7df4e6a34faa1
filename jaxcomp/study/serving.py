"""Production serving of the study app: gunicorn with N worker processes sharing one database.

`serve(options)` makes the tables once (in the master process), then runs gunicorn: each worker
process loads the manifest, opens its own database engine (engines are not shared across a fork)
and builds the app (`server.create_app`); gunicorn's master restarts a worker that dies (even by
SIGKILL). Requests go to the `gthread` worker class (`threads` per process, keep-alive), gunicorn's
own access log is off: the app writes one JSON line per request to stdout (`server.access_log`,
which never holds the query string, the token or a session id) and errors to stderr.

Deployed behind a TLS reverse proxy (Caddy, nginx) on the same host, give `proxies=1` so that the
client address (the per-client session limit) is the proxy's X-Forwarded-For, not the proxy's.
"""

import dataclasses
import logging
import os
import socket
import sys

from werkzeug.middleware.proxy_fix import ProxyFix

from jaxcomp.errors import UserError
from jaxcomp.study import db, manifest, server


@dataclasses.dataclass(frozen=True)
class Options:
  """What `jaxcomp study serve` runs.

  Attributes:
    study: study folder or its study.json.
    url: SQLAlchemy database URL.
    token: experimenter token.
    host, port: where to listen.
    workers: worker processes.
    threads: threads per worker process.
    proxies: trusted reverse proxies in front (X-Forwarded-For hops to honour).
    limits: `server.Limits`.
    timeout_s: a worker silent for this long is restarted.
  """

  study: str
  url: str
  token: str
  host: str = "127.0.0.1"
  port: int = 8000
  workers: int = 2
  threads: int = 4
  proxies: int = 0
  limits: server.Limits = server.Limits()
  timeout_s: int = 30


def default_workers():
  """2 x usable cores + 1 (gunicorn's rule of thumb), at most 9."""
  return min(2 * len(os.sched_getaffinity(0)) + 1, 9)


def configure_logging():
  """The app's access log (JSON lines) to stdout, its error log to stderr."""
  for name, stream in (("jaxcomp.study.access", sys.stdout), ("jaxcomp.study.error", sys.stderr)):
    logger = logging.getLogger(name)
    if not logger.handlers:
      handler = logging.StreamHandler(stream)
      handler.setFormatter(logging.Formatter("%(message)s" if "access" in name else
                                             "[%(process)d] %(levelname)s %(message)s"))
      logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def build_app(options):
  """The WSGI app of one worker process: manifest, its own engine, proxy handling."""
  study, folder = manifest.load(options.study)
  app = server.create_app(study, folder, db.open_engine(options.url), options.token,
                          options.limits)
  if options.proxies:
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=options.proxies, x_proto=options.proxies)
  return app


def _bind(host, port):
  return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_port(host, port):
  """UserError if host:port cannot be listened on (in use, no such address)."""
  try:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
      probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
      probe.bind((host, port))
  except OSError as e:
    raise UserError(f"cannot listen on {_bind(host, port)}: {e.strerror or e}") from None


def serve(options):
  """Runs gunicorn until it is stopped (SIGTERM/SIGINT: graceful); returns its exit status."""
  try:  # gunicorn is POSIX-only (not installed on Windows, where --debug serves)
    from gunicorn.app.base import BaseApplication  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError("gunicorn is not installed (pip install gunicorn; it needs a POSIX "
                    "system), or run the development server with --debug") from None
  manifest.load(options.study)
  db.connect(options.url).dispose()  # Tables made once, before any worker starts.
  _check_port(options.host, options.port)

  class StudyApplication(BaseApplication):  # pylint: disable=abstract-method
    """gunicorn's application: settings from `options`, the app built in each worker."""

    def load_config(self):
      settings = {
          "bind": [_bind(options.host, options.port)], "workers": options.workers,
          "worker_class": "gthread", "threads": options.threads, "timeout": options.timeout_s,
          "graceful_timeout": 10, "keepalive": 5, "accesslog": None, "errorlog": "-",
          "loglevel": "info", "proc_name": "jaxcomp-study", "preload_app": False,
          "limit_request_line": 4094, "limit_request_fields": 50,
          "limit_request_field_size": 8190}
      if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25: no shared ctl file.
        settings["control_socket_disable"] = True
      for key, value in settings.items():
        self.cfg.set(key, value)

    def load(self):
      configure_logging()
      return build_app(options)

  StudyApplication().run()
  return 0
