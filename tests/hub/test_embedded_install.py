"""The embedded default runs without the `postgres` extra: psycopg is imported on PostgreSQL's
paths only, so `pip install hub` (no extras) serves démarches on SQLite."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import CONFIG

WITHOUT_PSYCOPG = textwrap.dedent(
    """
    import sys, time, uuid

    class NoPsycopg:  # as if the `postgres` extra were not installed
        def find_spec(self, name, path=None, target=None):
            if name == "psycopg" or name.startswith("psycopg."):
                raise ModuleNotFoundError(f"No module named {name!r}")

    sys.meta_path.insert(0, NoPsycopg())
    import json
    from hub.auth import Principal
    from hub.intake import RequestBody, submit
    from hub.runtime import build_hub
    from hub.worker import Worker

    config, url, body = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    hub = build_hub(config, url=url, migrate=True)
    portal = Principal("portal", frozenset({"portal"}))
    accepted = submit(hub, portal, RequestBody.model_validate(body), str(uuid.uuid4()), time.perf_counter())
    worker = Worker(hub, name="embedded")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and worker.run_once() == 0:
        time.sleep(0.1)
    while worker.run_once():
        pass
    from sqlalchemy import select
    from hub.db.models import REQUESTS
    with hub.db.reading() as connection:
        query = select(REQUESTS.c.status).where(REQUESTS.c.id == accepted.request_id)
        status = connection.execute(query).scalar()
    print(status, sorted(m for m in sys.modules if m.startswith("psycopg")))
    hub.close()
    """
)


def test_a_demarche_completes_on_sqlite_without_psycopg(sandbox, tmp_path):
    import json

    from tests.conftest import sample

    body = json.dumps(sample("01-lefevre-copie-integrale"))
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_PSYCOPG, str(CONFIG), f"sqlite:///{tmp_path / 'hub.db'}", body],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["completed", "[]"]
