"""A test upstream that answers every prompt with the prompt itself, behind a real gateway:
a batch item's answer is then exactly what its template rendered (edits, context packs)."""

from __future__ import annotations

import orjson

from servers import BackgroundServer
from xvckit.asgi import lifespan, read_body

ECHO_MODEL = "echo-model"


async def _nothing() -> None:
    pass


async def echo_upstream(scope, receive, send) -> None:
    """An OpenAI-compatible upstream whose answer is the last message it was sent."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send, _nothing, _nothing)
        return
    request = orjson.loads(await read_body(scope, receive, 1 << 20))
    answer = orjson.dumps(
        {
            "id": "chatcmpl-echo",
            "object": "chat.completion",
            "created": 0,
            "model": request["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": request["messages"][-1]["content"]},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }
    )
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


def echo_gateway(make_module_gateway):
    """A gateway whose model ECHO_MODEL is served by `echo_upstream` (a generator for a
    module's fixture to yield from)."""
    with BackgroundServer(echo_upstream) as upstream:
        yield make_module_gateway(
            {
                "providers": [
                    {"name": "echo", "kind": "openai", "base_url": f"{upstream.url}/v1", "api_keys": ["k"]}
                ],
                "models": [{"name": ECHO_MODEL, "provider": "echo"}],
            }
        )
