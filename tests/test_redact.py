"""Redaction: each planted secret is removed for a stable reason, nothing else changes, and it is idempotent."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evidence.azure.redact import (
    REDACTED,
    is_secret_key,
    redact_headers,
    redact_json,
    redact_request_headers,
    redact_text,
    redact_url,
)

JWT = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJvaWQiOiJhYmMiLCJ1cG4iOiJhbGljZSJ9.c2lnbmF0dXJl"
SAS_URL = (
    "https://stacct.blob.core.windows.net/models/m.pkl?skoid=o&sktid=t&skt=2026-01-01T00%3A00%3A00Z"
    "&ske=2026-01-02&sks=b&skv=2023-11-03&sv=2023-11-03&st=2026-01-01&se=2026-01-02&sr=c&sp=r&sig=AbC%2Bd%3D"
)


# ------------------------------------------------------------------------------ URLs
def test_sas_url_loses_signature_and_fields() -> None:
    url, reasons = redact_url(SAS_URL)
    assert "AbC" not in url and "skoid=REDACTED" in url and url.endswith("&sig=REDACTED")
    assert url.startswith("https://stacct.blob.core.windows.net/models/m.pkl?skoid=REDACTED&")
    assert reasons.count("sas-signature") == 1 and set(reasons) == {"sas-signature", "sas-field"}


def test_url_without_secrets_is_byte_identical() -> None:
    for url in (
        "https://management.azure.com/subscriptions/x/providers/Microsoft.Insights/eventtypes/management/values"
        "?api-version=2015-04-01&$filter=eventTimestamp%20ge%20%272026-01-01T00%3A00%3A00Z%27",
        "https://management.azure.com/x?api-version=2022-04-01&$skiptoken=opaque%2Bpaging+token==",
        "https://h/x?st=1&sp=rw&se=2",  # SAS-like names without a signature are left alone
        "https://h/x?flag&a=&b=c#frag",
        "https://h/no-query",
    ):
        assert redact_url(url) == (url, [])


@pytest.mark.parametrize("name", ["code", "client_secret", "token", "access_token", "Access_Token", "api-key"])
def test_credential_query_parameters_are_always_redacted(name: str) -> None:
    url, reasons = redact_url(f"https://login.example/cb?state=abc&{name}=s3cr3t&x=1")
    assert url == f"https://login.example/cb?state=abc&{name}=REDACTED&x=1"
    assert reasons == ["secret-query-parameter"]


def test_fragment_tokens_are_redacted() -> None:
    assert redact_url("https://app/cb?x=1#access_token=abc&state=s")[0] == "https://app/cb?x=1#access_token=REDACTED&state=s"


# ------------------------------------------------------------------------------ JSON bodies
def test_planted_secrets_in_an_arm_body() -> None:
    body: dict[str, Any] = {
        "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w",
        "properties": {
            "keyVault": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv",
            "primaryKeyName": "key1",
            "primaryKey": "pk-REAL",
            "secondaryKey": "sk-REAL",
            "storageConnectionString": "whatever-REAL",
            "adminPassword": "pw-REAL",
            "clientSecret": "cs-REAL",
            "hasPassword": True,
            "modelUri": SAS_URL,
            "tags": [{"key": "owner", "value": "alice"}],
            "keys": [{"keyName": "key1", "value": "kv-REAL", "permissions": "FULL"}],
            "nextLink": "https://management.azure.com/x?$skiptoken=zzz",
            "continuationToken": "ct-keep",
            "partitionKey": "pk-keep",
            "a/b~c": {"password": "slash-REAL"},
        },
    }
    redacted, found = redact_json(body)
    text = json.dumps(redacted)
    assert "REAL" not in text and "AbC" not in text
    props = redacted["properties"]
    assert props["keyVault"] == body["properties"]["keyVault"]
    assert props["primaryKeyName"] == "key1" and props["hasPassword"] is True
    assert props["tags"] == [{"key": "owner", "value": "alice"}]
    assert props["keys"][0] == {"keyName": "key1", "value": REDACTED, "permissions": "FULL"}
    assert props["nextLink"].endswith("$skiptoken=zzz")
    assert props["continuationToken"] == "ct-keep" and props["partitionKey"] == "pk-keep"
    assert ("/properties/a~1b~0c/password", "secret-key-name") in found
    assert ("/properties/modelUri", "sas-signature") in found
    assert ("/properties/keys/0/value", "secret-key-name") in found
    assert body["properties"]["primaryKey"] == "pk-REAL"  # the input is not modified


def test_strings_anywhere_are_scanned() -> None:
    value = [
        f"token is {JWT} here",
        f"Authorization: Bearer {JWT}",
        "Authorization: bearer opaque-token-1234567890",
        "Bearer authentication is required",  # prose stays readable
        "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k3y+REAL==;EndpointSuffix=core.windows.net",
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey=sak-REAL",
        "Server=tcp:db;Database=d;User ID=u;Password=pw-REAL;Encrypt=true",
        "BlobEndpoint=https://a/;SharedAccessSignature=sv=2020-08-04&ss=b&sig=sas-REAL",
        "sv=2020-08-04&ss=b&srt=sco&sp=rl&se=2026-01-01&sig=bare-REAL",
        "db:\n  password: yaml-REAL\n",
    ]
    redacted, found = redact_json(value)
    assert "REAL" not in json.dumps(redacted)
    assert JWT not in json.dumps(redacted)
    assert redacted[3] == "Bearer authentication is required"
    assert redacted[1] == "Authorization: Bearer REDACTED"
    assert redacted[4].startswith("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=REDACTED;")
    assert redacted[7] == "BlobEndpoint=https://a/;SharedAccessSignature=REDACTED"
    assert sorted(set(found)) == [
        ("/0", "jwt"), ("/1", "jwt"), ("/2", "bearer-token"), ("/4", "connection-string"),
        ("/5", "connection-string"), ("/6", "connection-string"), ("/7", "connection-string"),
        ("/7", "sas-field"), ("/7", "sas-signature"), ("/8", "sas-field"), ("/8", "sas-signature"), ("/9", "password"),
    ]  # fmt: skip


def test_json_nested_in_a_string_is_scanned_as_text_and_keeps_its_formatting() -> None:
    request_body = '{"properties": {"principalId": "p-1", "password": "pw-REAL", "roleDefinitionId": "rd"}}'
    event = {"properties": {"requestbody": request_body, "responseBody": json.dumps({"primaryKey": "pk-REAL"})}}
    redacted, found = redact_json(event)
    assert redacted["properties"]["requestbody"] == request_body.replace("pw-REAL", REDACTED)
    assert json.loads(redacted["properties"]["responseBody"]) == {"primaryKey": REDACTED}
    assert found == [("/properties/requestbody", "secret-key-name"), ("/properties/responseBody", "secret-key-name")]
    # Escaped once more (JSON in a string in a string): still found.
    doubly = json.dumps(json.dumps({"clientSecret": "cs-REAL"}))
    assert "REAL" not in redact_text(doubly)[0]


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("primaryKey", True), ("accountKey", True), ("instrumentationKey", True), ("access_key", True),
        ("password", True), ("adminPassword", True), ("clientSecret", True), ("secret", True),
        ("sasToken", True), ("accessToken", True), ("refresh_token", True), ("token", True),
        ("connectionString", True), ("primaryConnectionString", True), ("apiKey", True),
        ("key", False), ("keyVault", False), ("keyName", False), ("primaryKeyName", False),
        ("keyVaultArmId", False), ("tokenType", False), ("skipToken", False), ("$skipToken", False),
        ("continuationToken", False), ("nextPageToken", False), ("partitionKey", False),
        ("publicKey", False), ("maxTokens", False), ("passwordProfile", False), ("", False),
    ],
)  # fmt: skip
def test_secret_key_names(name: str, secret: bool) -> None:
    assert is_secret_key(name) is secret


# ------------------------------------------------------------------------------ headers
def test_headers_keep_an_allow_list_and_redact_values() -> None:
    headers = {
        "Content-Type": "application/json",
        "Set-Cookie": "session=s",
        "Authorization": "Bearer x",
        "x-ms-request-id": "r-1",
        "Retry-After": "7",
        "Location": "https://st.blob.core.windows.net/c/op?sv=1&sig=loc-REAL",
        "Server": "Microsoft-IIS/10.0",
    }
    kept = redact_headers(headers)
    assert kept == {
        "Content-Type": "application/json",
        "x-ms-request-id": "r-1",
        "Retry-After": "7",
        "Location": "https://st.blob.core.windows.net/c/op?sv=REDACTED&sig=REDACTED",
    }
    assert redact_request_headers([("Accept", "application/json"), ("Authorization", "Bearer x")]) == {
        "Accept": "application/json"
    }


# ------------------------------------------------------------------------------ idempotence
_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from([SAS_URL, JWT, f"Bearer {JWT}", "AccountKey=abc;Password=x", "password: y", REDACTED,
                     '{"password": "p"}', "?sig=a&se=b", "https://h/x?$skiptoken=k"]),
)
_keys = st.one_of(st.text(max_size=12), st.sampled_from(["primaryKey", "keyName", "value", "password", "key"]))
_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), _text),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_redact_json_is_idempotent(value: Any) -> None:
    once, _ = redact_json(value)
    twice, found = redact_json(once)
    assert twice == once
    assert found == []


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60), _text))
def test_redact_text_and_url_are_idempotent(text: str) -> None:
    once, _ = redact_text(text)
    assert redact_text(once) == (once, [])
    url_once, _ = redact_url(text)
    assert redact_url(url_once) == (url_once, [])


# The fast path must never skip a string the patterns would change: markers are drawn often.
_MARKED_TEXT = st.text(
    alphabet=st.sampled_from(list('ab =:"&?#;eyJ.BearER pwdPassWORD sig AccountKey Secret 0123456789-_/\\')),
    max_size=80,
)


@settings(max_examples=600, deadline=None)
@given(st.one_of(_MARKED_TEXT, st.text(max_size=60)))
def test_fast_path_of_redact_text_never_skips_a_secret(text: str) -> None:
    from evidence.azure.redact import _cannot_hold_secret, _redact_text_patterns

    if _cannot_hold_secret(text):
        assert _redact_text_patterns(text) == (text, [])


_JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    _MARKED_TEXT,
    st.sampled_from(["", REDACTED, JWT, SAS_URL, "AccountKey=abc", "password: y", "plain"]),
)
_JSON_KEYS = st.one_of(
    st.sampled_from(["password", "keyName", "value", "primaryKey", "partitionKey", "id", "nextLink", "token"]),
    st.text(max_size=8),
)
_JSON_VALUES = st.recursive(
    _JSON_LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_JSON_KEYS, inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=600, deadline=None)
@given(_JSON_VALUES)
def test_needs_redaction_agrees_with_redact_json(value: object) -> None:
    from evidence.azure.redact import needs_redaction

    assert needs_redaction(value) == bool(redact_json(value)[1])
