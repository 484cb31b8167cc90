"""Warm replicas without servers: the scale decisions, the synchronous answer, the runner's contract, how
``warm:`` and OSCAR's ``synchronous:`` are read, and a pool of real runner processes scaling with its work."""

from __future__ import annotations

import asyncio
import base64
import io
import time
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oscar_stream.launch.autoscale import replicas_to_start, replicas_to_stop, wanted_replicas
from oscar_stream.launch.exposed_path import server_path
from oscar_stream.launch.sync_answer import RAW_TYPE, decode_input, sync_answer
from oscar_stream.launch.warm_runner import parse_done, request_env
from oscar_stream.route.files import load_routing_files
from oscar_stream.route.model import ExposeSpec, ServiceSpec, WarmSpec
from oscar_stream.route.problems import RoutingFileError
from oscar_stream.warm.invoke import run_sync
from oscar_stream.warm.pool import PoolBusy, WarmPool
from oscar_stream.warm.replica import Replica

SPEC = WarmSpec(min_replicas=1, max_replicas=4, concurrency=2, idle_s=10.0, queue=3)


@given(st.integers(0, 50), st.integers(0, 50))
def test_the_wanted_replicas_cover_the_work_within_bounds(running: int, waiting: int) -> None:
    wanted = wanted_replicas(SPEC, running, waiting)
    assert SPEC.min_replicas <= wanted <= SPEC.max_replicas
    assert wanted == SPEC.max_replicas or wanted * SPEC.concurrency >= running + waiting


def test_start_counts_the_replicas_already_starting() -> None:
    assert replicas_to_start(SPEC, replicas=1, starting=0, running=2, waiting=3) == 2
    assert replicas_to_start(SPEC, replicas=1, starting=2, running=2, waiting=3) == 0
    assert replicas_to_start(SPEC, replicas=0, starting=0, running=0, waiting=0) == 1  # the minimum


def test_only_replicas_idle_long_enough_stop_and_never_below_what_is_needed() -> None:
    idle = [None, 30.0, 5.0, 12.0]  # busy, long idle, short idle, idle
    assert replicas_to_stop(SPEC, idle, running=1, waiting=0) == [1, 3]
    assert replicas_to_stop(SPEC, idle, running=5, waiting=0) == [1]  # 3 replicas are needed
    assert replicas_to_stop(WarmSpec(min_replicas=0, idle_s=1.0), [2.0], running=0, waiting=0) == [0]


def test_the_answer_is_the_output_a_zip_of_outputs_or_the_log() -> None:
    assert sync_answer([("a.txt", b"A")], b"log", raw=False) == (base64.b64encode(b"A"), "text/plain; charset=utf-8")
    assert sync_answer([("a.txt", b"A")], b"log", raw=True) == (b"A", RAW_TYPE)
    assert sync_answer([], b"the log\n", raw=True)[0] == b"the log\n"
    body, _ = sync_answer([("a", b"1"), ("d/b", b"2")], b"", raw=True)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert {n: archive.read(n) for n in archive.namelist()} == {"a": b"1", "d/b": b"2"}


def test_inputs_are_base64_when_they_can_be() -> None:
    assert decode_input(base64.b64encode(b"\x00moo")) == b"\x00moo"
    assert decode_input(b"not base64!") == b"not base64!"
    assert decode_input(b'{"a": 1}') == b'{"a": 1}'


def test_request_variables_survive_any_characters(tmp_path: Path) -> None:
    import subprocess

    tricky = "it's $HOME `x` \"q\"\nline"
    (tmp_path / "env").write_text(request_env({"V": tricky}))
    out = subprocess.run(["/bin/sh", "-c", f'. {tmp_path}/env && printf %s "$V"'], capture_output=True, check=True)
    assert out.stdout.decode() == tricky
    assert parse_done("abc 3\n") == ("abc", 3) and parse_done("ready\n") is None


def _read(tmp_path: Path, service: str) -> ServiceSpec:
    file = tmp_path / "table.yaml"
    file.write_text(service)
    loaded = load_routing_files([file])
    [spec] = loaded.table.services
    return spec


OWN = """\
version: oscar-stream/v1
services:
- name: warm-one
  image: alpine
  script_inline: "true"
  warm: {min_replicas: 1, max_replicas: 3, concurrency: 2, idle_seconds: 5, queue: 7}
"""
FDL = """\
functions:
  oscar:
  - lab:
      name: sync-one
      image: alpine
      script: s.sh
      synchronous: {min_scale: 1, max_scale: 5}
"""


def test_warm_and_synchronous_are_read(tmp_path: Path) -> None:
    own = _read(tmp_path, OWN)
    assert own.warm == WarmSpec(1, 3, 2, 5.0, 7, take_events=True)
    assert ServiceSpec.from_record(own.to_record()) == own
    (tmp_path / "s.sh").write_text("true\n")
    sync = _read(tmp_path, FDL)
    assert sync.warm == WarmSpec(min_replicas=1, max_replicas=5, take_events=False)  # events stay jobs, as on OSCAR
    assert sync.oscar_fields["synchronous"] == {"min_scale": 1, "max_scale": 5} and "synchronous" not in sync.not_used


def test_a_bad_warm_block_says_where(tmp_path: Path) -> None:
    file = tmp_path / "table.yaml"
    file.write_text(OWN.replace("max_replicas: 3", "max_replicas: 0").replace("queue: 7", "qeue: 7"))
    with pytest.raises(RoutingFileError) as caught:
        load_routing_files([file])
    problems = [str(p) for p in caught.value.problems]
    assert any("services[0].warm.max_replicas: must be an integer >= 1" in p for p in problems), problems
    assert any("unknown field 'qeue'" in p and "did you mean 'queue'?" in p for p in problems), problems


def test_a_service_without_warm_keeps_its_version() -> None:
    spec = ServiceSpec(name="a", image="i", script="true")
    assert "warm" not in spec.to_record()


# --- a pool of real runners (local /bin/sh processes, no server) -------------------------------------------

def _pool(tmp_path: Path, script: str, max_replicas: int = 2, queue: int = 2) -> WarmPool:
    spec = WarmSpec(min_replicas=0, max_replicas=max_replicas, concurrency=1, idle_s=0.3, queue=queue)
    return WarmPool(ServiceSpec(name="p", image="i", script=script, variables={"V": "from-service"}, warm=spec),
                    tmp_path / "pool")


async def _call(pool: WarmPool, text: str) -> tuple[int, str]:
    async with pool.request() as (replica, folder):
        (folder / "in").write_text(text)
        code = await replica.run(folder, {"INPUT_FILE_PATH": str(folder / "in"),
                                          "TMP_OUTPUT_DIR": str(folder / "output")}, 10)
        return code, (folder / "log").read_text()


def test_a_pool_starts_from_zero_keeps_replica_state_and_scales_down(tmp_path: Path) -> None:
    loads = tmp_path / "loads"
    script = (f'[ -f "$HOME/weights" ] || {{ echo loaded >> {loads}; echo w > "$HOME/weights"; }}\n'
              'echo "$V $(cat "$INPUT_FILE_PATH")"; sleep 0.2\n')

    async def scenario() -> None:
        pool = _pool(tmp_path, script, queue=4)
        assert pool.replicas == []
        code, log = await _call(pool, "x")  # a cold start: waits for the replica instead of failing
        assert (code, log) == (0, "from-service x\n")
        for _ in range(3):
            await _call(pool, "y")
        assert loads.read_text().count("loaded") == 1  # loaded once per replica, not per request
        answers = await asyncio.gather(*(_call(pool, str(i)) for i in range(4)))  # 2 run, 2 wait
        assert [code for code, _ in answers] == [0] * 4
        assert len(pool.replicas) == 2 and loads.read_text().count("loaded") == 2
        deadline = time.monotonic() + 5
        while pool.replicas and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            pool.scale()  # what the pools' keeper does every second
        assert pool.replicas == []  # idle for idle_s: down to zero
        await pool.close()

    asyncio.run(scenario())


def test_a_full_queue_refuses_and_a_failing_script_reports_its_code(tmp_path: Path) -> None:
    async def scenario() -> None:
        pool = _pool(tmp_path, '[ "$(cat "$INPUT_FILE_PATH")" = warm ] && exit 0; sleep 0.5; echo oops >&2; exit 7\n',
                     max_replicas=1, queue=1)
        assert await _call(pool, "warm") == (0, "")
        running = [asyncio.ensure_future(_call(pool, "a")), asyncio.ensure_future(_call(pool, "b"))]
        await asyncio.sleep(0.1)
        with pytest.raises(PoolBusy):
            await _call(pool, "c")
        assert [await r for r in running] == [(7, "oops\n"), (7, "oops\n")]
        await pool.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(("one_at_a_time", "order"), [(True, "start end start end"),
                                                       (False, "start start end end")])
def test_a_runner_runs_requests_in_its_foreground_only_one_at_a_time(
        tmp_path: Path, one_at_a_time: bool, order: str) -> None:
    trace = tmp_path / "trace"
    script = f'echo start >> {trace}; sleep 0.3; echo end >> {trace}; exit "$CODE"\n'

    async def scenario() -> None:
        replica = Replica(tmp_path / "replica", script, {}, one_at_a_time=one_at_a_time)
        await replica.start()
        folders = [replica.take_folder(), replica.take_folder()]
        codes = await asyncio.gather(*(replica.run(f, {"CODE": str(n)}, 10) for n, f in enumerate(folders, 3)))
        assert codes == [3, 4]  # each request's own exit code, in both modes
        await replica.stop()

    asyncio.run(scenario())
    assert " ".join(trace.read_text().split()) == order


@pytest.mark.parametrize("one_at_a_time", [True, False])
def test_a_warm_script_sees_what_sh_script_would_show_it(tmp_path: Path, one_at_a_time: bool) -> None:
    """The runner sources the script in a subshell (one exec fewer): its $0, its arguments, its options and its
    variables must still be those of ``/bin/sh <script>``, and ``exit`` must end only that request."""
    script = ('echo "0=$0 #=$# unset=${NOT_SET} root=${root-} id=${id-} mode=${one_at_a_time-} '
              'x=$X pwd=$(pwd)"\n[ "$X" = stop ] && exit 9\necho after\n')

    async def scenario() -> None:
        replica = Replica(tmp_path / "replica", script, {}, one_at_a_time=one_at_a_time)
        await replica.start()
        seen = []
        for value in ("a b", "stop", "c"):
            folder = replica.take_folder()
            code = await replica.run(folder, {"X": value}, 10)
            seen.append((code, (folder / "log").read_text()))
            replica.give_back(folder)
        await replica.stop()
        root = tmp_path / "replica"
        said = f"0={root}/script.sh #=0 unset= root= id= mode= x={{}} pwd={root}/home\n"
        assert seen == [(0, said.format("a b") + "after\n"), (9, said.format("stop")),
                        (0, said.format("c") + "after\n")]

    asyncio.run(scenario())


def test_synchronous_requests_are_staged_in_memory_and_events_on_disk(tmp_path: Path) -> None:
    """worker.memory_dir: a /run request's folder is on the memory file system (here a plain folder stands in
    for /dev/shm: what is tested is where the files go), an event's stays under the replica's folder; the
    memory folders go when the pool closes."""
    memory = tmp_path / "memory"
    spec = WarmSpec(min_replicas=0, max_replicas=1, concurrency=1, idle_s=30, queue=2)
    service = ServiceSpec(name="p", image="i", script='realpath "$TMP_OUTPUT_DIR" > "$TMP_OUTPUT_DIR/where"\n',
                          warm=spec)

    async def scenario() -> None:
        pool = WarmPool(service, tmp_path / "pool", memory=memory)
        for _ in range(2):  # the second reuses the folder
            answer = await run_sync(pool, service, b"x", "in.txt", raw=True)
            assert answer.status == 200 and answer.text is not None
            assert Path(answer.text.strip()).is_relative_to(memory)
        async with pool.request(bounded=False) as (replica, folder):
            assert await replica.run(folder, {"TMP_OUTPUT_DIR": f"{folder}/output"}, 10) == 0
            where = Path((folder / "output" / "where").read_text().strip())
            assert where.is_relative_to(tmp_path / "pool") and not where.is_relative_to(memory)
        await pool.close()
        assert list(memory.rglob("*")) == []

    asyncio.run(scenario())


def test_a_request_over_its_time_restarts_the_replica(tmp_path: Path) -> None:
    async def scenario() -> None:
        pool = _pool(tmp_path, 'sleep 30\n', max_replicas=1)
        async with pool.request() as (replica, folder):
            with pytest.raises(TimeoutError):
                await replica.run(folder, {}, 0.3)
            assert not replica.alive
        pool.scale()
        assert pool.replicas == []  # the dead replica is dropped; the next request starts a fresh one
        await pool.close()

    asyncio.run(scenario())


EXPOSED_FDL = """\
functions:
  oscar:
  - lab:
      name: {name}
      image: alpine
      script: s.sh
      expose: {expose}
"""


def test_expose_is_read_as_oscar_writes_it(tmp_path: Path) -> None:
    (tmp_path / "s.sh").write_text("true\n")
    spec = _read(tmp_path, EXPOSED_FDL.format(name="model", expose="{min_scale: 2, max_scale: 5, api_port: 8501, "
                                              "cpu_threshold: 60, rewrite_target: true, set_auth: true, nodePort: 0}"))
    assert spec.expose == ExposeSpec(api_port=8501, min_replicas=2, max_replicas=5, cpu_threshold=60,
                                     rewrite_target=True, set_auth=True)
    assert spec.oscar_fields["expose"]["api_port"] == 8501  # given back as written by OSCAR's API
    assert ServiceSpec.from_record(spec.to_record()) == spec
    zeros = _read(tmp_path, EXPOSED_FDL.format(name="zeros", expose="{min_scale: 0, max_scale: 0, api_port: 0}"))
    assert zeros.expose is None  # oscar-cli's zero values: not exposed


def test_the_server_sees_the_path_oscar_gives_it() -> None:
    assert server_path("model", "v1/predict", rewrite_target=True, query="x=1") == "/v1/predict?x=1"
    assert server_path("model", "v1/predict", rewrite_target=False) == "/system/services/model/exposed/v1/predict"
    assert server_path("model", "", rewrite_target=True) == "/"
