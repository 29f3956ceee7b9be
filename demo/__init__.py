"""The demo company: `manage.py seed_demo` builds it, `bin/demo` (`make demo`) serves it.

This module holds only plain data (no Django imports) so that bin/demo can print it.
"""

import os

PORT = os.environ.get("DEMO_PORT", "8000")
BASE_URL = f"http://127.0.0.1:{PORT}"

URLS = [
    ("Back office (Django admin)", f"{BASE_URL}/admin/"),
    ("Customer portal", f"{BASE_URL}/portal/"),
    ("API docs (Swagger)", f"{BASE_URL}/api/docs/"),
]

# (username, password, who, where)
LOGINS = [
    ("admin", "admin-demo", "superuser", "/admin/"),
    ("sales", "sales-demo", "sales rep, group Sales: quotes", "/admin/"),
    ("finance", "finance-demo", "finance, group Finance: billing, cash, revenue", "/admin/"),
    ("operator", "operator-demo", "operator, group Operator: users, keys, tasks", "/admin/"),
    ("customer", "customer-demo", "portal user of Northwind Analytics", "/portal/"),
]


def summary_text() -> str:
    """The URLs and the logins, ready to print."""
    lines = [f"  {label:<28}{url}" for label, url in URLS]
    lines += ["  Logins (username / password):"]
    lines += [
        f"    {user:<9} {password:<15} {who} at {where}" for user, password, who, where in LOGINS
    ]
    return "\n".join(lines)
