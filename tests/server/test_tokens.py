"""Every way a call token is refused when joining, and the refusal's code."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from appliance.server import SessionServer, tokens
from appliance.signaling.client import SignalingError
from appliance.signaling.messages import Join, Joined, Leave
from tests.server.conftest import Kit, KitFactory, ServerFactory


async def secret_of(server: SessionServer) -> str:
    return await server.store.meta("jwt_secret", lambda: "never used: the secret exists")


def claims_for(uid: str, session_id: str, **changes: Any) -> dict[str, Any]:
    now = time.time()
    return {"sub": uid, "sid": session_id, "iat": now, "exp": now + 60, "jti": "j"} | changes


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def refusal(kit: Kit, session_id: str, call_token: str) -> SignalingError:
    with pytest.raises(SignalingError) as refused:
        await kit.request(Join(type="join", session_id=session_id, call_token=call_token))
    return refused.value


async def test_a_valid_token_joins(make_kit: KitFactory) -> None:
    alice = await make_kit("alice")
    reply = await alice.request(
        Join(type="join", session_id="s", call_token=await alice.token("s"))
    )
    assert isinstance(reply, Joined) and reply.you.uid == "alice"


async def test_forged_signature(server: SessionServer, make_kit: KitFactory) -> None:
    alice = await make_kit("alice")
    forged = jwt.encode(claims_for("alice", "s"), "a-key-that-is-not-the-servers-secret")
    assert (await refusal(alice, "s", forged)).code == "token-invalid"

    # A genuine token whose payload was edited keeps a signature that no longer matches.
    header, _, signature = (await alice.token("s")).split(".")
    edited = f"{header}.{b64(claims_for('alice', 's', exp=time.time() + 10**6))}.{signature}"
    assert (await refusal(alice, "s", edited)).code == "token-invalid"


async def test_alg_none_and_other_algorithms(server: SessionServer, make_kit: KitFactory) -> None:
    alice = await make_kit("alice")
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims_for('alice', 's'))}."
    assert (await refusal(alice, "s", unsigned)).code == "token-invalid"

    # Even signed with the right secret, only HS256 is accepted.
    other_alg = jwt.encode(claims_for("alice", "s"), await secret_of(server), algorithm="HS512")
    assert (await refusal(alice, "s", other_alg)).code == "token-invalid"

    for garbage in ("x", "a.b.c", "....", "é" * 10):
        assert (await refusal(alice, "s", garbage)).code == "token-invalid"


async def test_missing_claims(server: SessionServer, make_kit: KitFactory) -> None:
    alice = await make_kit("alice")
    secret = await secret_of(server)
    for claim in ("sub", "sid", "iat", "exp", "jti"):
        claims = claims_for("alice", "s")
        del claims[claim]
        token = jwt.encode(claims, secret, algorithm="HS256")
        assert (await refusal(alice, "s", token)).code == "token-invalid", claim


async def test_expired(server: SessionServer, make_kit: KitFactory) -> None:
    alice = await make_kit("alice")
    long_ago = time.time() - 3600
    expired = jwt.encode(
        claims_for("alice", "s", iat=long_ago, exp=long_ago + 60), await secret_of(server)
    )
    assert (await refusal(alice, "s", expired)).code == "token-expired"


async def test_wrong_session_and_wrong_user(make_kit: KitFactory) -> None:
    alice, bob = await make_kit("alice"), await make_kit("bob")
    refused = await refusal(alice, "other", await alice.token("mine"))
    assert refused.code == "token-wrong-session"
    assert (await refusal(alice, "s", await bob.token("s"))).code == "token-wrong-user"


async def test_replayed_after_the_session_ended(make_kit: KitFactory) -> None:
    alice, bob = await make_kit("alice"), await make_kit("bob")
    alice_token, bob_token = await alice.token("s"), await bob.token("s")
    await alice.request(Join(type="join", session_id="s", call_token=alice_token))
    await bob.request(Join(type="join", session_id="s", call_token=bob_token))
    await bob.request(Leave(type="leave"))  # 1:1: the session is over

    assert (await refusal(alice, "s", alice_token)).code == "token-replayed"
    assert (await refusal(bob, "s", bob_token)).code == "token-replayed"
    # A token issued after the end opens the session id afresh.
    reply = await alice.request(
        Join(type="join", session_id="s", call_token=await alice.token("s"))
    )
    assert isinstance(reply, Joined) and reply.participants == []


async def test_replay_protection_survives_a_restart(
    make_server: ServerFactory, make_kit: KitFactory, tmp_path: Path
) -> None:
    database = tmp_path / "kept.db"
    first = await make_server(database)
    alice, bob = await make_kit("alice", on=first), await make_kit("bob", on=first)
    alice_token = await alice.token("s")
    await alice.request(Join(type="join", session_id="s", call_token=alice_token))
    await bob.join("s")
    await bob.request(Leave(type="leave"))
    await first.stop()

    second = await make_server(database)
    again = Kit(second, "alice", alice.auth_token)  # users and tokens are kept too
    await again.connect()
    try:
        assert (await refusal(again, "s", alice_token)).code == "token-replayed"
    finally:
        await again.close()


def test_an_auth_token_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command line takes it as an option otherwise (``--kit UID TOKEN`` did)."""
    drawn = iter(["-Ab3dEf", "_xY9-zz"])
    monkeypatch.setattr(tokens.secrets, "token_urlsafe", lambda size: next(drawn))
    assert tokens.new_auth_token() == "_xY9-zz"


def test_an_auth_token_is_32_random_bytes() -> None:
    drawn = {tokens.new_auth_token() for _ in range(200)}
    assert len(drawn) == 200
    assert all(len(token) == 43 and not token.startswith("-") for token in drawn)
