"""``docs/asyncapi.yaml`` as the official AsyncAPI parser reads it (npm
``@asyncapi/parser``, pinned and installed by ``devkit.asyncapi`` on first use): valid
AsyncAPI 3, no error or warning, and the channels and messages the tests validate
events against are the ones the parser sees."""

from __future__ import annotations

from collections import Counter

import yaml

from devkit import asyncapi
from devkit.testing import AsyncApiMessages, repo_asyncapi

TOPICS = {f"{service}.{kind}.v1" for service in ("grants", "sandbox", "ipshare")
          for kind in ("events", "deadletter")}


def test_the_official_parser_reads_the_document_without_an_error_or_a_warning(
        capsys) -> None:
    said = asyncapi.parse(repo_asyncapi())
    severities = Counter(d["severity"] for d in said["diagnostics"])
    serious = [d for d in said["diagnostics"] if d["severity"] in ("error", "warning")]
    assert said["valid"], serious
    assert not serious, serious
    assert said["version"].startswith("3.")
    assert set(said["channels"]) == TOPICS
    document = yaml.safe_load(repo_asyncapi().read_text())
    assert set(said["messages"]) == set(document["components"]["messages"])
    # Every message type the event tests validate against is one the parser read.
    assert len(AsyncApiMessages(repo_asyncapi()).validators) <= len(said["messages"])
    with capsys.disabled():
        print(f"\nasyncapi: @asyncapi/parser: valid AsyncAPI {said['version']}, "
              f"{len(said['channels'])} channels, {len(said['messages'])} messages, "
              f"{len(said['operations'])} operations; diagnostics {dict(severities)}")


def test_a_broken_document_is_refused_by_the_parser(tmp_path) -> None:
    """The check can fail: a channel naming a message that does not exist."""
    document = yaml.safe_load(repo_asyncapi().read_text())
    channel = next(iter(document["channels"].values()))
    channel["messages"]["ghost"] = {"$ref": "#/components/messages/NoSuchMessage"}
    broken = tmp_path / "asyncapi.yaml"
    broken.write_text(yaml.safe_dump(document, allow_unicode=True))
    said = asyncapi.parse(broken)
    assert not said["valid"]
    assert any(d["severity"] == "error" for d in said["diagnostics"])
