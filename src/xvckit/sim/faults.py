"""Network faults a client must survive: no response at all, a response cut short, silence.

ASGI has no message for "close the connection": an app that returns without answering gets a
500 from uvicorn. So these helpers reach the connection's transport through the `receive`
callable uvicorn passes (a bound method of its request cycle, which holds the transport).
"""

from __future__ import annotations

import asyncio

from xvckit.asgi import Receive, Send

DROP = b"drop"  # close the connection without a response
MIDSTREAM = b"midstream"  # send the start of the response, then close the connection
HANG = b"hang"  # accept the request and never answer


async def close_connection(receive: Receive) -> None:
    """Close the client's connection (after what was already written) and wait until it is gone."""
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is None:
        raise RuntimeError("this ASGI server does not expose its connection; use uvicorn")
    transport.close()
    await _until_disconnect(receive)


async def hang(receive: Receive) -> None:
    """Say nothing until the client gives up. When the server shuts down first (it cancels
    requests that outlast its grace period), hang up rather than let it answer 500."""
    try:
        await _until_disconnect(receive)
    except asyncio.CancelledError:
        await close_connection(receive)


async def send_partial(send: Send, receive: Receive, start: dict, parts: list[bytes]) -> None:
    """Send the response head and the first half of its body (at least one part), then hang up."""
    await send(start)
    body = parts if len(parts) > 1 else [parts[0][: len(parts[0]) // 2]]
    for part in body[: max(1, len(body) // 2)]:
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await close_connection(receive)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
