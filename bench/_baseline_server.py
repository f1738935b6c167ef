"""The intake without durability: the baseline of bench/intake.py and bench/memory.py.

``POST /v1/requests`` reads and checks the body exactly as the hub's route does (size limit,
content type, JSON, :class:`hub.intake.RequestBody`, the flow's input schema) and answers ``202``
with the same JSON shape and ``Location`` header, but authenticates nothing and writes nothing.
It runs under uvicorn with the settings of ``hub serve``, in its own process, so the ratio
hub / baseline is the cost of authentication plus the durable transaction (and its thread hop).

Run: ``python bench/_baseline_server.py --port 8123`` (HUB_CONFIG names the hub.yaml to load).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from hub.api import errors
from hub.api.body import parse_json, read_body
from hub.api.errors import ApiError, validation_details
from hub.intake import Accepted, RequestBody
from hub.runtime import load_definitions


def create_baseline_app() -> FastAPI:
    definitions = load_definitions()
    limit = definitions.config.api.max_body_bytes
    flows = definitions.flows
    app = FastAPI(title="intake baseline (no database)")
    errors.install(app)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "database": "none"}

    @app.post("/v1/requests", status_code=202)
    async def post_request(request: Request) -> JSONResponse:
        raw = await read_body(request, limit)
        document = parse_json(request, raw)
        try:
            body = RequestBody.model_validate(document)
        except ValidationError as exc:
            raise ApiError(
                422, "validation_failed", "the request is invalid", validation_details(list(exc.errors()))
            ) from None
        flow = flows.get(body.flow)
        if flow is None:
            raise ApiError(404, "unknown_flow", f"no flow named {body.flow!r}")
        problems = flow.input_errors(body.data)
        if problems:
            raise ApiError(422, "validation_failed", "the request data does not match the schema", problems)
        accepted = Accepted(str(uuid.uuid4()), flow.name, "received", created=True)
        headers = {"Location": f"/v1/requests/{accepted.request_id}"}
        return JSONResponse(accepted.as_json(), status_code=202, headers=headers)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The same uvicorn settings as hub.server.make_server.
    config = uvicorn.Config(
        create_baseline_app(),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
