"""Run the code blocks of the README and of the documentation pages as they are written: a pytest plugin (Sybil).

``tox -e docs`` loads it with ``-p docs_snippets`` and hands pytest the Markdown files; each fenced block becomes
a test item, run in order, in one namespace per file:

* ``python`` blocks are executed in this process (Sybil's evaluator);
* ``bash`` blocks are run by ``bash -eu -o pipefail`` in the file's working folder; what they ``export`` stays set
  for the blocks after them, and their output is ``docs_env.out`` for the checks that follow;
* ``text`` blocks are checked: a command synopsis (lines starting with ``llmfiles``) against the real parser, a
  source-tree listing against the files it names;
* ``<!-- invisible-code-block: python ... -->`` comments are hidden blocks (GitHub and Sphinx show nothing): checks
  of what the visible block before them did, such as the files the test server received;
* ``<!-- skip: next "reason" -->`` skips the next block (tests/test_docs.py allows it only for the README's two
  newcomer commands, which tests/test_readme.py and CI run).

Each file gets a :class:`DocsEnv` (the module-scoped ``docs_env`` fixture, also in the namespace): a temporary
working folder with the files the snippets name, an environment without the developer's credentials, a fresh
``$LLMFILES_HOME``, the test servers of ``tests/servers/`` the page needs (:data:`SERVERS`) with the environment
variables that point at them, stand-ins for provider tools that need an account (``gcloud``, ``aws``, ``curl``; a
``pip`` that checks the distributions are installed instead of installing them) and for the SDKs that start jobs
(``openai``, ``google.genai``, ...), and a guard that refuses to resolve any host that is not loopback, in this
process and in every process a snippet starts.  Nothing here reaches the network.

The plugin READMEs (``plugins/*/README.md``, included in the provider pages) show the providers' real endpoints and
tools, so they run as dry runs (:data:`DRY_RUN`): ``llmfiles upload`` with ``--dry-run``, and in Python
``llmfiles.upload`` / ``upload_training_files`` replaced by ``Client.describe_upload``, which runs every offline
check (provider, purpose, settings, credentials found, the file and its content, conversions) and must say ``ok``.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

#: the Markdown files whose blocks are run (patterns match from the right: ``README.md`` is every README)
DOCUMENTS = ("README.md", "docs/*.md", "docs/providers/*.md")
#: files run as dry runs (they name the providers' real endpoints); see the module documentation
DRY_RUN = ("plugins/*/README.md",)
#: the test servers each page's snippets talk to (pages not listed use the ``local`` provider, or dry runs)
SERVERS: dict[str, tuple[str, ...]] = {
    "README.md": (),
    "docs/quickstart.md": ("openai", "azure"),
    "docs/litellm.md": ("openai",),
    "docs/providers/openai.md": ("openai",),
    "docs/concepts.md": (),
    "docs/tutorial-plugin.md": ("example",),
    "plugins/azure/README.md": ("managed_identity",),
}
#: what must have happened once a plugin README's blocks ran (a dry run's README holds no hidden checks of its own)
AFTER: dict[str, Callable[[DocsEnv], bool]] = {
    "plugins/openai/README.md": lambda env: env.called("llmfiles.upload[openai]"),
    # the README's uploads run as dry runs here, which ask azure-identity for no token (a dry run sends nothing)
    "plugins/azure/README.md": lambda env: env.called(
        "llmfiles.upload[azure]", "openai.AzureOpenAI().fine_tuning.jobs.create"
    ),
    "plugins/vertex/README.md": lambda env: (
        ["gcloud", "auth", "application-default", "login"] in env.tools()
        and env.called(
            "llmfiles.upload[vertex_ai]", "google.genai.Client().tunings.tune", "google.genai.Client().batches.create"
        )
    ),
    "plugins/bedrock/README.md": lambda env: (
        "llmfiles/OPENAI_API_KEY" in env.secrets_manager.asked
        and env.called("llmfiles.upload[bedrock]", "boto3.client().create_model_customization_job")
    ),
    "plugins/gemini/README.md": lambda env: env.called(
        "llmfiles.upload[gemini]", "google.genai.Client().batches.create"
    ),
    "plugins/anthropic/README.md": lambda env: env.called(
        "llmfiles.upload[anthropic]", "anthropic.Anthropic().beta.messages.create"
    ),
    "plugins/mistral/README.md": lambda env: env.called(
        "llmfiles.upload[mistral]", "mistralai.Mistral().batch.jobs.create"
    ),
}
#: the secret the README's Secrets Manager lines store, and the key the OpenAI test server then accepts
OPENAI_KEY = "sk-docs-test-0123456789"
AZURE_KEY = "azure-docs-test-0123456789"

#: cloud settings and credentials of the developer's machine never reach a snippet
CLEARED_PREFIXES = (
    "OPENAI_",
    "AZURE_",
    "AWS_",
    "GOOGLE_",
    "GCLOUD",
    "CLOUDSDK_",
    "VERTEXAI_",
    "GCS_",
    "LLMFILES_",
    "EXAMPLE_",
    "TOGETHER_",
    "FIREWORKS_",
    "GROQ_",
    "XAI_",
    "PERPLEXITY_",
    "NOVITA_",
    "GEMINI_",
    "ANTHROPIC_",
    "MISTRAL_",
    "STORAGE_EMULATOR_HOST",
    "IDENTITY_",
    "MSI_",
    "PYTHONPATH",
    "VIRTUAL_ENV",
)
CLOSED_PORT = "http://127.0.0.1:9"
#: SDKs the snippets start jobs with: replaced by recorders (:class:`Recorder`)
SDK_MODULES = ("openai", "google.genai", "google.genai.types")
#: ... and, in the dry runs, the SDKs that would otherwise reach a provider
DRY_RUN_SDK_MODULES = ("boto3", "anthropic", "mistralai")
#: distributions a README installs for its own tests, not for users (the ``pip`` stand-in does not check them)
TEST_ONLY_DISTRIBUTIONS = {"gcp-storage-emulator"}


def relative(path: Path) -> str:
    return path.resolve().relative_to(REPO).as_posix()


def is_dry_run(path: Path) -> bool:
    import fnmatch

    return any(fnmatch.fnmatch(relative(path), pattern) for pattern in DRY_RUN)


# --- the network guard -------------------------------------------------------------------------------------------

_GUARD = '''
"""Installed by tests/docs_snippets.py in every process a documentation snippet starts: no host but loopback."""
import socket

_real_getaddrinfo = socket.getaddrinfo


def _loopback_only(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name not in (None, "localhost", "::1") and not str(name).startswith("127."):
        raise socket.gaierror(socket.EAI_NONAME, f"documentation snippets reach no host but loopback, not {name!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _loopback_only
'''


def _loopback_only(real: Callable[..., Any]) -> Callable[..., Any]:
    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in (None, "localhost", "::1") and not str(name).startswith("127."):
            raise socket.gaierror(socket.EAI_NONAME, f"documentation snippets reach no host but loopback, not {name!r}")
        return real(host, *args, **kwargs)

    return getaddrinfo


# --- stand-ins for the tools that need an account ----------------------------------------------------------------


def _script(path: Path, body: str) -> None:
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body).lstrip())
    path.chmod(0o755)


def write_tools(bin_dir: Path, *, dry_run: bool) -> None:
    """``pip`` that checks instead of installing; ``gcloud``, ``aws``, ``curl`` and ``gcp-storage-emulator`` that
    record their arguments in ``$LLMFILES_DOCS_TOOLS_LOG`` (``gcloud auth application-default login`` writes the
    ADC file gcloud would, ``aws secretsmanager create-secret`` stores into the fake Secrets Manager); in a dry
    run, ``llmfiles upload`` with ``--dry-run`` added."""
    bin_dir.mkdir(parents=True)
    _script(
        bin_dir / "pip",
        f"""
        import importlib.metadata, re, sys, tomllib
        from pathlib import Path

        REPO = Path({str(REPO)!r})
        TEST_ONLY = {sorted(TEST_ONLY_DISTRIBUTIONS)!r}
        args = sys.argv[1:]
        if not args or args[0] != "install":
            sys.exit(f"the documentation's pip stand-in only checks `pip install`, not {{args}}")
        for arg in args[1:]:
            if arg.startswith("-"):
                continue
            if "/" in arg or arg.startswith("."):  # a folder of this repository
                folder = REPO / arg
                name = tomllib.loads((folder / "pyproject.toml").read_text())["project"]["name"]
            else:
                name = re.split(r"[=<>\\[ ;]", arg)[0]
            if name in TEST_ONLY:
                continue
            print(f"Requirement already satisfied: {{name}} {{importlib.metadata.version(name)}}")
        """,
    )
    _script(
        bin_dir / "_tool",
        """
        import datetime, json, os, sys
        from pathlib import Path

        name, args = Path(sys.argv[1]).name, sys.argv[2:]
        with open(os.environ["LLMFILES_DOCS_TOOLS_LOG"], "a") as fh:
            fh.write(json.dumps([name, *args]) + "\\n")
        if name == "gcloud" and args[:2] == ["auth", "application-default"] and "login" in args:
            adc = Path.home() / ".config" / "gcloud" / "application_default_credentials.json"
            adc.parent.mkdir(parents=True, exist_ok=True)
            # what gcloud writes, with an access token it already fetched (valid for an hour): nothing to refresh
            expiry = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            adc.write_text(json.dumps({"type": "authorized_user", "client_id": "docs.apps.googleusercontent.com",
                                       "client_secret": "docs-client-secret", "refresh_token": "docs-refresh-token",
                                       "token": "ya29.docs-access-token", "expiry": expiry}))
        elif name == "gcloud" and args[:2] == ["auth", "print-access-token"]:
            print("ya29.docs-access-token")
        elif name == "aws" and args[:2] == ["secretsmanager", "create-secret"]:
            opts = dict(zip(args[2::2], args[3::2]))
            secrets = Path(os.environ["LLMFILES_DOCS_SECRETS"])
            known = json.loads(secrets.read_text()) if secrets.exists() else {}
            known[opts["--name"]] = opts["--secret-string"]
            secrets.write_text(json.dumps(known))
        elif name == "curl":
            print("{}")
        """,
    )
    for tool in ("gcloud", "aws", "curl", "gcp-storage-emulator"):
        (bin_dir / tool).write_text(f'#!/bin/sh\nexec "{bin_dir / "_tool"}" "$0" "$@"\n')
        (bin_dir / tool).chmod(0o755)
    if dry_run:
        _script(
            bin_dir / "llmfiles",
            """
            import sys
            from llmfiles.cli import main

            args = sys.argv[1:]
            if args[:1] == ["upload"] and "--dry-run" not in args:
                args.append("--dry-run")
            sys.exit(main(args))
            """,
        )


class FakeSecretsManager:
    """``GetSecretValue`` on 127.0.0.1, answering from the file the ``aws`` stand-in writes."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.asked: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.asked.append(body["SecretId"])
                known = json.loads(fake.store.read_text()) if fake.store.exists() else {}
                if self.headers.get("X-Amz-Target") == "secretsmanager.GetSecretValue" and body["SecretId"] in known:
                    status, answer = 200, {"Name": body["SecretId"], "SecretString": known[body["SecretId"]]}
                else:
                    status, answer = 400, {"__type": "ResourceNotFoundException", "message": "not found"}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Recorder:
    """Any attribute, any call: a stand-in for a provider SDK that records what a snippet asks of it."""

    def __init__(self, path: str, calls: list[tuple[str, dict[str, Any]]]) -> None:
        self._path, self._calls = path, calls

    def __getattr__(self, name: str) -> Recorder:
        if name.startswith("__"):
            raise AttributeError(name)
        return Recorder(f"{self._path}.{name}", self._calls)

    def __call__(self, *args: Any, **kwargs: Any) -> Recorder:
        self._calls.append((self._path, kwargs))
        return Recorder(f"{self._path}()", self._calls)


def dry_run_llmfiles(calls: list[tuple[str, dict[str, Any]]]) -> types.ModuleType:
    """``llmfiles`` for the dry runs: ``upload`` and ``upload_training_files`` check their arguments against the
    real signatures, then run :meth:`llmfiles.Client.describe_upload`, which must say ``ok``; the rest is the real
    module."""
    import llmfiles
    from llmfiles.models import FileObject, TrainingFiles

    client = llmfiles.Client()
    shim = types.ModuleType("llmfiles")
    shim.__path__ = list(llmfiles.__path__)  # submodules still import
    shim.__dict__.update({k: getattr(llmfiles, k) for k in llmfiles.__all__})
    not_settings = {"filename", "progress", "wait", "wait_timeout", "keep_on_error"}

    def describe(file: Any, purpose: str, provider: str | None, kwargs: dict[str, Any]) -> FileObject:
        settings = {k: v for k, v in kwargs.items() if k not in not_settings}
        plan = client.describe_upload(
            file, purpose=purpose, provider=provider, filename=kwargs.get("filename"), **settings
        )
        assert plan["ok"], f"the dry run of llmfiles.upload({file!r}, ...) says it would be refused: {plan}"
        calls.append((f"llmfiles.upload[{plan['provider']}]", {"file": str(file), **settings}))
        return FileObject(
            id=f"dry-run://{plan['provider']}/{plan['filename']}",
            provider=plan["provider"],
            filename=plan["filename"],
            purpose=plan["purpose"],
            bytes=plan["bytes"],
            created_at=0,
            status="processed",
        )

    def upload(file: Any, *, purpose: str, provider: str | None = None, **kwargs: Any) -> FileObject:
        inspect.signature(llmfiles.Client.upload).bind(client, file, purpose=purpose, provider=provider, **kwargs)
        return describe(file, purpose, provider, kwargs)

    def upload_training_files(
        training: Any, validation: Any = None, *, purpose: str = "fine-tune", provider: str | None = None, **kw: Any
    ) -> TrainingFiles:
        inspect.signature(llmfiles.Client.upload_training_files).bind(
            client, training, validation, purpose=purpose, provider=provider, **kw
        )
        return TrainingFiles(
            training=describe(training, purpose, provider, kw),
            validation=describe(validation, purpose, provider, kw) if validation is not None else None,
        )

    shim.upload = upload  # type: ignore[attr-defined]
    shim.upload_training_files = upload_training_files  # type: ignore[attr-defined]
    return shim


# --- one page's environment --------------------------------------------------------------------------------------


def write_work_files(work: Path) -> None:
    """The files the snippets name, in the working folder (and under ``examples/``, as in the repository)."""
    from llmfiles.testing import write_batch_jsonl

    (work / "examples").mkdir(parents=True)
    for name in ("train.jsonl", "validation.jsonl"):
        data = (REPO / "examples" / name).read_bytes()
        (work / "examples" / name).write_bytes(data)
        (work / name).write_bytes(data)
    (work / "valid.jsonl").write_bytes((REPO / "examples" / "validation.jsonl").read_bytes())
    write_batch_jsonl(work / "batch.jsonl")
    write_batch_jsonl(work / "big.jsonl", min_bytes=3 * 1024 * 1024)
    (work / "broken.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    with open(work / "requests.jsonl", "w", encoding="utf-8") as fh:  # Vertex AI batch-prediction input
        for i in range(3):
            request = {"contents": [{"role": "user", "parts": [{"text": f"What is {i} + {i}?"}]}]}
            fh.write(json.dumps({"request": request}) + "\n")
    with open(work / "my-batch-requests.jsonl", "w", encoding="utf-8") as fh:  # Gemini API batch input
        for i in range(3):
            request = {"contents": [{"parts": [{"text": f"What is {i} + {i}?"}]}]}
            fh.write(json.dumps({"key": f"request-{i}", "request": request}) + "\n")
    with open(work / "batch_input_file.jsonl", "w", encoding="utf-8") as fh:  # Mistral batch input
        for i in range(3):
            body = {"max_tokens": 64, "messages": [{"role": "user", "content": f"What is {i} + {i}?"}]}
            fh.write(json.dumps({"custom_id": str(i), "body": body}) + "\n")
    (work / "contract.pdf").write_bytes(b"%PDF-1.7\n% a contract to ask Claude about\n%%EOF\n")


class DocsEnv:
    """Everything one Markdown file's snippets run in (see the module documentation)."""

    def __init__(self, path: Path, tmp: Path, mp: pytest.MonkeyPatch) -> None:
        self.path, self.tmp, self.mp = path, tmp, mp
        self.name = relative(path)
        self.dry_run = is_dry_run(path)
        self.cwd = tmp / "work"
        self.tools_log = tmp / "tools.jsonl"
        #: what the recorders of SDKs were asked, in order
        self.sdk_calls: list[tuple[str, dict[str, Any]]] = []
        #: the standard output of the last bash block
        self.out = ""
        self.servers: dict[str, Any] = {}
        self.secrets_manager: FakeSecretsManager
        self._closers: list[Callable[[], None]] = []

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> DocsEnv:
        from llmfiles.api import _reset_default_client

        write_work_files(self.cwd)
        tools = self.tmp / "bin"
        write_tools(tools, dry_run=self.dry_run)
        guard = self.tmp / "guard"
        guard.mkdir()
        (guard / "sitecustomize.py").write_text(_GUARD)
        for key in [k for k in os.environ if k.startswith(CLEARED_PREFIXES)]:
            self.mp.delenv(key)
        secrets = FakeSecretsManager(self.tmp / "secrets.json")
        self._closers.append(secrets.close)
        self.secrets_manager = secrets
        home = self.tmp / "home"
        home.mkdir()
        env = {
            "HOME": str(home),
            "LLMFILES_HOME": str(self.tmp / "llmfiles-home"),
            # the config file a page writes (or none): never the developer's
            "XDG_CONFIG_HOME": str(home / ".config"),
            "PATH": f"{tools}{os.pathsep}{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(guard),
            "LLMFILES_DOCS_TOOLS_LOG": str(self.tools_log),
            "LLMFILES_DOCS_SECRETS": str(secrets.store),
            # no metadata servers, no cloud endpoint but the fakes on loopback
            "NO_GCE_CHECK": "true",
            "GCE_METADATA_HOST": "127.0.0.1:9",
            "GCE_METADATA_IP": "127.0.0.1:9",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": secrets.url,
            "AWS_ENDPOINT_URL_STS": CLOSED_PORT,
            "AWS_CONFIG_FILE": str(home / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
            "LLMFILES_AZURE_DEFAULT_CREDENTIAL": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        if self.dry_run or self.name == "docs/quickstart.md":
            # credentials as the AWS CLI would find them (AWS's documented example key; nothing is sent)
            env["AWS_ACCESS_KEY_ID"] = "AKIAIOSFODNN7EXAMPLE"
            env["AWS_SECRET_ACCESS_KEY"] = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        for key, value in env.items():
            self.mp.setenv(key, value)
        self.mp.setattr(socket, "getaddrinfo", _loopback_only(socket.getaddrinfo))
        self.mp.chdir(self.cwd)
        for name in SERVERS.get(self.name, ()):
            self._start_server(name)
        for module in SDK_MODULES + (DRY_RUN_SDK_MODULES if self.dry_run else ()):
            self.mp.setitem(sys.modules, module, Recorder(module, self.sdk_calls))
        _reset_default_client()
        self._closers.append(_reset_default_client)
        if self.dry_run:
            import llmfiles

            self.mp.setitem(sys.modules, "llmfiles", dry_run_llmfiles(self.sdk_calls))
            self._closers.append(lambda: sys.modules.__setitem__("llmfiles", llmfiles))
        return self

    def _start_server(self, name: str) -> None:
        from servers.openai_like import OpenAILikeServer

        server: Any
        if name == "openai":
            server = OpenAILikeServer(api_key=OPENAI_KEY).start()
            self.mp.setenv("OPENAI_API_KEY", server.api_key)
            self.mp.setenv("OPENAI_BASE_URL", server.url)
        elif name == "example":  # the tutorial's gateway
            server = OpenAILikeServer(api_key=OPENAI_KEY).start()
            self.mp.setenv("EXAMPLE_API_KEY", server.api_key)
            self.mp.setenv("EXAMPLE_API_BASE", server.url)
        elif name == "managed_identity":  # azure-identity's DefaultAzureCredential gets its token here
            from servers.managed_identity import ManagedIdentityEndpoint

            server = ManagedIdentityEndpoint().start()
            for key, value in server.environment().items():
                self.mp.setenv(key, value)
        elif name == "azure":
            server = OpenAILikeServer.azure(api_key=AZURE_KEY).start()
            self.mp.setenv("AZURE_OPENAI_ENDPOINT", server.origin)
            self.mp.setenv("AZURE_OPENAI_API_KEY", server.api_key)
        else:
            raise ValueError(name)
        self.servers[name] = server
        self._closers.append(server.stop)

    def called(self, *names: str) -> bool:
        """Whether the recorders were asked for each of ``names`` (``llmfiles.upload[PROVIDER]`` for a dry run)."""
        asked = {name for name, _ in self.sdk_calls}
        return all(name in asked for name in names)

    def close(self) -> None:
        expected = AFTER.get(self.name)
        try:
            assert expected is None or expected(self), f"{self.name}: its blocks did not do what they show: " + repr(
                (self.sdk_calls, self.tools())
            )
        finally:
            self._close()

    def _close(self) -> None:
        for close in reversed(self._closers):
            close()
        for name, server in self.servers.items():
            assert not getattr(server, "errors", None), f"the {name} test server failed: {server.errors!r}"

    # -- what the snippets did ---------------------------------------------------------------------------------

    def tools(self) -> list[list[str]]:
        """Every call of a stand-in tool, as its arguments."""
        if not self.tools_log.exists():
            return []
        return [json.loads(line) for line in self.tools_log.read_text().splitlines()]

    def bash(self, code: str, where: str) -> str:
        """Run ``code`` as the page shows it; keep what it exported; return its standard output."""
        dump = self.tmp / "env.after"
        script = f"{code}\nenv -0 > {dump}\n"
        proc = subprocess.run(
            ["bash", "-eu", "-o", "pipefail", "-c", script],
            cwd=self.cwd,
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, f"{where}: the block failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        after = dict(item.split("=", 1) for item in dump.read_text().split("\0") if "=" in item)
        for key, value in after.items():
            if os.environ.get(key) != value and key not in ("_", "SHLVL", "PWD", "OLDPWD"):
                self.mp.setenv(key, value)
        self.out = proc.stdout
        return proc.stdout


@pytest.fixture(scope="module")
def docs_env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocsEnv]:
    """The environment of one Markdown file's snippets (see :class:`DocsEnv`)."""
    path = Path(request.node.path)
    with pytest.MonkeyPatch.context() as mp:
        env = DocsEnv(path, tmp_path_factory.mktemp(path.stem), mp)
        try:
            yield env.start()
        finally:
            env.close()


# --- evaluators ----------------------------------------------------------------------------------------------


def _where(example: Example) -> str:
    return f"{relative(Path(example.path))}:{example.line}"


def run_bash(example: Example) -> None:
    env: DocsEnv = example.namespace["docs_env"]
    env.bash(str(example.parsed), _where(example))


def check_text(example: Example) -> None:
    """A ``text`` block: a synopsis of ``llmfiles`` commands is checked against the real parser; any other text is
    a listing of the source tree, whose file names must exist."""
    text = str(example.parsed)
    if text.lstrip().startswith("llmfiles "):
        check_synopsis(text, _where(example))
    else:
        check_listing(text, _where(example))


def check_synopsis(text: str, where: str) -> None:
    import argparse

    from llmfiles.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for line in text.splitlines():
        if not line.strip():
            continue
        assert line.startswith("llmfiles "), f"{where}: {line!r} is not an llmfiles command"
        for part in line.removeprefix("llmfiles ").split(" | "):
            command, *rest = part.split()
            assert command in sub.choices, f"{where}: `llmfiles {command}` is no command"
            flags = {f for a in sub.choices[command]._actions for f in a.option_strings}
            for flag in re.findall(r"(?<![\w-])(--?[a-z][-a-z]*)", " ".join(rest)):
                assert flag in flags, f"{where}: `llmfiles {command}` has no option {flag}"


def check_listing(text: str, where: str) -> None:
    names = set(re.findall(r"\b([A-Za-z_][\w.-]*\.(?:py|toml|ini|md))\b", text))
    assert names, f"{where}: a text block that is neither a synopsis nor a listing of files"
    existing = {p.name for p in REPO.rglob("*") if ".tox" not in p.parts and ".git" not in p.parts}
    missing = sorted(n for n in names if n not in existing)
    assert not missing, f"{where}: the listing names files that do not exist: {missing}"


SNIPPETS = Sybil(
    parsers=[
        PythonCodeBlockParser(future_imports=["annotations"]),
        CodeBlockParser(language="bash", evaluator=run_bash),
        CodeBlockParser(language="text", evaluator=check_text),
        SkipParser(),
    ],
    patterns=[*DOCUMENTS, *DRY_RUN],
    excludes=["_build/*", "**/_build/**", ".tox/**", "**/node_modules/**"],
    path=str(REPO),
    fixtures=["docs_env"],
    name="docs",
)

pytest_collect_file = SNIPPETS.pytest()


def skip_reasons(text: str) -> list[str]:
    """The reasons of the ``<!-- skip: next ... -->`` comments of a Markdown text, for the guards."""
    return re.findall(r"<!--+\s*skip:\s*next\s*(.*?)\s*--+>", text)


def installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True
