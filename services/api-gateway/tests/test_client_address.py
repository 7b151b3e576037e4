"""The client address the gateway passes to services (x-client-ip): the peer, or X-Forwarded-For from a
trusted proxy only."""

from __future__ import annotations

import pytest
from shequtong_api_gateway.deps import client_address, parse_networks
from shequtong_api_gateway.settings import GatewaySettings

TRUSTED = parse_networks("10.0.0.0/8, 192.168.1.5")


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    assert client_address("203.0.113.9", "198.51.100.1", TRUSTED) == "203.0.113.9"
    assert client_address("203.0.113.9", None, TRUSTED) == "203.0.113.9"
    assert client_address("203.0.113.9", "198.51.100.1", ()) == "203.0.113.9"


def test_a_trusted_proxy_names_the_client() -> None:
    assert client_address("10.1.2.3", "198.51.100.1", TRUSTED) == "198.51.100.1"
    assert client_address("192.168.1.5", "2001:db8::1", TRUSTED) == "2001:db8::1"


def test_the_rightmost_untrusted_hop_wins_over_what_the_client_wrote() -> None:
    # The client forged "1.1.1.1"; the proxy chain appended the real address and an inner proxy.
    assert client_address("10.0.0.1", "1.1.1.1, 198.51.100.7, 10.0.0.2", TRUSTED) == "198.51.100.7"


def test_a_chain_of_proxies_only_gives_its_leftmost_and_garbage_gives_the_peer() -> None:
    assert client_address("10.0.0.1", "10.0.0.3, 10.0.0.2", TRUSTED) == "10.0.0.3"
    assert client_address("10.0.0.1", "198.51.100.7, not-an-ip", TRUSTED) == "10.0.0.1"
    assert client_address("10.0.0.1", " , ", TRUSTED) == "10.0.0.1"


def test_trusted_proxies_setting_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IDENTITY", "BOARDS", "ISSUES", "GRID_GATEWAY", "VOLUNTEERS", "INSIGHTS"):
        monkeypatch.setenv(f"{name}_ADDR", "127.0.0.1:1")
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8,not-a-network")
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        GatewaySettings()
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8 ::1")
    assert len(parse_networks(GatewaySettings().trusted_proxies)) == 2
