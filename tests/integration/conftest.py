"""One real stack per integration session: PostgreSQL, a Prefect server and an MLflow server."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from tests.integration.servers import mlflow_tracking_server, postgres, prefect_server


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    work = tmp_path_factory.mktemp("stack")
    with ExitStack() as es:
        pg = es.enter_context(postgres())
        prefect_url = es.enter_context(prefect_server(work, pg))
        backend, artifacts = (
            f"postgresql+psycopg2://{pg}/mlflow",
            (work / "mlflow-artifacts").as_uri(),
        )
        mlflow_url = es.enter_context(mlflow_tracking_server(work, backend, artifacts))
        yield {"prefect": prefect_url, "mlflow": mlflow_url, "postgres": pg, "workdir": work}
