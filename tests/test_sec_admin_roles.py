"""Issue 19, holes 1, 2 and 11: through the admin API no key reaches a key of a higher role,
an id always finds its key, names never cross teams, and a member sees only its own key.
Each runs through the real HTTP server on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import httpx
import pytest

from conftest import MASTER_KEY
from xvckit.store.keys import keys_table


@pytest.fixture
def gw(make_gateway, store_url):
    return make_gateway({}, storage_url=store_url)


def api(gw, key: str) -> httpx.Client:
    return httpx.Client(base_url=f"{gw.url}/admin", headers={"authorization": f"Bearer {key}"})


def created(response: httpx.Response) -> dict:
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def teams(gw):
    """Teams blue and red; in blue a team-admin, a member and an admin-role key made by the master."""
    master = api(gw, MASTER_KEY)
    blue = created(master.post("/teams", json={"name": "blue"}))
    created(master.post("/teams", json={"name": "red"}))
    return {
        "blue": blue,
        "lead": created(master.post("/keys", json={"name": "lead", "team": "blue", "role": "team-admin"})),
        "dev": created(master.post("/keys", json={"name": "dev", "team": "blue"})),
        "ops": created(master.post("/keys", json={"name": "ops", "team": "blue", "role": "admin"})),
        "red": created(master.post("/keys", json={"name": "r1", "team": "red"})),
    }


def test_team_admin_cannot_reach_a_higher_role_in_its_team(gw, teams):
    lead, ops = api(gw, teams["lead"]["key"]), teams["ops"]
    for ref in (ops["id"], "ops"):
        assert lead.post(f"/keys/{ref}/rotate").status_code == 404
        assert lead.post(f"/keys/{ref}/revoke").status_code == 404
        assert lead.get(f"/keys/{ref}").status_code == 404
    assert ops["id"] not in lead.get("/keys").text
    assert ops["id"] not in lead.get(f"/teams/{teams['blue']['id']}").text
    # the admin key still works, with its old secret; the master still reaches it
    assert api(gw, ops["key"]).get("/audit").status_code == 200
    assert api(gw, MASTER_KEY).post(f"/keys/{ops['id']}/rotate").status_code == 200
    # keys of its own rank and below stay the team-admin's to manage
    assert lead.post(f"/keys/{teams['dev']['id']}/rotate").status_code == 200
    peer = created(lead.post("/keys", json={"name": "lead2", "role": "team-admin"}))
    assert lead.post(f"/keys/{peer['id']}/revoke").status_code == 200


def test_names_shaped_like_ids_are_refused(gw, teams):
    master, lead, dev_id = api(gw, MASTER_KEY), api(gw, teams["lead"]["key"]), teams["dev"]["id"]
    for name in (dev_id, "key_anything", "KEY_x", "team_x", teams["blue"]["id"]):
        for client in (master, lead):
            refused = client.post("/keys", json={"name": name})
            assert refused.status_code == 400 and "looks like an id" in refused.text
        assert master.post("/teams", json={"name": name}).status_code == 400
    # an id finds only its key, even beside a name an older xvckit let through
    with gw.gateway.store.engine.begin() as conn:
        conn.execute(keys_table.update().where(keys_table.c.id == teams["red"]["id"]).values(name=dev_id))
    assert master.post(f"/keys/{dev_id}/rotate").json()["name"] == "dev"
    assert lead.post(f"/keys/{dev_id}/revoke").json()["revoked_at"]
    assert master.get(f"/keys/{teams['red']['id']}").json()["revoked_at"] is None


def test_key_names_are_unique_within_a_team(gw, teams):
    master, lead = api(gw, MASTER_KEY), api(gw, teams["lead"]["key"])
    taken = lead.post("/keys", json={"name": "dev"})
    assert taken.status_code == 409 and "exists already" in taken.json()["error"]["message"]
    assert taken.json()["error"]["type"] == "conflict"
    api(gw, MASTER_KEY).post(f"/keys/{teams['dev']['id']}/revoke")
    assert lead.post("/keys", json={"name": "dev"}).status_code == 409  # revoked: still its name
    created(master.post("/keys", json={"name": "solo"}))
    assert master.post("/keys", json={"name": "solo"}).status_code == 409  # among team-less keys
    # another team may have its own "dev"; a name lookup then needs the caller's team or the id
    red_dev = created(master.post("/keys", json={"name": "dev", "team": "red"}))
    ambiguous = master.get("/keys/dev")  # the master sees both: it is asked for the id
    assert ambiguous.status_code == 400 and "use the key id" in ambiguous.text
    assert master.get(f"/keys/{red_dev['id']}").json()["team_id"] == red_dev["team_id"]


def test_concurrent_creates_of_one_name_make_one_key(gw, teams):
    lead_key, results = teams["lead"]["key"], []
    start = threading.Barrier(8)

    def create() -> None:
        with api(gw, lead_key) as client:
            start.wait()
            results.append(client.post("/keys", json={"name": "twin"}).status_code)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [201] + [409] * 7
    assert [k["name"] for k in api(gw, lead_key).get("/keys").json()].count("twin") == 1


def test_lookups_never_cross_teams(gw, teams):
    lead = api(gw, teams["lead"]["key"])
    red_dev = created(api(gw, MASTER_KEY).post("/keys", json={"name": "dev", "team": "red"}))
    # a name both teams use finds the caller's own key, not "2 keys are named 'dev'"
    assert lead.get("/keys/dev").json()["id"] == teams["dev"]["id"] != red_dev["id"]
    assert lead.post("/keys/dev/rotate").json()["id"] == teams["dev"]["id"]
    # a name only another team uses answers exactly as a name nobody uses
    in_red = [lead.get("/keys/r1"), lead.post("/keys/r1/rotate"), lead.get(f"/keys/{teams['red']['id']}")]
    nowhere = [lead.get("/keys/ghost"), lead.post("/keys/ghost/rotate"), lead.get("/keys/key_000000000000")]
    for seen, missing in zip(in_red, nowhere, strict=True):
        assert seen.status_code == missing.status_code == 404
        assert seen.json()["error"]["message"].replace("r1", "X").replace(teams["red"]["id"], "X") == (
            missing.json()["error"]["message"].replace("ghost", "X").replace("key_000000000000", "X")
        )
    assert lead.get("/teams/red").status_code == lead.get("/teams/ghost").status_code == 404


def test_a_member_sees_only_its_own_key_on_every_route(gw, teams):
    member, dev = api(gw, teams["dev"]["key"]), teams["dev"]
    others = [teams[name]["id"] for name in ("lead", "ops", "red")] + ["lead", "ops", "r1"]
    team = member.get(f"/teams/{teams['blue']['id']}")
    assert team.status_code == 200 and [k["id"] for k in team.json()["keys"]] == [dev["id"]]
    assert [k["id"] for k in member.get("/keys").json()] == [dev["id"]]
    assert member.get(f"/keys/{dev['id']}").json()["name"] == "dev"
    for path in ("/teams", "/usage", "/usage?by=key", "/usage?by=team", f"/teams/{teams['blue']['id']}"):
        answer = member.get(path)
        assert answer.status_code == 200 and not any(other in answer.text for other in others), path
    for ref in others:
        assert member.get(f"/keys/{ref}").status_code == 404
    for path in ("/audit", "/audit/verify"):
        assert member.get(path).status_code == 403
