"""The store: SQLAlchemy 2 models, Alembic migrations and the queries the stages share.

It owns the schema; stages never write SQL of their own. It holds no SLA logic.
"""
