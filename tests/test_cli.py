import subprocess
import sys

import pytest

from leannet import __version__
from leannet.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    # every sub-command is listed with its one-line help
    commands = ["detect", "models", "convert", "train", "eval", "profile", "bench", "select", "report",
                "export", "infer", "weights", "lab"]
    # argparse lists each under COMMAND as "    name   help" (4 spaces; wrapped help goes deeper)
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("    ") and line[4] != " "]
    assert sorted(listed) == sorted(commands)
    assert "re-parameterise, fold BN, export to ONNX/OpenVINO" in out


def test_bad_subcommand_one_line_exit_2(capsys):
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid choice" in err[0]


def test_models_pattern(capsys):
    assert main(["models", "pplcnet_x0_2*"]) == 0
    out = capsys.readouterr().out
    assert "pplcnet_x0_25" in out and "pplcnet_x1_0" not in out


def test_models_no_match(capsys):
    assert main(["models", "nothing*", "--no-macs"]) == 0
    assert "no model matches" in capsys.readouterr().out


def test_entry_point_user_error_has_no_traceback():
    # The real console script: exit 2, one line on stderr, no traceback.
    r = subprocess.run([sys.executable, "-m", "leannet", "models", "--format", "xml"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
