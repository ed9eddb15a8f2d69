"""assignments and dispute resolutions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_pk", sa.Integer(), nullable=False),
        sa.Column("mediator_id", sa.String(length=64), nullable=False),
        sa.Column("assigned_at", sa.DateTime(), nullable=False),
        sa.Column("expected_recovery", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("policy_version", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["case_pk"], ["cases.id"], name=op.f("fk_assignments_case_pk_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
    )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_assignments_case_pk"), ["case_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_assignments_run_id"), ["run_id"], unique=False)

    op.create_table(
        "dispute_resolutions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_pk", sa.Integer(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_by", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["case_pk"], ["cases.id"], name=op.f("fk_dispute_resolutions_case_pk_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispute_resolutions")),
    )
    with op.batch_alter_table("dispute_resolutions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dispute_resolutions_case_pk"), ["case_pk"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dispute_resolutions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispute_resolutions_case_pk"))
    op.drop_table("dispute_resolutions")
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assignments_run_id"))
        batch_op.drop_index(batch_op.f("ix_assignments_case_pk"))
    op.drop_table("assignments")
