"""Routing files: every FDL sample of tests/data/fdl validates; each broken variant is rejected with file, line,
path and a reason; OSCAR fields we do not implement are reported as "not used"."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from oscar_stream.route.files import load_routing_files
from oscar_stream.route.problems import RoutingFileError
from tests.support.paths import FDL


def _copy_samples(tmp_path: Path) -> Path:
    for item in (f for f in FDL.iterdir() if f.is_file()):
        shutil.copy(item, tmp_path / item.name)
    return tmp_path


def _variant(tmp_path: Path, sample: str, old: str, new: str) -> Path:
    folder = _copy_samples(tmp_path)
    text = (folder / sample).read_text()
    assert old in text, f"{old!r} not in {sample}"
    (folder / sample).write_text(text.replace(old, new, 1))
    return folder / sample


def _problems(*files: Path) -> list[str]:
    with pytest.raises(RoutingFileError) as caught:
        load_routing_files(files)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("sample", ["two-stage.yaml", "cross-cluster.yaml", "dcache-input.yaml"])
def test_each_sample_validates(sample: str) -> None:
    loaded = load_routing_files([FDL / sample])
    assert loaded.table.services
    assert all(s.script.startswith("#!/bin/sh") for s in loaded.table.services)


def test_two_stage_model() -> None:
    pick, locate = load_routing_files([FDL / "two-stage.yaml"]).table.services
    assert (pick.name, pick.cluster, pick.cpu, pick.memory) == ("pick", "campus", "1.5", "1Gi")
    assert pick.variables == {"MIN_SNR": "3.5"} and pick.secrets == {"ARCHIVE_TOKEN": "placeholder-token-for-tests"}
    assert pick.inputs[0].storage == "minio.default" and pick.inputs[0].suffixes == (".mseed",)
    assert locate.cpu == "0.25"  # a YAML number becomes a quantity string
    assert locate.outputs[0].suffixes == (".json",)


def test_cross_cluster_gpu_storage_and_clusters() -> None:
    loaded = load_routing_files([FDL / "cross-cluster.yaml"])
    ping_filter, classifier = loaded.table.services
    assert ping_filter.inputs[0].storage == "minio.default" and ping_filter.inputs[0].prefixes == ("ping-",)
    assert ping_filter.outputs[0].storage == "minio.shore"
    assert classifier.gpus == 1 and classifier.cluster == "shore"
    assert [c.id for c in loaded.table.clusters] == ["shore"]
    assert "minio.shore" in {p.id for p in loaded.table.storage_providers}


def test_secrets_never_appear_in_the_redacted_form() -> None:
    pick = load_routing_files([FDL / "two-stage.yaml"]).table.services[0]
    assert "placeholder-token-for-tests" not in str(pick.redacted())
    assert "placeholder-token-for-tests" not in repr(pick)


def test_unknown_storage_provider(tmp_path: Path) -> None:
    file = _variant(tmp_path, "two-stage.yaml", "storage_provider: minio.default", "storage_provider: minio.nope")
    [problem] = _problems(file)
    assert f"{file}:18: functions.oscar[0].campus.input[0].storage_provider: unknown storage provider " \
           "'minio.nope'" in problem
    assert "declare it under storage_providers.minio.nope" in problem


def test_missing_script_file(tmp_path: Path) -> None:
    file = _variant(tmp_path, "two-stage.yaml", "script: pick.sh", "script: missing.sh")
    [problem] = _problems(file)
    assert ":8: functions.oscar[0].campus.script: script file" in problem and "missing.sh" in problem


def test_bad_resource_quantity(tmp_path: Path) -> None:
    file = _variant(tmp_path, "two-stage.yaml", "memory: 1Gi", "memory: 2 gigs")
    [problem] = _problems(file)
    assert ":10: functions.oscar[0].campus.memory: '2 gigs' is not a Kubernetes quantity" in problem


def test_duplicate_service_name_on_one_cluster_across_files(tmp_path: Path) -> None:
    file = _variant(tmp_path, "dcache-input.yaml", "name: shot-summary", "name: pick")
    file.write_text(file.read_text().replace("- xfel-cluster:", "- campus:"))
    problems = _problems(FDL / "two-stage.yaml", file)
    assert len(problems) == 1 and "duplicate service name 'pick' on cluster 'campus'" in problems[0]
    assert "already declared at" in problems[0] and "two-stage.yaml:6" in problems[0]


def test_the_same_name_on_two_clusters_is_two_services(tmp_path: Path) -> None:
    """OSCAR's replica pattern: one file, one service name, two clusters."""
    file = _variant(tmp_path, "dcache-input.yaml", "name: shot-summary", "name: pick")
    loaded = load_routing_files([FDL / "two-stage.yaml", file])
    assert sorted(s.qualified for s in loaded.table.services) == ["locate@campus", "pick@campus", "pick@xfel-cluster"]


def test_input_that_can_never_match(tmp_path: Path) -> None:
    file = _variant(tmp_path, "cross-cluster.yaml", "- ping-", "- /ping-")
    [problem] = _problems(file)
    assert "input[0].prefix[0]: prefix '/ping-' starts with '/' and can never match" in problem


def test_pipeline_cycle(tmp_path: Path) -> None:
    file = _variant(tmp_path, "two-stage.yaml", "path: seismic/locations", "path: seismic/waveforms")
    file.write_text(file.read_text().replace("- .json", "- .mseed"))
    [problem] = _problems(file)
    assert "pipeline cycle: pick@campus -> locate@campus -> pick@campus" in problem


def test_output_filters_that_cannot_match_break_no_cycle(tmp_path: Path) -> None:
    file = _variant(tmp_path, "two-stage.yaml", "path: seismic/locations", "path: seismic/waveforms")
    assert len(load_routing_files([file]).table.services) == 2  # .json outputs never match the .mseed input


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    file = _variant(tmp_path, "two-stage.yaml", "memory: 1Gi", "memory: lots")
    file.write_text(file.read_text().replace("image: registry.example/seismo/locator:1.0", "imaeg: x"))
    with pytest.raises(RoutingFileError) as caught:
        load_routing_files([file])
    problems = [str(p) for p in caught.value.problems]
    assert any("memory" in p for p in problems)
    assert any("campus.image: is required" in p for p in problems)
    assert not any("imaeg" in p for p in problems)  # OSCAR ignores unknown keys: in an FDL file, a note


def test_an_unknown_key_in_an_fdl_file_is_a_note_with_a_suggestion(tmp_path: Path) -> None:
    file = _variant(tmp_path, "two-stage.yaml", "log_level: DEBUG", "log_level: DEBUG\n      log_levle: INFO\n"
                    "      brand_new_oscar_field: {x: 1}")
    notes = [str(n) for n in load_routing_files([file]).notes]
    assert any("'log_levle' is not known to oscar-stream; ignored (did you mean 'log_level'?)" in n for n in notes)
    assert any("'brand_new_oscar_field' is not known to oscar-stream; ignored" in n for n in notes)


def test_a_typo_in_oscar_streams_own_format_stays_an_error(tmp_path: Path) -> None:
    file = tmp_path / "table.yaml"
    file.write_text(OWN_FORMAT.replace("concurrency: 3", "concurency: 3"))
    [problem] = _problems(file)
    assert "unknown field 'concurency'" in problem and "did you mean 'concurrency'?" in problem


def test_fields_that_change_what_a_job_does_are_warnings_that_say_how(tmp_path: Path) -> None:
    file = _variant(tmp_path, "two-stage.yaml", "log_level: DEBUG", "log_level: DEBUG\n      alpine: false\n"
                    "      synchronous: {min_scale: 0}\n      mount: {storage_provider: minio, path: seismic/shared}")
    loaded = load_routing_files([file])
    warnings = [str(n) for n in loaded.notes if n.level == "warning"]
    notes = [str(n) for n in loaded.notes if n.level == "note"]
    assert any("'alpine' is accepted but changes nothing" in n for n in notes)
    assert any("'synchronous' without bounds is taken as not given" in n for n in notes)
    assert any("'mount' is accepted but not implemented: the job runs without the storage path mounted" in w
               for w in warnings)
    assert loaded.table.services[0].not_used == ("alpine", "mount")
    assert loaded.table.services[0].warm is None


def test_not_yaml_and_not_a_routing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("functions:\n  oscar: [\n")
    other = tmp_path / "other.yaml"
    other.write_text("hello: world\n")
    problems = _problems(broken, other)
    assert "not valid YAML" in problems[0] and str(broken) in problems[0]
    assert any("neither an OSCAR FDL file" in p for p in problems)


OWN_FORMAT = """\
version: oscar-stream/v1
cluster: lab
services:
  - name: stats
    image: alpine:3
    script_inline: |
      #!/bin/sh
      wc -c "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/out.txt"
    concurrency: 3
    retries: 2
    backoff_seconds: 1.5
    timeout_seconds: 60
    ttl_seconds: 120
    input:
      - storage_provider: minio
        path: data/in
        glob: ["*.csv"]
        events: [created, removed]
    output:
      - {storage_provider: minio, path: data/out}
"""


def test_own_format_extras(tmp_path: Path) -> None:
    file = tmp_path / "table.yaml"
    file.write_text(OWN_FORMAT)
    [service] = load_routing_files([file]).table.services
    assert (service.concurrency, service.retries, service.backoff_s, service.timeout_s, service.ttl_s) == (
        3, 2, 1.5, 60, 120)
    assert service.cluster == "lab" and service.inputs[0].globs == ("*.csv",)
    assert len(service.inputs[0].events) == 2


def test_own_format_rejects_bad_extras(tmp_path: Path) -> None:
    file = tmp_path / "table.yaml"
    file.write_text(OWN_FORMAT.replace("concurrency: 3", "concurrency: 0").replace("[created, removed]",
                                                                                  "[created, renamed]"))
    problems = _problems(file)
    assert any(":9: services[0].concurrency: must be an integer >= 1" in p for p in problems)
    assert any("unknown event kind 'renamed'" in p for p in problems)
