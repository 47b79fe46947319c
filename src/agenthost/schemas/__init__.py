"""Wire schemas: the JSON shapes of the Letta v1 API. They import neither FastAPI nor SQLAlchemy."""
