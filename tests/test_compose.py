"""The docker compose deployment would come up: docker-compose.yaml, Dockerfile, .env.example, docker/marquez.yml.

No Docker engine runs here, so the deployment is checked as files. The compose file is interpolated as Compose
does (``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``, ``$$``) with the variables .env.example documents,
its secrets filled with distinct test values, then validated against the Compose schema in
``../shared/compose-spec/`` and held to rules: what Airflow 3's official docker-compose.yaml sets for every
Airflow container (one JWT secret, Fernet key, API secret key, metadata DB and Execution API URL in all of
them), volumes mounted where the image makes a directory the airflow user can write and handed to it by
airflow-init, a shared log volume, health checks whose endpoints the service really opens and ``depends_on``
with conditions, Marquez's API, web server and database agreeing, pinned images, secrets only from .env, the
image's paths, Java and S3 jars, and a runtime-only image.

Each rule is a function returning the problems it finds. ``test_rule_holds`` runs every rule on the
repository's files; ``test_rule_catches_defect`` puts back, one at a time, each defect issue 19 found (and the
others a rule exists for) into a copy of those files and asserts that its rule reports it.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml

from c360 import settings

ROOT = settings.PROJECT_DIR
COMPOSE_SCHEMA = ROOT.parent / "shared" / "compose-spec" / "compose-spec.json"

SERVICES = {"postgres", "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
            "airflow-triggerer", "c360-seed", "spark-master", "spark-worker", "marquez-db", "marquez-api",
            "marquez-web"}
# Services running Airflow's code against the metadata DB: each needs the settings below, with one value.
AIRFLOW_SERVICES = ("airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "c360-seed")
# What the official Airflow 3 docker-compose.yaml sets in its x-airflow-common environment (executor, DB,
# Fernet key, Execution API URL, JWT secret, scheduler health check), plus the API secret key that signs
# log requests between containers.
AIRFLOW_REQUIRED = ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__FERNET_KEY",
                    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "AIRFLOW__API_AUTH__JWT_SECRET",
                    "AIRFLOW__API__SECRET_KEY", "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK")
SHARED_SETTINGS = (*AIRFLOW_REQUIRED, "AIRFLOW__CORE__AUTH_MANAGER", "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
                   "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", "AIRFLOW__OPENLINEAGE__TRANSPORT",
                   "AIRFLOW__OPENLINEAGE__EXTRACTORS", "AIRFLOW__OPENLINEAGE__NAMESPACE", "C360_LAKE_URI",
                   "C360_STATE_DIR", *(f"AIRFLOW_CONN_{c.upper()}" for c in settings.CONNECTION_IDS))
# The secrets: only ever ${NAME:?...} in the compose file, empty in .env.example, with a way to generate them.
SECRETS = ("POSTGRES_PASSWORD", "MARQUEZ_DB_PASSWORD", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY",
           "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW_ADMIN_PASSWORD")
TEST_TOOLS = ("pytest", "hypothesis", "jsonschema", "duckdb", "selenium", "moto", "ruff")
# Paths the base images provide (the official Airflow image's entrypoint, Debian's default JRE).
BASE_IMAGE_PATHS = {"/entrypoint": "apache/airflow", "/usr/lib/jvm/default-java": "default-jre-headless"}
C360_IMAGE = "c360-airflow"


# --- the files ---------------------------------------------------------------------------------------------

@dataclass
class Deployment:
    compose: dict  # docker-compose.yaml as Compose reads it (anchors merged), before interpolation
    compose_text: str
    dockerfile: str
    env_example_text: str
    marquez_config: dict
    init_sql: str
    requirements: str
    requirements_dev: str
    ignore_files: dict[str, str] = field(default_factory=dict)

    def copy(self) -> Deployment:
        return copy.deepcopy(self)


def load_deployment() -> Deployment:
    compose_text = (ROOT / "docker-compose.yaml").read_text()
    # a JSON round trip gives every service its own dicts: YAML aliases share them, a mutation would not
    compose = json.loads(json.dumps(yaml.safe_load(compose_text)))
    return Deployment(
        compose=compose, compose_text=compose_text, dockerfile=(ROOT / "Dockerfile").read_text(),
        env_example_text=(ROOT / ".env.example").read_text(),
        marquez_config=yaml.safe_load((ROOT / "docker" / "marquez.yml").read_text()),
        init_sql=(ROOT / "include/sql/compose/init-databases.sql").read_text(),
        requirements=(ROOT / "requirements.txt").read_text(),
        requirements_dev=(ROOT / "requirements-dev.txt").read_text(),
        ignore_files={name: (ROOT / name).read_text() for name in (".gitignore", ".dockerignore")})


def env_example(d: Deployment) -> dict[str, str]:
    """The variables .env.example sets (commented-out examples excluded)."""
    values = {}
    for line in d.env_example_text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def compose_env(d: Deployment) -> dict[str, str]:
    """What compose would read from a .env copied from .env.example, each secret generated (distinct values,
    hex like the documented commands make, so that a mix-up between two of them shows)."""
    env = env_example(d)
    for name in SECRETS:
        if not env.get(name):
            env[name] = hashlib.sha256(name.encode()).hexdigest()[:32]
    return env


class Unset(ValueError):
    pass


_VARIABLE = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\})")


def interpolate(value, env: dict[str, str]):
    """Compose's interpolation of every string in ``value``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3)
        val = env.get(name)
        if op in (":?", "?") and (val is None or (op == ":?" and val == "")):
            raise Unset(f"{name}: {arg}")
        if op == ":-":
            return val or arg
        if op == "-":
            return arg if val is None else val
        return val or ""

    return _VARIABLE.sub(one, value)


def services(d: Deployment) -> dict[str, dict]:
    return interpolate(d.compose, compose_env(d))["services"]


def service_env(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def command_text(value) -> str:
    return " ".join(value) if isinstance(value, list) else str(value or "")


def uses_c360_image(svc: dict) -> bool:
    return str(svc.get("image", "")).split(":")[0] == C360_IMAGE


def mounts(svc: dict, named_volumes: set[str]) -> list[tuple[str, str, bool]]:
    """(source, target, is_named_volume) of a service's volumes, short or long syntax."""
    found = []
    for v in svc.get("volumes", []):
        if isinstance(v, dict):
            source, target = v.get("source", ""), v["target"]
        else:
            source, target = v.split(":")[0], v.split(":")[1]
        found.append((source, target, source in named_volumes))
    return found


def sql_databases(init_sql: str) -> set[str]:
    return set(re.findall(r"create database (\w+)", init_sql, re.I))


# --- the Dockerfile, read as its instructions -------------------------------------------------------------

def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    found, buf = [], ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        instruction, _, args = buf.strip().partition(" ")
        found.append((instruction.upper(), args.strip()))
        buf = ""
    return found


def dockerfile_vars(text: str, kind: str) -> dict[str, str]:
    values = {}
    for instruction, args in dockerfile_instructions(text):
        if instruction == kind:
            for token in shlex.split(args):
                key, _, value = token.partition("=")
                values[key] = value
    return values


def _paths(fragment: str) -> list[str]:
    return [t for t in shlex.split(fragment, posix=True) if t.startswith("/")]


@dataclass
class ImageFiles:
    created: set[str]  # directories and files the Dockerfile makes (mkdir, COPY, ln -s)
    airflow_writable: set[str]  # directories it makes and gives to the airflow user
    user: str  # the user the image runs as (its last USER)
    apt_packages: set[str]


def image_files(text: str) -> ImageFiles:
    created, chowned, mkdirs, apt, user = set(), [], [], set(), "root"
    for instruction, args in dockerfile_instructions(text):
        if instruction == "USER":
            user = args.split(":")[0]
        elif instruction == "COPY":
            tokens = [t for t in shlex.split(args) if not t.startswith("--")]
            created.add(tokens[-1])
        elif instruction == "RUN":
            # a link's target may be a $(...) with its own ';': read links off the whole command
            created |= set(re.findall(r"\bln -sf? (?:\"[^\"]*\"|'[^']*'|\S+) (/\S+)", args))
            for step in re.split(r"&&|;", args):
                words = step.split()
                if not words:
                    continue
                if words[0] == "mkdir":
                    mkdirs += _paths(step)
                elif words[0] == "chown":
                    owner = [w for w in words[1:] if not w.startswith("-")][0]
                    chowned.append((owner.split(":")[0], "-R" in words, _paths(step)))
                elif words[:2] == ["apt-get", "install"]:
                    apt |= {w for w in words[2:] if not w.startswith("-")}
    created |= set(mkdirs)

    def owned_by_airflow(path: str) -> bool:
        p = PurePosixPath(path)
        return any(owner in ("airflow", "50000") and any(
            p == PurePosixPath(c) or (recursive and PurePosixPath(c) in p.parents) for c in paths)
            for owner, recursive, paths in chowned)

    return ImageFiles(created, {p for p in mkdirs if owned_by_airflow(p)}, user, apt)


def image_has(files: ImageFiles, path: str) -> bool:
    p = PurePosixPath(path)
    return path in BASE_IMAGE_PATHS or any(p == PurePosixPath(c) or PurePosixPath(c) in p.parents
                                           for c in files.created)


# --- the rules: each returns the problems it finds ---------------------------------------------------------

def rule_compose_schema(d: Deployment) -> list[str]:
    """The file is what Compose accepts: valid against the Compose Specification's JSON schema."""
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    try:
        model = interpolate(d.compose, compose_env(d))
    except Unset as e:
        return [f"a variable compose requires is not in .env.example: {e}"]
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in sorted(validator.iter_errors(model), key=lambda e: list(map(str, e.absolute_path)))]


def rule_services_and_dependencies(d: Deployment) -> list[str]:
    """The services exist, and each start-up order waits on a condition the dependency can meet: healthy for
    one with a health check, completed for a one-shot (depends_on without a condition only waits for start)."""
    svcs = services(d)
    problems = []
    if set(svcs) != SERVICES:
        problems.append(f"services differ: missing {sorted(SERVICES - set(svcs))}, extra {sorted(set(svcs) - SERVICES)}")
    for name, svc in svcs.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            problems.append(f"{name}: depends_on {deps} without a condition")
            continue
        for dep, spec in deps.items():
            if dep not in svcs:
                problems.append(f"{name} depends on unknown service {dep}")
                continue
            condition = (spec or {}).get("condition")
            if condition == "service_healthy" and "healthcheck" not in svcs[dep]:
                problems.append(f"{name} waits for {dep} to be healthy, but {dep} has no health check")
            elif condition == "service_completed_successfully" and svcs[dep].get("restart", "no") != "no":
                problems.append(f"{name} waits for {dep} to complete, but {dep} restarts")
            elif condition not in ("service_healthy", "service_completed_successfully"):
                problems.append(f"{name}: depends_on {dep} has condition {condition!r}")
    return problems


def rule_published_ports_unique(d: Deployment) -> list[str]:
    ports = [str(p).split(":")[0] for svc in services(d).values() for p in svc.get("ports", [])]
    return [f"host port {p} published twice" for p in sorted({p for p in ports if ports.count(p) > 1})]


def rule_images_pinned(d: Deployment) -> list[str]:
    """Every image names a release: no :latest, no bare major (postgres:16 moves), and the project's own
    image is built here."""
    problems = []
    for name, svc in services(d).items():
        image = str(svc.get("image", ""))
        repo, _, tag = image.rpartition(":") if ":" in image else (image, "", "")
        if not tag or tag == "latest" or not re.search(r"\d+\.\d+", tag):
            problems.append(f"{name}: image {image!r} is not pinned to a release")
        if repo == C360_IMAGE and svc.get("build") not in (".", {"context": "."}):
            problems.append(f"{name}: {C360_IMAGE} is built from ./Dockerfile, but the service has no build: .")
    return problems


def rule_airflow_settings_shared(d: Deployment) -> list[str]:
    """Every Airflow container has each setting the official file sets, with the same value: a JWT secret,
    Fernet key or API secret key per container fails tasks, connections and logs."""
    svcs = services(d)
    problems = []
    for name in AIRFLOW_SERVICES:
        if name not in svcs:
            continue
        env = service_env(svcs[name])
        problems += [f"{name}: {key} is not set" for key in AIRFLOW_REQUIRED if not env.get(key)]
    reference = service_env(svcs.get("airflow-scheduler", {}))
    for key in SHARED_SETTINGS:
        values = {name: service_env(svcs[name]).get(key) for name in AIRFLOW_SERVICES if name in svcs}
        if len(set(values.values())) > 1:
            odd = sorted(n for n, v in values.items() if v != reference.get(key))
            problems.append(f"{key} differs between Airflow containers (odd ones: {odd})")
    return problems


def rule_execution_api_url(d: Deployment) -> list[str]:
    """Tasks reach the Execution API at the api-server service, on the port it serves, under /execution/."""
    svcs = services(d)
    url = service_env(svcs.get("airflow-scheduler", {})).get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "")
    parsed = urlparse(url)
    api = [n for n, s in svcs.items() if command_text(s.get("command")) == "api-server"]
    port = int(service_env(svcs[api[0]]).get("AIRFLOW__API__PORT", 8080)) if api else None
    if not api or parsed.hostname != api[0] or parsed.port != port or parsed.path != "/execution/":
        return [f"execution API URL {url!r} is not http://<api-server service>:{port}/execution/ (api-server: {api})"]
    return []


def rule_metadata_db(d: Deployment) -> list[str]:
    """The metadata DB URL is the postgres service's, with its user and password, on a database it creates."""
    svcs = services(d)
    pg = service_env(svcs["postgres"])
    url = urlparse(service_env(svcs["airflow-scheduler"]).get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", ""))
    problems = []
    if url.hostname != "postgres":
        problems.append(f"metadata DB host {url.hostname!r} is not the postgres service")
    if (url.username, url.password) != (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"]):
        problems.append("metadata DB user/password are not the postgres service's")
    if url.path.lstrip("/") not in sql_databases(d.init_sql):
        problems.append(f"metadata DB {url.path!r} is not created by init-databases.sql")
    return problems


def rule_connections(d: Deployment) -> list[str]:
    """Every connection the code uses is set, in the JSON form it reads, pointing at services that exist with
    their credentials; spark_default at the master's port, which the worker joins."""
    svcs = services(d)
    env = service_env(svcs["airflow-scheduler"])
    pg = service_env(svcs["postgres"])
    databases = sql_databases(d.init_sql) | {pg.get("POSTGRES_DB")}
    problems = []
    for conn_id in settings.CONNECTION_IDS:
        var = f"AIRFLOW_CONN_{conn_id.upper()}"
        try:
            conn = json.loads(env[var])
        except (KeyError, json.JSONDecodeError) as e:
            problems.append(f"{var} is not a JSON connection: {e!r}")
            continue
        if conn["conn_type"] == "postgres":
            if conn["host"] != "postgres" or conn["schema"] not in databases:
                problems.append(f"{var} points at {conn['host']}/{conn['schema']}, not a postgres database")
            if (conn["login"], conn["password"]) != (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"]):
                problems.append(f"{var}: login/password are not the postgres service's")
        elif conn_id == settings.SPARK_CONN_ID:
            master = command_text(svcs["spark-master"].get("command"))
            worker = command_text(svcs["spark-worker"].get("command"))
            if conn.get("host") != "spark://spark-master" or f"--port {conn.get('port')}" not in master:
                problems.append(f"{var} {conn} does not name the spark-master's port ({master!r})")
            if f"spark://spark-master:{conn.get('port')}" not in worker:
                problems.append(f"spark-worker does not join spark://spark-master:{conn.get('port')}")
    return problems


def rule_lineage_to_marquez(d: Deployment) -> list[str]:
    svcs = services(d)
    transport = json.loads(service_env(svcs["airflow-scheduler"])["AIRFLOW__OPENLINEAGE__TRANSPORT"])
    url = urlparse(transport.get("url", ""))
    if transport.get("type") != "http" or url.hostname != "marquez-api" or \
            url.port not in marquez_ports(d, svcs["marquez-api"])["application"]:
        return [f"lineage transport {transport} does not reach marquez-api's application port"]
    return []


def rule_secrets_from_env(d: Deployment) -> list[str]:
    """Secrets come only from .env: required there (${NAME:?...}, no default), empty in .env.example with a way
    to generate them, no literal password in the compose file, and .env kept out of git and images."""
    problems = []
    example = env_example(d)
    lines = d.env_example_text.splitlines()
    for name in SECRETS:
        uses = re.findall(r"\$\{" + name + r"(\W[^}]*)?\}", d.compose_text)
        if not uses or any(not u.startswith(":?") for u in uses):
            problems.append(f"{name} must be used as ${{{name}:?...}} (required, no default): {uses}")
        if name not in example:
            problems.append(f"{name} is not in .env.example")
            continue
        if example[name]:
            problems.append(f".env.example commits a value for {name}")
        at = next(i for i, line in enumerate(lines) if line.startswith(f"{name}="))
        comment = " ".join(lines[max(0, at - 3):at])
        if not re.search(r"openssl rand|os\.urandom|Fernet", comment):
            problems.append(f".env.example does not say how to generate {name}")
    for name, svc in d.compose["services"].items():
        for key, value in service_env(svc).items():
            if re.search(r"(PASSWORD|SECRET|SECRET_KEY|FERNET_KEY)$", key) and "${" not in value:
                problems.append(f"{name}: {key} has a literal value")
            for literal in re.findall(r'"password":\s*"([^"]*)"', value):
                if "${" not in literal:
                    problems.append(f"{name}: {key} has a literal password")
    for ignore_file, text in d.ignore_files.items():
        if ".env" not in text.split():
            problems.append(f"{ignore_file} does not list .env")
    return problems


def rule_variables_documented(d: Deployment) -> list[str]:
    """Every variable compose needs (used without a default) is in .env.example."""
    used = set(re.findall(r"(?<!\$)\$\{([A-Za-z0-9_]+)(?:[:?-][^}]*)?\}", d.compose_text))
    defaulted = set(re.findall(r"(?<!\$)\$\{([A-Za-z0-9_]+):?-[^}]*\}", d.compose_text))
    missing = used - defaulted - set(env_example(d))
    return [f"{v} is used by docker-compose.yaml but not in .env.example" for v in sorted(missing)]


def rule_databases_and_users(d: Deployment) -> list[str]:
    """The databases the connections and the metadata URL name are created (POSTGRES_DB or init-databases.sql)."""
    svcs = services(d)
    pg = service_env(svcs["postgres"])
    databases = sql_databases(d.init_sql) | {pg.get("POSTGRES_DB")}
    problems = []
    for db in ("c360", "redshift", "oltp", settings.AIRFLOW_DATABASE):
        if db not in databases:
            problems.append(f"database {db} is not created on the postgres service")
    return problems


def rule_volumes_writable(d: Deployment) -> list[str]:
    """Every named volume the project's image mounts is on a directory the Dockerfile creates and gives to the
    airflow user (a new volume copies that owner; a path the image lacks comes up root-owned)."""
    files = image_files(d.dockerfile)
    named = set(d.compose.get("volumes") or {})
    problems = []
    for name, svc in services(d).items():
        for source, target, is_named in mounts(svc, named):
            if not is_named and not source.startswith((".", "/")):
                problems.append(f"{name}: volume {source} is not declared under volumes:")
            elif not is_named and not (ROOT / source).exists():
                problems.append(f"{name}: bind mount source {source} does not exist")
            elif is_named and uses_c360_image(svc) and target not in files.airflow_writable:
                problems.append(f"{name}: volume {source} on {target}, which the Dockerfile does not create "
                                f"owned by airflow (it does: {sorted(files.airflow_writable)})")
    return problems


def rule_init_owns_volumes(d: Deployment) -> list[str]:
    """airflow-init runs as root, migrates the metadata DB, writes the UI admin's password file and chowns
    every named volume of the project's image to the UID the other containers run as (the official file's
    airflow-init does the same for its volumes)."""
    svcs = services(d)
    init = svcs.get("airflow-init")
    if not init:
        return ["there is no airflow-init service"]
    problems = []
    if str(init.get("user")) not in ("0", "0:0", "root"):
        problems.append(f"airflow-init runs as {init.get('user')!r}, not root: it cannot chown the volumes")
    script = command_text(init.get("command"))
    if "airflow db migrate" not in script:
        problems.append("airflow-init does not run `airflow db migrate`")
    password_file = service_env(init).get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", "?")
    if f"> {password_file}" not in script:
        problems.append(f"airflow-init does not write the admin's password file {password_file}")
    owners = {str(s.get("user", "")).split(":")[0] for n, s in svcs.items() if uses_c360_image(s) and n != "airflow-init"}
    chowned = {}
    for m in re.finditer(r"chown\s+-R\s+\"?(\d+):0\"?((?:\s+/\S+)+)", script):
        for path in m.group(2).split():
            chowned[path] = m.group(1)
    named = set(d.compose.get("volumes") or {})
    for name, svc in svcs.items():
        if not uses_c360_image(svc):
            continue
        for source, target, is_named in mounts(svc, named):
            if is_named and chowned.get(target) not in owners:
                problems.append(f"airflow-init does not chown {target} ({name}'s {source}) to {sorted(owners)}")
    return problems


def rule_logs_shared(d: Deployment) -> list[str]:
    """Every Airflow container mounts one named volume on the log folder: the api-server shows the logs the
    scheduler's tasks wrote (without it, it asks the scheduler's log server)."""
    svcs = services(d)
    named = set(d.compose.get("volumes") or {})
    problems, volumes = [], set()
    for name in (n for n in AIRFLOW_SERVICES if n in svcs):
        folder = service_env(svcs[name]).get("AIRFLOW__LOGGING__BASE_LOG_FOLDER", "/opt/airflow/logs")
        found = [src for src, target, is_named in mounts(svcs[name], named) if is_named and target == folder]
        if not found:
            problems.append(f"{name} has no named volume on its log folder {folder}")
        volumes |= set(found)
    if len(volumes) > 1:
        problems.append(f"the Airflow containers log to different volumes: {sorted(volumes)}")
    return problems


# The server part of the Marquez image's own config, marquez.dev.yml (MarquezProject/marquez).
MARQUEZ_DEFAULT_SERVER = {"applicationConnectors": [{"port": "${MARQUEZ_PORT:-5000}"}],
                          "adminConnectors": [{"port": "${MARQUEZ_ADMIN_PORT:-5001}"}]}


def marquez_ports(d: Deployment, api: dict) -> dict[str, set[int]]:
    """The ports marquez-api listens on: its config (docker/marquez.yml if MARQUEZ_CONFIG names it, else the
    image's) with the service's environment substituted, as Marquez does."""
    server = d.marquez_config.get("server", {}) if marquez_config_mounted(d, api) else MARQUEZ_DEFAULT_SERVER
    server = interpolate(server, service_env(api))
    ports = {}
    for kind in ("application", "admin"):
        ports[kind] = {int(c["port"]) for c in server.get(f"{kind}Connectors", []) if str(c["port"]).isdigit()}
    return ports


def marquez_config_mounted(d: Deployment, api: dict) -> bool:
    path = service_env(api).get("MARQUEZ_CONFIG")
    return any(target == path and source.endswith("docker/marquez.yml")
               for source, target, _ in mounts(api, set()))


def listening_ports(d: Deployment, name: str, svc: dict) -> set[int]:
    """The ports a service is configured to open, from what opens each one."""
    env = service_env(svc)
    cmd = command_text(svc.get("command"))
    ports = set()
    if cmd == "api-server":
        ports.add(int(env.get("AIRFLOW__API__PORT", 8080)))
    if cmd == "scheduler" and env.get("AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK", "").lower() == "true":
        ports.add(int(env.get("AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT", 8974)))
    if "spark-class" in cmd:
        ports |= {int(p) for p in re.findall(r"--webui-port (\d+)", cmd)}
    if str(svc.get("image", "")).startswith("marquezproject/marquez:"):
        ports |= set().union(*marquez_ports(d, svc).values())
    if str(svc.get("image", "")).startswith("marquezproject/marquez-web:") and env.get("WEB_PORT", "").isdigit():
        ports.add(int(env["WEB_PORT"]))
    return ports


def rule_healthchecks_enabled(d: Deployment) -> list[str]:
    """Every long-running service has a health check, and each one asks an endpoint the service really opens
    (the scheduler's 8974 only with AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK, marquez-web only with WEB_PORT)."""
    problems = []
    for name, svc in services(d).items():
        check = svc.get("healthcheck")
        if not check:
            if svc.get("restart", "no") != "no":
                problems.append(f"{name} runs on but has no health check")
            continue
        test = command_text(check.get("test"))
        env = service_env(svc)
        for port in re.findall(r"(?:localhost|127\.0\.0\.1)[:/](\d+)", test):
            if int(port) not in listening_ports(d, name, svc):
                problems.append(f"{name}: health check asks port {port}, which the service does not open "
                                f"(it opens {sorted(listening_ports(d, name, svc))})")
        if "pg_isready" in test:
            user = re.search(r"-U (\S+)", test)
            if not user or user.group(1) != env.get("POSTGRES_USER"):
                problems.append(f"{name}: pg_isready checks a user other than POSTGRES_USER")
        if not re.search(r"localhost|127\.0\.0\.1|pg_isready|airflow jobs check", test):
            problems.append(f"{name}: health check {test!r} is not one this rule knows how to verify")
    return problems


def rule_marquez(d: Deployment) -> list[str]:
    """marquez-api reads a config that takes the database user and password marquez-db is created with (the
    image's default config has "marquez" written in), search is off (no OpenSearch here), and marquez-web
    has WEB_PORT and finds the API."""
    svcs = services(d)
    api, db, web = svcs["marquez-api"], svcs["marquez-db"], svcs["marquez-web"]
    api_env, db_env, web_env = service_env(api), service_env(db), service_env(web)
    problems = []
    if not marquez_config_mounted(d, api):
        problems.append("marquez-api does not run docker/marquez.yml (MARQUEZ_CONFIG and its mount): the "
                        "image's default config connects as marquez/marquez")
    else:
        config = interpolate(d.marquez_config, api_env)
        dbc = config.get("db", {})
        url = urlparse(dbc.get("url", "").removeprefix("jdbc:"))
        if url.hostname != "marquez-db" or url.path.lstrip("/") != db_env.get("POSTGRES_DB"):
            problems.append(f"marquez-api's database {dbc.get('url')} is not marquez-db's {db_env.get('POSTGRES_DB')}")
        if (dbc.get("user"), dbc.get("password")) != (db_env.get("POSTGRES_USER"), db_env.get("POSTGRES_PASSWORD")):
            problems.append("marquez-api connects with another user/password than marquez-db is created with")
        if str(config.get("search", {}).get("enabled", True)).lower() != "false":
            problems.append("Marquez search is on, and no OpenSearch runs here")
    if api_env.get("SEARCH_ENABLED", "true").lower() != "false":
        problems.append("marquez-api: SEARCH_ENABLED is not false")
    if (api_env.get("POSTGRES_USER"), api_env.get("POSTGRES_PASSWORD")) != \
            (db_env.get("POSTGRES_USER"), db_env.get("POSTGRES_PASSWORD")):
        problems.append("marquez-api's POSTGRES_USER/PASSWORD (its entrypoint waits with them) are not marquez-db's")
    if not web_env.get("WEB_PORT", "").isdigit():
        problems.append("marquez-web has no WEB_PORT: its server has no port to listen on")
    elif not any(str(p).endswith(f":{web_env['WEB_PORT']}") for p in web.get("ports", [])):
        problems.append(f"marquez-web publishes {web.get('ports')}, not its WEB_PORT {web_env['WEB_PORT']}")
    if web_env.get("MARQUEZ_HOST") != "marquez-api" or \
            int(web_env.get("MARQUEZ_PORT", 0)) not in marquez_ports(d, api)["application"]:
        problems.append("marquez-web does not point at marquez-api's application port")
    return problems


def rule_seed_service(d: Deployment) -> list[str]:
    """c360-seed, profile demo, loads the generated sources once, through the DAGs' connections and lake."""
    svcs = services(d)
    seed = svcs.get("c360-seed")
    if not seed:
        return ["there is no c360-seed service"]
    problems = []
    if seed.get("profiles") != ["demo"]:
        problems.append(f"c360-seed has profiles {seed.get('profiles')}, not [demo]")
    if "c360.generator generate" not in command_text(seed.get("command")):
        problems.append("c360-seed does not run `python -m c360.generator generate`")
    if seed.get("restart", "no") != "no":
        problems.append("c360-seed restarts: it is a one-shot")
    named = set(d.compose.get("volumes") or {})
    lake = {(s, t) for s, t, is_named in mounts(svcs["airflow-scheduler"], named) if t == "/opt/c360/lake"}
    if not lake <= set((s, t) for s, t, _ in mounts(seed, named)):
        problems.append(f"c360-seed does not mount the scheduler's lake {lake} (the GA exports land there)")
    if (seed.get("depends_on") or {}).get("postgres", {}).get("condition") != "service_healthy":
        problems.append("c360-seed does not wait for postgres to be healthy")
    return problems


def rule_java(d: Deployment) -> list[str]:
    """JAVA_HOME is a path the image has on every architecture (no java-17-openjdk-amd64)."""
    problems = []
    files = image_files(d.dockerfile)
    java_homes = [dockerfile_vars(d.dockerfile, "ENV").get("JAVA_HOME")]
    java_homes += [service_env(s).get("JAVA_HOME") for s in d.compose["services"].values()]
    for home in filter(None, java_homes):
        if re.search(r"amd64|arm64|aarch64|x86_64|i386", home):
            problems.append(f"JAVA_HOME {home} names one CPU architecture")
        elif home in BASE_IMAGE_PATHS and BASE_IMAGE_PATHS[home] not in files.apt_packages:
            problems.append(f"JAVA_HOME {home} comes from {BASE_IMAGE_PATHS[home]}, which the image does not install")
        elif home not in BASE_IMAGE_PATHS and not image_has(files, home):
            problems.append(f"JAVA_HOME {home} is not made by the Dockerfile")
    if not java_homes[0]:
        problems.append("the Dockerfile sets no JAVA_HOME")
    return problems


def rule_entry_paths(d: Deployment) -> list[str]:
    """The paths the containers of the project's image start from exist in it: command paths, the image's own
    PYTHONPATH, SPARK_HOME, DAGs and plugins folders, and the compose file's state and lake folders."""
    files = image_files(d.dockerfile)
    env = dockerfile_vars(d.dockerfile, "ENV")
    problems = []
    wanted = {f"ENV {k}": v for k, v in env.items() if k in ("SPARK_HOME", "AIRFLOW__CORE__DAGS_FOLDER",
                                                               "AIRFLOW__CORE__PLUGINS_FOLDER")}
    wanted |= {f"ENV PYTHONPATH[{i}]": p for i, p in enumerate(env.get("PYTHONPATH", "").split(":"))}
    for name, svc in services(d).items():
        if not uses_c360_image(svc):
            continue
        senv = service_env(svc)
        if "C360_STATE_DIR" in senv:
            wanted[f"{name} C360_STATE_DIR"] = senv["C360_STATE_DIR"]
        if senv.get("C360_LAKE_URI", "").startswith("file://"):
            wanted[f"{name} C360_LAKE_URI"] = urlparse(senv["C360_LAKE_URI"]).path
        script = f"{command_text(svc.get('entrypoint'))} {command_text(svc.get('command'))}"
        for i, path in enumerate(re.findall(r"(?<![\w.])(/(?:opt|entrypoint)\S*)", script)):
            wanted[f"{name} command path {i}"] = path.rstrip("'\";")
    for what, path in wanted.items():
        if not image_has(files, path):
            problems.append(f"{what}: {path} is not in the image (the Dockerfile makes {sorted(files.created)})")
    return problems


def rule_image_runtime_only(d: Deployment) -> list[str]:
    """The image installs requirements.txt, the runtime list; the test tools live in requirements-dev.txt,
    which starts with -r requirements.txt; every requirement is pinned; Airflow is the base image's release."""
    problems = []
    runs = " ".join(args for instruction, args in dockerfile_instructions(d.dockerfile) if instruction in ("RUN", "COPY"))
    if "requirements-dev" in runs or "requirements.txt" not in runs:
        problems.append("the image must install requirements.txt and not requirements-dev.txt")

    def names(text: str) -> dict[str, str]:
        reqs = {}
        for line in text.splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-"):
                reqs[re.split(r"[\[=<>~! ]", line)[0].lower()] = line
        return reqs

    runtime, dev = names(d.requirements), names(d.requirements_dev)
    problems += [f"requirements.txt has the test tool {t}" for t in TEST_TOOLS if t in runtime]
    problems += [f"requirements-dev.txt lacks {t}" for t in TEST_TOOLS if t not in dev]
    first = next((x.strip() for x in d.requirements_dev.splitlines() if x.strip() and not x.startswith("#")), "")
    if first != "-r requirements.txt":
        problems.append(f"requirements-dev.txt starts with {first!r}, not -r requirements.txt")
    problems += [f"{line!r} is not pinned with ==" for line in [*runtime.values(), *dev.values()] if "==" not in line]
    base = next((args for instruction, args in dockerfile_instructions(d.dockerfile) if instruction == "FROM"), "")
    pinned = runtime.get("apache-airflow", "").partition("==")[2]
    if not re.fullmatch(rf"apache/airflow:{re.escape(pinned)}-python3\.\d+", base) or not pinned:
        problems.append(f"the base image {base!r} is not apache-airflow=={pinned}'s")
    return problems


def rule_image_not_root(d: Deployment) -> list[str]:
    user = image_files(d.dockerfile).user
    return [] if user not in ("root", "0") else [f"the image runs as {user}"]


def pyspark_hadoop_version() -> str:
    """The Hadoop release in the installed pyspark's jars (requirements.txt pins the image's pyspark too)."""
    jars = Path(importlib.util.find_spec("pyspark").origin).parent / "jars"
    found = [re.match(r"hadoop-client-api-(.+)\.jar", p.name) for p in jars.glob("hadoop-client-api-*.jar")]
    return next(m.group(1) for m in found if m)


def rule_s3a_jars(d: Deployment) -> list[str]:
    """The image fetches hadoop-aws for pyspark's own Hadoop release, with the AWS SDK bundle, from Maven
    Central, each checked against a pinned SHA-1."""
    args = dockerfile_vars(d.dockerfile, "ARG")
    runs = " ".join(a for instruction, a in dockerfile_instructions(d.dockerfile) if instruction == "RUN")
    problems = []
    if args.get("HADOOP_AWS_VERSION") != pyspark_hadoop_version():
        problems.append(f"hadoop-aws {args.get('HADOOP_AWS_VERSION')} is not pyspark's Hadoop {pyspark_hadoop_version()}")
    if args.get("MAVEN_CENTRAL") != "https://repo1.maven.org/maven2":
        problems.append(f"the jars come from {args.get('MAVEN_CENTRAL')}, not Maven Central")
    for jar, path in (("HADOOP_AWS", "org/apache/hadoop/hadoop-aws/"), ("AWS_SDK_BUNDLE", "software/amazon/awssdk/bundle/")):
        if not re.fullmatch(r"[0-9a-f]{40}", args.get(f"{jar}_SHA1", "")):
            problems.append(f"{jar} has no pinned SHA-1")
        if path not in runs:
            problems.append(f"the image does not fetch {path}")
    if "sha1sum -c" not in runs:
        problems.append("the fetched jars are not checked (sha1sum -c)")
    return problems


RULES: list[Callable[[Deployment], list[str]]] = [
    rule_compose_schema, rule_services_and_dependencies, rule_published_ports_unique, rule_images_pinned,
    rule_airflow_settings_shared, rule_execution_api_url, rule_metadata_db, rule_connections,
    rule_lineage_to_marquez, rule_secrets_from_env, rule_variables_documented, rule_databases_and_users,
    rule_volumes_writable, rule_init_owns_volumes, rule_logs_shared, rule_healthchecks_enabled, rule_marquez,
    rule_seed_service, rule_java, rule_entry_paths, rule_image_runtime_only, rule_image_not_root,
    rule_s3a_jars,
]


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    return load_deployment()


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__.removeprefix("rule_"))
def test_rule_holds(rule, deployment):
    problems = rule(deployment)
    assert not problems, f"{rule.__name__}: {rule.__doc__ or ''}\n" + "\n".join(f"  - {p}" for p in problems)


# --- each defect put back, one at a time ------------------------------------------------------------------

def _env(svc: dict) -> dict:
    return svc.setdefault("environment", {})


def _drop_env(service: str, key: str) -> Callable[[Deployment], None]:
    def mutate(d: Deployment) -> None:
        _env(d.compose["services"][service]).pop(key)
    return mutate


def _set_env(service: str, key: str, value: str) -> Callable[[Deployment], None]:
    def mutate(d: Deployment) -> None:
        _env(d.compose["services"][service])[key] = value
    return mutate


def _drop_volume(service: str, target: str) -> Callable[[Deployment], None]:
    def mutate(d: Deployment) -> None:
        svc = d.compose["services"][service]
        svc["volumes"] = [v for v in svc["volumes"] if not str(v).endswith(f":{target}")]
    return mutate


def _dockerfile(old: str, new: str) -> Callable[[Deployment], None]:
    def mutate(d: Deployment) -> None:
        assert old in d.dockerfile, old
        d.dockerfile = d.dockerfile.replace(old, new)
    return mutate


def _init_command(old: str, new: str) -> Callable[[Deployment], None]:
    def mutate(d: Deployment) -> None:
        init = d.compose["services"]["airflow-init"]
        assert old in init["command"][1], old
        init["command"][1] = init["command"][1].replace(old, new)
    return mutate


def _each_service(fn: Callable[[dict], None], names=AIRFLOW_SERVICES) -> Callable[[Deployment], None]:
    def mutate(d: Deployment) -> None:
        for name in names:
            fn(d.compose["services"][name])
    return mutate


def _original_marquez_api(d: Deployment) -> None:
    """marquez-api as it was: the image's default config, no MARQUEZ_CONFIG, search left to its default."""
    api = d.compose["services"]["marquez-api"]
    api.pop("volumes")
    for key in ("MARQUEZ_CONFIG", "SEARCH_ENABLED"):
        api["environment"].pop(key)


def _search_on(d: Deployment) -> None:
    d.marquez_config["search"] = {"enabled": "${SEARCH_ENABLED:-true}"}
    d.compose["services"]["marquez-api"]["environment"].pop("SEARCH_ENABLED")


def _short_depends_on(d: Deployment) -> None:
    d.compose["services"]["marquez-web"]["depends_on"] = ["marquez-api"]


def _wait_for_unchecked(d: Deployment) -> None:
    d.compose["services"]["spark-worker"].pop("healthcheck")
    d.compose["services"]["airflow-scheduler"]["depends_on"]["spark-worker"] = {"condition": "service_healthy"}


CHOWN = 'chown -R "${AIRFLOW_UID:-50000}:0"'


def _without_s3a_jars(d: Deployment) -> None:
    """The Dockerfile without its S3A block (from its ARGs to the last fetch)."""
    start = d.dockerfile.index("ARG MAVEN_CENTRAL")
    end = d.dockerfile.index("\n", d.dockerfile.index('"${ANALYTICS_ACCELERATOR_SHA1}"'))
    d.dockerfile = d.dockerfile[:start] + d.dockerfile[end + 1:]


def _requirements(attr: str, extra: str) -> Callable[[Deployment], None]:
    def mutate(d: Deployment) -> None:
        setattr(d, attr, getattr(d, attr) + extra)
    return mutate


def _services(change: Callable[[dict], None]) -> Callable[[Deployment], None]:
    def mutate(d: Deployment) -> None:
        change(d.compose["services"])
    return mutate


def _literal_in_compose(d: Deployment) -> None:
    d.compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] = "change-me"
    d.compose_text = d.compose_text.replace(
        "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD in .env (see .env.example)}",
        "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:-change-me}", 1)


def _env_example_value(name: str, value: str) -> Callable[[Deployment], None]:
    def mutate(d: Deployment) -> None:
        d.env_example_text = re.sub(rf"^{name}=.*$", f"{name}={value}", d.env_example_text, flags=re.M)
    return mutate


# (what is put back, how, which rule must then report it); the first group is issue 19's list.
DEFECTS: list[tuple[str, Callable[[Deployment], None], Callable]] = [
    ("no JWT secret in the scheduler", _drop_env("airflow-scheduler", "AIRFLOW__API_AUTH__JWT_SECRET"),
     rule_airflow_settings_shared),
    ("no shared JWT secret at all", _each_service(lambda s: s["environment"].pop("AIRFLOW__API_AUTH__JWT_SECRET")),
     rule_airflow_settings_shared),
    ("a JWT secret of its own in the api-server",
     _set_env("airflow-apiserver", "AIRFLOW__API_AUTH__JWT_SECRET", "${OTHER_JWT:-x}"), rule_airflow_settings_shared),
    ("lake and state on paths the Dockerfile never creates",
     _dockerfile("RUN mkdir -p /opt/airflow/logs /opt/airflow/config /opt/c360/lake /opt/c360/state",
                 "RUN mkdir -p /opt/airflow/logs /opt/airflow/config"), rule_volumes_writable),
    ("volume directories created but left to root",
     _dockerfile(" && chown -R airflow:0 /opt/airflow/logs /opt/airflow/config /opt/c360", ""), rule_volumes_writable),
    ("airflow-init without the chown", _init_command('chown -R "${AIRFLOW_UID:-50000}:0"', "echo"),
     rule_init_owns_volumes),
    ("airflow-init chowns the logs only",
     _init_command(f'{CHOWN} /opt/airflow/logs /opt/airflow/config /opt/c360/lake /opt/c360/state',
                   f"{CHOWN} /opt/airflow/logs"), rule_init_owns_volumes),
    ("airflow-init chowns to another UID than the containers run as",
     _init_command(CHOWN, 'chown -R "0:0"'), rule_init_owns_volumes),
    ("airflow-init as the anchor's user, not root",
     _services(lambda s: s["airflow-init"].__setitem__("user", "${AIRFLOW_UID:-50000}:0")), rule_init_owns_volumes),
    ("airflow-init without db migrate", _init_command("/entrypoint airflow db migrate", "true"),
     rule_init_owns_volumes),
    ("marquez-web without WEB_PORT", _drop_env("marquez-web", "WEB_PORT"), rule_marquez),
    ("marquez-web's health check without WEB_PORT", _drop_env("marquez-web", "WEB_PORT"), rule_healthchecks_enabled),
    ("marquez-api on its default config (user/password marquez)", _original_marquez_api, rule_marquez),
    ("marquez-api with the default password while marquez-db has .env's",
     _set_env("marquez-api", "POSTGRES_PASSWORD", "marquez"), rule_marquez),
    ("marquez-db created as another user", _set_env("marquez-db", "POSTGRES_USER", "postgres"), rule_marquez),
    ("Marquez search on, no OpenSearch", _search_on, rule_marquez),
    ("scheduler health check curls 8974 with the server off",
     _each_service(lambda s: s["environment"].pop("AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK")),
     rule_healthchecks_enabled),
    ("no Fernet key", _each_service(lambda s: s["environment"].pop("AIRFLOW__CORE__FERNET_KEY")),
     rule_airflow_settings_shared),
    ("no shared logs volume", _each_service(lambda s: s.__setitem__(
        "volumes", [v for v in s["volumes"] if "airflow-logs" not in v])), rule_logs_shared),
    ("the api-server without the logs volume", _drop_volume("airflow-apiserver", "/opt/airflow/logs"),
     rule_logs_shared),
    ("nothing seeds the source databases", _services(lambda s: s.pop("c360-seed")), rule_seed_service),
    ("the seed outside the demo profile", _services(lambda s: s["c360-seed"].pop("profiles")), rule_seed_service),
    ("a hard-coded amd64 JAVA_HOME",
     _dockerfile("ENV JAVA_HOME=/usr/lib/jvm/default-java", "ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64"),
     rule_java),
    ("JAVA_HOME's package not installed", _dockerfile("install -y --no-install-recommends default-jre-headless",
                                                      "install -y --no-install-recommends openjdk-17-jre-headless"),
     rule_java),
    ("the image installs the test tools", _dockerfile("-r /opt/c360/requirements.txt", "-r /opt/c360/requirements-dev.txt"),
     rule_image_runtime_only),
    ("pytest back in requirements.txt", _requirements("requirements", "pytest==9.2.0\n"), rule_image_runtime_only),
    ("requirements-dev.txt without the runtime list",
     lambda d: setattr(d, "requirements_dev", d.requirements_dev.replace("-r requirements.txt\n", "")),
     rule_image_runtime_only),
    ("an unpinned requirement", _requirements("requirements", "boto3\n"), rule_image_runtime_only),
    ("the image's Airflow is not the pinned one",
     _dockerfile("FROM apache/airflow:3.3.2-python3.11", "FROM apache/airflow:3.2.0-python3.11"),
     rule_image_runtime_only),
    ("the image runs as root", lambda d: setattr(d, "dockerfile", d.dockerfile + "USER root\n"), rule_image_not_root),
    ("no S3A jars", _without_s3a_jars, rule_s3a_jars),
    ("hadoop-aws of another Hadoop", _dockerfile("ARG HADOOP_AWS_VERSION=3.5.0", "ARG HADOOP_AWS_VERSION=3.4.1"),
     rule_s3a_jars),
    ("jars not checked", _dockerfile('| sha1sum -c -', "> /dev/null"), rule_s3a_jars),
    # the rest of the rules
    ("execution API URL on localhost", _each_service(lambda s: s["environment"].__setitem__(
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "http://localhost:8080/execution/")), rule_execution_api_url),
    ("another metadata DB in the triggerer",
     _set_env("airflow-triggerer", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "sqlite:////tmp/airflow.db"),
     rule_airflow_settings_shared),
    ("metadata DB with another password", _each_service(lambda s: s["environment"].__setitem__(
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql+psycopg2://c360:x@postgres:5432/airflow")),
     rule_metadata_db),
    ("a connection to a database nobody creates", _each_service(lambda s: s["environment"].__setitem__(
        "AIRFLOW_CONN_C360_OLTP_SOURCE", s["environment"]["AIRFLOW_CONN_C360_OLTP_SOURCE"].replace('"oltp"', '"erp"'))),
     rule_connections),
    ("spark on a port the master does not open", _each_service(lambda s: s["environment"].__setitem__(
        "AIRFLOW_CONN_SPARK_DEFAULT", '{"conn_type": "spark", "host": "spark://spark-master", "port": 7078}')),
     rule_connections),
    ("lineage to a port Marquez does not serve", _each_service(lambda s: s["environment"].__setitem__(
        "AIRFLOW__OPENLINEAGE__TRANSPORT", '{"type": "http", "url": "http://marquez-api:8080"}')),
     rule_lineage_to_marquez),
    ("depends_on without a condition", _short_depends_on, rule_services_and_dependencies),
    ("waiting for a service without a health check to be healthy", _wait_for_unchecked,
     rule_services_and_dependencies),
    ("a service without a health check", _services(lambda s: s["spark-worker"].pop("healthcheck")),
     rule_healthchecks_enabled),
    ("Marquez's health check on the application port", _services(lambda s: s["marquez-api"]["healthcheck"].__setitem__(
        "test", ["CMD", "curl", "--fail", "http://localhost:5002/healthcheck"])), rule_healthchecks_enabled),
    ("an image on :latest", _services(lambda s: s["marquez-web"].__setitem__("image", "marquezproject/marquez-web:latest")),
     rule_images_pinned),
    ("postgres on a moving major tag", _services(lambda s: s["postgres"].__setitem__("image", "postgres:16")),
     rule_images_pinned),
    ("a literal password in the compose file", _literal_in_compose, rule_secrets_from_env),
    ("a password committed in .env.example", _env_example_value("POSTGRES_PASSWORD", "change-me"),
     rule_secrets_from_env),
    (".env not ignored by docker builds", lambda d: d.ignore_files.__setitem__(".dockerignore", ".git\n"),
     rule_secrets_from_env),
    ("a required variable .env.example does not document",
     lambda d: setattr(d, "env_example_text", d.env_example_text.replace("AIRFLOW_ADMIN_PASSWORD=", "")),
     rule_variables_documented),
    ("a key Compose does not know", _services(lambda s: s["postgres"].__setitem__("dependson", ["x"])),
     rule_compose_schema),
    ("a port published twice", _services(lambda s: s["marquez-web"].__setitem__("ports", ["8080:3000"])),
     rule_published_ports_unique),
    ("spark-class outside the image", _services(lambda s: s["spark-master"].__setitem__(
        "command", ["-c", "exec /opt/spark/bin/spark-class org.apache.spark.deploy.master.Master --port 7077"])),
     rule_entry_paths),
    ("PYTHONPATH to a folder the image lacks", _dockerfile("ENV PYTHONPATH=/opt/c360/include:",
                                                           "ENV PYTHONPATH=/opt/c360/src:"), rule_entry_paths),
    ("no airflow database", lambda d: setattr(d, "init_sql", d.init_sql.replace("create database airflow;", "")),
     rule_databases_and_users),
]


@pytest.mark.parametrize(("defect", "mutate", "rule"), DEFECTS, ids=[d[0] for d in DEFECTS])
def test_rule_catches_defect(defect, mutate, rule, deployment):
    broken = deployment.copy()
    mutate(broken)
    assert rule(broken), f"{rule.__name__} does not notice: {defect}"


def test_every_rule_has_a_defect_it_catches():
    caught = {rule for _, _, rule in DEFECTS}
    assert not [r.__name__ for r in RULES if r not in caught]
