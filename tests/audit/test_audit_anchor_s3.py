"""Anchors in S3-compatible object storage, against a real S3 server (moto's, on a free local port).

The gateway signs its own requests (gateway/audit/anchor_s3.py); the signature is checked
against botocore's, and the buckets are made and inspected with boto3, independently of the
code under test.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_audit_anchors import _rewrite_from
from typer.testing import CliRunner

from gateway.audit.anchor_s3 import AnchorS3Settings, Credentials, sign
from gateway.audit.anchors import AnchorError, read_anchors
from gateway.audit.cli import app as audit_cli
from gateway.audit.signing import private_pem, public_hex
from gateway.audit.verify import verify

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

_ACCESS, _SECRET = "AKIDWARDGATETEST", "wardgate-test-secret"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=_ACCESS,
        aws_secret_access_key=_SECRET,
    )


@pytest.fixture
def s3_env(monkeypatch) -> None:
    monkeypatch.setenv("WARDGATE_ANCHOR_S3_ACCESS_KEY", _ACCESS)
    monkeypatch.setenv("WARDGATE_ANCHOR_S3_SECRET_KEY", _SECRET)


@pytest.fixture
def locked_bucket(s3_endpoint) -> str:
    name = f"anchors-{uuid.uuid4().hex[:12]}"
    _client(s3_endpoint).create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


@pytest.fixture
def key(tmp_path) -> tuple[Any, Ed25519PrivateKey]:
    k = Ed25519PrivateKey.generate()
    path = tmp_path / "anchor-key.pem"
    path.write_bytes(private_pem(k))
    return path, k


def _s3(endpoint: str, **kw: Any) -> AnchorS3Settings:
    return AnchorS3Settings(endpoint=endpoint, **kw)


def test_the_signature_is_aws_signature_v4_as_botocore_computes_it():
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotoCredentials

    now = dt.datetime(2026, 12, 7, 16, 30, 5, tzinfo=dt.UTC)
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "tok/en+=")
    url = "http://127.0.0.1:9000/my-bucket/audit%20x/anchor-1.json?list-type=2&prefix=a%2Fb%20c&z="
    ours = sign(
        "PUT",
        url,
        {"Content-Type": "application/json", "If-None-Match": "*"},
        "ab" * 32,
        creds,
        "eu-west-3",
        now,
    )
    request = AWSRequest(
        method="PUT", url=url, data=b"", headers={k: v for k, v in ours.items() if k != "authorization"}
    )
    auth = S3SigV4Auth(
        BotoCredentials(creds.access_key, creds.secret_key, creds.session_token), "s3", "eu-west-3"
    )
    request.context["timestamp"] = ours["x-amz-date"]
    canonical = auth.canonical_request(request)
    theirs = auth.signature(auth.string_to_sign(request, canonical), request)
    assert ours["authorization"].endswith(f"Signature={theirs}")
    assert ours["authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261207/eu-west-3/s3/aws4_request"
    )


async def test_anchors_are_locked_objects_and_verify_reads_them_back(
    make_service, key, s3_env, s3_endpoint, locked_bucket
):
    dest = f"s3://{locked_bucket}/prod/anchors"
    s3 = _s3(s3_endpoint, object_lock_days=30)
    service = await make_service(
        signing_key_file=key[0], anchor_to=dest, anchor_s3=s3, anchor_interval_s=3600
    )
    for i in range(5):
        await service.record("admin", {"n": i})
    await service.anchor()
    await service.record("admin", {"n": "later"})
    await service.anchor()

    client = _client(s3_endpoint)
    listed = client.list_objects_v2(Bucket=locked_bucket, Prefix="prod/anchors/")["Contents"]
    assert len(listed) == 2
    head = client.head_object(Bucket=locked_bucket, Key=listed[0]["Key"])
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] > dt.datetime.now(dt.UTC) + dt.timedelta(days=29)

    records = await asyncio.to_thread(read_anchors, dest, s3)
    assert [r["key"] for r in records] == [public_hex(key[1])] * 2
    report = await verify(service.store, anchors=records, public_key=key[1].public_key())
    assert report.ok, report.all_breaks()
    mine = next(s for s in report.shards if s.shard == service.shard)
    assert mine.anchored_to is not None and mine.anchored_to >= 7


async def test_a_chain_rewritten_with_recomputed_hashes_is_caught_by_the_s3_anchors(
    make_service, key, s3_env, s3_endpoint, locked_bucket
):
    dest = f"s3://{locked_bucket}/a"
    s3 = _s3(s3_endpoint)
    service = await make_service(
        signing_key_file=key[0], anchor_to=dest, anchor_s3=s3, anchor_interval_s=3600
    )
    for i in range(8):
        await service.record("admin", {"n": i, "who": "alice"})
    await service.anchor()
    await _rewrite_from(service, service.shard, 4, "alice", "mallory")

    alone = await verify(service.store)
    assert alone.ok  # consistent rows: the database alone cannot tell
    records = await asyncio.to_thread(read_anchors, dest, s3)
    report = await verify(service.store, anchors=records, public_key=key[1].public_key())
    assert not report.ok
    assert any("rewritten" in b.problem for b in report.all_breaks()), report.all_breaks()


async def test_an_unreachable_server_fails_the_anchor_not_the_calls(make_service, key, s3_env, caplog):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    s3 = _s3(dead)
    service = await make_service(
        signing_key_file=key[0], anchor_to="s3://bucket/x", anchor_s3=s3, anchor_interval_s=0.05
    )
    with pytest.raises(AnchorError, match=f"S3 anchors at {dead} \\(bucket bucket\\) unreachable"):
        await service.anchor()
    # the anchor setting's behaviour: the periodic anchor logs the failure and retries, and
    # calls are still recorded (anchors bound what is provable, they do not gate traffic)
    with caplog.at_level(logging.ERROR, logger="gateway.audit"):
        await service.record("admin", {"n": 1})
        for _ in range(100):
            if any(dead in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.02)
    assert any("audit anchor failed" in r.getMessage() and dead in r.getMessage() for r in caplog.records)
    assert (await service.store.head(service.shard)).seq >= 2


async def test_cli_anchor_to_s3_and_errors_name_the_endpoint(
    make_service, key, s3_env, s3_endpoint, locked_bucket, tmp_path, monkeypatch
):
    config = tmp_path / "wardgate.yaml"
    config.write_text(f"audit:\n  anchor_s3:\n    endpoint: {s3_endpoint}\n    object_lock_days: 1\n")
    service = await make_service()
    await service.record("admin", {"n": 1})
    store = service.store
    where = (
        ["--sqlite", str(store.path)]
        if store.name == "sqlite"
        else ["--dsn", store.dsn, "--schema", store.schema]
    )
    run = CliRunner().invoke
    dest = f"s3://{locked_bucket}/cli"
    common = ["--config", str(config), *where]
    anchored = await asyncio.to_thread(
        run, audit_cli, ["anchor", "--to", dest, "--key-file", str(key[0]), *common]
    )
    assert anchored.exit_code == 0, anchored.output
    args = ["verify", "--backend", store.name, *common, "--anchors", dest, "--public-key", public_hex(key[1])]
    ok = await asyncio.to_thread(run, audit_cli, args)
    assert ok.exit_code == 0 and "held to signed anchors" in ok.output, ok.output

    plain = f"plain-{uuid.uuid4().hex[:8]}"  # a bucket without object lock refuses a locked write
    _client(s3_endpoint).create_bucket(Bucket=plain)
    refused = await asyncio.to_thread(
        run, audit_cli, ["anchor", "--to", f"s3://{plain}/x", "--key-file", str(key[0]), *common]
    )
    assert refused.exit_code == 2 and s3_endpoint in refused.output, refused.output
    assert _client(s3_endpoint).list_objects_v2(Bucket=plain).get("KeyCount") == 0

    monkeypatch.delenv("WARDGATE_ANCHOR_S3_SECRET_KEY")
    missing = await asyncio.to_thread(run, audit_cli, args)
    assert missing.exit_code == 2 and "WARDGATE_ANCHOR_S3_SECRET_KEY" in missing.output, missing.output


async def test_missing_credentials_refuse_the_start(make_service, key, monkeypatch):
    monkeypatch.delenv("WARDGATE_ANCHOR_S3_ACCESS_KEY", raising=False)
    with pytest.raises(AnchorError, match="WARDGATE_ANCHOR_S3_ACCESS_KEY"):
        await make_service(signing_key_file=key[0], anchor_to="s3://bucket/anchors")


def test_the_credential_variables_pass_the_strict_environment_check():
    from gateway.settings import Settings
    from gateway.strict import default_env_names, unknown_env

    env = {"WARDGATE_ANCHOR_S3_ACCESS_KEY": "a", "WARDGATE_ANCHOR_S3_SECRET_KEY": "b"}
    assert unknown_env(env, Settings, default_env_names(Settings)) == []  # as the start's check
