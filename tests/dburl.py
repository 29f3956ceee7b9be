from django.db import connection


def child_database_url() -> str:
    """A DATABASE_URL for the running test database, for child processes (workers, senders)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    host = db["HOST"] or db.get("OPTIONS", {}).get("host") or "localhost"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    if host.startswith("/"):  # a Unix socket directory
        return f"postgres://{auth}@/{db['NAME']}?host={host}"
    return f"postgres://{auth}@{host}:{db['PORT'] or 5432}/{db['NAME']}"
