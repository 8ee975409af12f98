"""`pippin inspect` and `pippin validate`: output, exit codes, one-line errors, --json shape."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pippin.spec as spec
from pippin.spec import Model

cli_main = importlib.import_module("pippin.pipelines.cli.main")  # the module, not the entry function
main = cli_main.main


def _sound() -> Model:
    m = Model()
    m.specificationVersion = 4
    m.soundAnalysisPreprocessing.vggish.SetInParent()
    for field, name, shape in (("input", "audioSamples", [15600]), ("output", "mel", [1, 96, 64])):
        f = getattr(m.description, field).add()
        f.name = name
        f.type.multiArrayType.shape.extend(shape)
        f.type.multiArrayType.dataType = 65568  # FLOAT32
    return m


@pytest.fixture
def files(tmp_path):
    good = spec.save(_sound(), tmp_path / "good.mlmodel")
    broken_model = _sound()
    broken_model.description.output[0].type.multiArrayType.shape[1] = 95
    broken_model.description.input[0].type.isOptional = True
    broken = spec.save(broken_model, tmp_path / "broken.mlmodel")
    garbage = tmp_path / "garbage.mlmodel"
    garbage.write_bytes(b"\xff\xff\xff\xff not a model")
    return {"good": str(good), "broken": str(broken), "garbage": str(garbage),
            "missing": str(tmp_path / "missing.mlmodel")}


def test_help_lists_every_command_and_exit_codes(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for module in cli_main.COMMAND_MODULES:
        assert module.removesuffix("_cmd") in out
    assert "inspect" in out and "validate" in out
    assert "exit codes: 0" in out


@pytest.mark.parametrize("command, codes", [("inspect", ["0 =", "2 ="]),
                                            ("validate", ["0 =", "1 =", "2 ="])])
def test_command_help_documents_exit_codes(capsys, command, codes):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert all(code in out for code in codes), out
    assert "--json" in out


def test_inspect_prints_the_tree(files, capsys):
    assert main(["inspect", files["good"]]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(files["good"] + "  (")
    assert out[1].startswith("soundAnalysisPreprocessing  specificationVersion 4 (iOS 13.0")
    assert "│  └─ audioSamples: MultiArray<FLOAT32>[15600]" in out
    assert "└─ preprocessing: vggish" in out


def test_inspect_json_has_describe_keys_at_top_level(files, capsys):
    assert main(["inspect", "--json", files["good"]]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["ok"] is True and obj["schema_version"] == 1
    expected = spec.describe(spec.load(files["good"]), path=files["good"])
    for key, value in expected.items():
        assert obj[key] == value, key


@pytest.mark.parametrize("which", ["garbage", "missing"])
def test_inspect_unreadable_file_is_one_line_exit_2(files, capsys, which):
    assert main(["inspect", files[which]]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith(f"pippin: error: {files[which]}: ")
    assert main(["inspect", "--json", files[which]]) == 2
    obj = json.loads(capsys.readouterr().out)
    assert obj["ok"] is False and obj["error"]["type"] == "SpecError"
    assert obj["error"]["where"] == files[which]


def test_validate_valid_file_exit_0(files, capsys):
    assert main(["validate", files["good"]]) == 0
    assert capsys.readouterr().out == f"{files['good']}: valid\n"


def test_validate_problems_one_line_each_exit_1(files, capsys):
    assert main(["validate", files["broken"]]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"{files['broken']}: description.input[0]: input 'audioSamples' is optional, "
        "a soundAnalysisPreprocessing model takes no optional inputs",
        f"{files['broken']}: description.output[0]: output 'mel' has shape [1, 95, 64], "
        "expected [1, 96, 64]",
    ]


def test_validate_many_files_worst_code_and_continues(files, capsys):
    code = main(["validate", files["good"], files["garbage"], files["broken"], files["missing"]])
    assert code == 2
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert out[0] == f"{files['good']}: valid"
    assert len(out) == 3 and all(line.startswith(files["broken"] + ": ") for line in out[1:])
    err = captured.err.splitlines()
    assert len(err) == 2
    assert err[0].startswith(f"pippin: error: {files['garbage']}: not a Core ML model")
    assert err[1] == f"pippin: error: {files['missing']}: no such file"
    assert main(["validate", files["good"], files["broken"]]) == 1


def test_validate_json_shape(files, capsys):
    assert main(["validate", "--json", files["good"], files["broken"], files["garbage"]]) == 2
    obj = json.loads(capsys.readouterr().out)
    assert obj["ok"] is False and obj["valid"] is False
    assert [f["file"] for f in obj["files"]] == [files["good"], files["broken"], files["garbage"]]
    good, broken, garbage = obj["files"]
    assert (good["valid"], good["readable"], good["problems"]) == (True, True, [])
    assert (broken["valid"], broken["readable"], len(broken["problems"])) == (False, True, 2)
    assert (garbage["readable"], garbage["error"]["type"]) == (False, "SpecError")
    assert obj["problems"] == broken["problems"]
    assert obj["problems"][1] == {"file": files["broken"], "path": "description.output[0]",
                                  "message": "output 'mel' has shape [1, 95, 64], expected [1, 96, 64]",
                                  "rule": "sound-io"}
    assert main(["validate", "--json", files["good"]]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert (obj["ok"], obj["valid"], obj["problems"]) == (True, True, [])


def test_usage_error_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["validate"])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("pippin: error: ")


def test_console_script_runs(files):
    """The installed entry point, as a user runs it: no traceback, documented exit codes."""
    script = Path(sys.executable).parent / "pippin"
    command = [str(script)] if script.exists() else [shutil.which("pippin") or "pippin"]
    run = subprocess.run(command + ["validate", files["broken"], files["garbage"]],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert run.stderr.startswith(f"pippin: error: {files['garbage']}: ")
    assert len(run.stdout.splitlines()) == 2
