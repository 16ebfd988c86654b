"""A test upstream behind a real gateway that answers every prompt with the prompt itself: a
batch item's answer is then exactly what its template rendered (edits, context packs); or with
what a test scripts for each prompt (review's findings per file)."""

from __future__ import annotations

from collections.abc import Callable

import orjson

from servers import BackgroundServer
from xvckit.asgi import lifespan, read_body

ECHO_MODEL = "echo-model"


async def _nothing() -> None:
    pass


def scripted_upstream(answer: Callable[[dict], str]):
    """An OpenAI-compatible upstream whose answer to a request is `answer(its body)`."""

    async def upstream(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, _nothing, _nothing)
            return
        request = orjson.loads(await read_body(scope, receive, 1 << 20))
        body = orjson.dumps(
            {
                "id": "chatcmpl-echo",
                "object": "chat.completion",
                "created": 0,
                "model": request["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer(request)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            }
        )
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return upstream


# Its answer is the last message it was sent.
echo_upstream = scripted_upstream(lambda request: request["messages"][-1]["content"])


def echo_gateway(make_module_gateway, app=echo_upstream):
    """A gateway whose model ECHO_MODEL is served by `app`, `echo_upstream` unless another is
    given (a generator for a module's fixture to yield from)."""
    with BackgroundServer(app) as upstream:
        yield make_module_gateway(
            {
                "providers": [
                    {"name": "echo", "kind": "openai", "base_url": f"{upstream.url}/v1", "api_keys": ["k"]}
                ],
                "models": [{"name": ECHO_MODEL, "provider": "echo"}],
            }
        )
