"""The one cattrs converter llmfiles owns (never cattrs' global one).

It turns the public models into JSON-ready dicts and back.  ``FileObject.raw`` (the provider's own response)
stays out of the JSON form.  Plugins that need wire-format hooks register them on :func:`get_converter`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import cattrs

T = TypeVar("T")
_converter: cattrs.Converter | None = None
_lock = threading.Lock()


def _build() -> cattrs.Converter:
    import cattrs
    from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

    from llmfiles.models import FileObject, FilePage, Problem, TrainingFiles

    conv = cattrs.Converter()
    conv.register_unstructure_hook(FileObject, make_dict_unstructure_fn(FileObject, conv, raw=override(omit=True)))
    conv.register_structure_hook(FileObject, make_dict_structure_fn(FileObject, conv, raw=override(omit=True)))
    for cls in (FilePage, TrainingFiles, Problem):
        conv.register_unstructure_hook(cls, make_dict_unstructure_fn(cls, conv))
    return conv


def get_converter() -> cattrs.Converter:
    """The converter, built on first use (cattrs is not imported by ``import llmfiles``)."""
    global _converter
    if _converter is None:
        with _lock:
            if _converter is None:
                _converter = _build()
    return _converter


def to_dict(obj: Any) -> Any:
    """A JSON-ready form of a model (or a list of models)."""
    return get_converter().unstructure(obj)


def from_dict(data: Any, cls: type[T]) -> T:
    """A model from its JSON form."""
    return get_converter().structure(data, cls)
