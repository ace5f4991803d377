# The sample databases as session fixtures, shared by every test module that serves them
# (registered as a plugin by conftest): each is loaded into its server once per session,
# whichever modules ask for it, since loading one twice would clash on its database names.
from __future__ import annotations

import pytest
from dbservers import MariaDBServer, PostgresServer
from sampledbs import (
    CHINOOK_SQLITE,
    Sample,
    load_chinook_mariadb,
    load_chinook_postgres,
    load_chinook_sqlite,
    load_sakila_postgres,
    sample_file,
)


@pytest.fixture(scope="session")
def chinook_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    return load_chinook_sqlite(tmp_path_factory.mktemp("chinook-sqlite"))


@pytest.fixture(scope="session")
def chinook_postgresql(postgres_server: PostgresServer) -> Sample:
    return load_chinook_postgres(postgres_server)


@pytest.fixture(scope="session")
def sakila_postgresql(postgres_server: PostgresServer) -> Sample:
    return load_sakila_postgres(postgres_server)


@pytest.fixture(scope="session")
def chinook_mariadb(
    mariadb_server: MariaDBServer, tmp_path_factory: pytest.TempPathFactory
) -> Sample:
    return load_chinook_mariadb(mariadb_server, tmp_path_factory.mktemp("chinook-mariadb"))


@pytest.fixture(scope="session")
def sample(request: pytest.FixtureRequest) -> Sample:
    """The sample database named by the test's parameter, loaded once per session."""
    if request.param == "sample-databases-missing":
        sample_file(CHINOOK_SQLITE)
    loaded: Sample = request.getfixturevalue(request.param.replace("-", "_"))
    return loaded
