"""The README and the docs say only what runs: every command they show parses with the real
CLI parser (nothing is executed), every `make` target they name exists, every benchmark script
they name exists, every relative link points at a file, and the README stays short.

Commands are read from fenced shell blocks (```bash, ```sh, ```console or no language), with
`\\` line continuations joined and `#` comments dropped as the shell would (shlex).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from leannet.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").rglob("*.md"))
README_MAX_LINES = 160  # a front page: what it is, install, quick starts, links; detail lives in docs/

SHELL_LANGS = {"", "bash", "sh", "shell", "console"}
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)


def shell_commands(path: Path) -> list[list[str]]:
    """Each shell command in `path`'s fenced shell blocks, as argv (continuations joined)."""
    commands = []
    for lang, body in FENCE.findall(path.read_text()):
        if lang not in SHELL_LANGS:
            continue
        line = ""
        for raw in body.splitlines():
            if raw.rstrip().endswith("\\"):
                line += raw.rstrip()[:-1] + " "
                continue
            line += raw
            argv = shlex.split(line, comments=True)
            line = ""
            if argv:
                commands.append(argv)
    return commands


def _leannet_argv(argv: list[str]) -> list[str] | None:
    """The arguments after `leannet` (also `torchrun ... -m leannet ...`); None if another tool."""
    if argv[0] == "leannet":
        return argv[1:]
    if argv[0] == "torchrun" and "leannet" in argv:
        at = argv.index("leannet")
        if argv[at - 1] in ("-m", "--no-python"):
            return argv[at + 1:]
    return None


def _cases(paths: list[Path], pick) -> list:
    cases = []
    for path in paths:
        for argv in shell_commands(path):
            value = pick(argv)
            if value is not None:
                label = f"{path.relative_to(ROOT)}: {' '.join(argv)[:70]}"
                cases.append(pytest.param(value, id=label))
    return cases


def _make_target_names() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", text, re.M))


def _links(path: Path) -> list[str]:
    """Relative link targets in a Markdown file (code blocks and inline code left out)."""
    text = FENCE.sub("", path.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)
    targets = re.findall(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def _link_cases() -> list:
    cases = []
    for path in [README, *DOCS]:
        for target in _links(path):
            cases.append(pytest.param(path, target, id=f"{path.relative_to(ROOT)} -> {target}"))
    return cases


README_LEANNET = _cases([README], _leannet_argv)
DOCS_LEANNET = _cases(DOCS, _leannet_argv)
MAKE = _cases([README, *DOCS], lambda a: a[1:] if a[0] == "make" else None)
SCRIPTS = _cases([README, *DOCS],
                 lambda a: a[1] if a[0] == "python" and len(a) > 1 and a[1].endswith(".py") else None)


def _parses(argv: list[str]) -> None:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help and --version print and exit 0; argparse errors exit 2
        assert e.code == 0, f"leannet {' '.join(argv)}: exit {e.code}"
        return
    assert getattr(args, "func", None) is not None, f"leannet {' '.join(argv)}: names no command"


def test_readme_shows_leannet_commands():
    assert len(README_LEANNET) >= 10  # the extraction found the quick start


@pytest.mark.parametrize("argv", README_LEANNET)
def test_readme_command_parses(argv):
    _parses(argv)  # a usage error raises leannet.cli.UsageError with argparse's message


@pytest.mark.parametrize("argv", DOCS_LEANNET)
def test_docs_command_parses(argv):
    _parses(argv)


@pytest.mark.parametrize("args", MAKE)
def test_make_targets_exist(args):
    targets = _make_target_names()
    named = [a for a in args if "=" not in a and not a.startswith("-")]
    assert named, "a bare `make` runs the first target: name it"
    missing = [t for t in named if t not in targets]
    assert not missing, f"no Makefile target {missing}"
    for assignment in (a for a in args if a.startswith("BENCH=")):
        for name in assignment.split("=", 1)[1].split():
            assert (ROOT / "benchmarks" / f"{name.removesuffix('.py')}.py").is_file(), name


@pytest.mark.parametrize("script", SCRIPTS)
def test_named_scripts_exist(script):
    assert (ROOT / script).is_file(), script


def test_readme_is_short():
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES}): move detail to docs/"


@pytest.mark.parametrize(("path", "target"), _link_cases())
def test_relative_link_points_at_a_file(path, target):
    resolved = (path.parent / target.split("#", 1)[0]).resolve()
    assert resolved.exists(), f"{path.relative_to(ROOT)}: {target} -> {resolved} does not exist"


def test_extraction_joins_continuations_and_drops_comments(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("```bash\nleannet bench a \\\n    --batch 1,8   # two sizes\n# only a comment\n"
                  "make test PYTEST_ARGS=\"-m slow\"\n```\n```python\nleannet.list_models()\n```\n")
    assert shell_commands(md) == [["leannet", "bench", "a", "--batch", "1,8"],
                                  ["make", "test", "PYTEST_ARGS=-m slow"]]


def test_a_bad_option_is_caught():
    from leannet.cli import UsageError

    with pytest.raises(UsageError):
        _parses(["bench", "pplcnet_x1_0", "--no-such-flag"])
