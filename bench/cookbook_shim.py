"""Runs openai-cookbook's `api_request_parallel_processor.py` for `batch_run.py`.

The script is the user's own copy, passed by path (it is not on PyPI and is never part of this
repository). It is run as it is, with one thing given to it: the endpoint's name, which it reads
from the URL with a pattern that accepts https only, and the simulator is plain HTTP on loopback.
Its pacing, retries and output are its own.

usage: cookbook_shim.py SCRIPT REQUESTS.jsonl RESULTS.jsonl URL KEY RPM
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import sys


def main() -> None:
    script, requests, results, url, key, rpm = sys.argv[1:]
    spec = importlib.util.spec_from_file_location("api_request_parallel_processor", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.api_endpoint_from_url = lambda _url: "chat/completions"
    asyncio.run(
        module.process_api_requests_from_file(
            requests_filepath=requests,
            save_filepath=results,
            request_url=url,
            api_key=key,
            max_requests_per_minute=float(rpm),
            max_tokens_per_minute=1e9,  # the limit under test is requests a minute
            token_encoding_name="cl100k_base",
            max_attempts=5,  # the script's default
            logging_level=logging.WARNING,  # its warnings name each request that failed
        )
    )


if __name__ == "__main__":
    main()
