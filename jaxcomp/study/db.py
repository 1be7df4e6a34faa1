"""Vote storage through SQLAlchemy Core: SQLite by default (one file), PostgreSQL by URL.

Tables:
  subjects  one row per admitted subject (consent given, display accepted).
  trials    every pair the server assigned to a subject, in order; (subject, scene, pair) unique,
            so no pair is ever assigned to the same subject twice.
  votes     at most one per trial and per (subject, scene, pair), enforced by unique constraints,
            so a replayed vote cannot be stored even by a racing request.
"""

import sqlalchemy as sa

from jaxcomp.errors import UserError

metadata = sa.MetaData()

subjects = sa.Table(
    "subjects", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("user_agent", sa.Text),
    sa.Column("display", sa.JSON, nullable=False))

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
    sa.UniqueConstraint("subject_id", "position"),
    sa.UniqueConstraint("subject_id", "scene", "condition_a", "condition_b"))

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
    sa.UniqueConstraint("subject_id", "scene", "condition_a", "condition_b"))


def connect(url):
  """Engine for `url` ('sqlite:///votes.db', 'postgresql+psycopg://...') with the tables made."""
  try:
    engine = sa.create_engine(url)
    metadata.create_all(engine)
  except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, sa.exc.OperationalError,
          ModuleNotFoundError) as e:
    raise UserError(f"--db {url}: {type(e).__name__}: {e}".splitlines()[0]) from None
  return engine
