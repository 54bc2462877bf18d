"""Docs as tests: docs/protocol.md and docs/settings.md stay complete, and their examples valid.

A client developer should be able to write a working Kanava client from docs/protocol.md alone,
and an administrator to configure a server from docs/settings.md alone. These tests read the two
documents as text and compare them with the code: every message type, field, error code, close
code, state transition, setting and command-line option must be documented, and every example
message must be one the protocol accepts. Adding any of these to the code without documenting it
makes a test fail here. Nothing here starts a server.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import protocol
from protocol import INBOUND, MESSAGE_TYPES, OUTBOUND, CloseCode, ErrorCode
from protocol.messages import (
    ChatMessage,
    ConversationView,
    Identified,
    ProfessionalRef,
    QueueEntry,
)
from protocol.schema import compile_schema
from protocol.states import TRANSITIONS
from server.cli import main as kanava_main
from server.settings import Settings

DOCS = Path(__file__).resolve().parent.parent / "docs"
PROTOCOL_MD = DOCS / "protocol.md"
SETTINGS_MD = DOCS / "settings.md"

NESTED_OBJECTS: tuple[type[Any], ...] = (
    ConversationView,
    ChatMessage,
    QueueEntry,
    ProfessionalRef,
    Identified,
)

_FENCE = re.compile(r"^```(\w*)\s*$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_BACKTICKED = re.compile(r"`([^`]+)`")
_SENT_BY = re.compile(r"^\*\*Sent by:\*\*\s*(.+)$")


# --- reading Markdown ------------------------------------------------------------------------


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _fenced_blocks(lines: list[str]) -> Iterator[tuple[str, int, list[str]]]:
    """Each fenced code block as (info string, line number of its first line, its lines)."""
    info: str | None = None
    start = 0
    body: list[str] = []
    for number, line in enumerate(lines, 1):
        match = _FENCE.match(line)
        if info is None:
            if match:
                info, start, body = match.group(1), number + 1, []
        elif line.strip() == "```":
            yield info, start, body
            info = None
        else:
            body.append(line)
    assert info is None, "a fenced code block is not closed"


def _sections(lines: list[str]) -> dict[str, list[list[str]]]:
    """For each name in backticks in a heading, the text under that heading (to the next one)."""
    sections: dict[str, list[list[str]]] = {}
    current: list[str] | None = None
    in_fence = False
    for line in lines:
        if _FENCE.match(line) or (in_fence and line.strip() == "```"):
            in_fence = not in_fence
        heading = None if in_fence else _HEADING.match(line)
        if heading:
            current = []
            for name in _BACKTICKED.findall(heading.group(2)):
                sections.setdefault(name, []).append(current)
        elif current is not None:
            current.append(line)
    return sections


def _section(sections: dict[str, list[list[str]]], name: str) -> list[str]:
    found = sections.get(name, [])
    assert len(found) == 1, f"expected one heading with `{name}` in protocol.md, found {len(found)}"
    return found[0]


def _table_rows(lines: list[str], first_cell: str) -> list[list[str]]:
    """Table rows whose first cell is ``first_cell``, each as a list of stripped cells."""
    rows = []
    for line in lines:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if cells[0] == first_cell:
                rows.append(cells)
    return rows


def _json_examples(lines: list[str]) -> list[tuple[int, Any]]:
    examples = []
    for info, number, body in _fenced_blocks(lines):
        if info == "json":
            text = "\n".join(body)
            try:
                examples.append((number, json.loads(text)))
            except ValueError as exc:
                pytest.fail(f"protocol.md line {number}: a json block is not valid JSON: {exc}")
    return examples


def _unknown_fields(example: Any, wire: Any, path: str = "") -> list[str]:
    """Keys of ``example`` that its decoded message does not have.

    The protocol ignores unknown fields, so a misspelt optional field would decode without error;
    comparing with the re-encoded message catches it.
    """
    unknown: list[str] = []
    if isinstance(example, dict) and isinstance(wire, dict):
        for key, value in example.items():
            if key in wire:
                unknown += _unknown_fields(value, wire[key], f"{path}{key}.")
            else:
                unknown.append(path + key)
    elif isinstance(example, list) and isinstance(wire, list):
        for i, (item, wire_item) in enumerate(zip(example, wire, strict=False)):
            unknown += _unknown_fields(item, wire_item, f"{path}{i}.")
    return unknown


def _check_message(data: Any, registry: dict[str, type[protocol.Message]]) -> protocol.Message:
    """Decode one example as the server or a client would, through both codecs."""
    message = protocol.JSON.decode(json.dumps(data), registry=registry)
    again = protocol.MSGPACK.decode(protocol.MSGPACK.encode(message), registry=registry)
    assert again == message, "the message changes when re-encoded with MessagePack"
    unknown = _unknown_fields(data, protocol.to_wire(message))
    assert not unknown, f"fields the message does not have: {unknown}"
    return message


# --- docs/protocol.md ------------------------------------------------------------------------


def test_every_message_type_has_a_heading_in_protocol_md() -> None:
    """Each type in MESSAGE_TYPES has a heading with its name in backticks."""
    sections = _sections(_lines(PROTOCOL_MD))
    missing = [name for name in MESSAGE_TYPES if name not in sections]
    assert not missing, f"message types without a heading in protocol.md: {missing}"


def test_every_message_section_says_who_may_send_it() -> None:
    """Each message section has a 'Sent by' line naming exactly the roles that may send it."""
    sections = _sections(_lines(PROTOCOL_MD))
    for name, cls in MESSAGE_TYPES.items():
        lines = _section(sections, name)
        sent_by = [m.group(1) for line in lines if (m := _SENT_BY.match(line))]
        assert len(sent_by) == 1, f"`{name}`: expected one '**Sent by:**' line"
        documented = {part.strip() for part in sent_by[0].split(",")}
        expected = {role.value for role in cls.senders} if name in INBOUND else {"server"}
        assert documented == expected, f"`{name}` is sent by {sorted(expected)}"


def test_every_message_section_has_an_example_of_its_own_type() -> None:
    """Each message section holds a json block that is a message of the section's type."""
    sections = _sections(_lines(PROTOCOL_MD))
    for name in MESSAGE_TYPES:
        examples = _json_examples(_section(sections, name))
        types = [data.get("type") for _, data in examples if isinstance(data, dict)]
        assert name in types, f"`{name}` has no ```json example of its own type"


def test_every_field_of_every_message_and_nested_object_is_in_its_section() -> None:
    """Each field of each message and nested object has a table row in its section."""
    sections = _sections(_lines(PROTOCOL_MD))
    documented_classes: dict[str, type[Any]] = {
        **MESSAGE_TYPES,
        **{cls.__name__: cls for cls in NESTED_OBJECTS},
    }
    missing = []
    for name, cls in documented_classes.items():
        lines = _section(sections, name)
        for field in dataclasses.fields(cls):
            if not _table_rows(lines, f"`{field.name}`"):
                missing.append(f"{name}.{field.name}")
    assert not missing, f"fields without a table row in their section of protocol.md: {missing}"


def test_every_nested_object_has_a_valid_example() -> None:
    """Each nested object section holds a json example that decodes as that object."""
    sections = _sections(_lines(PROTOCOL_MD))
    for cls in NESTED_OBJECTS:
        examples = _json_examples(_section(sections, cls.__name__))
        assert examples, f"`{cls.__name__}` has no ```json example"
        schema = compile_schema(cls)
        for number, data in examples:
            value = schema.from_wire(data)
            unknown = _unknown_fields(data, schema.to_wire(value))
            assert not unknown, f"line {number}: {cls.__name__} has no fields {unknown}"


def test_every_json_example_with_a_type_is_a_valid_message() -> None:
    """Each json block with a "type" decodes with JSON and round-trips through MessagePack."""
    examples = _json_examples(_lines(PROTOCOL_MD))
    checked, failures = 0, []
    for number, data in examples:
        if not isinstance(data, dict) or "type" not in data:
            continue
        checked += 1
        try:
            _check_message(data, MESSAGE_TYPES)
        except (protocol.ProtocolError, AssertionError) as exc:
            failures.append(f"line {number}: {exc}")
    assert checked >= len(MESSAGE_TYPES), "fewer example messages than message types"
    assert not failures, "invalid examples in protocol.md:\n" + "\n".join(failures)


def test_every_frame_of_the_walkthrough_is_valid_in_its_direction() -> None:
    """In the walkthrough, '>' lines decode as INBOUND messages and '<' lines as OUTBOUND."""
    frames, failures = 0, []
    for info, start, body in _fenced_blocks(_lines(PROTOCOL_MD)):
        if info != "text":
            continue
        for number, line in enumerate(body, start):
            if line[:2] not in ("> ", "< "):
                continue
            frames += 1
            registry = INBOUND if line[0] == ">" else OUTBOUND
            try:
                _check_message(json.loads(line[2:]), registry)
            except (ValueError, protocol.ProtocolError, AssertionError) as exc:
                failures.append(f"line {number}: {exc}")
    assert frames > 0, "protocol.md has no walkthrough ('>' and '<' lines in ```text blocks)"
    assert not failures, "invalid walkthrough frames in protocol.md:\n" + "\n".join(failures)


def test_one_intake_shows_one_token_in_every_example_step() -> None:
    """An intake's token is the same in every step, ends included: the examples must not
    suggest it changes, or that it becomes a placeholder."""
    examples = _json_examples(_section(_sections(_lines(PROTOCOL_MD)), "intake.step"))
    tokens = {data["token"] for _, data in examples if data.get("type") == "intake.step"}
    assert len(tokens) == 1, f"intake.step examples show several tokens: {sorted(tokens)}"
    token = tokens.pop()
    assert len(token) >= 16, f"an intake.step example shows a placeholder token {token!r}"


def test_the_roles_of_a_professional_are_all_documented() -> None:
    """Every role an account can have (the bot's included) is named where roles are listed."""
    from server.core.model import ROLES

    sections = _sections(_lines(PROTOCOL_MD))
    (row,) = _table_rows(_section(sections, "ProfessionalRef"), "`role`")
    missing = [role for role in ROLES if f"`{role}`" not in row[-1]]
    assert not missing, f"ProfessionalRef.role does not name {missing}"


def test_the_default_origin_allowlist_is_the_one_the_server_uses() -> None:
    """The documented default follows --host and --port, as Settings.origins() does."""
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    start = text.index("The default allowlist is")
    paragraph = text[start : text.index("\n\n", start)]
    for origin in Settings().origins():
        assert f"`{origin}`" in paragraph, f"the default {origin} is not in: {paragraph}"
    elsewhere = Settings(host="10.1.2.3", port=9000).origins()
    assert elsewhere == ("http://10.1.2.3:9000",)
    assert "`--host`" in paragraph and "`--port`" in paragraph
    assert "does not follow" not in paragraph


def test_a_bot_chats_first_answer_is_explained_in_bot_start() -> None:
    """bot.start answers conversation.opened in state queued before the bot takes it."""
    lines = _section(_sections(_lines(PROTOCOL_MD)), "bot.start")
    examples = [data for _, data in _json_examples(lines)]
    opened = [e for e in examples if e.get("type") == "conversation.opened"]
    assert opened and opened[0]["conversation"]["state"] == "queued"
    _check_message(opened[0], OUTBOUND)
    text = "\n".join(lines)
    assert '`state: "assigned"`' in text and "queue_position" in text


def test_every_error_code_is_in_the_error_table() -> None:
    """Each ErrorCode value has a row in a table of protocol.md."""
    lines = _lines(PROTOCOL_MD)
    missing = [code.value for code in ErrorCode if not _table_rows(lines, f"`{code.value}`")]
    assert not missing, f"error codes without a row in protocol.md: {missing}"


def test_every_close_code_is_in_the_close_code_table() -> None:
    """Each CloseCode value has a row in a table of protocol.md."""
    lines = _lines(PROTOCOL_MD)
    missing = [code.value for code in CloseCode if not _table_rows(lines, f"`{code.value}`")]
    assert not missing, f"close codes without a row in protocol.md: {missing}"


def test_every_state_transition_is_in_the_state_table() -> None:
    """Each entry of protocol.states.TRANSITIONS has a row: from state, event, to state."""
    lines = _lines(PROTOCOL_MD)
    missing = []
    for state, events in TRANSITIONS.items():
        rows = _table_rows(lines, f"`{state.value}`")
        for event, target in events.items():
            if not any(
                len(row) >= 3 and row[1] == event.value and row[2].startswith(f"`{target.value}`")
                for row in rows
            ):
                missing.append(f"{state.value} --{event.value}--> {target.value}")
    assert not missing, f"transitions without a row in protocol.md: {missing}"


# --- docs/settings.md ------------------------------------------------------------------------


def _documented_default(value: Any) -> str:
    """A default as settings.md writes it (the way it would be given as KANAVA_<NAME>)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    if value is None:
        return "none"
    return str(value)


def test_every_setting_is_in_settings_md_with_its_variable_and_default() -> None:
    """Each Settings field has a row with its name, KANAVA_ variable and default."""
    lines = _lines(SETTINGS_MD)
    defaults = Settings()
    problems = []
    for name in Settings.names():
        rows = _table_rows(lines, f"`{name}`")
        variable = f"`KANAVA_{name.upper()}`"
        rows = [row for row in rows if len(row) >= 4 and row[1] == variable]
        if not rows:
            problems.append(f"{name}: no row with {variable}")
            continue
        default = _documented_default(getattr(defaults, name))
        if default not in rows[0][2]:
            problems.append(f"{name}: the default column should show {default!r}")
    assert not problems, "settings.md is incomplete:\n" + "\n".join(problems)


def test_every_kanava_serve_option_is_in_settings_md(capsys: pytest.CaptureFixture[str]) -> None:
    """Each option that `kanava serve --help` lists has a row in settings.md."""
    with pytest.raises(SystemExit):
        kanava_main(["serve", "--help"])
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", capsys.readouterr().out))
    assert "--port" in options, "could not read the options of kanava serve"
    lines = _lines(SETTINGS_MD)
    documented = {
        option
        for line in lines
        if line.startswith("| `-")
        for option in re.findall(r"(--[a-z][a-z-]*)", line.split("|")[1])
    }
    missing = sorted(options - documented)
    assert not missing, f"kanava serve options without a row in settings.md: {missing}"
