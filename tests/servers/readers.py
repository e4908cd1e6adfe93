"""Every answer reader of one provider, and answers of any shape for them (hypothesis strategies): the property the
fault suite holds the first four providers to (tests/faults/test_fault_properties.py: a reader gives data or an
``LLMFilesError``, never a ``KeyError`` or ``RecursionError``), for the plugins whose suites run on their own.

No request is sent: the exchanges are built through ``Call.exchange`` and only their readers are called.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hypothesis import strategies as st

import llmfiles
from llmfiles.errors import LLMFilesError, ProviderError
from llmfiles.models import (
    Delete,
    Download,
    FileObject,
    HttpResponse,
    ListFiles,
    Part,
    Retrieve,
    Upload,
    UploadFacts,
    UploadParts,
    UploadState,
)
from llmfiles.provider import Exchange, PartsUpload, ResumableUpload, UploadProtocol

Reader = Callable[[HttpResponse], Any]


def readers(
    client: llmfiles.Client, *, purpose: str, file_id: str, filename: str = "train.jsonl", state: UploadState
) -> list[tuple[str, Reader, bool]]:
    """``(label, reader, is_error_reader)`` for every exchange ``client``'s provider builds: the five operations,
    each upload's probe, and its large-file protocol when it has one."""
    facts = UploadFacts(purpose=purpose, filename=filename, size=10, head=b'{"a": 1}\n')
    call = client._resolver.call(None, {})
    exchanges: list[tuple[str, Exchange[Any]]] = []
    for op in (
        Upload(file=facts),
        Retrieve(file_id=file_id),
        ListFiles(purpose=purpose, cursor="c", limit=10),
        ListFiles(),
        Delete(file_id=file_id),
        Download(file_id=file_id),
    ):
        built = call.exchange(op)
        assert isinstance(built, Exchange)
        exchanges.append((type(op).__name__, built))
    try:
        protocol = call.exchange(UploadParts(file=facts))
    except LLMFilesError:
        protocol = None  # no large-file protocol: every upload is one request
    if isinstance(protocol, UploadProtocol):
        exchanges += _protocol_exchanges(protocol, state)
    out: list[tuple[str, Reader, bool]] = []
    for label, ex in exchanges:
        out.append((f"{label} read", ex.read, False))
        out.append((f"{label} error", ex.error, True))
        if ex.probe is not None:
            out.append((f"{label} probe", ex.probe.read, False))
    return out


def _protocol_exchanges(protocol: UploadProtocol, state: UploadState) -> list[tuple[str, Exchange[Any]]]:
    part = Part(index=0, offset=0, length=10)
    out: list[tuple[str, Exchange[Any]]] = [("start", protocol.start())]
    if isinstance(protocol, ResumableUpload):
        out += [("chunk", protocol.chunk(state, part, False)), ("last chunk", protocol.chunk(state, part, True))]
        out.append(("query", protocol.query(state)))
    elif isinstance(protocol, PartsUpload):  # pragma: no cover - none of the plugins using this has one
        out.append(("part", protocol.part(state, part)))
    abort = protocol.abort(state)
    if abort is not None:
        out.append(("abort", abort))
    return out


def check(label: str, read: Reader, is_error: bool, response: HttpResponse) -> None:
    """The property: ``read(response)`` gives data or raises an ``LLMFilesError``; an error reader gives a
    ``ProviderError``; a probe gives file objects."""
    try:
        result = read(response)
    except LLMFilesError:
        return
    except Exception as exc:
        raise AssertionError(f"{label} raised {type(exc).__name__}: {exc!r:.300}") from exc
    if is_error:
        assert isinstance(result, ProviderError), (label, result)
    elif label.endswith("probe"):
        assert isinstance(result, (list, tuple)) and all(isinstance(f, FileObject) for f in result), (label, result)


def responses(
    fields: Sequence[str], header_names: Sequence[str], header_values: Sequence[str], samples: Sequence[Any] = ()
) -> st.SearchStrategy[HttpResponse]:
    """Answers of any shape: statuses, headers among ``header_names``, bodies that are bytes, JSON made of ``fields``
    and of scalars that trip readers (``samples`` are whole values a provider sends), deep nesting."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.text(max_size=20)
        | st.sampled_from(["", "-1", "12", "²", "1e400", "2026-01-01T00:00:00Z", "2026-13-45T99:00:00Z", "ACTIVE"])
    )
    json_values = st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.sampled_from(list(fields)) | st.text(max_size=8), inner, max_size=6)
        ),
        max_leaves=30,
    )
    bodies = (
        st.binary(max_size=300)
        | json_values.map(lambda v: json.dumps(v).encode())
        | st.sampled_from([b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000])
        | st.sampled_from(list(samples) or [{}]).flatmap(_varied).map(lambda v: json.dumps(v).encode())
    )
    values = st.sampled_from(list(header_values)) | st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=30
    )
    return st.builds(
        lambda status, headers, body: HttpResponse(status=status, headers=headers, body=body, url="https://x/y"),
        st.sampled_from([200, 201, 204, 400, 401, 404, 409, 429, 500, 503]) | st.integers(100, 599),
        st.dictionaries(st.sampled_from(list(header_names)), values, max_size=5),
        bodies,
    )


def _varied(sample: Any) -> st.SearchStrategy[Any]:
    """``sample`` (a valid answer), or it with some fields, at any depth, removed or given values of other types."""
    odd = (
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.text(max_size=10)
        | st.lists(st.integers(), max_size=2)
        | st.just({})
    )
    if isinstance(sample, Mapping) and sample:
        keys = sorted(sample)
        return st.builds(
            lambda drop, inner: {k: v for k, v in inner.items() if k not in drop},
            st.sets(st.sampled_from(keys), max_size=2),
            st.fixed_dictionaries({k: _varied(v) | odd for k, v in sample.items()}),
        )
    if isinstance(sample, list) and sample:
        return st.lists(_varied(sample[0]) | odd, max_size=3)
    return st.just(sample) | odd


def sweep(
    every_reader: Sequence[tuple[str, Reader, bool]],
    header_names: Sequence[str],
    header_values: Sequence[str],
    samples: Sequence[Any],
) -> list[str]:
    """The deterministic companion of the random property: each reader given each documented answer (``samples``)
    with one field at any depth removed or of another type, and each documented answer with each header at each odd
    value, at several statuses; the failures of :func:`check`."""
    failures: list[str] = []
    basics = [b"", b"null", b"[]", b"{}", b"\xff"]
    bodies = basics + [json.dumps(v).encode() for s in samples for v in [s, *one_field_changed(s)]]
    cases: list[tuple[int, Mapping[str, str], bytes]] = [(st_, {}, b) for st_ in (200, 400, 404, 500) for b in bodies]
    pristine = basics + [json.dumps(s).encode() for s in samples]
    cases += [
        (status, {name: value}, body)
        for status in (200, 308, 400)
        for body in pristine
        for name in header_names
        for value in header_values
    ]
    for label, read, is_error in every_reader:
        for status, headers, body in cases:
            response = HttpResponse(status=status, headers=dict(headers), body=body, url="https://x/y")
            try:
                check(label, read, is_error, response)
            except AssertionError as exc:
                failures.append(f"{status} {dict(headers)} {body[:80]!r}: {exc}"[:400])
    return failures


#: what a field of a documented answer is changed to, one at a time
ODD_VALUES: tuple[Any, ...] = (None, 0, -1, 2**70, 1.5, "", "x", "²", True, [], {}, [None], {"x": None})
_GONE = object()


def one_field_changed(sample: Any) -> list[Any]:
    """Copies of ``sample`` with one field (at any depth: objects, and the first item of lists) removed or set to
    each of :data:`ODD_VALUES`."""
    out: list[Any] = []
    if isinstance(sample, Mapping):
        for key, value in sample.items():
            for new in (_GONE, *ODD_VALUES, *one_field_changed(value)):
                copy = {k: v for k, v in sample.items() if k != key}
                if new is not _GONE:
                    copy[key] = new
                out.append(copy)
    elif isinstance(sample, list) and sample:
        out += [[new, *sample[1:]] for new in (*ODD_VALUES, *one_field_changed(sample[0]))]
    return out
