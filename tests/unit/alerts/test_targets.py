"""Which webhook addresses are refused (issue 13, item 7): everything but public unicast addresses."""

from __future__ import annotations

import pytest

from streams.alerting.targets import check_url, literal_host, refused


@pytest.mark.parametrize("address", ["127.0.0.1", "127.9.9.9", "10.1.2.3", "172.16.0.1", "192.168.1.1",
                                     "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255",
                                     "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::", "not-an-ip"])
def test_non_public_addresses_are_refused(address: str) -> None:
    assert refused(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert not refused(address)


def test_urls_checked_before_anything_is_stored() -> None:
    assert check_url("ftp://x/y", allow_private=True) and check_url("/relative", allow_private=True)
    assert check_url("http://user:pw@example.org/x", allow_private=True)
    assert "non-public" in (check_url("http://127.0.0.1:8123/?query=DROP", allow_private=False) or "")
    assert "non-public" in (check_url("http://localhost:8123/", allow_private=False) or "")
    assert "non-public" in (check_url("http://[::1]:8123/", allow_private=False) or "")
    assert check_url("http://127.0.0.1:8123/", allow_private=True) is None
    assert literal_host("http://[::1]:80/x") == "::1" and literal_host("https://tram.example/x") is None
