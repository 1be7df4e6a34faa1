"""Vote storage through SQLAlchemy Core: SQLite by default (one file), PostgreSQL by URL.

The study's rules live in the database, not in a server process, so that any number of worker
processes (and, on PostgreSQL, any number of hosts) sharing one database keep them:

  subjects    one row per admitted subject (consent given, display accepted); `client` is a keyed
              hash of the client address (the per-client session-creation limit counts it).
  trials      every pair the server assigned to a subject, in order. Unique (subject, position)
              and (subject, scene, pair): no pair is assigned to the same subject twice; a partial
              unique index on (subject) WHERE pending: at most one pending trial per subject.
  votes       unique (trial) and (subject, scene, pair): one vote per trial, a pair judged at
              most once per subject, even by racing requests on different hosts.
  pair_queue  pairs chosen ahead by the 'active' design (a batch per scene), claimed one at a time
              with SELECT ... FOR UPDATE SKIP LOCKED, so concurrent subjects get different pairs
              without waiting for each other.

Write transactions (`transaction(engine)`): on PostgreSQL READ COMMITTED with row locks taken by
the server (`SELECT ... FOR UPDATE` on the subject or trial row); on SQLite `BEGIN IMMEDIATE`,
which takes the database's write lock up front, so read-then-write sequences are serialized across
processes instead of failing with "database is locked" (WAL journal, 30 s busy timeout). Before
that, the writers of all processes on the host queue on an advisory lock file beside the database
(flock), so they wait in the kernel's queue instead of polling SQLite's busy handler, which sleeps
up to 100 ms between tries (seconds of tail latency with several worker processes). SQLite
runs with synchronous=NORMAL: a committed vote survives any crash of the server's processes (the
WAL is written before the answer), but an operating-system crash or power loss may lose the last
commits before the next checkpoint; PostgreSQL keeps its own setting (fsync at every commit).
"""

import contextlib
import os

import sqlalchemy as sa

from jaxcomp.errors import UserError

try:
  import fcntl  # pylint: disable=g-import-not-at-top
except ImportError:  # Windows: SQLite's busy handler alone.
  fcntl = None

# Trial ids are 32-bit in every backend; larger ids in a request are refused before any query.
MAX_ID = 2 ** 31 - 1
SQLITE_BUSY_MS = 30000

metadata = sa.MetaData()

subjects = sa.Table(
    "subjects", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("user_agent", sa.Text),
    sa.Column("client", sa.String(64)),
    sa.Column("display", sa.JSON, nullable=False),
    sa.Index("subjects_by_client", "client", "created"))

trials = sa.Table(
    "trials", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subject_id", sa.String(64), sa.ForeignKey("subjects.id"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("scene", sa.String(256), nullable=False),
    sa.Column("condition_a", sa.String(256), nullable=False),
    sa.Column("condition_b", sa.String(256), nullable=False),
    sa.Column("left", sa.String(256), nullable=False),
    sa.Column("expected", sa.String(256)),
    sa.Column("served", sa.Float, nullable=False),
    sa.Column("pending", sa.Boolean, nullable=False, default=True),
    sa.UniqueConstraint("subject_id", "position"),
    sa.UniqueConstraint("subject_id", "scene", "condition_a", "condition_b"))
sa.Index("one_pending_trial_per_subject", trials.c.subject_id, unique=True,
         sqlite_where=trials.c.pending, postgresql_where=trials.c.pending)

votes = sa.Table(
    "votes", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("trial_id", sa.Integer, sa.ForeignKey("trials.id"), nullable=False, unique=True),
    sa.Column("subject_id", sa.String(64), sa.ForeignKey("subjects.id"), nullable=False),
    sa.Column("scene", sa.String(256), nullable=False),
    sa.Column("condition_a", sa.String(256), nullable=False),
    sa.Column("condition_b", sa.String(256), nullable=False),
    sa.Column("chosen", sa.String(256), nullable=False),
    sa.Column("side", sa.String(8), nullable=False),
    sa.Column("response_ms", sa.Float, nullable=False),
    sa.Column("server_ms", sa.Float, nullable=False),
    sa.Column("display", sa.JSON, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.UniqueConstraint("subject_id", "scene", "condition_a", "condition_b"),
    sa.Index("votes_by_scene", "scene"))

pair_queue = sa.Table(
    "pair_queue", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("scene", sa.String(256), nullable=False, index=True),
    sa.Column("condition_a", sa.String(256), nullable=False),
    sa.Column("condition_b", sa.String(256), nullable=False),
    sa.Column("created", sa.Float, nullable=False))


def _sqlite_setup(engine):
  """SQLite: WAL, a busy timeout, foreign keys, and transactions begun by us (see `write`)."""

  @sa.event.listens_for(engine, "connect")
  def _connect(dbapi_connection, _):
    dbapi_connection.isolation_level = None  # pysqlite must not BEGIN on its own.
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL: a commit survives a killed process.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()

  @sa.event.listens_for(engine, "begin")
  def _begin(conn):
    immediate = conn.get_execution_options().get("jaxcomp_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def open_engine(url):
  """Engine for `url` without touching the schema (what each server worker process opens)."""
  try:
    engine = sa.create_engine(url, pool_pre_ping=True)
  except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ModuleNotFoundError) as e:
    raise UserError(f"--db {url}: {type(e).__name__}: {e}".splitlines()[0]) from None
  if engine.dialect.name == "sqlite":
    _sqlite_setup(engine)
  return engine


def connect(url):
  """Engine for `url` ('sqlite:///votes.db', 'postgresql+psycopg://...') with the tables made.

  Raises UserError if the database cannot be reached or was made by an older jaxcomp (its tables
  lack the columns the consistency rules need).
  """
  engine = open_engine(url)
  try:
    metadata.create_all(engine)
    columns = {c["name"] for c in sa.inspect(engine).get_columns("trials")}
    client = {c["name"] for c in sa.inspect(engine).get_columns("subjects")}
  except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.DatabaseError) as e:
    engine.dispose()
    raise UserError(f"--db {url}: {type(e).__name__}: {e}".splitlines()[0]) from None
  if "pending" not in columns or "client" not in client:
    engine.dispose()
    raise UserError(f"--db {url}: tables made by an older jaxcomp (no trials.pending or "
                    "subjects.client); export the votes and start a new database")
  return engine


@contextlib.contextmanager
def transaction(engine):
  """`with transaction(engine) as conn:` a write transaction, committed at the end of the block.

  SQLite: the host's writers queue on `<database>-writer.lock` (flock; POSIX), then
  `BEGIN IMMEDIATE` takes SQLite's write lock. PostgreSQL: an ordinary transaction (the callers
  lock the rows they change).
  """
  writer = engine.execution_options(jaxcomp_write=True)
  path = _writer_lock(engine)
  if path is None:
    with writer.begin() as conn:
      yield conn
    return
  try:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
  except OSError:  # No lock file possible: SQLite itself reports what is wrong.
    with writer.begin() as conn:
      yield conn
    return
  try:
    fcntl.flock(fd, fcntl.LOCK_EX)
    with writer.begin() as conn:
      yield conn
  finally:
    os.close(fd)  # Releases the lock.


def _writer_lock(engine):
  """The lock file of a file-backed SQLite database (None otherwise or without flock)."""
  if engine.dialect.name != "sqlite" or fcntl is None:
    return None
  database = engine.url.database
  if not database or database == ":memory:" or database.startswith("file:"):
    return None
  return database + "-writer.lock"


def lock_rows(query, conn):
  """`query` with FOR UPDATE on PostgreSQL (SQLite: the IMMEDIATE transaction already locks)."""
  return query.with_for_update() if conn.dialect.name == "postgresql" else query
