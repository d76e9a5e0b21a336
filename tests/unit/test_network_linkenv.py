"""Docker's legacy-link environment variables (moby daemon/links ToEnv), byte for byte."""

from __future__ import annotations

from barque.network.linkenv import link_env


def test_one_port():
    assert link_env("db", "web", "172.17.0.2", ["5432/tcp"], ["POSTGRES_USER=me", "PATH=/usr/bin", "HOME=/root"]) == [
        "DB_PORT=tcp://172.17.0.2:5432",
        "DB_PORT_5432_TCP=tcp://172.17.0.2:5432",
        "DB_PORT_5432_TCP_ADDR=172.17.0.2",
        "DB_PORT_5432_TCP_PORT=5432",
        "DB_PORT_5432_TCP_PROTO=tcp",
        "DB_NAME=/web/db",
        "DB_ENV_POSTGRES_USER=me",
    ]


def test_no_ports_and_no_env():
    assert link_env("cache", "/web", "172.17.0.3", [], None) == ["CACHE_NAME=/web/cache"]


def test_alias_prefix_is_upper_case_with_dashes_as_underscores():
    env = link_env("my-db.x", "web", "10.0.0.2", ["80"], [])
    assert env[0] == "MY_DB.X_PORT=tcp://10.0.0.2:80"
    assert env[-1] == "MY_DB.X_NAME=/web/my-db.x"


def test_tcp_first_then_by_number_with_ranges():
    env = link_env("svc", "app", "172.17.0.5", ["53/udp", "90/tcp", "82/tcp", "80/tcp", "81/tcp"], [])
    ip = "172.17.0.5"

    def each(n, proto):
        p = f"SVC_PORT_{n}_{proto.upper()}"
        return [f"{p}={proto}://{ip}:{n}", f"{p}_ADDR={ip}", f"{p}_PORT={n}", f"{p}_PROTO={proto}"]

    assert env == [
        f"SVC_PORT=tcp://{ip}:80",
        *each(80, "tcp"), *each(81, "tcp"), *each(82, "tcp"), *each(90, "tcp"),
        f"SVC_PORT_80_TCP_START=tcp://{ip}:80", "SVC_PORT_80_TCP_PORT_START=80",
        f"SVC_PORT_80_TCP_END=tcp://{ip}:82", "SVC_PORT_80_TCP_PORT_END=82",
        *each(53, "udp"),
        "SVC_NAME=/app/svc",
    ]


def test_a_range_at_the_end_and_an_exposed_range_key():
    env = link_env("r", "c", "1.2.3.4", ["7000-7001/udp"], [])
    assert env[-5:] == ["R_PORT_7000_UDP_START=udp://1.2.3.4:7000", "R_PORT_7000_UDP_PORT_START=7000",
                        "R_PORT_7000_UDP_END=udp://1.2.3.4:7001", "R_PORT_7000_UDP_PORT_END=7001", "R_NAME=/c/r"]
    assert env[0] == "R_PORT=udp://1.2.3.4:7000"


def test_env_entries_without_value_are_skipped_and_values_keep_their_equals_signs():
    assert link_env("t", "c", "1.1.1.1", [], ["NOVALUE", "A=b=c", "HOSTNAME=x", "EMPTY="]) == [
        "T_NAME=/c/t", "T_ENV_A=b=c", "T_ENV_HOSTNAME=x", "T_ENV_EMPTY="]
