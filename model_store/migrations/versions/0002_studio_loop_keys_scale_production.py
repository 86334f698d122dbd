"""What 0.2 adds to the 0.1 schema: the studio's jobs and region index, the promotion gate's
history and the scheduler lease, scoped API keys, each version's serving engine, training workers with run claims, heartbeats
and cancel flags, and production capture and monitoring.

Columns added to tables that may hold rows get a server default, so existing rows stay valid.
A schedule's last firing (last_fired_at, last_outcome) is not carried over: the gate history
starts with the first firing after the upgrade.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_used_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash')
    )
    op.create_table('scheduler_lease',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('acquired_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('workers',
    sa.Column('id', sa.String(length=255), nullable=False),
    sa.Column('hostname', sa.String(length=255), nullable=False),
    sa.Column('device', sa.String(length=32), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=False),
    sa.Column('current_run_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('version_engines',
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=2048), nullable=False),
    sa.Column('verified_on', sa.Integer(), nullable=False),
    sa.Column('image_source', sa.String(length=16), nullable=True),
    sa.Column('setting', sa.String(length=16), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['versions.id'], ),
    sa.PrimaryKeyConstraint('version_id')
    )
    op.create_table('capture_settings',
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('band_low', sa.Float(), nullable=False),
    sa.Column('band_high', sa.Float(), nullable=False),
    sa.Column('sample_rate', sa.Float(), nullable=False),
    sa.Column('max_images', sa.Integer(), nullable=False),
    sa.Column('retention_days', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.PrimaryKeyConstraint('model_id')
    )
    op.create_table('attention_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('reason', sa.String(length=1024), nullable=False),
    sa.Column('figures', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.ForeignKeyConstraint(['version_id'], ['versions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('version_id', 'day', name='uq_attention_version_day')
    )
    with op.batch_alter_table('attention_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attention_events_model_id'), ['model_id'], unique=False)

    op.create_table('monitoring_days',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('no_detection', sa.Integer(), nullable=False),
    sa.Column('top_sum', sa.Float(), nullable=False),
    sa.Column('top_counts', sa.JSON(), nullable=False),
    sa.Column('label_counts', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.ForeignKeyConstraint(['version_id'], ['versions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('version_id', 'day', name='uq_monitoring_version_day')
    )
    with op.batch_alter_table('monitoring_days', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_monitoring_days_model_id'), ['model_id'], unique=False)

    op.create_table('version_baselines',
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('images', sa.Integer(), nullable=False),
    sa.Column('profile', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['versions.id'], ),
    sa.PrimaryKeyConstraint('version_id')
    )
    op.create_table('captured_images',
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('operation', sa.String(length=8), nullable=False),
    sa.Column('correlation_id', sa.String(length=256), nullable=True),
    sa.Column('captured_at', sa.DateTime(), nullable=False),
    sa.Column('top_probability', sa.Float(), nullable=False),
    sa.Column('uncertainty', sa.Float(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reviewed_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], ),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.ForeignKeyConstraint(['version_id'], ['versions.id'], ),
    sa.PrimaryKeyConstraint('image_id')
    )
    with op.batch_alter_table('captured_images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_captured_images_captured_at'), ['captured_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_captured_images_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_captured_images_version_id'), ['version_id'], unique=False)

    op.create_table('gate_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('scheduled_for', sa.DateTime(), nullable=True),
    sa.Column('fired_at', sa.DateTime(), nullable=False),
    sa.Column('fired_by', sa.String(length=128), nullable=False),
    sa.Column('publish', sa.String(length=16), nullable=False),
    sa.Column('publish_margin', sa.Float(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.String(length=1024), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('version_id', sa.Integer(), nullable=True),
    sa.Column('new_score', sa.Float(), nullable=True),
    sa.Column('published_version_id', sa.Integer(), nullable=True),
    sa.Column('published_score', sa.Float(), nullable=True),
    sa.Column('compared_on', sa.JSON(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.ForeignKeyConstraint(['published_version_id'], ['versions.id'], ),
    sa.ForeignKeyConstraint(['run_id'], ['training_runs.id'], ),
    sa.ForeignKeyConstraint(['version_id'], ['versions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('model_id', 'scheduled_for', name='uq_gate_firing')
    )
    with op.batch_alter_table('gate_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gate_history_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_gate_history_run_id'), ['run_id'], unique=False)

    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('progress', sa.JSON(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.Column('reason', sa.String(length=2048), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('worker', sa.String(length=255), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.ForeignKeyConstraint(['run_id'], ['training_runs.id'], ),
    sa.ForeignKeyConstraint(['version_id'], ['versions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_model_id'), ['model_id'], unique=False)
        batch_op.create_index('uq_job_active_per_model', ['model_id'], unique=True, sqlite_where=sa.text("status IN ('queued', 'running')"), postgresql_where=sa.text("status IN ('queued', 'running')"))

    with op.batch_alter_table('regions', schema=None) as batch_op:
        batch_op.create_index('ix_region_image_approved', ['image_id', 'approved', 'label_id', 'probability'], unique=False)

    with op.batch_alter_table('schedules', schema=None) as batch_op:
        batch_op.add_column(sa.Column('publish', sa.String(length=16), nullable=False, server_default='never'))
        batch_op.add_column(sa.Column('publish_margin', sa.Float(), nullable=False, server_default='0'))
        batch_op.drop_column('last_fired_at')
        batch_op.drop_column('last_outcome')

    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('worker', sa.String(length=255), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('heartbeat_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('cancel_requested', sa.Boolean(), nullable=False, server_default=sa.false()))



def downgrade() -> None:
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_column('cancel_requested')
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('worker')

    with op.batch_alter_table('schedules', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_outcome', sa.VARCHAR(length=512), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('last_fired_at', sa.DATETIME(), nullable=True))
        batch_op.drop_column('publish_margin')
        batch_op.drop_column('publish')

    with op.batch_alter_table('regions', schema=None) as batch_op:
        batch_op.drop_index('ix_region_image_approved')

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('uq_job_active_per_model', sqlite_where=sa.text("status IN ('queued', 'running')"), postgresql_where=sa.text("status IN ('queued', 'running')"))
        batch_op.drop_index(batch_op.f('ix_jobs_model_id'))

    op.drop_table('jobs')
    with op.batch_alter_table('gate_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gate_history_run_id'))
        batch_op.drop_index(batch_op.f('ix_gate_history_model_id'))

    op.drop_table('gate_history')
    with op.batch_alter_table('captured_images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_captured_images_version_id'))
        batch_op.drop_index(batch_op.f('ix_captured_images_model_id'))
        batch_op.drop_index(batch_op.f('ix_captured_images_captured_at'))

    op.drop_table('captured_images')
    op.drop_table('version_baselines')
    with op.batch_alter_table('monitoring_days', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_monitoring_days_model_id'))

    op.drop_table('monitoring_days')
    with op.batch_alter_table('attention_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attention_events_model_id'))

    op.drop_table('attention_events')
    op.drop_table('capture_settings')
    op.drop_table('version_engines')
    op.drop_table('workers')
    op.drop_table('scheduler_lease')
    op.drop_table('api_keys')
