"""docker/ checked statically: no Docker engine runs here, so what can be checked without one is checked.

The compose files parse; every nirbridge service runs a real `nirbridge` command with options it has (and
values it accepts); every NIRBRIDGE_* variable given to a container is a field of the settings; every
${...} variable is defined in .env.example; URLs point at services (or their aliases) on the ports they
listen on; build contexts, Dockerfile and copied folders exist, and the image installs every package folder
that pyproject maps.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml
from typer.testing import CliRunner

from nirbridge.connector.cli import app
from nirbridge.connector.settings import Settings
from nirbridge.workers import celery_app

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
VARIABLE = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<rest>[^}]*)\}")


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((DOCKER / name).read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load("compose.yaml")


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _ours(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The services that run the nirbridge image."""
    return {
        name: spec for name, spec in services.items() if str(spec.get("image", "")).startswith("nirbridge:")
    }


def _environment(spec: dict[str, Any]) -> dict[str, str]:
    env = spec.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _defaults() -> dict[str, str]:
    """docker/.env.example as compose reads a .env file."""
    values = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _interpolate(text: str) -> str:
    """${VAR}, ${VAR:-default}, ${VAR:?error} with .env.example's values, as compose substitutes them."""
    values = _defaults()

    def one(match: re.Match[str]) -> str:
        name, rest = match.group("name"), match.group("rest")
        if name in values:
            return values[name]
        return rest[2:] if rest.startswith(":-") else ""

    return VARIABLE.sub(one, text).replace("$$", "$")


def _command(words: list[str]) -> tuple[Any, int]:
    """The click command that `nirbridge words...` runs (typer builds one; a group has `commands`), and
    how many words name it (`migrate rollback`: 2)."""
    found: Any = typer.main.get_command(app)
    used = 0
    while used < len(words) and words[used] in getattr(found, "commands", {}):
        found = found.commands[words[used]]
        used += 1
    assert used and not hasattr(found, "commands"), f"no command `nirbridge {' '.join(words[: used + 1])}`"
    return found, used


def _check_cli(argv: list[str], where: str) -> None:
    """`nirbridge argv...` is a command whose every option exists, and whose --help runs."""
    words = [_interpolate(str(word)) for word in argv]
    command, used = _command(words)
    name, args = words[:used], words[used:]
    help_run = CliRunner().invoke(app, [*name, "--help"])
    assert help_run.exit_code == 0, help_run.output
    options = {opt: param for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for word in args:
        if word.startswith("--"):
            assert word in options, f"{where}: `nirbridge {' '.join(name)}` has no option {word}"
    # the command's own parser takes the whole line: types, ranges and required options as when it runs
    context = command.make_context(" ".join(name), args)
    assert context.params, where


def test_the_compose_files_parse_and_name_real_services(compose: dict[str, Any], services) -> None:
    assert {"opensearch", "redis", "worker-enrich", "worker-rerank", "proxy", "enrich"} <= set(services)
    gpu = _load("compose.gpu.yaml")
    assert set(gpu["services"]) <= set(services)
    for name, spec in gpu["services"].items():
        assert spec["build"]["args"]["VARIANT"] == "gpu", name
        assert spec["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    declared = set(compose.get("volumes") or {})
    for name, spec in services.items():
        for needed in spec.get("depends_on") or {}:
            assert needed in services, f"{name} depends on {needed}, which is no service"
        for volume in spec.get("volumes") or []:
            source = str(volume).split(":", 1)[0]
            assert source in declared, f"{name} mounts volume {source}, which compose.yaml does not declare"


def test_every_service_command_is_a_real_cli_command_with_real_options(services) -> None:
    ours = _ours(services)
    assert set(ours) == {"worker-enrich", "worker-rerank", "proxy", "enrich"}
    for name, spec in ours.items():
        _check_cli(list(spec["command"]), name)
    queues = {name: spec["command"][spec["command"].index("--queues") + 1] for name, spec in ours.items()
              if "--queues" in spec["command"]}  # fmt: skip
    assert queues == {"worker-enrich": "enrich", "worker-rerank": "rerank"}
    assert set(queues.values()) <= set(celery_app.QUEUES)
    enrich = [_interpolate(str(word)) for word in ours["enrich"]["command"]]
    assert enrich[enrich.index("--runner") + 1] == "celery"  # the enrich worker does the work
    # the checkpoint lies in a volume: a stopped (paused) job resumes in the next container
    checkpoint = enrich[enrich.index("--checkpoint") + 1]
    mounts = [str(volume).split(":")[1] for volume in ours["enrich"]["volumes"]]
    assert any(checkpoint.startswith(mount + "/") for mount in mounts), (checkpoint, mounts)


def test_the_image_entrypoint_and_default_command_are_the_proxy() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    entry = yaml.safe_load(re.search(r"^ENTRYPOINT (.+)$", dockerfile, re.M).group(1))
    default = yaml.safe_load(re.search(r"^CMD (.+)$", dockerfile, re.M).group(1))
    assert entry == ["nirbridge"]
    _check_cli(default, "Dockerfile CMD")
    port = default[default.index("--port") + 1]
    assert f"EXPOSE {port}" in dockerfile and f"127.0.0.1:{port}/_nirbridge/health" in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M), "the image runs as a user of its own, not root"


def test_every_nirbridge_variable_is_a_setting_and_every_variable_is_defined(services) -> None:
    fields = {f"NIRBRIDGE_{name.upper()}" for name in Settings.model_fields}
    for name, spec in services.items():
        # a setting, or a variable an option of the service's own command reads
        command = _command([str(word) for word in spec["command"]])[0] if name in _ours(services) else None
        envvars = {param.envvar for param in command.params if param.envvar} if command else set()
        for key in _environment(spec):
            if key.startswith("NIRBRIDGE_"):
                assert key in fields | envvars, (
                    f"{name}: {key} is not a nirbridge setting (connector/settings.py)"
                )
    text = (DOCKER / "compose.yaml").read_text() + (DOCKER / "compose.gpu.yaml").read_text()
    defaults = _defaults()
    used = set()
    for match in VARIABLE.finditer(text):
        name, rest = match.group("name"), match.group("rest")
        used.add(name)
        if not rest.startswith(":-"):
            assert name in defaults, f"${{{name}}} has no default and is not in docker/.env.example"
        assert not name.startswith("NIRBRIDGE_") or f"{name}" in fields, name
    assert set(defaults) <= used, f"docker/.env.example sets unused {sorted(set(defaults) - used)}"
    # the values .env.example gives the proxy's settings are ones the settings accept
    proxy = {
        k[len("NIRBRIDGE_") :].lower(): _interpolate(v) for k, v in _environment(services["proxy"]).items()
    }
    Settings(**{k: v for k, v in proxy.items() if k.startswith("proxy_")})


def test_urls_and_ports_point_at_services_that_listen_there(services) -> None:
    aliases = {name: {name} for name in services}
    for name, spec in services.items():
        for network in (spec.get("networks") or {}).values():
            aliases[name] |= set((network or {}).get("aliases") or [])

    def service_at(url: str) -> tuple[str, int]:
        parts = urlsplit(url)
        owners = [name for name, names in aliases.items() if parts.hostname in names]
        assert owners, f"{url}: no service answers to {parts.hostname}"
        return owners[0], int(parts.port or 0)

    listens = {"opensearch": 9200, "redis": 6379}
    for name, spec in _ours(services).items():
        env = {k: _interpolate(v) for k, v in _environment(spec).items()}
        assert service_at(env["NIRBRIDGE_URL"]) == ("opensearch", listens["opensearch"]), name
        assert urlsplit(env["NIRBRIDGE_URL"]).scheme == "https"  # the security plugin's TLS
        for key in ("NIRBRIDGE_BROKER_URL", "NIRBRIDGE_RESULT_BACKEND"):
            assert service_at(env[key]) == ("redis", listens["redis"]), (name, key)
        assert env["NIRBRIDGE_CA_CERTS"].startswith("/certs/")
        assert "opensearch-config:/certs:ro" in spec["volumes"]  # where the cluster's CA lies
        # the proxy logs in as its own read-only user, the others (they write) as admin
        password = "PROXY_PASSWORD" if name == "proxy" else "OPENSEARCH_INITIAL_ADMIN_PASSWORD"
        assert env["NIRBRIDGE_PASSWORD"] == _defaults()[password], name
    assert "opensearch-config:/usr/share/opensearch/config" in services["opensearch"]["volumes"]
    assert any(str(p).endswith(":9200") for p in services["opensearch"]["ports"])
    proxy = services["proxy"]
    port = proxy["command"][proxy["command"].index("--port") + 1]
    assert any(str(p).endswith(f":{port}") for p in proxy["ports"])
    assert f"127.0.0.1:{port}/_nirbridge/health" in " ".join(proxy["healthcheck"]["test"])
    for name in ("worker-enrich", "worker-rerank"):
        command = services[name]["command"]
        hostname = command[command.index("--hostname") + 1].split("@")[0]
        ping = services[name]["healthcheck"]["test"]
        assert f'--destination "{hostname}@$${{HOSTNAME}}"' in ping or f'"{hostname}@$${{HOSTNAME}}"' in ping
        module, _, attribute = shlex.split(ping)[2].partition(":")
        assert module == "nirbridge.workers.celery_app" and hasattr(celery_app, attribute)


def test_the_proxy_logs_in_as_a_read_only_user_of_its_own(services) -> None:
    proxy = {k: _interpolate(v) for k, v in _environment(services["proxy"]).items()}
    for name in ("worker-enrich", "worker-rerank", "enrich"):  # they write: admin, as before
        assert _environment(services[name])["NIRBRIDGE_USERNAME"] == "admin", name
    assert proxy["NIRBRIDGE_USERNAME"] != "admin"
    # and lends it to anonymous callers only when told (issue 13: no one borrows the proxy's identity)
    lend = proxy["NIRBRIDGE_PROXY_LEND_CREDENTIALS"]
    assert Settings(proxy_lend_credentials=lend).proxy_lend_credentials is False
    users = services["opensearch-users"]
    assert users["depends_on"]["opensearch"]["condition"] == "service_healthy"
    made_first = services["proxy"]["depends_on"]["opensearch-users"]["condition"]
    assert made_first == "service_completed_successfully"
    script = users["command"][0]
    made = re.search(r"put internalusers/(\w+) .*?opendistro_security_roles\\\": \[\\\"(\w+)", script, re.S)
    assert made and made.group(1) == proxy["NIRBRIDGE_USERNAME"], script
    role = re.search(rf"put roles/{made.group(2)} '(.*?)'", script, re.S)
    assert role, script
    granted = json.loads(role.group(1))
    actions = [a for p in granted["index_permissions"] for a in p["allowed_actions"]]
    actions += granted["cluster_permissions"]
    assert actions and "read" in actions and "cluster:monitor/main" in actions  # search, and the ready ping
    reads = ("indices:data/read/", "indices:admin/mappings/get", "indices:admin/validate/", "cluster:monitor")
    for action in actions:  # nothing that writes or administers: no write groups, no wildcards
        assert action in ("read", "cluster_composite_ops_ro") or action.startswith(reads), action
    env = _environment(users)
    assert "${PROXY_PASSWORD" in env["PROXY_PASSWORD"] and "PROXY_PASSWORD" in _defaults()


def test_the_build_context_holds_what_the_dockerfile_copies(services) -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    for name, spec in _ours(services).items():
        context = (DOCKER / spec["build"]["context"]).resolve()
        assert context == ROOT and (context / spec["build"]["dockerfile"]).is_file(), name
    copied = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    copied += [line.split()[2] for line in dockerfile.splitlines() if line.startswith("COPY ") and
               len(line.split()) > 3]  # fmt: skip
    for source in copied:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which the repository lacks"
    pyproject = (ROOT / "pyproject.toml").read_text()
    folders = set(re.findall(r'^"nirbridge[\w.]*" = "([\w/]+)"$', pyproject, re.M))
    assert folders and {folder.split("/")[0] for folder in folders} <= set(copied), (folders, copied)
    assert re.search(r"VARIANT.*\n(.*\n)*.*cpu\).*\n.*gpu\).*onnxruntime-gpu", dockerfile)


def test_the_readme_steps_run_real_commands(services) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Running on a real cluster (docker)") :]
    section = section[: section.index("\n## ", 1)].replace("\\\n", " ")
    runs = re.findall(r"docker compose (?:-f \S+ )+(?:--profile \S+ )?run --rm (\S+)([^\n`]*)", section)
    assert len(runs) >= 5, runs
    for service, rest in runs:
        assert service in _ours(services), service
        words = shlex.split(rest)
        _check_cli(words or list(services[service]["command"]), f"README: run --rm {service}{rest}")
        if "--dataset" in words:  # a path inside the image: WORKDIR /opt/nirbridge holds the copied folders
            inside = Path(words[words.index("--dataset") + 1]).relative_to("/opt/nirbridge")
            assert (ROOT / inside / "corpus.jsonl").is_file(), inside
