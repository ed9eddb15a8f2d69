"""api keys, audit records and decisions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

The service's tables: API keys (stored hashed), the append-only hash-chained audit trail, and the
current state of each recommendation (approval by a supervisor for sensitive actions).
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("creditor", sa.String(length=255), nullable=True),
        sa.Column("court", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "audit_records",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("decision_id", sa.String(length=64), nullable=True),
        sa.Column("case_id", sa.String(length=64), nullable=True),
        sa.Column("creditor", sa.String(length=255), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_records")),
    )
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_records_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_records_decision_id"), ["decision_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_records_kind"), ["kind"], unique=False)

    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("creditor", sa.String(length=255), nullable=False),
        sa.Column("court", sa.String(length=255), nullable=True),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("sensitive", sa.Boolean(), nullable=False),
        sa.Column("approval", sa.String(length=16), nullable=False),
        sa.Column("final_action", sa.String(length=32), nullable=True),
        sa.Column("risk_flags", sa.Text(), nullable=True),
        sa.Column("mediator", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_decisions")),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_decisions_approval"), ["approval"], unique=False)
        batch_op.create_index(batch_op.f("ix_decisions_case_id"), ["case_id"], unique=False)

    # the service finds a case by the creditor's case id alone when the key names no creditor
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cases_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cases_case_id"))
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decisions_case_id"))
        batch_op.drop_index(batch_op.f("ix_decisions_approval"))

    op.drop_table("decisions")
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_records_kind"))
        batch_op.drop_index(batch_op.f("ix_audit_records_decision_id"))
        batch_op.drop_index(batch_op.f("ix_audit_records_case_id"))

    op.drop_table("audit_records")
    op.drop_table("api_keys")
