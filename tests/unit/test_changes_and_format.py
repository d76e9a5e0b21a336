"""`--change` parsing and Docker's output helpers."""

from __future__ import annotations

import pytest

from barque.cli.format import human_duration, human_size, print_listing, render_template, table
from barque.errors import InvalidArgument
from barque.images.changes import apply_changes


def test_changes_like_a_dockerfile():
    cfg = apply_changes({}, [
        "CMD echo hi", 'ENV A=1 B="x y"', "ENV C hello world", "EXPOSE 80 53/udp", "WORKDIR /app", "WORKDIR sub",
        "LABEL a=b", "USER nobody", "STOPSIGNAL SIGTERM", 'VOLUME ["/data"]',
    ])
    assert cfg["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert cfg["Env"] == ["A=1", "B=x y", "C=hello world"]
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert cfg["WorkingDir"] == "/app/sub"
    assert cfg["Labels"] == {"a": "b"} and cfg["User"] == "nobody" and cfg["StopSignal"] == "SIGTERM"
    assert cfg["Volumes"] == {"/data": {}}


def test_entrypoint_drops_inherited_cmd_unless_set():
    assert apply_changes({"Cmd": ["sh"]}, ['ENTRYPOINT ["/bin/app"]'])["Cmd"] is None
    cfg = apply_changes({"Cmd": ["sh"]}, ['CMD ["x"]', 'ENTRYPOINT ["/bin/app"]'])
    assert cfg["Cmd"] == ["x"] and cfg["Entrypoint"] == ["/bin/app"]


def test_env_replaces_existing_key():
    # in place, as Docker's builder replaces it (dispatchEnv)
    assert apply_changes({"Env": ["A=1", "B=2"]}, ["ENV A=3"])["Env"] == ["A=3", "B=2"]


@pytest.mark.parametrize("change,message", [("RUN make", "RUN is not a valid change command"),
                                            ("EXPOSE http", "invalid containerPort: http"),
                                            ("ENV", "ENV requires at least one argument")])
def test_bad_changes(change, message):
    with pytest.raises(InvalidArgument, match=message):
        apply_changes({}, [change])


@pytest.mark.parametrize("n,text", [(0, "0B"), (999, "999B"), (1000, "1kB"), (1_982_401, "1.98MB"),
                                    (77_900_000, "77.9MB"), (123_456_789, "123MB"), (1_500_000_000, "1.5GB")])
def test_human_size_like_docker_images(n, text):
    assert human_size(n) == text


@pytest.mark.parametrize("s,text", [(0.5, "Less than a second"), (1, "1 second"), (45, "45 seconds"),
                                    (90, "About a minute"), (600, "10 minutes"), (3600, "About an hour"),
                                    (7200, "2 hours"), (3 * 86400, "3 days"), (20 * 86400, "2 weeks"),
                                    (90 * 86400, "3 months"), (800 * 86400, "2 years")])
def test_human_duration(s, text):
    assert human_duration(s) == text


def test_templates():
    data = {"ID": "abc", "Labels": {"k": "v"}, "List": ["a", "b"], "N": None}
    assert render_template("{{.ID}}", data) == "abc"
    assert render_template("{{json .Labels}}", data) == '{"k":"v"}'
    assert render_template('{{index .Labels "k"}}', data) == "v"
    assert render_template('{{join .List ","}}', data) == "a,b"
    assert render_template("{{.N}}", data) == "<no value>"
    assert render_template("{{upper .ID}}\\t{{len .List}}", data) == "ABC\t2"


def test_table_layout():
    # Docker's tabwriter: minimum width 10, padding 3
    assert table(["A", "BB"], [["xxxx", "y"]]).splitlines() == ["A         BB", "xxxx      y"]
    assert table(["REPOSITORY", "TAG"], [["busybox", "latest"]]).splitlines() == [
        "REPOSITORY   TAG", "busybox      latest"]


def test_listing_table_template():
    lines = []
    print_listing([{"ID": "1", "Tag": "t"}], "table {{.ID}}\\t{{.Tag}}", [], echo=lines.append)
    assert lines[0].splitlines() == ["IMAGE ID   TAG", "1          t"]
