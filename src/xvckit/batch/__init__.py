"""`xvckit batch`: one prompt template over many files or items, sent through the gateway.

The pieces, in the order a run uses them:

    items.py      what to work on: files by glob, or the lines of a JSONL file
    template.py   the Jinja2 template rendered per item (strict: a missing variable is an error)
    requests.py   a rendered prompt as the request body of its dialect, keyed by its SHA-256
    journal.py    the run's SQLite journal: each item's state, answer, usage, cost and error
    pacing.py     how many requests are in flight: fixed, or adapted to the gateway's answers
    client.py     one request to the gateway, retried on 429/5xx/connection errors
    engine.py     rendered requests in, answers to a sink out, within a cost cap
    cost.py       token and cost estimates from the price table
    outputs.py    sinks: one file per item, JSONL results
    edits.py      unified diffs and SEARCH/REPLACE blocks applied all-or-nothing per file, and undo
    runs.py       the run folder (`.xvckit/batch/<run-id>/`): spec, lock, listing
    runner.py     a run from its spec: the pieces above wired together

The gateway is reached only over HTTP (never imported): it paces, retries upstream and keeps
`Idempotency-Key` records, so a request resent after a crash is answered from its record.
"""
