"""One error hierarchy, rooted at :class:`LLMFilesError`.

Every failure that leaves llmfiles is one of these classes, never a bare third-party exception.  Messages say
what was wrong and how to fix it, and never contain a secret: values that came from secret settings are
redacted before an error is built (see :func:`llmfiles.transport.redact`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from llmfiles.models import Problem


_T = TypeVar("_T")


class LLMFilesError(Exception):
    """Base class of every error llmfiles raises.

    ``hint`` is the one thing to do about it, when there is one (also in the message); the command line's
    ``--json`` error object carries it.
    """

    exit_code = 1
    hint: str | None = None


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'fine-tune'?)`` when ``word`` is close to one of ``choices`` (``_`` and ``-`` alike, any
    case), else ``""``."""
    import difflib

    def norm(text: str) -> str:
        return text.strip().lower().replace("_", "-")

    by_norm = {norm(c): c for c in choices if c != word}
    same = by_norm.get(norm(word))
    if same is not None:
        return f" (did you mean {same!r}?)"
    close = difflib.get_close_matches(norm(word), list(by_norm), n=1, cutoff=0.75)
    return f" (did you mean {by_norm[close[0]]!r}?)" if close else ""


# --- configuration -------------------------------------------------------------------------------------------


class ConfigurationError(LLMFilesError):
    """The environment, the settings or the installed plugins are not usable as they are."""

    exit_code = 2


class ProviderNotInstalled(ConfigurationError):
    """No installed plugin provides the requested provider.  The message says what to install: the distribution
    from the package index, and the folders to install from a checkout of llmfiles (``checkout``)."""

    def __init__(
        self,
        provider: str,
        *,
        package: str | None,
        installed: Sequence[str],
        checkout: str | None = None,
        suggestion: str = "",
    ) -> None:
        self.provider = provider
        self.package = package
        self.installed = tuple(installed)
        have = ", ".join(self.installed) or "none"
        if package:
            self.hint = f"pip install {package}"
            where = f" (from a checkout of llmfiles: {checkout})" if checkout else ""
            first = f"provider {provider!r} is not installed: {self.hint}{where}"
        else:
            self.hint = None
            first = f"provider {provider!r} is not installed{suggestion}" + (
                ""
                if suggestion
                else "; install the plugin that provides it (a distribution with an entry point in group 'llmfiles')"
            )
        super().__init__(f"{first}\ninstalled providers: {have}")


class PluginError(ConfigurationError):
    """A plugin failed to load, or two plugins claim the same provider name."""


class InvalidSetting(ConfigurationError):
    """A setting has a value of the wrong kind, or is not a setting of that provider."""


class MissingSetting(InvalidSetting):
    """A setting the provider needs has no value anywhere.  The first line says what is missing and how to give it
    (``hint``); the places looked at (``looked_at``: the setting, each environment variable, the config file) follow,
    one a line."""

    def __init__(self, provider: str, setting: str, *, what: str, example: str, env: Sequence[str] = ()) -> None:
        self.provider = provider
        self.setting = setting
        ways = [f"set {env[0]}={example}"] if env else []
        ways.append(setting_advice(setting, example, provider))
        ways.append(f"put {setting} under [default.{provider}] in the config file")
        self.hint = ", ".join(ways[:-1]) + f", or {ways[-1]}"
        self.looked_at = (
            f"the {setting} setting ({advice('argument or Client(...)', '-s or --setting')})",
            *(f"environment variable {name}" for name in env),
            f"the config file's [default.{provider}] table (or the chosen profile's)",
        )
        first = f"provider {provider!r} needs {what}: {self.hint}"
        super().__init__("\n".join([first, "looked at:", *(f"  {place}" for place in self.looked_at)]))


class MissingCredentials(ConfigurationError):
    """No credentials were found.  The message's first line says what is missing and the one thing to do
    (``hint``); every place that was looked at (``looked_at``) follows, one a line."""

    def __init__(self, provider: str, what: str, looked_at: Sequence[str], hint: str = "") -> None:
        self.provider = provider
        self.looked_at = tuple(looked_at)
        self.hint = hint or None
        first = f"no {what} for provider {provider!r}"
        if hint:
            first += f": {hint}"
        super().__init__("\n".join([first, "looked at:", *(f"  {place}" for place in self.looked_at)]))


def advice(python: _T, cli: _T) -> _T:
    """What to do, said to whoever reads it: ``python`` (``pass overwrite=True``) for a program using the API,
    ``cli`` (``pass --force``) on the command line, which declares itself with :func:`speaking_to`.  Any two
    values of one type, for example the lists of places a setting can come from."""
    return python if _AUDIENCE == "python" else cli


def setting_advice(name: str, value: str = "...", provider: str | None = None) -> str:
    """How to give the setting ``name`` a value: ``pass name=value`` in Python, ``pass -s name=value`` on the
    command line (``-s PROVIDER.name=value`` where one command line speaks to several providers)."""
    return advice(f"pass {name}={value}", f"pass -s {cli_setting(name, provider)}={value}")


def cli_setting(name: str, provider: str | None = None) -> str:
    """The setting ``name`` as ``-s`` takes it: ``PROVIDER.name`` where one command line speaks to several providers
    (the audience ``"cli-providers"``), else ``name``."""
    return f"{provider}.{name}" if provider and _AUDIENCE == "cli-providers" else name


_AUDIENCE = "python"


def speaking_to(audience: str) -> str:
    """Who error messages are for from now on, ``"python"``, ``"cli"`` or ``"cli-providers"`` (a command line that
    uploads to several providers at once, whose settings are ``-s PROVIDER.name=value``); returns the one before
    (the command line sets it while it runs)."""
    global _AUDIENCE
    before, _AUDIENCE = _AUDIENCE, audience
    return before


# --- bad input -----------------------------------------------------------------------------------------------


class InputError(LLMFilesError, ValueError):
    """An argument is wrong: a file that cannot be uploaded, a purpose the provider does not accept..."""

    exit_code = 2


class InvalidPurpose(InputError):
    """The purpose is unknown, or the provider does not accept it (for this kind of upload)."""

    def __init__(self, provider: str, purpose: str, accepted: Sequence[str], context: str = "") -> None:
        self.provider = provider
        self.purpose = purpose
        self.accepted = tuple(accepted)
        where = f" {context}" if context else ""
        self.hint = f"use one of: {', '.join(self.accepted)}"
        suggestion = did_you_mean(purpose, self.accepted)
        super().__init__(
            f"purpose {purpose!r} is not accepted by provider {provider!r}{where}{suggestion}; {self.hint}"
        )


class FileTooLarge(InputError):
    """The file is larger than the provider accepts."""

    def __init__(self, path: str, size: int, limit: int, provider: str, detail: str = "") -> None:
        self.size = size
        self.limit = limit
        extra = f" {detail}" if detail else ""
        super().__init__(
            f"{path}: {size:,} bytes is larger than provider {provider!r} accepts ({limit:,} bytes){extra}"
        )


class BadFile(InputError):
    """The file does not exist, is not a regular file, is empty or cannot be read."""


class ValidationError(InputError):
    """The file's content breaks the rules for its provider and purpose; ``problems`` lists where."""

    def __init__(self, path: str, problems: Sequence[Problem], total: int | None = None) -> None:
        self.path = path
        self.problems = tuple(problems)
        self.total = total if total is not None else len(self.problems)
        shown = "\n".join(f"  {p.describe()}" for p in self.problems[:10])
        more = self.total - min(len(self.problems), 10)
        tail = f"\n  ... and {more} more" if more > 0 else ""
        self.hint = advice("pass validate=False to upload it anyway", "pass --no-validate to upload it anyway")
        super().__init__(f"{path}: {self.total} problem(s) found; nothing was uploaded ({self.hint})\n{shown}{tail}")


# --- talking to the provider ---------------------------------------------------------------------------------


class ProviderError(LLMFilesError):
    """The provider answered with an error.

    ``status`` is the HTTP status, ``code``/``error_type``/``param`` come from the provider's error body when it
    has them, ``request_id`` from its request-id header.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        code: str | None = None,
        error_type: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        details: Any = None,
    ) -> None:
        self.provider = provider
        self.status = status
        self.code = code
        self.error_type = error_type
        self.param = param
        self.request_id = request_id
        self.details = details
        self.message = message
        parts = [f"{provider}"]
        if status is not None:
            parts.append(f"HTTP {status}")
        if code:
            parts.append(str(code))
        head = " ".join(parts)
        rid = f" (request id {request_id})" if request_id else ""
        super().__init__(f"{head}: {message}{rid}")

    def with_message(self, message: str) -> ProviderError:
        """The same error (same class, status, code, request id, details) with another message."""
        return self.becoming(type(self), message)

    def becoming(self, cls: type[ProviderError], message: str | None = None) -> ProviderError:
        """This error as ``cls`` (for example :class:`AuthenticationError` for a 401), with the same fields."""
        err = cls(
            self.message if message is None else message,
            provider=self.provider,
            status=self.status,
            code=self.code,
            error_type=self.error_type,
            param=self.param,
            request_id=self.request_id,
            details=self.details,
        )
        err.__notes__ = list(getattr(self, "__notes__", []))
        return err

    def redacted(self, secrets: Sequence[str]) -> ProviderError:
        """The same error with every echo of ``secrets`` masked in its message and in every attribute (a server may
        echo a key in any field of its error body)."""
        from llmfiles.redact import redact, redact_value

        def r(value: str | None) -> str | None:
            return None if value is None else redact(value, secrets)

        err = type(self).__new__(type(self))
        err.__dict__.update(self.__dict__)
        err.message = redact(self.message, secrets)
        err.code, err.error_type, err.param, err.request_id = (
            r(self.code),
            r(self.error_type),
            r(self.param),
            r(self.request_id),
        )
        err.details = redact_value(self.details, secrets)
        err.args = tuple(redact(a, secrets) if isinstance(a, str) else a for a in self.args)
        if hasattr(self, "__notes__"):
            err.__notes__ = [redact(n, secrets) for n in self.__notes__]
        err.__cause__ = None
        err.__context__ = None
        err.__suppress_context__ = True
        return err


class AuthenticationError(ProviderError):
    """401 or 403: the credential was refused.  The message names where the credential came from."""


class FileNotFound(ProviderError):
    """404 for a file id."""


class NetworkError(LLMFilesError):
    """The connection failed (refused, reset, TLS, DNS) and retries did not help."""


class StallTimeout(NetworkError):
    """No byte moved for ``timeout`` seconds while connecting, sending or receiving."""


class DeadlineExceeded(LLMFilesError):
    """The whole operation took longer than its ``deadline``."""


class RetriesExhausted(NetworkError):
    """Every retry of a network failure failed; ``last`` is the final error (a :class:`NetworkError`, often a
    :class:`StallTimeout`).  An error status after the last retry is raised as the provider's own error."""

    def __init__(self, message: str, last: BaseException | None = None, attempts: int = 0) -> None:
        self.last = last
        self.attempts = attempts
        super().__init__(message)


class FileChanged(InputError):
    """The file changed (was edited, truncated, grown or replaced) while it was being uploaded; nothing was
    committed at the provider.  Not retried: it is the file, not the network."""


class AnswerLost(NetworkError):
    """A request that creates something (an upload) was sent in full, its answer was lost, and it could not be
    found out whether the provider did it; it was not sent again, so as not to make a second copy."""


class MaybeUploaded(AnswerLost):
    """A create's answer was lost and the provider now has a file that may be the one it created, but that cannot be
    told from the provider's answers.  ``candidates`` are the ids of those files: check one, or delete them and
    upload again."""

    def __init__(self, message: str, candidates: Sequence[str]) -> None:
        self.candidates = tuple(candidates)
        super().__init__(message)


class AlreadyUploaded(InputError):
    """``if_exists="error"``: the provider already has a file with the same content (SHA-256), purpose and account.

    ``file`` is that file, just retrieved from the provider.
    """

    def __init__(self, message: str, file: Any) -> None:
        self.file = file
        super().__init__(message)


class UploadFailed(LLMFilesError):
    """A large-file upload failed for good; the provider's session was aborted (or the abort is reported)."""


class CannotSplit(InputError):
    """``llmfiles split`` (or ``upload --split``) cannot cut the file into shards that fit the limits: a line longer
    than the byte limit, fewer records than a job's minimum, or shards that cannot all reach it."""


class SplitUploadFailed(LLMFilesError):
    """Some shards of ``upload --split`` failed to upload; the others are uploaded and kept.

    ``uploaded`` maps a shard's number (1 for the first) to its file object, ``failures`` a shard's number to its
    error.  Running the same upload again reuses the shards already uploaded and resumes the others.
    """

    def __init__(self, message: str, *, uploaded: Mapping[int, Any], failures: Mapping[int, BaseException]) -> None:
        self.uploaded = dict(uploaded)
        self.failures = dict(failures)
        codes = {getattr(e, "exit_code", 1) for e in self.failures.values()}
        self.exit_code = min(codes) if len(codes) == 1 else 1
        super().__init__(message)


class InsecureTransport(ConfigurationError):
    """Plain ``http://`` to a host that is not loopback, without ``allow_insecure_http=True``."""


__all__ = [
    "AlreadyUploaded",
    "CannotSplit",
    "SplitUploadFailed",
    "AnswerLost",
    "AuthenticationError",
    "BadFile",
    "ConfigurationError",
    "DeadlineExceeded",
    "FileChanged",
    "FileNotFound",
    "FileTooLarge",
    "InputError",
    "InsecureTransport",
    "InvalidPurpose",
    "InvalidSetting",
    "LLMFilesError",
    "MaybeUploaded",
    "MissingCredentials",
    "MissingSetting",
    "NetworkError",
    "PluginError",
    "ProviderError",
    "ProviderNotInstalled",
    "RetriesExhausted",
    "StallTimeout",
    "UploadFailed",
    "ValidationError",
]
