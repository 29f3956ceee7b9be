"""The revenue admin: the ledger (accounts, periods, journal, trial balance, deferred revenue),
revenue contracts and the reports, each in its module."""

from revrec import admin_contracts, admin_ledger, admin_reports  # noqa: F401  (registrations)
