"""OpenAI's Responses API in the simulator (`POST /v1/responses`): the request is read as the
chat completion it asks for, answered by the chat route (same model, limits, tools, timing and
faults) and given back as a `response` or its event stream, the shapes the gateway's own
translation makes (`providers/responses_*`). Stored responses are kept per API key, within a
byte bound (`sim/kept.py`), for `previous_response_id`."""

from __future__ import annotations

from typing import Any

import orjson

from xvckit.providers import sse
from xvckit.providers.responses_request import input_items, to_chat_request
from xvckit.providers.responses_response import ChatToResponsesStream, from_chat_response, new_id
from xvckit.providers.translate import InvalidRequest
from xvckit.sim import openai_routes
from xvckit.sim.exchange import Reply, Request, Route, Simulator


async def responses(sim: Simulator, req: Request) -> Reply:
    body = req.json
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return req.fail(400, "Missing required parameter: 'model'.", "missing_required_parameter", "model")
    try:
        items = [*_earlier(sim, req, body.get("previous_response_id")), *input_items(body)]
        chat = to_chat_request(body, model, items)
    except LookupError as exc:
        return req.fail(404, str(exc), "previous_response_not_found", "previous_response_id")
    except InvalidRequest as exc:
        return req.fail(400, str(exc), "invalid_value")
    req.json = chat
    reply = await openai_routes.chat_completions(sim, req)
    if reply.status != 200:
        return reply
    response_id = new_id("resp")
    if not reply.stream:
        response = from_chat_response(orjson.loads(reply.parts[0]), body, response_id, model)
        _keep(sim, req, body, items, response)
        return Reply(200, [orjson.dumps(response)])
    events = ChatToResponsesStream(body, response_id, model)
    parts = [events.feed(event) for part in reply.parts for event in sse.EventSplitter().feed(part)]
    _keep(sim, req, body, items, events.response)
    return Reply(200, [part for part in parts if part], stream=True)


def _earlier(sim: Simulator, req: Request, previous: Any) -> list[dict[str, Any]]:
    if previous is None:
        return []
    found = sim.kept.get(req.api_key, previous) if isinstance(previous, str) else None
    if found is None:
        raise LookupError(f"Previous response with id '{previous}' not found.")
    return found


def _keep(
    sim: Simulator, req: Request, body: dict, items: list[dict[str, Any]], response: dict | None
) -> None:
    if body.get("store") is False or not response:
        return
    sim.kept.put(req.api_key, response["id"], [*items, *response["output"]])


RESPONSES = Route("responses", openai_routes.DIALECT, responses)
ROUTES = {("POST", "/v1/responses"): RESPONSES}
