"""Each version engine's precision: float32, or int8 when its quantized network served.

Decisions recorded before this revision were all float32.

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('version_engines') as batch:
        batch.add_column(sa.Column('precision', sa.String(length=8), nullable=False, server_default='float32'))


def downgrade() -> None:
    with op.batch_alter_table('version_engines') as batch:
        batch.drop_column('precision')
