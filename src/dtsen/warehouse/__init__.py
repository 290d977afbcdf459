"""The warehouse: connection, private local cluster, migrations."""
