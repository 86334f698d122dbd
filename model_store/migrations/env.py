"""Alembic environment: the store's own engine (model_store.migrate passes its connection)."""
from alembic import context

from model_store.schema import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=True,  # SQLite changes tables by copy-and-rename
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
