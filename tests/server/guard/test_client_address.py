"""The client's address through trusted proxies, and what limits count by."""

from __future__ import annotations

import logging

import pytest

from server.guard.client_address import ProxyTrust, address_key


def test_without_trusted_proxies_a_forwarding_header_is_ignored() -> None:
    trust = ProxyTrust()
    assert trust.client("198.51.100.7", ["203.0.113.9"]) == "198.51.100.7"


def test_a_stranger_cannot_choose_their_address_by_sending_the_header() -> None:
    trust = ProxyTrust(["127.0.0.1"])
    # Not from the proxy: the header is the stranger's own words.
    assert trust.client("198.51.100.7", ["203.0.113.9"]) == "198.51.100.7"


def test_the_proxy_appends_the_client_and_earlier_entries_are_not_believed() -> None:
    trust = ProxyTrust(["127.0.0.1"])
    # The client sent "X-Forwarded-For: 1.2.3.4"; nginx appended the real peer.
    assert trust.client("127.0.0.1", ["1.2.3.4, 203.0.113.9"]) == "203.0.113.9"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right() -> None:
    trust = ProxyTrust(["127.0.0.1", "10.0.0.0/8"])
    assert trust.client("127.0.0.1", ["203.0.113.9, 10.1.2.3"]) == "203.0.113.9"
    # Several header lines count as one list, in order.
    assert trust.client("127.0.0.1", ["203.0.113.9", "10.1.2.3"]) == "203.0.113.9"


def test_garbage_in_the_header_leaves_the_last_trusted_hop() -> None:
    trust = ProxyTrust(["127.0.0.1"])
    assert trust.client("127.0.0.1", ["unknown"]) == "127.0.0.1"
    assert trust.client("127.0.0.1", []) == "127.0.0.1"


def test_rfc7239_forwarded_with_ports_and_ipv6() -> None:
    trust = ProxyTrust(["::1"], header="forwarded")
    value = 'for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711"'
    assert trust.client("::1", [value]) == "2001:db8:cafe::17"
    # The proxy writes Forwarded; with that setting the values handed in are Forwarded's
    # (client_address reads only that header), and one without for= names nobody.
    assert ProxyTrust(["::1"], header="forwarded").client("::1", ["proto=https"]) == "::1"


def test_an_unknown_header_name_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        ProxyTrust(["127.0.0.1"], header="x-real-ip")
    with pytest.raises(ValueError):
        ProxyTrust(["not an address"])


def test_ipv6_addresses_count_per_64_and_ipv4_per_address() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("192.0.2.1") != address_key("192.0.2.2")
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"


def test_a_dual_stack_listener_sees_the_proxy_as_an_ipv4_mapped_address() -> None:
    trust = ProxyTrust(["127.0.0.1"])
    assert trust.client("::ffff:127.0.0.1", ["203.0.113.9"]) == "203.0.113.9"


def test_a_forwarding_header_without_trusted_proxies_is_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A proxy nobody named makes everyone one client: the log says so, once."""
    trust = ProxyTrust()
    with caplog.at_level(logging.WARNING, logger="kanava.guard"):
        for _ in range(3):
            assert trust.client("127.0.0.1", ["203.0.113.9"]) == "127.0.0.1"
    warnings = [r for r in caplog.records if "trusted_proxies is empty" in r.getMessage()]
    assert len(warnings) == 1
