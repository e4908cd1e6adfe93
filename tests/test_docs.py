"""Guards of the documentation site (``docs/``), run by ``tox -e docs`` (Sphinx and every plugin installed).

* the site builds with warnings as errors, and its generated references are complete: every hook of
  ``llmfiles.hookspecs``, every command and option of the CLI, every name of ``llmfiles.__all__`` and every
  environment variable every installed plugin declares appear in the rendered pages (datasette style);
* every code block of every page is a ``literalinclude`` of a file under ``docs/examples/`` (or of a test), an
  ``include`` of a README, or a generated reference — never inline code that nothing runs;
* every file under ``docs/examples/python`` and ``docs/examples/shell`` is run here: local-provider snippets in a
  temporary ``LLMFILES_HOME``, OpenAI and Azure ones against the OpenAI-compatible test server, Vertex AI and
  Bedrock ones as dry runs;
* every code block of the plugin READMEs the provider pages include is run too (see :func:`run_readme`).

Nothing here reaches the network: cloud credentials are cleared, metadata servers are turned off, and the AWS
and Google endpoints point at a closed port on loopback.
"""

from __future__ import annotations

import argparse
import html as htmllib
import importlib.metadata
import inspect
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import myst_parser  # noqa: F401 - Sphinx, MyST and every plugin come with `tox -e docs`, which runs this file
import pytest
import sphinx  # noqa: F401

import llmfiles
from llmfiles import hookspecs
from llmfiles.cli import build_parser
from llmfiles.plugins import PluginManager
from llmfiles.testing import write_batch_jsonl
from servers.openai_like import OpenAILikeServer

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
EXAMPLES = DOCS / "examples"
BIN = Path(sys.executable).parent

# cloud settings and credentials of the developer's machine never reach a snippet
_CLEARED_PREFIXES = (
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
    "STORAGE_EMULATOR_HOST",
    "IDENTITY_",
    "MSI_",
)
CLOSED_PORT = "http://127.0.0.1:9"


def safe_env(tmp: Path) -> dict[str, str]:
    """The environment every snippet runs in: no credentials, no metadata servers, nothing outside loopback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CLEARED_PREFIXES)}
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env.update(
        HOME=str(home),
        LLMFILES_HOME=str(tmp / "llmfiles-home"),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        NO_GCE_CHECK="true",
        GCE_METADATA_HOST="127.0.0.1:9",
        GCE_METADATA_IP="127.0.0.1:9",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_ENDPOINT_URL_SECRETS_MANAGER=CLOSED_PORT,
        AWS_ENDPOINT_URL_STS=CLOSED_PORT,
        LLMFILES_AZURE_DEFAULT_CREDENTIAL="0",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("PYTHONPATH", None)
    return env


def workdir(tmp: Path) -> Path:
    """A folder with the files the snippets name."""
    work = tmp / "work"
    work.mkdir()
    (work / "train.jsonl").write_bytes((REPO / "examples" / "train.jsonl").read_bytes())
    for name in ("valid.jsonl", "validation.jsonl"):
        (work / name).write_bytes((REPO / "examples" / "validation.jsonl").read_bytes())
    write_batch_jsonl(work / "batch.jsonl")
    write_batch_jsonl(work / "big.jsonl", min_bytes=3 * 1024 * 1024)
    (work / "broken.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    with open(work / "requests.jsonl", "w", encoding="utf-8") as fh:  # Vertex AI batch-prediction input
        for i in range(3):
            request = {"contents": [{"role": "user", "parts": [{"text": f"What is {i} + {i}?"}]}]}
            fh.write(json.dumps({"request": request}) + "\n")
    return work


# --- the built site ------------------------------------------------------------------------------------------


class Page:
    """One built HTML page: ``html`` as written, ``text`` with every tag removed (inline spans joined)."""

    def __init__(self, html: str) -> None:
        self.html = html
        body = html.split('<div class="body" role="main">', 1)[-1]
        self.text = htmllib.unescape(re.sub(r"<[^>]+>", "", body))


def _dirs(out: Path) -> list[str]:
    return [str(DOCS), str(out / "html")]


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Page]:
    """Build the whole site as ``tox -e docs`` does (HTML, warnings as errors); return each page."""
    out = tmp_path_factory.mktemp("docs-html")
    warnings = out / "warnings.txt"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-w", str(warnings), "-b", "html", *_dirs(out)],
        env=safe_env(out),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"the docs do not build cleanly:\n{warnings.read_text()}\n{proc.stderr}"
    return {
        str(p.relative_to(out / "html").with_suffix("")): Page(p.read_text(encoding="utf-8"))
        for p in (out / "html").rglob("*.html")
    }


def test_every_hook_is_in_the_hook_reference(rendered: dict[str, str]) -> None:
    hooks = [
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("llmfiles_") and fn.__module__ == hookspecs.__name__
    ]
    assert len(hooks) >= 6, hooks
    page = rendered["hooks"].text
    missing = [h for h in hooks if f"llmfiles.hookspecs.{h}(" not in page]
    assert not missing, f"hooks missing from the hook reference (docs/hooks.md): {missing}"
    for hook in hooks:  # the docstring itself is on the page, not only the name
        doc = inspect.getdoc(getattr(hookspecs, hook))
        assert doc, f"{hook} has no docstring; in llmfiles/hookspecs.py the docstring is the hook's documentation"
        first_line = doc.splitlines()[0]
        words = re.findall(r"[A-Za-z]{4,}", first_line)[:4]
        assert all(w in page for w in words), f"{hook}: its docstring is not rendered ({words})"


def test_every_cli_command_and_option_is_in_the_cli_reference(rendered: dict[str, str]) -> None:
    page = rendered["cli"].text
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(sub.choices) >= 7
    for name, command in sub.choices.items():
        assert f'id="cli-{name}"' in rendered["cli"].html, f"no section for `llmfiles {name}`"
        assert f"llmfiles {name}" in page
        assert f"usage: llmfiles {name}" in page, f"no usage line for `llmfiles {name}`"
        for action in command._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert flag in page, f"`llmfiles {name} {flag}` is not in the CLI reference"


def test_every_public_name_is_in_the_api_reference(rendered: dict[str, str]) -> None:
    page = rendered["api"].text
    missing = [name for name in llmfiles.__all__ if f"llmfiles.{name}" not in page]
    assert not missing, f"public names missing from the API reference (docs/api.md): {missing}"
    assert "llmfiles.upload(file" in page and "llmfiles.Client(provider" in page  # rendered by autodoc


def test_every_setting_and_environment_variable_is_in_concepts(rendered: dict[str, str]) -> None:
    from llmfiles.settings import CORE_SETTINGS

    page = rendered["concepts"].text
    providers = PluginManager(environ={}).providers()
    assert {"local", "openai", "azure", "vertex_ai", "bedrock"} <= set(providers)
    for spec in CORE_SETTINGS:
        assert all(var in page for var in spec.env), spec
    for name, info in providers.items():
        if name == "example":
            continue  # the tutorial's plugin, not a provider of llmfiles
        assert f'<h4>{name}<a class="headerlink"' in rendered["concepts"].html, f"no settings chain for {name}"
        for spec in info.settings:
            for var in spec.env:
                assert var in page, f"{name}: {var} (setting {spec.name}) is not in docs/concepts.md"


def test_each_provider_page_includes_its_readme(rendered: dict[str, str]) -> None:
    for page, plugin in {"openai": "openai", "azure": "azure", "vertex": "vertex", "bedrock": "bedrock"}.items():
        readme = (REPO / "plugins" / plugin / "README.md").read_text(encoding="utf-8")
        title = readme.splitlines()[0].lstrip("# ").strip()
        text = rendered[f"providers/{page}"].text
        assert text.lstrip().startswith(title), page
        assert "What the plugin declares" in text


def test_the_tutorial_shows_the_example_plugins_real_source(rendered: dict[str, str]) -> None:
    page = rendered["tutorial-plugin"].text
    source = (EXAMPLES / "llmfiles-example-plugin" / "src" / "llmfiles_example" / "__init__.py").read_text()
    for hook in re.findall(r"^def (llmfiles_\w+)", source, re.M):
        assert f"def {hook}(" in page, hook
    assert "class TestExampleConformance(ProviderConformance):" in page


# --- every snippet is a tested file --------------------------------------------------------------------------

#: a fenced block: fence, language or ``{directive}``, the rest of the fence line, the body
_FENCE = re.compile(r"^(```+|~~~+)[ \t]*(\S*)([^\n]*)\n(.*?)^\1[ \t]*$", re.M | re.S)
ALLOWED_DIRECTIVES = {"{literalinclude}", "{include}", "{toctree}", "{eval-rst}"}
README_INCLUDES = {
    "README.md",
    *(f"plugins/{p}/README.md" for p in ("openai", "azure", "vertex", "bedrock", "gemini", "anthropic", "mistral")),
}


def pages() -> list[Path]:
    return sorted(
        p
        for p in DOCS.rglob("*.md")
        if not p.relative_to(DOCS).parts[0].startswith(("_build", "examples")) and p.name != "architecture.md"
    )


def test_no_page_has_a_code_block_that_nothing_runs() -> None:
    included: set[Path] = set()
    for page in pages():
        text = page.read_text(encoding="utf-8")
        for m in _FENCE.finditer(text):
            where = f"{page.relative_to(REPO)}:{text[: m.start()].count(chr(10)) + 1}"
            kind, argument, body = m.group(2), m.group(3).strip(), m.group(4)
            assert kind in ALLOWED_DIRECTIVES, (
                f"{where}: a ```{kind} block; put the code in a file under docs/examples/ that tests/test_docs.py "
                "runs, and pull it in with {literalinclude}"
            )
            if kind == "{eval-rst}":
                assert not re.search(r"::\s*$", re.sub(r"^\s*\.\. [\w:-]+::.*$", "", body, flags=re.M), re.M), (
                    f"{where}: a literal block inside eval-rst"
                )
                assert "code-block" not in body and ".. code::" not in body, where
            elif kind == "{literalinclude}":
                included.add((page.parent / argument).resolve())
            elif kind == "{include}":
                path = (page.parent / argument).resolve()
                assert str(path.relative_to(REPO)) in README_INCLUDES, f"{where}: include of {argument}"
    examples = {p.resolve() for p in EXAMPLES.glob("*/*") if p.suffix in (".py", ".sh")}
    unused = sorted(str(p.relative_to(REPO)) for p in examples - included)
    assert not unused, f"example files no page includes (include them or delete them): {unused}"


def test_every_example_file_is_run_here() -> None:
    python = {p.name for p in (EXAMPLES / "python").glob("*.py")}
    shell = {p.name for p in (EXAMPLES / "shell").glob("*.sh")}
    assert python == set(PYTHON_EXAMPLES), "add the new example to PYTHON_EXAMPLES in tests/test_docs.py"
    assert shell == set(SHELL_EXAMPLES), "add the new example to SHELL_EXAMPLES in tests/test_docs.py"


# --- running the examples ------------------------------------------------------------------------------------


class Run:
    """The environment of one example and what to check afterwards."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env = safe_env(tmp)
        self.cwd = workdir(tmp)
        self.server: OpenAILikeServer | None = None

    def openai(self) -> OpenAILikeServer:
        self.server = OpenAILikeServer(api_key="sk-docs-test-0123456789").start()
        self.env.update(OPENAI_API_KEY=self.server.api_key, OPENAI_BASE_URL=self.server.url)
        return self.server

    def azure(self) -> OpenAILikeServer:
        self.server = OpenAILikeServer.azure(api_key="azure-docs-test-0123456789").start()
        self.env.update(AZURE_OPENAI_ENDPOINT=self.server.origin, AZURE_OPENAI_API_KEY=self.server.api_key)
        return self.server

    def stub_openai_sdk(self) -> Path:
        """A stand-in for the ``openai`` package that records what the snippet asks of it."""
        stub = self.tmp / "stubs"
        (stub / "openai").mkdir(parents=True)
        log = self.tmp / "openai-calls.jsonl"
        (stub / "openai" / "__init__.py").write_text(
            textwrap.dedent(
                f"""
                import json

                class _Path:
                    def __init__(self, path):
                        self._path = path
                    def __getattr__(self, name):
                        return _Path(self._path + [name])
                    def __call__(self, **kwargs):
                        with open({str(log)!r}, "a") as fh:
                            fh.write(json.dumps({{"call": ".".join(self._path), "kwargs": kwargs}}) + "\\n")
                        return {{"id": "stub"}}

                def OpenAI(**kwargs):
                    return _Path([])
                """
            )
        )
        self.env["PYTHONPATH"] = str(stub)
        return log

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    r = Run(tmp_path)
    yield r
    r.close()


def _execute(argv: list[str], r: Run) -> str:
    proc = subprocess.run(argv, cwd=r.cwd, env=r.env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{argv} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _stored(server: OpenAILikeServer | None) -> dict[str, Any]:
    assert server is not None
    return dict(server.files)


def _check_local(out: str, r: Run) -> None:
    assert re.search(r"file-[0-9a-f]{32}", out), out


def _check_openai_jobs(out: str, r: Run) -> None:
    calls = [json.loads(line) for line in (r.tmp / "openai-calls.jsonl").read_text().splitlines()]
    files = _stored(r.server)
    (job,) = [c["kwargs"] for c in calls if c["call"] == "fine_tuning.jobs.create"]
    (batch,) = [c["kwargs"] for c in calls if c["call"] == "batches.create"]
    assert files[job["training_file"]].purpose == "fine-tune" and job["validation_file"] in files
    assert files[batch["input_file_id"]].purpose == "batch"


def _has(*needles: str) -> Callable[[str, Run], None]:
    def check(out: str, r: Run) -> None:
        for needle in needles:
            assert needle in out, f"{needle!r} not in the output:\n{out}"

    return check


def _lines(*expected: str) -> Callable[[str, Run], None]:
    def check(out: str, r: Run) -> None:
        assert out.splitlines() == list(expected), out

    return check


def _on_server(count: int, *needles: str) -> Callable[[str, Run], None]:
    def check(out: str, r: Run) -> None:
        assert len(_stored(r.server)) == count, (out, _stored(r.server))
        _has(*needles)(out, r)

    return check


def _first_word_on_server(out: str, r: Run) -> None:
    assert out.split(maxsplit=1)[0] in _stored(r.server), out


def _nothing(r: Run) -> None:
    pass


def _setup_openai_jobs(r: Run) -> None:
    r.openai()
    r.stub_openai_sdk()


def _local_sh(out: str, r: Run) -> None:
    assert "deleted file-" in out and (r.cwd / "copy.jsonl").exists(), out


Setup = Callable[[Run], Any]
Check = Callable[[str, Run], None]

#: example file -> (setup, check of its output)
PYTHON_EXAMPLES: dict[str, tuple[Setup, Check]] = {
    "upload_local.py": (_nothing, _check_local),
    "async_upload.py": (_nothing, _check_local),
    "large_file.py": (_nothing, _has("upload big.jsonl: 3,")),
    "errors.py": (_nothing, _has("invalid_json", "exit code of the CLI: 2", "is not installed", "FileNotFound 404")),
    "validate_convert.py": (_nothing, _lines("True 12 0 0", "True True")),
    "upload_openai.py": (Run.openai, _first_word_on_server),
    "upload_azure.py": (Run.azure, _first_word_on_server),
    "litellm_equivalents.py": (Run.openai, _on_server(1, "processed", " batch")),
    "openai_jobs.py": (_setup_openai_jobs, _check_openai_jobs),
    "settings_chain.py": (
        lambda r: r.env.update(OPENAI_API_KEY="sk-from-the-environment"),
        _lines("argument api_key", "Client setting api_key", "env OPENAI_API_KEY"),
    ),
    "dry_run_vertex.py": (
        _nothing,
        _has("destination: POST https://storage.googleapis.com/upload/storage/v1/b/my-tuning-bucket/o"),
    ),
    "dry_run_bedrock.py": (
        _nothing,
        _has("destination: PUT https://my-training-bucket.s3.us-east-1.amazonaws.com/llmfiles/fine-tune/"),
    ),
}

SHELL_EXAMPLES: dict[str, tuple[Setup, Check]] = {
    "local.sh": (_nothing, _local_sh),
    "large_file.sh": (_nothing, _has("mode:         parts", "bytes:      3,")),
    "errors.sh": (_nothing, _lines("exit code 2", "exit code 2", "exit code 1")),
    "openai.sh": (Run.openai, _on_server(2, "dry run (training)", "processed")),
    "azure.sh": (Run.azure, _on_server(1, "env AZURE_OPENAI_API_KEY", "processed")),
    "vertex.sh": (_nothing, _has("b/my-tuning-bucket/o", "vertex_ai rules for 'fine-tune' records")),
    "bedrock.sh": (_nothing, _has("my-training-bucket.s3.us-east-1.amazonaws.com", "bedrock rules")),
    "plugin.sh": (
        _nothing,
        _has("llmfiles-example-plugin", "https://llm-gateway.example.internal/v1/files", "env EXAMPLE_API_KEY"),
    ),
}


@pytest.mark.parametrize("name", sorted(PYTHON_EXAMPLES))
def test_python_example_runs(name: str, run: Run) -> None:
    setup, check = PYTHON_EXAMPLES[name]
    setup(run)
    check(_execute([sys.executable, str(EXAMPLES / "python" / name)], run), run)


@pytest.mark.parametrize("name", sorted(SHELL_EXAMPLES))
def test_shell_example_runs(name: str, run: Run) -> None:
    setup, check = SHELL_EXAMPLES[name]
    setup(run)
    check(_execute(["bash", "-eu", "-o", "pipefail", str(EXAMPLES / "shell" / name)], run), run)


# --- the plugin READMEs the provider pages include -----------------------------------------------------------

#: provider tools a README shows next to llmfiles: named, never run here (they would need accounts)
TOOLS_NOT_RUN = {"gcloud", "aws", "curl", "gcp-storage-emulator"}
#: distributions a README installs for its own tests, not for users
TEST_ONLY_DISTRIBUTIONS = {"gcp-storage-emulator"}
#: third-party SDKs the README snippets start jobs with: replaced by recorders
SDK_MODULES = ("boto3", "openai", "google.genai", "google.genai.types", "azure.identity")


class _Recorder:
    """Any attribute, any call: a stand-in for a provider SDK."""

    def __init__(self, path: str, calls: list[tuple[str, dict[str, Any]]]) -> None:
        self._path, self._calls = path, calls

    def __getattr__(self, name: str) -> _Recorder:
        return _Recorder(f"{self._path}.{name}", self._calls)

    def __call__(self, *args: Any, **kwargs: Any) -> _Recorder:
        self._calls.append((self._path, kwargs))
        return _Recorder(f"{self._path}()", self._calls)


def _dry_llmfiles(calls: list[tuple[str, dict[str, Any]]]) -> types.ModuleType:
    """``llmfiles`` for README snippets: the real checks of an upload — provider, purpose, every setting (unknown
    ones are refused), the file and its content, conversions included — without credentials or network."""
    from llmfiles.api import Client
    from llmfiles.models import FileObject, TrainingFiles

    client = Client()
    client._pm.providers()  # load every plugin now, while ``llmfiles`` is still the real package
    client._pm.converters()
    shim = types.ModuleType("llmfiles")
    shim.__path__ = list(llmfiles.__path__)  # submodules still import
    shim.__dict__.update(
        {k: getattr(llmfiles, k) for k in llmfiles.__all__ if k not in ("upload", "upload_training_files")}
    )

    def check(method: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        bound = inspect.signature(method).bind(*args, **kwargs)  # a wrong argument fails here
        settings = dict(bound.arguments.pop("settings", {}))
        return {**bound.arguments, "settings": settings}

    def prepare(file: Any, a: dict[str, Any]) -> FileObject:
        prep = client._prepare(
            file,
            purpose=a.get("purpose", "fine-tune"),
            provider=a.get("provider"),
            filename=a.get("filename"),
            explicit=a["settings"],
            resolve_credentials=False,
        )
        info = prep.call.info
        calls.append((f"llmfiles.upload[{info.name}]", {"file": str(file), **a["settings"]}))
        return FileObject(
            id=f"dry-run://{info.name}/{prep.source.name}",
            provider=info.name,
            filename=prep.source.name,
            purpose=prep.purpose,
            bytes=prep.source.size,
            created_at=0,
            status="processed",
        )

    def upload(file: Any, **kwargs: Any) -> FileObject:
        return prepare(file, check(Client.upload, client, file, **kwargs))

    def upload_training_files(training: Any, validation: Any = None, **kwargs: Any) -> TrainingFiles:
        a = check(Client.upload_training_files, client, training, validation, **kwargs)
        return TrainingFiles(
            training=prepare(training, a), validation=prepare(validation, a) if validation is not None else None
        )

    shim.upload = upload  # type: ignore[attr-defined]
    shim.upload_training_files = upload_training_files  # type: ignore[attr-defined]
    return shim


class FakeSecretsManager:
    """``GetSecretValue`` on 127.0.0.1 for the README's Secrets Manager lines: ``aws secretsmanager create-secret``
    (not run) stores here what it would have stored in AWS."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.secrets: dict[str, str] = {}
        self.asked: list[str] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.asked.append(body["SecretId"])
                if (
                    self.headers.get("X-Amz-Target") == "secretsmanager.GetSecretValue"
                    and body["SecretId"] in fake.secrets
                ):
                    status, answer = 200, {"Name": body["SecretId"], "SecretString": fake.secrets[body["SecretId"]]}
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

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def create_secret(self, args: list[str]) -> None:
        """``aws secretsmanager create-secret --name N --secret-string S``"""
        assert args[:2] == ["secretsmanager", "create-secret"], args
        opts = dict(zip(args[2::2], args[3::2], strict=False))
        self.secrets[opts["--name"]] = opts["--secret-string"]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _bash_commands(code: str) -> Iterator[list[str]]:
    pending = ""
    for line in code.replace("\\\n", " ").splitlines():
        pending += line
        try:
            tokens = shlex.split(pending, comments=True)
        except ValueError:  # a quote that closes on a later line
            pending += "\n"
            continue
        pending = ""
        if tokens and tokens[-1] == "&":
            tokens = tokens[:-1]
        if tokens:
            yield tokens


def run_readme(
    readme: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch, secrets_manager: FakeSecretsManager
) -> list[str]:
    """Run every code block of ``readme``, in order, in one environment; return what was not run (tools).

    * bash: ``export`` and ``VAR=value`` prefixes set the environment; ``pip install X`` checks X is installed;
      ``llmfiles ...`` runs the real command — ``upload`` as ``--dry-run`` (everything checked, nothing sent),
      the offline commands for real; the providers' own tools (:data:`TOOLS_NOT_RUN`) are listed, not run —
      except that ``aws secretsmanager create-secret`` stores its secret in a fake Secrets Manager on loopback
      (the AWS keys are then fake ones that only it sees).
    * python: run for real with the provider SDKs replaced by recorders and ``llmfiles.upload`` /
      ``upload_training_files`` by their dry-run checks (see :func:`_dry_llmfiles`).
    """
    env = safe_env(tmp)
    env.update(
        AWS_ENDPOINT_URL_SECRETS_MANAGER=secrets_manager.url,
        AWS_ACCESS_KEY_ID="AKIAIOSFODNN7EXAMPLE",
        AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",  # AWS's documented example key
    )
    work = workdir(tmp)
    for key in [k for k in os.environ if k.startswith(_CLEARED_PREFIXES) or k == "PYTHONPATH"]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(work)
    not_run: list[str] = []
    calls: list[tuple[str, dict[str, Any]]] = []
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    text = readme.read_text(encoding="utf-8")
    for m in _FENCE.finditer(text):
        lang, code = m.group(2), m.group(4)
        where = f"{readme.relative_to(REPO)}:{text[: m.start()].count(chr(10)) + 1}"
        if lang == "python":
            for name in SDK_MODULES:
                monkeypatch.setitem(sys.modules, name, _Recorder(name, calls))  # type: ignore[arg-type]
            monkeypatch.setitem(sys.modules, "llmfiles", _dry_llmfiles(calls))
            try:
                exec(compile(code, where, "exec"), namespace)
            finally:
                monkeypatch.setitem(sys.modules, "llmfiles", llmfiles)
            continue
        assert lang in ("bash", "sh", ""), f"{where}: a ```{lang} block; run it here or make it bash/python"
        for tokens in _bash_commands(code):
            prefix = {}
            while tokens and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", tokens[0]):
                k, _, v = tokens.pop(0).partition("=")
                prefix[k] = v
            cmd, args = tokens[0], tokens[1:]
            if cmd == "export":
                for item in args:
                    k, _, v = item.partition("=")
                    monkeypatch.setenv(k, v)
            elif cmd == "pip":
                assert args[0] == "install", f"{where}: {tokens}"
                for dist in args[1:]:
                    name = re.split(r"[=<>\[ ]", dist)[0]
                    if name not in TEST_ONLY_DISTRIBUTIONS:
                        importlib.metadata.version(name)  # the README's install line names a real distribution
            elif cmd == "llmfiles":
                if args[0] == "upload" and "--dry-run" not in args:
                    args.append("--dry-run")
                proc = subprocess.run(
                    [sys.executable, "-m", "llmfiles", *args],
                    env={**os.environ, **prefix},
                    capture_output=True,
                    text=True,
                    timeout=120,
                    check=False,
                )
                assert proc.returncode == 0, f"{where}: `llmfiles {shlex.join(args)}` failed:\n{proc.stderr}"
            elif cmd == "aws" and args[:2] == ["secretsmanager", "create-secret"]:
                secrets_manager.create_secret(args)
            elif cmd in TOOLS_NOT_RUN:
                not_run.append(shlex.join(tokens))
            else:
                pytest.fail(f"{where}: `{cmd}` in a README snippet: run it here or list it in TOOLS_NOT_RUN")
    return not_run


@pytest.mark.parametrize("plugin", ["openai", "azure", "vertex", "bedrock"])
def test_readme_snippets_run(plugin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmfiles.api import _reset_default_client

    _reset_default_client()
    secrets_manager = FakeSecretsManager()
    try:
        not_run = run_readme(REPO / "plugins" / plugin / "README.md", tmp_path, monkeypatch, secrets_manager)
    finally:
        secrets_manager.close()
    assert all(cmd.split()[0] in TOOLS_NOT_RUN for cmd in not_run)
    if secrets_manager.secrets:  # the README's Secrets Manager lines really fed the settings chain
        assert set(secrets_manager.secrets) <= set(secrets_manager.asked)
