from django.db import transaction

from core.errors import ValidationError
from core.models import ApiKey, hash_key


@transaction.atomic
def api_key_create(*, name: str) -> tuple[ApiKey, str]:
    """Create a key; the raw key is returned once and never stored."""
    name = name.strip()
    if not name:
        raise ValidationError("Give the API key a name, such as the system that will use it.")
    raw = ApiKey.generate()
    key = ApiKey.objects.create(name=name, prefix=raw[:12], key_hash=hash_key(raw))
    return key, raw
