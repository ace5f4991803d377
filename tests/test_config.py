"""The agent config (agent.yaml): loading, defaults, substitution, and every kind of problem.

Problems are asserted as exact `(path, line, message)` triples: the messages are the user
interface of a config file, so a change to one should be a deliberate change to a test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from textwrap import dedent

import pytest

from bridgehead.agent.config import AgentConfig, load_config
from bridgehead.agent.config.load import parse_config
from bridgehead.agent.config.model import ProcedureParam
from bridgehead.common.config.document import ConfigError, Problem, parse_document
from bridgehead.relay.config import RelayConfig, check_relay_references

KEY_HASH = hashlib.sha256(b"crm-api-key").hexdigest()
PASSWORD = "Zebra-Tr0ub4dor-7781"  # distinctive, so any leak is unambiguous
SCOPE_HINT = (
    "(use <resource>:read, <resource>:write, queries:<name>, procedures:<name>, jobs:<name>, "
    "events:read)"
)
UNKNOWN_HINT = "check its spelling against the config reference"

FULL_CONFIG = """\
sources:
  erp:
    odbc: "DRIVER={PostgreSQL Unicode};SERVER=db01;DATABASE=erp;UID=gw;PWD=${env:ERP_PASSWORD}"
    pool_size: 8
    query_timeout: 30s
    connect_timeout: 500ms
  sample:
    sqlite: ./sample.db

resources:
  customers:
    source: erp
    table: dbo.customers
    key: [id]
    columns: [id, name, email, balance, updated_at]
    operations: [read, insert, update, delete]
    max_rows: 5000
  products:
    source: sample
    table: products

queries:
  overdue_invoices:
    source: erp
    sql: "SELECT id, customer_id, due FROM invoices WHERE due < :before"
    params: {before: date}

procedures:
  recalc_balance: {source: erp, name: dbo.recalc_balance, params: {customer_id: integer}}

auth:
  api_keys:
    - name: crm
      key_sha256: "KEY_HASH_UPPER"
      scopes: ["customers:read", "customers:write", "queries:overdue_invoices"]
  jwt:
    issuer: https://login.example.com/
    audience: bridgehead
    jwks_file: certs/jwks.json
    scopes_claim: scope

state_dir: ./var/state
listen:
  address: 0.0.0.0:8443
  tls: {cert: certs/local.pem, key: certs/local.key}
admin: 127.0.0.1:9471

tunnel:
  relay: relay.example.com:8443
  connections: 3
  ca: certs/ca.pem
  cert: certs/agent.pem
  key: certs/agent.key
  proxy: http://proxy.corp:3128
  heartbeat: 2s
  dead_after: 1m
  backoff: {base: 250ms, cap: 10s}
""".replace("KEY_HASH_UPPER", KEY_HASH.upper())

MINIMAL = "sources:\n  sample:\n    sqlite: sample.db\n"


# --- helpers -------------------------------------------------------------------------------


NOT_A_MAPPING = "the config must be a YAML mapping of keys to values (sources:, resources:, ...)"


def parse(text: str, tmp_path: Path, environ: Mapping[str, str] | None = None) -> AgentConfig:
    return parse_config(dedent(text), tmp_path / "agent.yaml", environ=environ or {})


def config_error(
    text: str, tmp_path: Path, environ: Mapping[str, str] | None = None
) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text, tmp_path, environ)
    return info.value


def triples(error: ConfigError) -> list[tuple[str, int | None, str]]:
    return [(p.path, p.line, p.message) for p in error.problems]


# --- valid configs ---------------------------------------------------------------------------


def test_full_config_loads_with_every_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An example config (an odbc and a sqlite source) loads from disk with every value typed:
    durations in seconds, env references substituted, hashes lower-cased, and relative paths
    resolved beside the config file rather than the working directory."""
    folder = tmp_path / "etc" / "bridgehead"
    folder.mkdir(parents=True)
    (folder / "agent.yaml").write_text(FULL_CONFIG, encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    base = folder.resolve()

    config = load_config(Path("../etc/bridgehead/agent.yaml"), environ={"ERP_PASSWORD": "pw"})

    assert config.base_dir == base
    erp, sample = config.sources["erp"], config.sources["sample"]
    assert erp.adapter == "odbc"
    assert erp.target.get_secret_value() == (
        "DRIVER={PostgreSQL Unicode};SERVER=db01;DATABASE=erp;UID=gw;PWD=pw"
    )
    assert (erp.pool_size, erp.query_timeout, erp.connect_timeout) == (8, 30.0, 0.5)
    assert sample.adapter == "sqlite"
    assert sample.target.get_secret_value() == "./sample.db"
    assert (sample.pool_size, sample.query_timeout, sample.connect_timeout) == (4, 30.0, 10.0)

    customers, products = config.resources["customers"], config.resources["products"]
    assert customers.source == "erp"
    assert customers.table == "dbo.customers"
    assert customers.key == ("id",)
    assert customers.columns == ("id", "name", "email", "balance", "updated_at")
    assert customers.operations == ("read", "insert", "update", "delete")
    assert customers.max_rows == 5000
    assert (products.key, products.columns, products.operations, products.max_rows) == (
        None,
        None,
        ("read",),
        10_000,
    )

    query = config.queries["overdue_invoices"]
    assert (query.source, query.params, query.max_rows) == ("erp", {"before": "date"}, 10_000)
    assert query.sql == "SELECT id, customer_id, due FROM invoices WHERE due < :before"
    procedure = config.procedures["recalc_balance"]
    assert (procedure.source, procedure.name) == ("erp", "dbo.recalc_balance")
    assert procedure.params == {"customer_id": ProcedureParam(type="integer", direction="in")}

    (api_key,) = config.auth.api_keys
    assert api_key.name == "crm"
    assert api_key.key_sha256 == KEY_HASH  # lower-cased
    assert api_key.scopes == ("customers:read", "customers:write", "queries:overdue_invoices")
    assert config.auth.jwt is not None
    assert config.auth.jwt.issuer == "https://login.example.com/"
    assert config.auth.jwt.audience == "bridgehead"
    assert config.auth.jwt.jwks_file == base / "certs" / "jwks.json"
    assert (config.auth.jwt.scopes_claim, config.auth.jwt.leeway) == ("scope", 30.0)

    assert config.state_dir == base / "var" / "state"
    assert config.state_path == base / "var" / "state"
    assert config.listen is not None
    assert str(config.listen.address) == "0.0.0.0:8443"
    assert config.listen.tls is not None
    assert config.listen.tls.cert == base / "certs" / "local.pem"
    assert config.listen.tls.key == base / "certs" / "local.key"
    assert str(config.admin) == "127.0.0.1:9471"

    tunnel = config.tunnel
    assert tunnel is not None
    assert (tunnel.relay.host, tunnel.relay.port) == ("relay.example.com", 8443)
    assert tunnel.connections == 3
    assert (tunnel.ca, tunnel.cert, tunnel.key) == (
        base / "certs" / "ca.pem",
        base / "certs" / "agent.pem",
        base / "certs" / "agent.key",
    )
    assert tunnel.proxy == "http://proxy.corp:3128"
    assert (tunnel.heartbeat, tunnel.dead_after) == (2.0, 60.0)
    assert (tunnel.backoff.base, tunnel.backoff.cap) == (0.25, 10.0)


def test_minimal_config_gets_the_documented_defaults(tmp_path: Path) -> None:
    """With only a source, the listeners are 127.0.0.1:8470 and :8471, there is no tunnel or
    auth, and the state folder is state/ beside the config file."""
    config = parse(MINIMAL, tmp_path)

    assert config.listen is not None
    assert (config.listen.address.host, config.listen.address.port) == ("127.0.0.1", 8470)
    assert config.listen.tls is None
    assert config.admin is not None
    assert (config.admin.address.host, config.admin.address.port) == ("127.0.0.1", 8471)
    assert config.state_dir is None
    assert config.state_path == tmp_path.resolve() / "state"
    assert (config.resources, config.queries, config.procedures) == ({}, {}, {})
    assert config.auth.api_keys == ()
    assert config.auth.jwt is None
    assert config.tunnel is None


def test_resource_defaults(tmp_path: Path) -> None:
    """A resource without operations, key, columns or max_rows is read-only, has no key,
    exposes all columns and caps pages at 10000 rows; a single key may be a plain string."""
    config = parse(
        MINIMAL
        + "resources:\n  t: {source: sample, table: t}\n  u: {source: sample, table: u, key: id}\n",
        tmp_path,
    )

    t = config.resources["t"]
    assert (t.operations, t.key, t.columns, t.max_rows) == (("read",), None, None, 10_000)
    assert config.resources["u"].key == ("id",)


def test_absolute_state_dir_is_kept(tmp_path: Path) -> None:
    """An absolute state_dir is used as written, not joined to the config folder."""
    absolute = tmp_path / "somewhere" / "state"
    config = parse(MINIMAL + f"state_dir: {absolute}\n", tmp_path)

    assert config.state_path == absolute


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1.5s", 1.5),
        ("45", 45.0),
        ("'45'", 45.0),
    ],
)
def test_durations_are_seconds(tmp_path: Path, written: str, seconds: float) -> None:
    """Durations with a unit (ms, s, m, h, d) or none (seconds) become float seconds."""
    config = parse(f"sources:\n  s:\n    sqlite: a.db\n    query_timeout: {written}\n", tmp_path)

    assert config.sources["s"].query_timeout == seconds


# --- file-level problems ---------------------------------------------------------------------


def test_load_config_on_a_missing_file(tmp_path: Path) -> None:
    """A file that cannot be read is one problem, without a path or line, naming the file."""
    missing = tmp_path / "nope.yaml"

    with pytest.raises(ConfigError) as info:
        load_config(missing, environ={})

    assert info.value.file == missing
    assert info.value.problems == [
        Problem("", None, f"cannot read {missing}: No such file or directory")
    ]
    assert str(info.value) == f"cannot read {missing}: No such file or directory"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        pytest.param(
            "sources:\n  erp:\n    odbc: x\n   pool_size: 3\n",
            4,
            "not valid YAML: expected <block end>, but found '<block mapping start>'",
            id="bad-indentation",
        ),
        pytest.param(
            "sources:\n\terp: {sqlite: a.db}\n",
            2,
            "not valid YAML: found character '\\t' that cannot start any token",
            id="tab",
        ),
        pytest.param(
            "sources:\n  s: {sqlite: a.db}\nlisten: [1, 2\nadmin: x\n",
            4,
            "not valid YAML: expected ',' or ']', but got ':'",
            id="unclosed-flow-sequence",
        ),
    ],
)
def test_malformed_yaml_reports_the_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    """YAML that does not parse is one problem, with the line where the parser gave up."""
    error = config_error(text, tmp_path)

    assert triples(error) == [("", line, message)]
    assert str(error) == f"line {line}: {message}"


@pytest.mark.parametrize(
    ("text", "path", "line", "key"),
    [
        pytest.param(
            "sources:\n  s:\n    sqlite: a.db\n    sqlite: b.db\n", "sources.s", 4, "sqlite",
            id="nested",
        ),
        pytest.param(
            MINIMAL + "listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n", "", 5, "listen",
            id="top-level",
        ),
        pytest.param(
            MINIMAL + "resources:\n  t: {source: sample, table: a, table: b}\n",
            "resources.t", 5, "table",
            id="flow-mapping",
        ),
    ],
)  # fmt: skip
def test_duplicate_key(tmp_path: Path, text: str, path: str, line: int, key: str) -> None:
    """A key given twice is an error at the second one (PyYAML would keep the last silently)."""
    error = config_error(text, tmp_path)

    assert triples(error) == [(path, line, f"duplicate key {key!r}")]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("# nothing here yet\n", id="only-a-comment"),
        pytest.param("- sources\n- resources\n", id="list"),
        pytest.param("sources\n", id="scalar"),
    ],
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    """An empty file, or one whose document is not a mapping, is one problem on line 1."""
    error = config_error(text, tmp_path)

    assert triples(error) == [("", 1, NOT_A_MAPPING)]
    assert str(error) == f"line 1: {NOT_A_MAPPING}"


def test_top_level_not_a_mapping_reports_the_documents_line(tmp_path: Path) -> None:
    """A list after a comment header is reported where the list starts, not on line 1."""
    error = config_error("# Bridgehead agent\n\n- sources\n", tmp_path)

    assert [p.line for p in error.problems] == [3]


# --- unknown keys, types, required keys ------------------------------------------------------


def test_unknown_keys_at_several_depths_are_each_reported(tmp_path: Path) -> None:
    """Every misspelt key is reported with its full path and its own line, at any depth."""
    error = config_error(
        f"""\
        sources:
          s:
            sqlite: a.db
            poolsize: 3
        resources:
          t:
            source: s
            table: t
            colums: [a]
        auth:
          api_keys:
            - name: x
              key_sha256: {KEY_HASH}
              scope: [t:read]
        listen:
          address: 127.0.0.1:8470
          tsl: {{cert: a, key: b}}
        tunnel:
          relay: relay.example.com:8443
          ca: ca.pem
          cert: agent.pem
          key: agent.key
          proxi: http://proxy:3128
        """,
        tmp_path,
    )

    assert triples(error) == [
        ("sources.s.poolsize", 4, f"unknown key 'poolsize'; {UNKNOWN_HINT}"),
        ("resources.t.colums", 9, f"unknown key 'colums'; {UNKNOWN_HINT}"),
        ("auth.api_keys.0.scope", 14, f"unknown key 'scope'; {UNKNOWN_HINT}"),
        ("listen.tsl", 17, f"unknown key 'tsl'; {UNKNOWN_HINT}"),
        ("tunnel.proxi", 23, f"unknown key 'proxi'; {UNKNOWN_HINT}"),
    ]


def test_unknown_top_level_key(tmp_path: Path) -> None:
    """A misspelt top-level key is a ConfigError at its line, not a crash."""
    error = config_error(MINIMAL + "lisen: 127.0.0.1:8470\n", tmp_path)

    assert triples(error) == [("lisen", 4, f"unknown key 'lisen'; {UNKNOWN_HINT}")]


def test_base_dir_cannot_be_set_in_the_file(tmp_path: Path) -> None:
    """`base_dir` is set by the loader; written in YAML it is an unknown key."""
    error = config_error(MINIMAL + "base_dir: /elsewhere\n", tmp_path)

    assert [(p.path, p.line) for p in error.problems] == [("base_dir", 4)]
    assert error.problems[0].message == "base_dir is set by the program; remove it"


@pytest.mark.parametrize("key", ["adapter", "target"])
def test_adapter_and_target_are_unknown_keys_in_a_source(tmp_path: Path, key: str) -> None:
    """`adapter` and `target` are internal field names, not config keys; writing them is an
    unknown-key error rather than being silently overwritten."""
    error = config_error(f"sources:\n  s:\n    sqlite: a.db\n    {key}: odbc\n", tmp_path)

    assert triples(error) == [(f"sources.s.{key}", 4, f"unknown key {key!r}; {UNKNOWN_HINT}")]


@pytest.mark.parametrize(
    ("yaml_tail", "path", "line", "message"),
    [
        pytest.param(
            "sources:\n  s:\n    sqlite: a.db\n    pool_size: many\n",
            "sources.s.pool_size", 4,
            "input should be a valid integer, unable to parse string as an integer",
            id="pool_size-many",
        ),
        pytest.param(
            "sources:\n  s:\n    sqlite: a.db\n    pool_size: 0\n",
            "sources.s.pool_size", 4, "input should be greater than or equal to 1",
            id="pool_size-zero",
        ),
        pytest.param(
            MINIMAL + "resources:\n  t:\n    source: sample\n    table: t\n    max_rows: lots\n",
            "resources.t.max_rows", 8,
            "input should be a valid integer, unable to parse string as an integer",
            id="max_rows-text",
        ),
        pytest.param(
            MINIMAL + "resources:\n  t:\n    source: sample\n    table: t\n"
            "    operations: [read, upsert]\n",
            "resources.t.operations.1", 8,
            "input should be 'read', 'insert', 'update' or 'delete'",
            id="operation-unknown",
        ),
        pytest.param(
            MINIMAL + "resources:\n  t:\n    source: sample\n    table: ''\n",
            "resources.t.table", 7, "string should have at least 1 character",
            id="table-empty",
        ),
        pytest.param(
            MINIMAL + "queries:\n  q:\n    source: sample\n    sql: SELECT :a\n"
            "    params: {a: datetime}\n",
            "queries.q.params.a", 8,
            "input should be 'string', 'integer', 'decimal', 'float', 'boolean', 'date', "
            "'time', 'timestamp' or 'uuid'",
            id="param-type-unknown",
        ),
        pytest.param(
            MINIMAL + "resources:\n", "resources", 4, "input should be a valid dictionary",
            id="resources-null",
        ),
        pytest.param(
            "sources: {}\n", "sources", 1,
            "dictionary should have at least 1 item after validation, not 0",
            id="no-sources",
        ),
        pytest.param(
            MINIMAL + "tunnel:\n  relay: r:1\n  ca: a\n  cert: b\n  key: c\n  connections: 99\n",
            "tunnel.connections", 9, "input should be less than or equal to 16",
            id="connections-too-many",
        ),
    ],
)  # fmt: skip
def test_wrong_types_and_ranges(
    tmp_path: Path, yaml_tail: str, path: str, line: int, message: str
) -> None:
    """A value of the wrong type or out of range is reported at its own path and line."""
    error = config_error(yaml_tail, tmp_path)

    assert triples(error) == [(path, line, message)]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("soon", "'soon' is not a duration; write a number with a unit: 500ms, 30s, 5m or 1h"),
        ("5 minutes", "'5 minutes' is not a duration; write a number with a unit: "
         "500ms, 30s, 5m or 1h"),
        ("-5s", "'-5s' is not a duration; write a number with a unit: 500ms, 30s, 5m or 1h"),
        ("0s", "a duration must be greater than zero"),
        ("0", "a duration must be greater than zero"),
        ("yes", "a duration is a number with a unit, like 500ms, 30s, 5m or 1h"),
    ],
)  # fmt: skip
def test_invalid_duration(tmp_path: Path, value: str, message: str) -> None:
    """A duration that is not a positive number with a known unit says which forms work."""
    error = config_error(
        f"sources:\n  s:\n    sqlite: a.db\n    connect_timeout: {value}\n", tmp_path
    )

    assert triples(error) == [("sources.s.connect_timeout", 4, message)]


def test_missing_required_keys(tmp_path: Path) -> None:
    """Each missing required key is reported on its parent's path and line, all at once."""
    error = config_error(
        """\
        resources:
          t:
            table: x
        queries:
          q:
            source: s
        tunnel:
          relay: relay.example.com:8443
        auth:
          api_keys:
            - scopes: []
        """,
        tmp_path,
    )

    assert triples(error) == [
        ("", 1, "missing required key 'sources'"),
        ("resources.t", 2, "missing required key 'source'"),
        ("queries.q", 5, "missing required key 'sql'"),
        ("tunnel", 7, "missing required key 'ca'"),
        ("tunnel", 7, "missing required key 'cert'"),
        ("tunnel", 7, "missing required key 'key'"),
        ("auth.api_keys.0", 11, "missing required key 'name'"),
        ("auth.api_keys.0", 11, "missing required key 'key_sha256'"),
    ]


@pytest.mark.parametrize(
    ("sources_yaml", "line"),
    [
        pytest.param("  s:\n    pool_size: 2\n", 2, id="no-adapter-key"),
        pytest.param("  s:\n    sqlite: a.db\n    odbc: DSN=x\n", 2, id="two-adapter-keys"),
        pytest.param("  s: {}\n", 2, id="empty-mapping"),
    ],
)
def test_a_source_needs_exactly_one_adapter_key(
    tmp_path: Path, sources_yaml: str, line: int
) -> None:
    """A source with no adapter key or with two is one problem naming the adapters available."""
    error = config_error("sources:\n" + sources_yaml, tmp_path)

    assert triples(error) == [
        ("sources.s", line, "a source needs exactly one adapter key (sqlite, odbc)")
    ]


def test_a_source_written_as_a_string_gets_a_helpful_message(tmp_path: Path) -> None:
    """`sources: {s: a.db}` says a source is a mapping with an adapter key, without naming
    Python classes."""
    error = config_error("sources:\n  s: a.db\n", tmp_path)

    ((path, line, message),) = triples(error)
    assert (path, line) == ("sources.s", 2)
    assert "SourceConfig" not in message
    assert "sqlite" in message


@pytest.mark.parametrize(
    ("yaml_tail", "path", "line", "message"),
    [
        pytest.param(
            "listen: localhost\n", "listen.address", 4,
            "'localhost' is not HOST:PORT, e.g. 127.0.0.1:8470", id="listen-no-port",
        ),
        pytest.param(
            "admin: 127.0.0.1:http\n", "admin.address", 4,
            "'127.0.0.1:http' is not HOST:PORT, e.g. 127.0.0.1:8470", id="admin-named-port",
        ),
        pytest.param(
            "admin: 127.0.0.1:99999\n", "admin.address.port", 4,
            "input should be less than or equal to 65535", id="admin-port-too-big",
        ),
        pytest.param(
            "listen:\n  address: 10.0.0.1\n", "listen.address", 5,
            "'10.0.0.1' is not HOST:PORT, e.g. 127.0.0.1:8470", id="listen-mapping",
        ),
        pytest.param(
            "tunnel:\n  relay: relay.example.com\n  ca: a\n  cert: b\n  key: c\n",
            "tunnel.relay", 5,
            "'relay.example.com' is not HOST:PORT, e.g. 127.0.0.1:8470", id="relay-no-port",
        ),
    ],
)  # fmt: skip
def test_bad_listen_address(
    tmp_path: Path, yaml_tail: str, path: str, line: int, message: str
) -> None:
    """A HOST:PORT value without a numeric port in range is reported at its line."""
    error = config_error(MINIMAL + yaml_tail, tmp_path)

    assert triples(error) == [(path, line, message)]


@pytest.mark.parametrize(
    ("written", "host", "port"),
    [(":9000", "127.0.0.1", 9000), ("[::1]:9000", "::1", 9000), ("10.0.0.5:80", "10.0.0.5", 80)],
)
def test_listen_address_forms(tmp_path: Path, written: str, host: str, port: int) -> None:
    """`:PORT` means 127.0.0.1, and IPv6 hosts are written in brackets."""
    config = parse(MINIMAL + f"listen: '{written}'\n", tmp_path)

    assert config.listen is not None
    assert (config.listen.address.host, config.listen.address.port) == (host, port)


def test_listen_as_a_bare_port_gets_a_helpful_message(tmp_path: Path) -> None:
    """`listen: 8470` says to write HOST:PORT, without naming Python classes."""
    error = config_error(MINIMAL + "listen: 8470\n", tmp_path)

    ((path, line, message),) = triples(error)
    assert (path, line) == ("listen", 4)
    assert "ListenConfig" not in message
    assert "HOST:PORT" in message


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("abc", id="too-short"),
        pytest.param("a" * 63, id="63-digits"),
        pytest.param("a" * 65, id="65-digits"),
        pytest.param("g" * 64, id="not-hex"),
        pytest.param(KEY_HASH[:-1] + " ", id="trailing-space"),
    ],
)
def test_bad_key_sha256_is_reported_at_its_line(tmp_path: Path, value: str) -> None:
    """A key_sha256 that is not 64 hex digits is one problem at its own path and line."""
    error = config_error(
        MINIMAL + f"auth:\n  api_keys:\n    - name: crm\n      key_sha256: '{value}'\n",
        tmp_path,
    )

    assert [(p.path, p.line) for p in error.problems] == [("auth.api_keys.0.key_sha256", 7)]


def test_agent_and_relay_read_a_digest_the_same_way(tmp_path: Path) -> None:
    """A SHA-256 written in upper case with colons between pairs (as `openssl` prints it) is
    read as the same lower-case digest by the agent's key_sha256 and the relay's token_sha256."""
    written = ":".join(KEY_HASH.upper()[i : i + 2] for i in range(0, 64, 2))
    agent = parse_config(
        MINIMAL + f"auth:\n  api_keys:\n    - name: crm\n      key_sha256: '{written}'\n",
        tmp_path / "agent.yaml",
    )
    relay = parse_document(
        "tls: {cert: c.pem, key: k.pem}\nca: {cert: ca.pem, key: ca.key}\n"
        f"callers: [{{name: crm, token_sha256: '{written}'}}]\n",
        tmp_path / "relay.yaml",
        RelayConfig,
        check_relay_references,
    )

    assert agent.auth.api_keys[0].key_sha256 == KEY_HASH == relay.callers[0].token_sha256


def test_bad_key_sha256_message_says_what_to_write(tmp_path: Path) -> None:
    """The message for a bad key_sha256 explains it is the key's SHA-256 as 64 hex digits."""
    error = config_error(
        MINIMAL + "auth:\n  api_keys:\n    - name: crm\n      key_sha256: abc\n", tmp_path
    )

    message = error.problems[0].message
    assert "pattern" not in message
    assert "64 hex" in message


def test_bad_name_is_reported_at_its_own_line(tmp_path: Path) -> None:
    """A source named `1bad` is reported at `sources.1bad`, on the line where it is written."""
    error = config_error(MINIMAL + "  1bad:\n    sqlite: b.db\n", tmp_path)

    assert [(p.path, p.line) for p in error.problems] == [("sources.1bad", 4)]


def test_bad_name_is_reported(tmp_path: Path) -> None:
    """A name that cannot be used in a URL is an error that quotes it and says what is allowed."""
    error = config_error(MINIMAL + "  1bad:\n    sqlite: b.db\n", tmp_path)

    assert [p.message for p in error.problems] == [
        "'1bad' is not a usable name: use letters, digits, _ and -, starting with a letter or _"
    ]


# --- cross-references ------------------------------------------------------------------------


def test_resource_pointing_at_a_missing_source(tmp_path: Path) -> None:
    """A resource naming a source that does not exist is reported at its `source:` line, with
    the sources that do exist."""
    error = config_error(
        """\
        sources:
          erp:
            odbc: "DRIVER={PostgreSQL Unicode};SERVER=db01;UID=gw;PWD=x"
            pool_size: 8
          sample:
            sqlite: ./sample.db

        # Resources are the tables exposed over HTTP;
        # each one names the source it reads from.

        resources:
          customers:
            table: dbo.customers
            source: erpp
        """,
        tmp_path,
    )

    assert str(error) == (
        "resources.customers.source: line 14: no source named 'erpp' (sources: erp, sample)"
    )
    assert triples(error) == [
        ("resources.customers.source", 14, "no source named 'erpp' (sources: erp, sample)")
    ]


@pytest.mark.parametrize(
    ("section", "entry"),
    [
        ("resources", "{source: nowhere, table: t}"),
        ("queries", "{source: nowhere, sql: SELECT 1}"),
        ("procedures", "{source: nowhere, name: p}"),
    ],
)
def test_every_section_checks_its_source(tmp_path: Path, section: str, entry: str) -> None:
    """Queries and procedures are checked against the sources just like resources."""
    error = config_error(MINIMAL + f"{section}:\n  x: {entry}\n", tmp_path)

    message = "no source named 'nowhere' (sources: sample)"
    assert triples(error) == [(f"{section}.x.source", 5, message)]


def test_key_column_not_in_columns(tmp_path: Path) -> None:
    """Each key column missing from an explicit column list is reported at the key's line."""
    error = config_error(
        MINIMAL
        + "resources:\n  t:\n    source: sample\n    table: t\n"
        + "    columns: [id, name]\n    key: [id, region, code]\n",
        tmp_path,
    )

    assert triples(error) == [
        ("resources.t.key", 9, "key column 'region' is not in columns"),
        ("resources.t.key", 9, "key column 'code' is not in columns"),
    ]


def test_write_operations_without_key_load(tmp_path: Path) -> None:
    """Writes without `key:` pass validation: the key defaults to the table's primary key,
    which only introspection knows (agent.catalog refuses a table that has none)."""
    config = parse(
        MINIMAL
        + "resources:\n  t:\n    source: sample\n    table: t\n"
        + "    operations: [read, insert, delete]\n",
        tmp_path,
    )

    assert config.resources["t"].key is None


def test_reserved_resource_name(tmp_path: Path) -> None:
    """A resource cannot take a name the API uses for its own paths."""
    error = config_error(MINIMAL + "resources:\n  queries: {source: sample, table: t}\n", tmp_path)

    message = "'queries' is reserved; choose another name"
    assert triples(error) == [("resources.queries", 5, message)]


def test_query_params_must_match_the_sql(tmp_path: Path) -> None:
    """A `:name` used in sql but not declared is reported at sql; a declared param that sql
    does not use is reported at its own line. `::type` casts are not parameters."""
    error = config_error(
        MINIMAL
        + dedent(
            """\
            queries:
              q:
                source: sample
                sql: "SELECT * FROM t WHERE a < :before AND b = :region AND c::int = 1"
                params:
                  before: date
                  limit: integer
            """
        ),
        tmp_path,
    )

    assert triples(error) == [
        ("queries.q.sql", 7, ":region is used but not declared in params"),
        ("queries.q.params.limit", 10, "'limit' is not used in sql"),
    ]


def test_scope_naming_nothing(tmp_path: Path) -> None:
    """A scope that names no resource, query or procedure is reported at its list item; scopes
    that do name something are accepted."""
    error = config_error(
        MINIMAL
        + dedent(
            f"""\
            resources:
              t: {{source: sample, table: t}}
            queries:
              q: {{source: sample, sql: SELECT 1}}
            auth:
              api_keys:
                - name: crm
                  key_sha256: {KEY_HASH}
                  scopes:
                    - t:read
                    - t:write
                    - queries:q
                    - t:delete
                    - procedures:q
            """
        ),
        tmp_path,
    )

    nothing = f"names nothing this agent exposes {SCOPE_HINT}"
    assert triples(error) == [
        ("auth.api_keys.0.scopes.3", 16, f"scope 't:delete' {nothing}"),
        ("auth.api_keys.0.scopes.4", 17, f"scope 'procedures:q' {nothing}"),
    ]


# --- substitution ----------------------------------------------------------------------------


def test_env_reference_inside_a_string(tmp_path: Path) -> None:
    """`${env:NAME}` is replaced inside a longer string, and may appear more than once."""
    config = parse(
        "sources:\n  erp:\n    odbc: 'UID=${env:DB_USER};PWD=${env:DB_PASS};APP=${env:DB_USER}'\n"
        "    pool_size: ${env:POOL}\n",
        tmp_path,
        environ={"DB_USER": "gw", "DB_PASS": "pw", "POOL": "6"},
    )

    assert config.sources["erp"].target.get_secret_value() == "UID=gw;PWD=pw;APP=gw"
    assert config.sources["erp"].pool_size == 6


@pytest.mark.parametrize(
    ("value", "served"),
    [
        ("a;b{c}d", "{a;b{c}}d}"),
        (" padded ", "{ padded }"),
        ("plain-pw", "plain-pw"),
    ],
)
def test_odbc_attribute_values_are_quoted(tmp_path: Path, value: str, served: str) -> None:
    """A reference that is a whole ODBC attribute value is quoted the ODBC way ({...}, `}`
    doubled) when its value holds ;, {, } or edge spaces; elsewhere values are left as they are."""
    config = parse(
        "sources:\n  erp:\n    odbc: 'UID=gw;PWD=${env:PW} ;APP=x'\n"
        "    pool_size: 2\nstate_dir: '${env:PW}'\n",
        tmp_path,
        environ={"PW": value},
    )

    assert config.sources["erp"].target.get_secret_value() == f"UID=gw;PWD={served} ;APP=x"
    assert config.state_dir is not None
    assert config.state_dir.name == value


@pytest.mark.parametrize("odbc", ["PWD=pre${env:PW}", "PWD={${env:PW}}"])
def test_odbc_value_that_cannot_be_quoted_says_how_to_fix(tmp_path: Path, odbc: str) -> None:
    """A value holding ODBC specials inside a longer or braced value is a problem that says
    to make the reference the whole value, and never shows the value."""
    error = config_error(
        f"sources:\n  erp:\n    odbc: '{odbc}'\n", tmp_path, environ={"PW": "se;cret"}
    )

    message = (
        "the value of ${env:PW} holds ';', '{' or '}', which cannot stand inside a longer or "
        "braced ODBC value: make the reference the whole value, unbraced (e.g. "
        "PWD=${env:PW}), and Bridgehead quotes it"
    )
    assert triples(error) == [("sources.erp.odbc", 3, message)]
    assert "se;cret" not in str(error)


def test_missing_env_var_is_reported_with_path_and_line(tmp_path: Path) -> None:
    """An unset environment variable is a problem at the key that references it."""
    error = config_error(
        "sources:\n  sample: {sqlite: a.db}\n  erp:\n    odbc: 'UID=gw;PWD=${env:ERP_PASSWORD}'\n",
        tmp_path,
        environ={"OTHER": "x"},
    )

    assert triples(error) == [
        ("sources.erp.odbc", 4, "environment variable ERP_PASSWORD is not set")
    ]


def test_missing_env_var_is_reported_once(tmp_path: Path) -> None:
    """An unset variable used for a typed value gives one problem, not a follow-on type error."""
    error = config_error(
        "sources:\n  s:\n    sqlite: a.db\n    query_timeout: ${env:TIMEOUT}\n", tmp_path
    )

    assert triples(error) == [
        ("sources.s.query_timeout", 4, "environment variable TIMEOUT is not set")
    ]


@pytest.mark.parametrize("content", ["s3cret\n", "s3cret\r\n", "s3cret\n\n", "s3cret"])
def test_file_reference_is_read_beside_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str
) -> None:
    """`${file:PATH}` reads PATH relative to the config's folder (not the working directory),
    without the trailing newline(s)."""
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "erp.txt").write_bytes(content.encode())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = parse("sources:\n  erp:\n    odbc: 'PWD=${file:secrets/erp.txt};X=1'\n", tmp_path)

    assert config.sources["erp"].target.get_secret_value() == "PWD=s3cret;X=1"


def test_missing_file_reference(tmp_path: Path) -> None:
    """A `${file:...}` that cannot be read is reported at its key, with the resolved path."""
    error = config_error("sources:\n  erp:\n    odbc: '${file:secrets/none.txt}'\n", tmp_path)

    missing = tmp_path.resolve() / "secrets" / "none.txt"
    assert triples(error) == [
        ("sources.erp.odbc", 3, f"cannot read {missing}: No such file or directory")
    ]


def test_enc_value_without_a_secret_key(tmp_path: Path) -> None:
    """An `enc:` value cannot be used when the loader has no way to decrypt it."""
    error = config_error("sources:\n  erp:\n    odbc: 'enc:AAAA'\n", tmp_path)

    assert triples(error) == [("sources.erp.odbc", 3, "enc: values need the agent's secret key")]


def test_decrypter_gets_the_substituted_state_dir(tmp_path: Path) -> None:
    """The secret key for `enc:` values is looked up in the state_dir the config ends up with."""
    state = tmp_path / "var" / "state"
    seen: list[Path] = []

    def decrypter(folder: Path) -> Callable[[str], str]:
        seen.append(folder)
        return lambda value: "decrypted"

    config = parse_config(
        "sources:\n  erp:\n    odbc: 'enc:AAAA'\nstate_dir: '${env:STATE}'\n",
        tmp_path / "agent.yaml",
        environ={"STATE": str(state)},
        decrypter=decrypter,
    )

    assert config.sources["erp"].target.get_secret_value() == "decrypted"
    assert seen == [state]


class CountingEnviron(Mapping[str, str]):
    """An environment that counts how often each variable is read."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values, self.reads = values, dict.fromkeys(values, 0)

    def __getitem__(self, name: str) -> str:
        self.reads[name] += 1
        return self.values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def test_state_dir_is_substituted_once(tmp_path: Path) -> None:
    """Finding the secret key's folder does not substitute `state_dir` a second time: each
    reference in the file is read exactly once."""
    environ = CountingEnviron({"STATE": str(tmp_path / "state")})

    parse_config(
        "sources:\n  erp:\n    odbc: 'enc:AAAA'\nstate_dir: '${env:STATE}'\n",
        tmp_path / "agent.yaml",
        environ=environ,
        decrypter=lambda folder: lambda value: "decrypted",
    )

    assert environ.reads == {"STATE": 1}


def test_relay_secrets_are_looked_up_in_the_relay_state_folder(tmp_path: Path) -> None:
    """Without `state_dir`, an `enc:` value in the relay's config is decrypted with the key in
    the relay's own default folder, `relay-state`, not the agent's `state`."""
    seen: list[Path] = []
    text = (
        "tls: {cert: c.pem, key: k.pem}\nca: {cert: ca.pem, key: ca.key}\n"
        "callers: [{name: crm, token_sha256: 'enc:AAAA'}]\n"
    )

    def decrypter(folder: Path) -> Callable[[str], str]:
        seen.append(folder)
        return lambda value: "0" * 64

    config = parse_document(
        text, tmp_path / "relay.yaml", RelayConfig, check_relay_references, decrypter=decrypter
    )

    assert seen == [tmp_path / "relay-state"] == [config.state_path]


# --- all problems at once, and secrets -------------------------------------------------------


def test_all_problems_are_reported_at_once_sorted_by_line(tmp_path: Path) -> None:
    """YAML-level, substitution and validation problems are collected together and sorted by
    line, and str() of the error has one line per problem."""
    error = config_error(
        """\
        sources:
          erp:
            odbc: "PWD=${env:ERP_PASSWORD}"
            pool_size: many
          sample:
            sqlite: "${file:missing.db.txt}"
            query_timeout: soon
        resources:
          customers:
            table: customers
        listen: nowhere
        base_dir: /tmp
        """,
        tmp_path,
    )

    problems = error.problems
    assert len(problems) == 7
    assert [p.line for p in problems] == [3, 4, 6, 7, 9, 11, 12]
    assert [p.path for p in problems] == [
        "sources.erp.odbc",
        "sources.erp.pool_size",
        "sources.sample.sqlite",
        "sources.sample.query_timeout",
        "resources.customers",
        "listen.address",
        "base_dir",
    ]
    assert str(error).splitlines() == [str(p) for p in problems]


def test_reference_problems_are_reported_alongside_type_problems(tmp_path: Path) -> None:
    """A wrong type in one place does not hide a dangling source reference in another."""
    error = config_error(
        "sources:\n  s:\n    sqlite: a.db\n    pool_size: many\n"
        "resources:\n  t: {source: nope, table: t}\n",
        tmp_path,
    )

    assert [(p.path, p.line) for p in error.problems] == [
        ("sources.s.pool_size", 4),
        ("resources.t.source", 6),
    ]


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param("    pool_size: many\n", id="type-error"),
        pytest.param("    query_timeout: ${env:UNSET}\n", id="substitution-error"),
        pytest.param("resources:\n  t: {source: nope, table: t}\n", id="reference"),
        pytest.param("    odbc2: x\n", id="unknown-key"),
        pytest.param("    sqlite: ${env:ERP_PASSWORD}\n", id="two-adapter-keys"),
    ],
)  # fmt: skip
def test_secrets_never_appear_in_error_text(tmp_path: Path, broken: str) -> None:
    """A password substituted into an odbc string does not appear in any problem, whatever
    else is wrong with the file."""
    text = (
        "sources:\n  erp:\n"
        "    odbc: 'DRIVER={PostgreSQL};SERVER=db01;UID=gw;PWD=${env:ERP_PASSWORD}'\n" + broken
    )
    error = config_error(text, tmp_path, environ={"ERP_PASSWORD": PASSWORD})

    assert error.problems
    assert PASSWORD not in str(error)
    assert PASSWORD not in repr(error)
    assert all(PASSWORD not in p.message and PASSWORD not in p.path for p in error.problems)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "sources:\n  s:\n    sqlite: a.db\n    query_timeout: '${env:SECRET}'\n",
            id="duration",
        ),
        pytest.param(MINIMAL + "listen: '${env:SECRET}'\n", id="listen"),
    ],
)
def test_substituted_values_never_appear_in_error_text(tmp_path: Path, text: str) -> None:
    """A value that came from the environment is not quoted back even when it is invalid."""
    error = config_error(text, tmp_path, environ={"SECRET": PASSWORD})

    assert PASSWORD not in str(error)


def test_secret_targets_do_not_appear_in_repr(tmp_path: Path) -> None:
    """The odbc connection string (with its password) and the sqlite path are SecretStr, so
    repr() and str() of the loaded config hide them."""
    config = parse(
        "sources:\n  erp:\n    odbc: 'SERVER=db01;PWD=${env:ERP_PASSWORD}'\n"
        "  sample:\n    sqlite: ./very-private-name.db\n",
        tmp_path,
        environ={"ERP_PASSWORD": PASSWORD},
    )

    assert config.sources["erp"].target.get_secret_value().endswith(PASSWORD)
    for shown in (repr(config), str(config), repr(config.sources), str(config.sources["erp"])):
        assert PASSWORD not in shown
        assert "very-private-name" not in shown


def test_a_backoff_cap_below_its_base_is_reported_at_its_line(tmp_path: Path) -> None:
    """backoff.cap under backoff.base is one problem, at the backoff mapping's line."""
    text = MINIMAL + (
        "tunnel:\n  relay: r.example:8443\n  ca: ca.pem\n  cert: a.pem\n  key: a.key\n"
        "  backoff:\n    base: 5s\n    cap: 1s\n"
    )
    [(path, line, message)] = triples(config_error(text, tmp_path))
    assert path == "tunnel.backoff"
    assert line == 9
    assert "cap (1 s) must be at least base (5 s)" in message
