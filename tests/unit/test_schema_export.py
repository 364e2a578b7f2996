"""``events schema export``: JSON Schema per event type and one AsyncAPI 3 document, checked with a
JSON Schema validator (``jsonschema``) against real payloads and against the AsyncAPI 3.0.0
specification's own JSON Schema (npm package ``@asyncapi/specs``)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import jsonschema
import pytest
from django.core.management import call_command

from demo.scenario import STEPS
from event_tasks import catalog

ASYNCAPI_SPECS = "@asyncapi/specs@6.11.1"  # holds the AsyncAPI 3.0.0 specification as JSON Schema


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export")
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("events", "schema", "export", "--out", str(out), stdout=stdout, stderr=stderr)
    assert f"wrote {len(catalog.all())} JSON Schemas and asyncapi.json" in stdout.getvalue()
    assert f"[{len(catalog.all())}/{len(catalog.all())}]" in stderr.getvalue()  # progress
    return out


@pytest.fixture(scope="session")
def asyncapi_3_schema(tmp_path_factory) -> dict:
    npm = shutil.which("npm")
    assert npm, "npm is needed to fetch the AsyncAPI specification's JSON Schema (Debian: apt-get install npm)"
    folder = tmp_path_factory.mktemp("asyncapi-specs")
    subprocess.run(
        [npm, "pack", ASYNCAPI_SPECS, "--pack-destination", str(folder), "--silent"],
        check=True,
        capture_output=True,
        timeout=180,
    )
    (archive,) = folder.glob("*.tgz")
    with tarfile.open(archive) as tar:
        return json.load(tar.extractfile("package/schemas/3.0.0.json"))


def test_one_json_schema_per_type_that_real_payloads_pass(exported):
    files = sorted((exported / "schemas").glob("*.json"))
    assert [f.stem for f in files] == [e.name for e in catalog.all()]
    schemas = {f.stem: json.loads(f.read_text()) for f in files}
    for name, schema in schemas.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["x-owner"] == catalog.get(name).owner and schema["title"] == name
    checked = set()
    for step in STEPS:  # the demo's payloads: every one passes its marshmallow schema
        validator = jsonschema.Draft202012Validator(schemas[step.event_type], format_checker=jsonschema.FormatChecker())
        validator.validate(step.data)
        checked.add(step.event_type)
    assert len(checked) >= 20


def test_the_json_schema_refuses_what_marshmallow_refuses(exported):
    step = next(s for s in STEPS if s.event_type.endswith("certificate.created.v1"))
    schema = json.loads((exported / "schemas" / f"{step.event_type}.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    required = schema["required"][0]
    missing = {k: v for k, v in step.data.items() if k != required}
    assert list(validator.iter_errors(missing))
    assert list(validator.iter_errors({**step.data, "surprise": 1}))  # unknown fields are refused on send
    with pytest.raises(Exception):
        catalog.get(step.event_type).encode(missing)


def test_asyncapi_document_is_valid_asyncapi_3(exported, asyncapi_3_schema):
    document = json.loads((exported / "asyncapi.json").read_text())
    jsonschema.Draft7Validator(asyncapi_3_schema).validate(document)
    assert document["asyncapi"] == "3.0.0"
    assert set(document["channels"]) == {e.name for e in catalog.all()}


def test_asyncapi_operations_per_owner_and_consumer(exported):
    document = json.loads((exported / "asyncapi.json").read_text())
    operations = document["operations"]
    created = "org.openedx.learning.certificate.created.v1"
    assert operations[f"lms.send.{created}"]["action"] == "send"
    assert operations[f"credentials.receive.{created}"] == {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{created}"},
        "messages": [{"$ref": f"#/channels/{created}/messages/{created}"}],
        "summary": f"credentials consumes {created} from its queue events.credentials",
        "x-service": "credentials",
        "x-queue": "events.credentials",
    }
    for op in operations.values():  # every reference resolves inside the document
        channel = op["channel"]["$ref"].split("/")[-1]
        assert channel in document["channels"]
        assert op["messages"][0]["$ref"].split("/")[-1] in document["channels"][channel]["messages"]
    payload = document["components"]["messages"][created]["payload"]["$ref"].split("/")[-1]
    assert document["components"]["schemas"][payload]["type"] == "object"


def test_a_broken_document_fails_the_asyncapi_schema(exported, asyncapi_3_schema):
    document = json.loads((exported / "asyncapi.json").read_text())
    name = next(iter(document["operations"]))
    document["operations"][name]["action"] = "publish"  # AsyncAPI 2's verb: not valid in 3.0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(asyncapi_3_schema).validate(document)
