"""The quote's documents in the admin: its PDF and sending it (filled in by the documents work)."""


class QuoteDocumentsMixin:
    """PDF and sending (filled in by the documents work)."""
