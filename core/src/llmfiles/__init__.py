"""llmfiles: put training, validation and batch files onto any LLM provider, one API for all.

``import llmfiles`` is cheap: it loads no plugin, no provider SDK and no HTTP library.  Everything below is
imported on first use.

    >>> import llmfiles
    >>> f = llmfiles.upload("train.jsonl", purpose="fine-tune", provider="local")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib

# typing is not imported at run time: `import llmfiles` stays as cheap as possible.
TYPE_CHECKING = False

__version__ = "0.1.0"

_API = (
    "upload",
    "aupload",
    "upload_training_files",
    "aupload_training_files",
    "retrieve",
    "aretrieve",
    "list_files",
    "alist_files",
    "delete",
    "adelete",
    "download",
    "adownload",
    "convert",
    "split",
    "Client",
)
_ERRORS = (
    "LLMFilesError",
    "ConfigurationError",
    "ProviderNotInstalled",
    "MissingCredentials",
    "MissingSetting",
    "InputError",
    "InvalidPurpose",
    "BadFile",
    "FileTooLarge",
    "ValidationError",
    "ProviderError",
    "AuthenticationError",
    "FileNotFound",
    "NetworkError",
    "RetriesExhausted",
    "DeadlineExceeded",
    "FileChanged",
    "AnswerLost",
    "MaybeUploaded",
    "AlreadyUploaded",
    "UploadFailed",
    "InvalidSetting",
    "PluginError",
    "StallTimeout",
    "InsecureTransport",
    "CannotSplit",
    "SplitUploadFailed",
)
_LAZY = {
    **{name: "llmfiles.api" for name in _API},
    **{name: "llmfiles.errors" for name in _ERRORS},
    "FileObject": "llmfiles.models",
    "TrainingFiles": "llmfiles.models",
    "FileLimits": "llmfiles.models",
    "SplitResult": "llmfiles.splitting",
    "SplitUpload": "llmfiles.shards",
    "FanOut": "llmfiles.fanout",
    "ProviderResult": "llmfiles.fanout",
    "hookimpl": "llmfiles.pluginapi",
}

__all__ = [
    "upload",
    "aupload",
    "upload_training_files",
    "aupload_training_files",
    "retrieve",
    "aretrieve",
    "list_files",
    "alist_files",
    "delete",
    "adelete",
    "download",
    "adownload",
    "convert",
    "split",
    "Client",
    "LLMFilesError",
    "ConfigurationError",
    "ProviderNotInstalled",
    "MissingCredentials",
    "MissingSetting",
    "InputError",
    "InvalidPurpose",
    "BadFile",
    "FileTooLarge",
    "ValidationError",
    "ProviderError",
    "AuthenticationError",
    "FileNotFound",
    "NetworkError",
    "RetriesExhausted",
    "DeadlineExceeded",
    "FileChanged",
    "AnswerLost",
    "MaybeUploaded",
    "AlreadyUploaded",
    "UploadFailed",
    "InvalidSetting",
    "PluginError",
    "StallTimeout",
    "InsecureTransport",
    "CannotSplit",
    "SplitUploadFailed",
    "FileObject",
    "TrainingFiles",
    "FileLimits",
    "SplitResult",
    "SplitUpload",
    "FanOut",
    "ProviderResult",
    "hookimpl",
    "errors",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name == "errors":
        return importlib.import_module("llmfiles.errors")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmfiles' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from typing import Any

    from llmfiles import errors as errors
    from llmfiles.api import (
        Client as Client,
    )
    from llmfiles.api import (
        adelete as adelete,
    )
    from llmfiles.api import (
        adownload as adownload,
    )
    from llmfiles.api import (
        alist_files as alist_files,
    )
    from llmfiles.api import (
        aretrieve as aretrieve,
    )
    from llmfiles.api import (
        aupload as aupload,
    )
    from llmfiles.api import (
        aupload_training_files as aupload_training_files,
    )
    from llmfiles.api import (
        delete as delete,
    )
    from llmfiles.api import (
        download as download,
    )
    from llmfiles.api import (
        list_files as list_files,
    )
    from llmfiles.api import (
        retrieve as retrieve,
    )
    from llmfiles.api import (
        split as split,
    )
    from llmfiles.api import (
        upload as upload,
    )
    from llmfiles.api import (
        upload_training_files as upload_training_files,
    )
    from llmfiles.errors import AlreadyUploaded as AlreadyUploaded
    from llmfiles.errors import AnswerLost as AnswerLost
    from llmfiles.errors import (
        AuthenticationError as AuthenticationError,
    )
    from llmfiles.errors import (
        BadFile as BadFile,
    )
    from llmfiles.errors import CannotSplit as CannotSplit
    from llmfiles.errors import (
        ConfigurationError as ConfigurationError,
    )
    from llmfiles.errors import (
        DeadlineExceeded as DeadlineExceeded,
    )
    from llmfiles.errors import FileChanged as FileChanged
    from llmfiles.errors import (
        FileNotFound as FileNotFound,
    )
    from llmfiles.errors import (
        FileTooLarge as FileTooLarge,
    )
    from llmfiles.errors import (
        InputError as InputError,
    )
    from llmfiles.errors import InsecureTransport as InsecureTransport
    from llmfiles.errors import (
        InvalidPurpose as InvalidPurpose,
    )
    from llmfiles.errors import InvalidSetting as InvalidSetting
    from llmfiles.errors import (
        LLMFilesError as LLMFilesError,
    )
    from llmfiles.errors import MaybeUploaded as MaybeUploaded
    from llmfiles.errors import (
        MissingCredentials as MissingCredentials,
    )
    from llmfiles.errors import (
        MissingSetting as MissingSetting,
    )
    from llmfiles.errors import (
        NetworkError as NetworkError,
    )
    from llmfiles.errors import PluginError as PluginError
    from llmfiles.errors import (
        ProviderError as ProviderError,
    )
    from llmfiles.errors import (
        ProviderNotInstalled as ProviderNotInstalled,
    )
    from llmfiles.errors import (
        RetriesExhausted as RetriesExhausted,
    )
    from llmfiles.errors import SplitUploadFailed as SplitUploadFailed
    from llmfiles.errors import StallTimeout as StallTimeout
    from llmfiles.errors import UploadFailed as UploadFailed
    from llmfiles.errors import (
        ValidationError as ValidationError,
    )
    from llmfiles.fanout import FanOut as FanOut
    from llmfiles.fanout import ProviderResult as ProviderResult
    from llmfiles.models import FileLimits as FileLimits
    from llmfiles.models import FileObject as FileObject
    from llmfiles.models import TrainingFiles as TrainingFiles
    from llmfiles.pluginapi import hookimpl as hookimpl
    from llmfiles.shards import SplitUpload as SplitUpload
    from llmfiles.splitting import SplitResult as SplitResult
