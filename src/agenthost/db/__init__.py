"""Storage: ORM rows, the engine and session factory, migrations. Rows stay below the services."""
