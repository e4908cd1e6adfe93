"""Rules about a JSONL file as a whole that several providers' checkers share, each with the documentation it
follows.  The core applies none of them by itself: a provider's record checker returns them from its ``start()``
(see :class:`~llmfiles.validate.records.RecordChecker`), so each provider decides what applies to its files."""

from __future__ import annotations

from llmfiles.models import Problem


def bom_warning(provider: str) -> Problem:
    """The warning for a file that starts with a UTF-8 byte order mark, at a provider that does not ask for one.

    RFC 8259 ("The JavaScript Object Notation (JSON) Data Interchange Format", section 8.1,
    https://www.rfc-editor.org/rfc/rfc8259#section-8.1): "Implementations MUST NOT add a byte order mark (U+FEFF) to
    the beginning of a networked-transmitted JSON text", while a parser "MAY ignore the presence of a byte order
    mark rather than treating it as an error"; JSON Lines (https://jsonlines.org/) asks for UTF-8 and nothing more.
    OpenAI, Vertex AI and Amazon Bedrock document UTF-8 JSONL and say nothing of a BOM (Azure OpenAI alone asks for
    one on fine-tuning files), so whether their parser ignores it is not documented: llmfiles reads past it, warns,
    and leaves the bytes as they are (an upload sends the file it checked, byte for byte, and its checksums are of
    those bytes), rather than refusing a file a provider may well take or stripping it behind the user's back.
    """
    return Problem(
        line=None,
        code="bom",
        severity="warning",
        message=f"the file starts with a UTF-8 byte order mark (BOM); JSON text is sent without one (RFC 8259, "
        f"section 8.1) and {provider} does not document accepting it: save the file as UTF-8 without a BOM "
        "(llmfiles sends the file as it is)",
    )
