"""The UTF-8 byte-order mark Azure OpenAI wants on fine-tuning files.

Microsoft's documentation asks for fine-tuning files "in UTF-8 with a BOM".  A ``fine-tune`` upload of a file
without one gets the three bytes sent in front of the file's own bytes while it streams (``prefix=`` of
:func:`llmfiles_openai.wire.exchange`): the file on disk is never rewritten, the declared sizes include the three
bytes.  A file that already starts with a BOM is sent as it is.  Whether it has one is read from the first bytes
the core hands over (:attr:`~llmfiles.models.UploadFacts.head`): the plugin never reads the file.

A BOM claims the file is UTF-8, so a file that is not must never get one: the core's content check (on by default
for ``fine-tune``) refuses such a file, and with ``validate=False`` the core still checks the encoding while the
file streams, because ``fine-tune`` is one of the provider's ``utf8_purposes``; either way nothing is committed.
"""

from __future__ import annotations

import codecs

from llmfiles.models import UploadFacts

BOM = codecs.BOM_UTF8
#: the purposes whose files get a BOM when they have none
BOM_PURPOSES = ("fine-tune",)


def prefix_for(facts: UploadFacts) -> bytes:
    """The bytes to send before the file: the BOM for a ``fine-tune`` file whose first bytes are not one, else
    nothing."""
    if facts.purpose in BOM_PURPOSES and not facts.has_bom:
        return BOM
    return b""
