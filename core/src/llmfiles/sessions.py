"""Unfinished large uploads recorded in the state database: listing them (``llmfiles uploads``) and ending one at
the provider (``llmfiles abort``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from llmfiles.bookkeeping import Ledger, state_error
from llmfiles.calls import Resolver
from llmfiles.errors import InputError, InvalidSetting, ProviderError
from llmfiles.models import UploadFacts, UploadParts
from llmfiles.parts import SESSION_ENDED
from llmfiles.provider import UploadProtocol
from llmfiles.state import account_fingerprint


def unfinished(ledger: Ledger) -> list[dict[str, Any]]:
    """The recorded unfinished uploads, oldest first (no session state: an upload id or session URI is not shown)."""
    db = ledger.db(create=False)
    if db is None:
        return []
    try:
        return [saved.describe() for saved in db.sessions()]
    except (sqlite3.Error, ValueError, OSError) as exc:  # (OSError: a symbolic link, a folder in its place)
        raise state_error(db, exc) from None


def abort(ledger: Ledger, resolver: Resolver, upload_id: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Send the provider's abort request for the unfinished upload ``upload_id`` and forget it."""
    db = ledger.db(create=False)
    try:
        saved = db.session(upload_id) if db is not None and upload_id else None
    except (sqlite3.Error, ValueError, OSError) as exc:  # (OSError: a symbolic link, a folder in its place)
        raise state_error(db, exc) from None
    if db is None or saved is None:
        raise InputError(f"no unfinished upload {upload_id!r}; `llmfiles uploads` lists them")
    if saved.running:
        raise InputError(f"upload {saved.id} of {saved.path} is running in another process now; stop it first")
    call = resolver.call(saved.provider, settings)
    if account_fingerprint(call.info, call.settings) != saved.account:
        raise InvalidSetting(
            f"upload {saved.id} was started with other {saved.provider} settings (endpoint, bucket, prefix ...) "
            "than these; pass the settings it was started with (-s NAME=VALUE, or the same environment)"
        )
    facts = UploadFacts(purpose=saved.purpose, filename=saved.filename, size=saved.size)
    protocol = call.exchange(UploadParts(file=facts))
    assert isinstance(protocol, UploadProtocol)
    result: dict[str, Any] = {"id": saved.id, "provider": saved.provider, "file": saved.path}
    end = protocol.abort(saved.state)
    if end is None:
        result.update(aborted=False, note="the provider has no abort request; the session ends when it expires")
    else:
        try:
            call.run(end)
        except ProviderError as exc:
            if exc.status not in SESSION_ENDED:
                raise
            result.update(aborted=True, note="the session had already ended at the provider")
        else:
            result.update(aborted=True, note="aborted at the provider")
    db.delete_session(saved.id)
    return result
