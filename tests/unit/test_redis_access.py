"""Redis credentials and TLS settings: passed through, checked at start, named on error."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from streamserve.embedded import free_port
from streamserve.errors import ConfigError
from streamserve.redis.client import (
    RedisAuthError,
    RedisClusterUnreachable,
    build_client,
    check_login,
    is_cluster,
    plain_url,
    tls_kwargs,
)
from streamserve.settings import RedisSettings, Secret, settings_from_dict
from tests.tls_certs import make_pki, openssl_available

needs_openssl = pytest.mark.skipif(not openssl_available(), reason="no openssl CLI")


@needs_openssl
def test_tls_files_and_verify_mode_pass_through(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    r = RedisSettings(
        url="rediss://h:6380/0",
        ssl_ca_certs=str(pki.ca_cert),
        ssl_certfile=str(pki.client_cert),
        ssl_keyfile=str(pki.client_key),
        ssl_cert_reqs="optional",
        ssl_check_hostname=False,
    )
    assert tls_kwargs(r) == {
        "ssl_ca_certs": str(pki.ca_cert),
        "ssl_certfile": str(pki.client_cert),
        "ssl_keyfile": str(pki.client_key),
        "ssl_cert_reqs": "optional",
        "ssl_check_hostname": False,
    }


def test_tls_files_without_rediss_are_refused() -> None:
    with pytest.raises(ConfigError) as err:
        tls_kwargs(RedisSettings(url="redis://h:6379/0", ssl_ca_certs="/etc/hosts"))
    assert err.value.key == "redis.ssl_ca_certs"
    assert tls_kwargs(RedisSettings(url="redis://h:6379/0")) == {}


def test_a_missing_tls_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        tls_kwargs(RedisSettings(url="rediss://h/0", ssl_certfile=str(tmp_path / "nope.crt")))
    assert err.value.key == "redis.ssl_certfile"


@needs_openssl
def test_unloadable_tls_files_are_named(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    with pytest.raises(ConfigError) as err:
        tls_kwargs(RedisSettings(url="rediss://h/0", ssl_ca_certs=str(pki.client_key)))
    assert err.value.key == "redis.ssl_ca_certs"
    with pytest.raises(ConfigError) as err:
        tls_kwargs(
            RedisSettings(
                url="rediss://h/0",
                ssl_certfile=str(pki.client_cert),
                ssl_keyfile=str(pki.server_key),  # not the certificate's key
            )
        )
    assert err.value.key == "redis.ssl_keyfile"
    with pytest.raises(ConfigError) as err:
        tls_kwargs(RedisSettings(url="rediss://h/0", ssl_keyfile=str(pki.client_key)))
    assert err.value.key == "redis.ssl_keyfile"


def test_no_verification_with_hostname_check_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        tls_kwargs(RedisSettings(url="rediss://h/0", ssl_cert_reqs="none"))
    assert err.value.key == "redis.ssl_check_hostname"


class Refusing:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def ping(self) -> bool:
        raise self.exc


def test_a_refused_login_is_fatal_and_hides_the_password() -> None:
    r = RedisSettings(url="redis://h/0", username="alice", password=Secret("s3cret-pw"))
    for exc in (
        redis.AuthenticationError("invalid username-password pair or user is disabled."),
        redis.ResponseError("WRONGPASS invalid username-password pair"),
        redis.ResponseError("NOAUTH Authentication required."),
    ):
        with pytest.raises(RedisAuthError) as err:
            check_login(Refusing(exc), r)  # type: ignore[arg-type]
        text = str(err.value)
        assert "alice" in text and "redis.password" in text and "s3cret-pw" not in text


def test_an_unreachable_redis_is_not_fatal_at_start() -> None:
    r = RedisSettings(url="redis://h/0")
    check_login(Refusing(redis.ConnectionError("Connection refused")), r)  # type: ignore[arg-type]
    untrusted = Refusing(redis.ConnectionError("[SSL: CERTIFICATE_VERIFY_FAILED] verify failed"))
    with pytest.raises(ConfigError) as err:
        check_login(untrusted, r)  # type: ignore[arg-type]
    assert err.value.key == "redis.ssl_ca_certs"


def test_tls_settings_load_from_yaml_keys_and_bad_values_are_named() -> None:
    s = settings_from_dict(
        {"redis": {"url": "rediss://h/0", "ssl_cert_reqs": "optional", "ssl_check_hostname": False}}
    )
    assert (s.redis.ssl_cert_reqs, s.redis.ssl_check_hostname) == ("optional", False)
    with pytest.raises(ConfigError) as err:
        settings_from_dict({"redis": {"ssl_cert_reqs": "sometimes"}})
    assert err.value.key == "redis.ssl_cert_reqs"


@pytest.mark.parametrize(
    ("url", "cluster", "expected"),
    [
        ("redis://h:7000", False, False),
        ("redis://h:7000", True, True),
        ("redis+cluster://h:7000", False, True),
        ("rediss+cluster://h:7000", False, True),
    ],
)
def test_cluster_is_chosen_by_the_setting_or_the_url(
    url: str, cluster: bool, expected: bool
) -> None:
    r = RedisSettings(url=url, cluster=cluster)
    assert is_cluster(r) is expected
    assert plain_url(url).startswith(("redis://", "rediss://"))


def test_tls_applies_to_a_cluster_url_too() -> None:
    with pytest.raises(ConfigError) as err:
        tls_kwargs(RedisSettings(url="redis+cluster://h:7000", ssl_ca_certs="/etc/hosts"))
    assert err.value.key == "redis.ssl_ca_certs"
    assert tls_kwargs(RedisSettings(url="rediss+cluster://h:7000"))["ssl_cert_reqs"] == "required"


def test_an_unreachable_cluster_is_named_at_start_without_the_password() -> None:
    port = free_port()  # nothing listens there
    r = RedisSettings(url=f"redis+cluster://user:s3cret-pass@127.0.0.1:{port}/0")
    with pytest.raises(RedisClusterUnreachable) as err:
        build_client(r)
    assert f"127.0.0.1:{port}" in str(err.value) and "redis.url" in str(err.value)
    assert "s3cret-pass" not in str(err.value)
